"""Our Hugging Face weight maps against the key names of real `transformers` models.

The HF-layout fixtures in tests/fixtures/models/*/hf are written from our own naming
rules (tools/make_hf_fixtures.py), so a wrong name there and in the weight map would
agree. tests/fixtures/hf_keys/ holds instead `state_dict()` keys and shapes of
`BertModel`, `BertForMaskedLM`, `BertForPreTraining`, `RoFormerModel` and
`RoFormerForMaskedLM` as transformers itself builds them
(tools/make_hf_key_fixtures.py). For the matching kerasformer model, the loader's
coverage rule must hold both ways against those names: every variable's source
exists with the right shape, and every transformers tensor is consumed or
declared ignored.
"""
import functools
import json
import pathlib
import re

import numpy as np
import pytest

import kerasformer as kf
from kerasformer.convert.checkpoints import canonical_hf_names
from kerasformer.convert.weights import IGNORED_PATTERNS, Source

HF_KEYS = pathlib.Path(__file__).parents[1] / "fixtures" / "hf_keys"

# fixture file -> (kerasformer model, the heads that transformers class has)
CASES = {
    "BertModel": ("bert", {"with_pool": True}),
    "BertForMaskedLM": ("bert", {"with_mlm": True}),
    "BertForPreTraining": ("bert", {"with_pool": True, "with_nsp": True, "with_mlm": True}),
    "RoFormerModel": ("roformer", {}),
    "RoFormerModel_factorized": ("roformer", {}),
    "RoFormerForMaskedLM": ("roformer", {"with_mlm": True}),
    "RoFormerForMaskedLM_factorized": ("roformer", {"with_mlm": True}),
}


def hf_source_names(transformer):
    """{variable path: (source tensor name, transform name or None)} of the HF map
    (`NotSaved` entries have no tensor and are left out)."""
    names = {}
    for path, source in transformer.weight_map("hf").sources.items():
        if isinstance(source, Source):
            names[path] = (source.name, source.transform.name if source.transform else None)
    return names


def hf_ignored_patterns(transformer):
    """The regexes of tensors the loader ignores for this architecture's HF layout."""
    return tuple(IGNORED_PATTERNS) + tuple(transformer.weight_map("hf").ignored)


def hf_prefix(transformer):
    """The model prefix under which the loader makes HF names canonical."""
    return transformer.weight_map("hf").prefix


# ------------------------------------------------------------------------------


def load_keys(stem):
    data = json.loads((HF_KEYS / f"{stem}.json").read_text(encoding="utf-8"))
    return data, {name: tuple(shape) for name, shape in data["keys"].items()}


@functools.lru_cache(maxsize=None)
def build(stem):
    """The kerasformer model with the parts of the transformers class (built once)."""
    data, _ = load_keys(stem)
    family, heads = CASES[stem]
    config = data["config"]
    transformer = kf.build_transformer_model(
        None, model=family, return_keras_model=False,
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"], hidden_act=config["hidden_act"],
        max_position=config["max_position_embeddings"],
        segment_vocab_size=config["type_vocab_size"],
        embedding_size=config.get("embedding_size"), **heads,
    )
    transformer.build()
    return transformer


def canonical_keys(transformer, keys):
    """The transformers keys as the loader sees them, with their shapes."""
    checkpoint = canonical_hf_names(
        {name: np.zeros(shape, np.float32) for name, shape in keys.items()},
        hf_prefix(transformer),
    )
    return {name: tuple(np.shape(checkpoint[name])) for name in checkpoint.keys()}


def test_fixtures_cover_every_case():
    assert sorted(path.stem for path in HF_KEYS.glob("*.json")) == sorted(CASES)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_weight_map_matches_transformers_names_both_ways(stem):
    data, keys = load_keys(stem)
    transformer = build(stem)
    available = canonical_keys(transformer, keys)
    variables = {variable.path: tuple(variable.shape) for variable in transformer.model.weights}
    sources = hf_source_names(transformer)
    assert set(variables) <= set(sources), "variables without a weight-map entry"

    consumed, problems = set(), []
    for path, shape in sorted(variables.items()):
        name, transform = sources[path]
        consumed.add(name)
        if name not in available:
            problems.append(f"{path} <- {name}: not a {data['model_class']} key")
            continue
        source_shape = available[name]
        if transform == "transpose":
            source_shape = source_shape[::-1]
        if source_shape != shape:
            problems.append(f"{path} {shape} <- {name} {available[name]} ({transform})")
    ignored = hf_ignored_patterns(transformer)
    for name in sorted(set(available) - consumed):
        if not any(re.search(pattern, name) for pattern in ignored):
            problems.append(f"{name}: in {data['model_class']} but neither loaded nor ignored")
    assert not problems, (
        f"transformers {data['transformers']} {data['model_class']}:\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("stem", sorted(CASES))
def test_only_buffers_and_tied_copies_are_ignored(stem):
    """The ignored patterns do not hide real weights: what they match in transformers'
    names is the tied MLM decoder and RoFormer's sinusoid table, nothing else."""
    _, keys = load_keys(stem)
    transformer = build(stem)
    ignored = hf_ignored_patterns(transformer)
    matched = {
        name for name in canonical_keys(transformer, keys)
        if any(re.search(pattern, name) for pattern in ignored)
    }
    expected = set()
    if "ForMaskedLM" in stem or "ForPreTraining" in stem:
        expected |= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if stem.startswith("RoFormer"):
        expected.add("roformer.encoder.embed_positions.weight")
    assert matched == expected
