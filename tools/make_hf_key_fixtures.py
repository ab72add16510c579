"""Records the state-dict keys of real `transformers` models (tests/fixtures/hf_keys/).

tests/convert/test_hf_key_names.py checks kerasformer's Hugging Face weight maps
against these names, so that our maps and our own HF-layout fixtures
(make_hf_fixtures.py writes those from our naming rules) cannot agree while both are
wrong. For tiny 2-layer configs it instantiates `BertModel` (with pooler),
`BertForMaskedLM`, `BertForPreTraining` (pooler, NSP and MLM), `RoFormerModel` and
`RoFormerForMaskedLM`, the RoFormer ones also with `embedding_size` != `hidden_size`
(the `embeddings_project` layer), and writes for each `<ModelClass>[_variant].json`:
the config, the transformers and torch versions and `sorted(state_dict())` with
shapes. Sizes are all different where they can be (vocabulary, embedding, hidden,
intermediate, positions), so a transposed or misplaced tensor shows in its shape.

Run it in an environment with `transformers` and torch (no kerasformer needed), e.g.

    python -m venv --system-site-packages /tmp/hfref   # torch from the system
    /tmp/hfref/bin/pip install transformers
    /tmp/hfref/bin/python tools/make_hf_key_fixtures.py
"""
import argparse
import json
import pathlib

import torch
import transformers

OUTPUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hf_keys"

BASE = {
    "vocab_size": 30,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 20,
    "hidden_act": "gelu",
    "max_position_embeddings": 40,
    "type_vocab_size": 2,
}
FACTORIZED = {**BASE, "embedding_size": 6}

# (file stem, transformers class, config class, config)
MODELS = [
    ("BertModel", "BertModel", "BertConfig", BASE),
    ("BertForMaskedLM", "BertForMaskedLM", "BertConfig", BASE),
    ("BertForPreTraining", "BertForPreTraining", "BertConfig", BASE),
    ("RoFormerModel", "RoFormerModel", "RoFormerConfig", BASE),
    ("RoFormerModel_factorized", "RoFormerModel", "RoFormerConfig", FACTORIZED),
    ("RoFormerForMaskedLM", "RoFormerForMaskedLM", "RoFormerConfig", BASE),
    ("RoFormerForMaskedLM_factorized", "RoFormerForMaskedLM", "RoFormerConfig", FACTORIZED),
]


def record(model_class, config_class, config):
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**config))
    state = model.state_dict()
    return {
        "model_class": model_class,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "config": config,
        "keys": {name: list(state[name].shape) for name in sorted(state)},
    }


def dump(data):
    """JSON with one line per key, for readable diffs."""
    head = {name: value for name, value in data.items() if name != "keys"}
    text = json.dumps(head, indent=1)[:-2]
    lines = [
        f"  {json.dumps(name)}: {json.dumps(shape)}" for name, shape in data["keys"].items()
    ]
    return text + ',\n "keys": {\n' + ",\n".join(lines) + "\n }\n}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for stem, model_class, config_class, config in MODELS:
        data = record(model_class, config_class, config)
        path = args.output / f"{stem}.json"
        path.write_text(dump(data), encoding="utf-8")
        print(f"{path}: {len(data['keys'])} keys")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
