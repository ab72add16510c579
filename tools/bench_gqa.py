"""Benchmark: grouped-query attention's KV cache and decoding speed.

A causal RoFormer of RoFormer-Sim base's shape (12 layers, hidden 768, 12 heads, FFN
3072, vocab 12000; random weights: speed and memory do not depend on them) decodes
greedily with 12 (multi-head), 4 and 1 (multi-query) key/value heads: 8 prompts of 64
tokens, 192 steps each (a cache of 256 positions). Reports the KV cache's bytes and the
warm decoding time (the mean of `--warm` calls after the compiling one), on the backend
KERAS_BACKEND names (default jax).

    python tools/bench_gqa.py [--warm 3] [--heads 12,4,1]
"""
import argparse
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import kerasformer as kf  # noqa: E402
from kerasformer.generation import AutoRegressiveDecoder  # noqa: E402

SHAPE = dict(vocab_size=12000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, hidden_act="gelu")
ROWS, PROMPT, STEPS = 8, 64, 192


def measure(kv_heads, warm):
    transformer = kf.models.RoFormer(application="lm", with_mlm="linear",
                                     num_key_value_heads=kv_heads, **SHAPE)
    transformer.build()
    caches = transformer.init_caches(ROWS, PROMPT + STEPS)
    cache_bytes = sum(math.prod(c.shape) * c.dtype.itemsize if hasattr(c.dtype, "itemsize")
                      else math.prod(c.shape) * 4 for cache in caches for c in cache)
    decoder = AutoRegressiveDecoder(transformer, end_id=-1 % 12000)
    prompts = np.random.default_rng(0).integers(5, 12000, (ROWS, PROMPT)).tolist()
    start = time.perf_counter()
    decoder.greedy(prompts, maxlen=STEPS, minlen=STEPS)
    first = time.perf_counter() - start
    times = []
    for _ in range(warm):
        start = time.perf_counter()
        decoder.greedy(prompts, maxlen=STEPS, minlen=STEPS)
        times.append(time.perf_counter() - start)
    return cache_bytes, first, float(np.mean(times)), transformer.num_parameters


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--heads", default="12,4,1")
    args = parser.parse_args()
    rows = []
    for kv_heads in [int(h) for h in args.heads.split(",")]:
        cache, first, warm, parameters = measure(kv_heads, args.warm)
        rows.append((kv_heads, cache, first, warm, parameters))
        print(f"kv heads {kv_heads:2d}: cache {cache / 2**20:7.1f} MiB, parameters "
              f"{parameters:,}, first call {first:6.1f} s, warm {warm:6.2f} s "
              f"({ROWS * STEPS / warm:6.1f} tokens/s)", flush=True)
    base = rows[0]
    print(f"\n| KV heads | KV cache | parameters | warm decode | tokens/s | vs {base[0]} heads |")
    print("|---|---|---|---|---|---|")
    for kv_heads, cache, first, warm, parameters in rows:
        print(f"| {kv_heads} | {cache / 2**20:.1f} MiB | {parameters / 1e6:.1f} M | {warm:.2f} s | "
              f"{ROWS * STEPS / warm:.1f} | {base[3] / warm:.2f}× |")


if __name__ == "__main__":
    main()
