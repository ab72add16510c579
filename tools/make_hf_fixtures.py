"""Writes Hugging Face layout copies of the RoFormerV2 and GAU-α parity fixtures.

The tensors of tests/fixtures/models/{roformer_v2,gau_alpha}/bert_model.ckpt (written
by the original bert4keras, see make_model_fixtures.py) are renamed to JunnYu's
PyTorch layout — `junnyu/roformer_v2_chinese_char_*` and
`junnyu/chinese_GAU-alpha-char_L-24_H-768` — with torch `Linear` weights transposed
to `[out, in]`, and saved with torch (zip and legacy pickle formats) and safetensors.
Loading any of them must give bert4keras' reference outputs again.

Variants on purpose: the zip files carry the tied `cls.predictions.decoder.weight`
copy and a sinusoid `embed_positions` buffer like JunnYu's exports; the safetensors
files are saved from the base model, without the `roformer.` / `gau_alpha.` prefix
and without the MLM decoder.

Run with torch and safetensors installed (the main environment):

    python tools/make_hf_fixtures.py
"""
import pathlib
import re

import numpy as np
import torch
from safetensors.torch import save_file

from kerasformer.convert.tf_checkpoint import TFCheckpoint

MODELS = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"


def hf_name(tf_name, base):
    """TF variable name -> JunnYu's state-dict key (same rules as his converters)."""
    name = re.sub(r"^(bert|GAU_alpha)/", base + "/", tf_name)
    name = re.sub(r"layer_(\d+)", r"layer/\1", name)
    name = re.sub(r"/(kernel|gamma)$", "/weight", name)
    name = re.sub(r"/beta$", "/bias", name)
    if name.endswith("_embeddings"):
        name += "/weight"
    return name.replace("/", ".")


def state_dict(fixture, base):
    checkpoint = TFCheckpoint(MODELS / fixture / "bert_model.ckpt")
    tensors = {}
    for name in checkpoint:
        value = checkpoint[name]
        if name.endswith("/kernel"):
            value = value.T  # Keras/TF [in, out] -> torch Linear [out, in]
        tensors[hf_name(name, base)] = torch.from_numpy(np.ascontiguousarray(value))
    return tensors


def with_export_extras(tensors, base, head_dim):
    extras = dict(tensors)
    extras["cls.predictions.decoder.weight"] = tensors[f"{base}.embeddings.word_embeddings.weight"].clone()
    if base == "roformer":
        positions = np.arange(64)[:, None] * 10000.0 ** (-2 * np.arange(head_dim // 2) / head_dim)
        table = np.concatenate([np.sin(positions), np.cos(positions)], axis=1)
        extras["roformer.encoder.embed_positions.weight"] = torch.tensor(table, dtype=torch.float32)
    return extras


def without_prefix(tensors, base):
    return {name[len(base) + 1:]: value.clone() for name, value in tensors.items()}


def main():
    for fixture, base, head_dim, formats in [
        ("roformer_v2", "roformer", 16, ("zip", "legacy", "safetensors")),
        ("gau_alpha", "gau_alpha", 16, ("legacy", "safetensors")),
    ]:
        directory = MODELS / fixture / "hf"
        directory.mkdir(exist_ok=True)
        tensors = state_dict(fixture, base)
        if "zip" in formats:
            torch.save(with_export_extras(tensors, base, head_dim), directory / "pytorch_model.bin")
        if "legacy" in formats:
            torch.save(with_export_extras(tensors, base, head_dim),
                       directory / "pytorch_model_legacy.bin",
                       _use_new_zipfile_serialization=False)
        if "safetensors" in formats:
            save_file(without_prefix(tensors, base), directory / "model.safetensors")
        print(fixture, sorted(p.name for p in directory.iterdir()))


if __name__ == "__main__":
    main()
