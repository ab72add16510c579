"""Benchmark: the KV cache and decoding speed of the attention variants.

A causal RoFormer of RoFormer-Sim base's shape (12 layers, hidden 768, 12 heads, FFN
3072, vocab 12000; random weights: speed and memory do not depend on them) decodes
greedily: 8 prompts of 64 tokens, 192 steps each (a cache of 256 positions), with
multi-head attention, grouped-query attention of 4 and 1 (multi-query) key/value heads,
ReRoPE and Leaky ReRoPE (window 128: their cache holds unrotated keys and positions,
and each step rotates every cached key), and HWFA (window 128 in all blocks but the
last). Reports the KV cache's bytes and the warm decoding time (the mean of `--warm`
calls after the compiling one), on the backend KERAS_BACKEND names (default jax).

    python tools/bench_decode_attention.py [--warm 3] [--variants mha,gqa4,mqa,rerope,leaky,hwfa]
"""
import argparse
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasformer as kf  # noqa: E402
from kerasformer.generation import AutoRegressiveDecoder  # noqa: E402

SHAPE = dict(vocab_size=12000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, hidden_act="gelu")
ROWS, PROMPT, STEPS = 8, 64, 192
VARIANTS = {
    "mha": ("12 heads (MHA)", {}),
    "gqa4": ("4 KV heads (GQA)", {"num_key_value_heads": 4}),
    "mqa": ("1 KV head (MQA)", {"num_key_value_heads": 1}),
    "rerope": ("ReRoPE w=128", {"rope_scaling": {"type": "rerope", "window": 128}}),
    "leaky": ("Leaky ReRoPE w=128 k=16", {"rope_scaling": {"type": "leaky_rerope",
                                                            "window": 128, "factor": 16}}),
    "hwfa": ("HWFA window 128", {"attention_window": 128}),
}


def measure(options, warm):
    transformer = kf.models.RoFormer(application="lm", with_mlm="linear", **options, **SHAPE)
    transformer.build()
    caches = transformer.init_caches(ROWS, PROMPT + STEPS)
    cache_bytes = sum(math.prod(c.shape) * np.dtype(keras.backend.standardize_dtype(
        c.dtype)).itemsize for cache in caches for c in cache)
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
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    rows = []
    for name in args.variants.split(","):
        label, options = VARIANTS[name]
        cache, first, warm, parameters = measure(options, args.warm)
        rows.append((label, cache, first, warm, parameters))
        print(f"{label}: cache {cache / 2**20:7.1f} MiB, parameters {parameters:,}, first call "
              f"{first:6.1f} s, warm {warm:6.2f} s ({ROWS * STEPS / warm:6.1f} tokens/s)",
              flush=True)
    base = rows[0]
    print(f"\n| attention | KV cache | parameters | warm decode | tokens/s | vs {base[0]} |")
    print("|---|---|---|---|---|---|")
    for label, cache, first, warm, parameters in rows:
        print(f"| {label} | {cache / 2**20:.1f} MiB | {parameters / 1e6:.1f} M | {warm:.2f} s | "
              f"{ROWS * STEPS / warm:.1f} | {base[3] / warm:.2f}× |")


if __name__ == "__main__":
    main()
