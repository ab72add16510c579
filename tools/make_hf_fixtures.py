"""Writes Hugging Face layout copies of the parity fixtures (tests/fixtures/models/*/hf).

The tensors of each fixture's bert_model.ckpt (written by the original bert4keras, see
make_model_fixtures.py) are renamed as the PyTorch ports name them — HF
`BertForMaskedLM` / bert-base-chinese, Tongjilibo's SimBERT, JunnYu's RoFormer,
RoFormer-Sim, RoFormerV2 and GAU-α — with TF kernels transposed to torch `Linear`
`[out, in]`, and saved with torch (zip and legacy pickle formats) and safetensors,
next to a `config.json` in the ports' format. Loading any of them must give bert4keras'
reference outputs again.

Each copy reproduces a quirk of the real repos on purpose:
- bert: LayerNorm parameters named `gamma` / `beta` (bert-base-chinese), an int64
  `position_ids` buffer, the tied decoder copy; safetensors.
- bert_factorized: SimBERT small's `embedding_hidden_mapping_in`; zip pickle.
- roformer: RoFormer-Sim's pooler, the `embed_positions` sinusoid buffer, the legacy
  (pre-1.6) pickle format of JunnYu's exports.
- roformer_factorized: `embeddings_project`; a base-model file without the
  `roformer.` prefix and without MLM head (safetensors).
- roformer_v2: all three formats; gau_alpha: legacy pickle and safetensors.

Run with torch and safetensors installed (the main environment):

    python tools/make_hf_fixtures.py
"""
import json
import pathlib
import re

import numpy as np
import torch
from safetensors.torch import save_file

from kerasformer.convert.tf_checkpoint import TFCheckpoint

MODELS = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"


def hf_name(tf_name, base, mapping):
    """TF variable name -> the ports' state-dict key (HF's conversion rules)."""
    if tf_name == "bert/encoder/embedding_hidden_mapping_in/kernel":
        return mapping + ".weight"
    if tf_name == "bert/encoder/embedding_hidden_mapping_in/bias":
        return mapping + ".bias"
    if tf_name == "cls/predictions/output_bias":
        return "cls.predictions.bias"
    name = re.sub(r"^(bert|GAU_alpha)/", base + "/", tf_name)
    name = re.sub(r"layer_(\d+)", r"layer/\1", name)
    name = re.sub(r"/(kernel|gamma|output_weights)$", "/weight", name)
    name = re.sub(r"/(beta|output_bias)$", "/bias", name)
    if name.endswith("_embeddings"):
        name += "/weight"
    return name.replace("/", ".")


def state_dict(fixture, base, mapping):
    checkpoint = TFCheckpoint(MODELS / fixture / "bert_model.ckpt")
    tensors = {}
    for name in checkpoint:
        value = checkpoint[name]
        if name.endswith("/kernel"):
            value = value.T  # Keras/TF [in, out] -> torch Linear [out, in]
        tensors[hf_name(name, base, mapping)] = torch.from_numpy(np.ascontiguousarray(value))
    return tensors


def tied_decoder(tensors, base):
    tensors = dict(tensors)
    tensors["cls.predictions.decoder.weight"] = tensors[f"{base}.embeddings.word_embeddings.weight"].clone()
    if "cls.predictions.bias" in tensors:
        tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"].clone()
    return tensors


def sinusoid_table(rows, dim):
    angles = np.arange(rows)[:, None] * 10000.0 ** (-2 * np.arange(dim // 2) / dim)
    return torch.tensor(np.concatenate([np.sin(angles), np.cos(angles)], axis=1), dtype=torch.float32)


def config(fixture, base):
    """The ports' config.json: the TF config under HF's keys plus their extras."""
    tf_config = json.loads((MODELS / fixture / "bert_config.json").read_text())
    extras = {
        "bert": {"model_type": "bert", "architectures": ["BertForMaskedLM"],
                 "layer_norm_eps": 1e-12, "pad_token_id": 0, "directionality": "bidi"},
        "roformer": {"model_type": "roformer", "architectures": ["RoFormerForMaskedLM"],
                     "layer_norm_eps": 1e-12, "rotary_value": False},
        "gau_alpha": {"model_type": "gau_alpha", "architectures": ["GAUAlphaForMaskedLM"],
                      "normalization": "softmax_plus", "attention_scale": True, "use_bias": False},
    }[base]
    hf_config = {**tf_config, **extras}
    if fixture == "roformer":  # RoFormer-Sim's config
        hf_config.update(pooler_activation="linear", is_decoder=True, eos_token_id=3)
    if fixture == "roformer_v2":
        hf_config.update(norm_type="rms_norm", use_bias=False)
    if base == "gau_alpha":
        del hf_config["num_attention_heads"]  # JunnYu's GAU config has none
    return hf_config


def main():
    for fixture, base, mapping, formats in [
        ("bert", "bert", "bert.encoder.embedding_hidden_mapping_in", ("safetensors",)),
        ("bert_factorized", "bert", "bert.encoder.embedding_hidden_mapping_in", ("zip",)),
        ("roformer", "roformer", "roformer.embeddings_project", ("legacy",)),
        ("roformer_factorized", "roformer", "roformer.embeddings_project", ("safetensors",)),
        ("roformer_v2", "roformer", "roformer.embeddings_project", ("zip", "legacy", "safetensors")),
        ("gau_alpha", "gau_alpha", None, ("legacy", "safetensors")),
    ]:
        directory = MODELS / fixture / "hf"
        directory.mkdir(exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        tensors = state_dict(fixture, base, mapping)
        head_dim = json.loads((MODELS / fixture / "bert_config.json").read_text())["hidden_size"] // 4
        if fixture == "bert":
            tensors = {re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma",
                              re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k)): v
                       for k, v in tied_decoder(tensors, base).items()}
            tensors["bert.embeddings.position_ids"] = torch.arange(64)[None]
        elif fixture == "roformer_factorized":
            tensors = {k[len(base) + 1:]: v for k, v in tensors.items() if k.startswith(base + ".")}
        else:
            tensors = tied_decoder(tensors, base)
            if base == "roformer":
                tensors["roformer.encoder.embed_positions.weight"] = sinusoid_table(64, head_dim)
        if "zip" in formats:
            torch.save(tensors, directory / "pytorch_model.bin")
        if "legacy" in formats:
            name = "pytorch_model.bin" if "zip" not in formats else "pytorch_model_legacy.bin"
            torch.save(tensors, directory / name, _use_new_zipfile_serialization=False)
        if "safetensors" in formats:
            save_file({k: v.contiguous() for k, v in tensors.items()}, directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(config(fixture, base), indent=2) + "\n")
        print(fixture, sorted(p.name for p in directory.iterdir()))


if __name__ == "__main__":
    main()
