"""Writes tests/fixtures/models/gpt2/hf/: the gpt2 fixture (bert4keras' `gpt/...` TF
checkpoint, tools/make_model_fixtures.py) as a Hugging Face `GPT2LMHeadModel`, saved by
transformers itself as `model.safetensors` and `pytorch_model.bin`, and
`hf_reference.npz`: transformers' own probabilities for the fixture's inputs.

The weights are read with TensorFlow and placed by GPT-2's own layout (Conv1D weights
`[in, out]`, query / key / value fused into `c_attn` by columns); nothing here imports
kerasformer. The config asks for the erf GELU (`activation_function="gelu"`), as
bert4keras' `hidden_act="gelu"`, so both references describe one model.

Run where transformers and torch are installed:

    python -m venv --system-site-packages /tmp/hf-ref
    /tmp/hf-ref/bin/pip install "transformers<5"
    /tmp/hf-ref/bin/python tools/make_gpt2_hf_fixtures.py
"""
import json
import pathlib
import shutil

import numpy as np
import tensorflow as tf
import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "models" / "gpt2"
OUT = FIXTURE / "hf"


def main():
    config = json.loads((FIXTURE / "bert_config.json").read_text())
    reader = tf.train.load_checkpoint(str(FIXTURE / "bert_model.ckpt"))

    def tensor(name):
        return torch.from_numpy(reader.get_tensor(name).astype(np.float32))

    state = {
        "transformer.wte.weight": tensor("gpt/embeddings/word_embeddings"),
        "transformer.wpe.weight": tensor("gpt/embeddings/position_embeddings"),
        "transformer.ln_f.weight": tensor("gpt/output/LayerNorm/gamma"),
        "transformer.ln_f.bias": tensor("gpt/output/LayerNorm/beta"),
    }
    for i in range(config["num_hidden_layers"]):
        tf_layer, hf_layer = f"gpt/transformer/layer_{i}/", f"transformer.h.{i}."
        for kind, part in (("weight", "kernel"), ("bias", "bias")):
            state[hf_layer + f"attn.c_attn.{kind}"] = torch.cat(
                [tensor(tf_layer + f"attention/self/{n}/{part}") for n in ("query", "key", "value")],
                dim=-1)
            for hf_name, tf_name in (("attn.c_proj", "attention/output/dense"),
                                     ("mlp.c_fc", "intermediate/dense"),
                                     ("mlp.c_proj", "output/dense")):
                state[hf_layer + f"{hf_name}.{kind}"] = tensor(tf_layer + f"{tf_name}/{part}")
        for hf_name, tf_name in (("ln_1", "attention/input/LayerNorm"), ("ln_2", "input/LayerNorm")):
            state[hf_layer + f"{hf_name}.weight"] = tensor(tf_layer + f"{tf_name}/gamma")
            state[hf_layer + f"{hf_name}.bias"] = tensor(tf_layer + f"{tf_name}/beta")

    hf_config = transformers.GPT2Config(
        vocab_size=config["vocab_size"], n_positions=config["max_position_embeddings"],
        n_embd=config["hidden_size"], n_layer=config["num_hidden_layers"],
        n_head=config["num_attention_heads"], n_inner=config["intermediate_size"],
        activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, bos_token_id=2, eos_token_id=3,
    )
    model = transformers.GPT2LMHeadModel(hf_config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"} | {k for k in missing if k.endswith("attn.bias")}, missing
    model.tie_weights()
    model.eval()

    reference = np.load(FIXTURE / "reference.npz")
    arrays = {}
    for case in ("lm", "hierarchical_long"):
        token_ids = reference[f"{case}/token_ids"]
        if token_ids.shape[1] > config["max_position_embeddings"]:
            continue  # hierarchical positions are bert4keras' own
        mask = (token_ids != 0).astype(np.int64)
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(token_ids.astype(np.int64)),
                           attention_mask=torch.from_numpy(mask)).logits
        arrays[f"{case}/token_ids"] = token_ids
        arrays[f"{case}/attention_mask"] = mask
        arrays[f"{case}/probabilities"] = torch.softmax(logits, -1).numpy().astype(np.float32)

    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT, safe_serialization=True)
    model.save_pretrained(OUT / "bin", safe_serialization=False)
    (OUT / "bin" / "pytorch_model.bin").rename(OUT / "pytorch_model.bin")
    shutil.rmtree(OUT / "bin")
    (OUT / "generation_config.json").unlink(missing_ok=True)
    np.savez_compressed(FIXTURE / "hf_reference.npz", **arrays,
                        __meta__=np.array(f"transformers {transformers.__version__}, "
                                          f"torch {torch.__version__}"))
    print(f"wrote {OUT} ({', '.join(sorted(p.name for p in OUT.iterdir()))})")


if __name__ == "__main__":
    main()
