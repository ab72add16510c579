"""Writes tests/fixtures/megatron/: a tiny Megatron-LM GPT-2 checkpoint in two
model-parallel partitions, as CPM-Generate ships CPM-LM, and `expected.npz`: what
bojone's own converter (CPM_LM_bert4keras `convert.py`) makes of it.

The partitions hold seeded random weights in Megatron's layout: `{"module": state
dict, "iteration": ...}` per `mp_rank_0X_model_states.pt`, the vocabulary split by
rows, query/key/value fused per partition (`[q; k; v]` rows), the row-parallel
projections split by columns, norms and position embeddings replicated. The expected
tensors come from running bojone's `convert.py` itself (read from a checkout, given
the partitions in place of its `torch.load`s, its model sizes in place of CPM's 32
layers of 1280 per partition, and stopped before its TF1 `Saver`); nothing here
imports kerasformer, and nothing of convert.py is copied into the project.

    git clone https://github.com/bojone/CPM_LM_bert4keras /tmp/CPM_LM_bert4keras
    python tools/make_megatron_fixtures.py /tmp/CPM_LM_bert4keras
    (a python with torch; the main environment has it)
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "megatron"
COMMIT = "13acbd5"  # bojone/CPM_LM_bert4keras, the converter this reproduces
CONFIG = {"vocab_size": 346, "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 256, "hidden_act": "gelu",
          "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0}
PARTITIONS = 2


def partitions(rng):
    """Megatron state dicts, one per rank."""
    hidden, layers = CONFIG["hidden_size"], CONFIG["num_hidden_layers"]
    part, ffn = hidden // PARTITIONS, CONFIG["intermediate_size"] // PARTITIONS

    def normal(*shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    shared = {"position_embeddings.weight": normal(CONFIG["max_position_embeddings"], hidden),
              "transformer.final_layernorm.weight": 1 + normal(hidden),
              "transformer.final_layernorm.bias": normal(hidden)}
    for i in range(layers):
        p = f"transformer.layers.{i}."
        for name in ("input_layernorm", "post_attention_layernorm"):
            shared[p + name + ".weight"] = 1 + normal(hidden)
            shared[p + name + ".bias"] = normal(hidden)
        shared[p + "attention.dense.bias"] = normal(hidden)
        shared[p + "mlp.dense_4h_to_h.bias"] = normal(hidden)
    states = []
    for rank in range(PARTITIONS):
        state = {"word_embeddings.weight": normal(CONFIG["vocab_size"] // PARTITIONS, hidden)}
        for i in range(layers):
            p = f"transformer.layers.{i}."
            state[p + "attention.query_key_value.weight"] = normal(3 * part, hidden)
            state[p + "attention.query_key_value.bias"] = normal(3 * part)
            state[p + "attention.dense.weight"] = normal(hidden, part)
            state[p + "mlp.dense_h_to_4h.weight"] = normal(ffn, hidden)
            state[p + "mlp.dense_h_to_4h.bias"] = normal(ffn)
            state[p + "mlp.dense_4h_to_h.weight"] = normal(hidden, ffn)
        state.update(shared)
        states.append({k: torch.from_numpy(v) for k, v in state.items()})
    return states


def bojone_convert(checkout, states):
    """The `tf_weights` dict bojone's convert.py builds from these partitions."""
    source = subprocess.run(["git", "-C", str(checkout), "show", f"{COMMIT}:convert.py"],
                            capture_output=True, text=True, check=True).stdout
    source = source[:source.index("with tf.Graph().as_default():")]
    replacements = {
        "import tensorflow as tf\n": "", "import keras.backend as K\n": "",
        "from tqdm import tqdm\n": "",
        "num_hidden_layers = 32\n": f"num_hidden_layers = {CONFIG['num_hidden_layers']}\n",
        "m0 = torch.load('./model-v1/80000/mp_rank_00_model_states.pt', map_location='cpu')\n":
            "m0 = PARTITION_0\n",
        "m1 = torch.load('./model-v1/80000/mp_rank_01_model_states.pt', map_location='cpu')\n":
            "m1 = PARTITION_1\n",
    }
    for old, new in replacements.items():
        if source.count(old) != 1:
            raise SystemExit(f"convert.py changed: {old!r} is not there once")
        source = source.replace(old, new)
    source = source.replace("1280", str(CONFIG["hidden_size"] // PARTITIONS))
    namespace = {"PARTITION_0": {"module": states[0]}, "PARTITION_1": {"module": states[1]}}
    exec(compile(source, "convert.py", "exec"), namespace)
    return namespace["tf_weights"]


def main():
    checkout = pathlib.Path(sys.argv[1])
    states = partitions(np.random.default_rng(20261202))
    OUT.mkdir(parents=True, exist_ok=True)
    for rank, state in enumerate(states):
        torch.save({"module": state, "iteration": 80000, "mp_world_size": PARTITIONS},
                   OUT / f"mp_rank_{rank:02d}_model_states.pt")
    expected = bojone_convert(checkout, states)
    np.savez_compressed(OUT / "expected.npz", **expected)
    (OUT / "bert_config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    print(f"wrote {OUT}: {len(expected)} merged tensors")


if __name__ == "__main__":
    main()
