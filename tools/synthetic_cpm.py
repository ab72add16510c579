"""Writes a synthetic CPM-Generate repository for the benchmarks: CPM-LM's Hugging Face
layout (GPT-2 names, Conv1D [in, out] kernels, the fused c_attn) with random weights at
any width and depth, its config.json (bos/eos 50256, as the real one) and the real
30,000-piece spiece.model from the test fixtures.

    python tools/synthetic_cpm.py OUT [--hidden 2560 --layers 32 --heads 32] [--torch]

model.safetensors is written tensor by tensor after its header, so even the 32-layer
10.4 GB file never sits in memory; `--torch` adds pytorch_model.bin (torch.save of the
whole state dict: it needs the model's size in memory).
"""
import argparse
import json
import pathlib
import shutil
import struct

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 30000


def shapes(hidden, layers, positions=1024):
    """CPM-Generate's tensor names and shapes at this width and depth."""
    found = {"transformer.wte.weight": (VOCAB, hidden), "transformer.wpe.weight": (positions, hidden),
             "transformer.ln_f.weight": (hidden,), "transformer.ln_f.bias": (hidden,)}
    for i in range(layers):
        p = f"transformer.h.{i}."
        found.update({p + "ln_1.weight": (hidden,), p + "ln_1.bias": (hidden,),
                      p + "attn.c_attn.weight": (hidden, 3 * hidden), p + "attn.c_attn.bias": (3 * hidden,),
                      p + "attn.c_proj.weight": (hidden, hidden), p + "attn.c_proj.bias": (hidden,),
                      p + "ln_2.weight": (hidden,), p + "ln_2.bias": (hidden,),
                      p + "mlp.c_fc.weight": (hidden, 4 * hidden), p + "mlp.c_fc.bias": (4 * hidden,),
                      p + "mlp.c_proj.weight": (4 * hidden, hidden), p + "mlp.c_proj.bias": (hidden,)})
    return found


def tensors(hidden, layers):
    """(name, float32 array) one at a time: norms' gains 1, biases 0, the rest N(0, 0.02²)."""
    rng = np.random.default_rng(0)
    for name, shape in shapes(hidden, layers).items():
        if len(shape) == 1:
            yield name, (np.ones if name.endswith("weight") else np.zeros)(shape, np.float32)
        else:
            yield name, rng.standard_normal(shape, dtype=np.float32) * 0.02


def write(out, hidden=2560, layers=32, heads=32, torch_file=False):
    out = pathlib.Path(out)
    header, offset = {}, 0
    for name, shape in shapes(hidden, layers).items():
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(out / "model.safetensors", "wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        for _, value in tensors(hidden, layers):
            file.write(value.tobytes())
    if torch_file:
        import torch

        torch.save({name: torch.from_numpy(value) for name, value in tensors(hidden, layers)},
                   out / "pytorch_model.bin")
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": hidden,
              "n_layer": layers, "n_head": heads, "n_inner": None, "n_positions": 1024,
              "vocab_size": VOCAB, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "tokenizer_class": "CpmTokenizer", "bos_token_id": 50256, "eos_token_id": 50256}
    (out / "config.json").write_text(json.dumps(config))
    shutil.copy(ROOT / "tests" / "fixtures" / "tokenizers" / "cpm" / "chinese_vocab.model",
                out / "spiece.model")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--hidden", type=int, default=2560)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--torch", action="store_true", help="also write pytorch_model.bin")
    args = parser.parse_args()
    write(args.out, args.hidden, args.layers, args.heads, args.torch)


if __name__ == "__main__":
    main()
