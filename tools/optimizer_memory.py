"""Measurement: optimizer-state memory on a BERT-base-shaped model.

Builds `build_transformer_model(model="bert", vocab_size=21128, hidden_size=768,
num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
max_position=512, with_mlm=True)` (float32, random weights), then for each optimizer calls
`optimizer.build(model.trainable_variables)` and sums `size × itemsize` over
`optimizer.variables`, leaving out the iteration counter (the float learning-rate scalar,
4 bytes, stays in). Nothing is trained; the numbers are what `build()` allocates, so they
do not depend on the backend.

Rows: kerasformer's `AdaFactor` (bert4keras defaults; with β1 = 0.9; and bert4keras'
CLUE recipe `beta1=0.9, min_dim_size_to_factor=10**6`, which never factors) and `Adam`,
and Keras' own `keras.optimizers.Adafactor` and `keras.optimizers.Adam`.

    python tools/optimizer_memory.py [--backend jax]
"""
import argparse
import gc
import os
import sys

MODEL = dict(model="bert", vocab_size=21128, hidden_size=768, num_hidden_layers=12,
             num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
             max_position=512, with_mlm=True)


def nbytes(variables):
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend

    import keras
    import numpy as np

    from kerasformer.models import build_transformer_model
    from kerasformer.optimizers import AdaFactor, Adam

    optimizers = [
        ("kerasformer `AdaFactor()` (β1 = 0, factored if 2nd-largest dim ≥ 128)", lambda: AdaFactor()),
        ("kerasformer `AdaFactor(beta1=0.9)`", lambda: AdaFactor(beta1=0.9)),
        ("kerasformer `AdaFactor(beta1=0.9, min_dim_size_to_factor=10**6)` (never factors)",
         lambda: AdaFactor(beta1=0.9, min_dim_size_to_factor=10**6)),
        ("kerasformer `Adam()`", lambda: Adam()),
        ("`keras.optimizers.Adafactor()`", lambda: keras.optimizers.Adafactor()),
        ("`keras.optimizers.Adam()`", lambda: keras.optimizers.Adam()),
    ]

    model = build_transformer_model(**MODEL)
    params = model.trainable_variables
    param_bytes = nbytes(params)
    n_params = sum(int(np.prod(v.shape)) for v in params)

    print("$ " + " ".join(["python"] + sys.argv) + f"   # KERAS_BACKEND={keras.backend.backend()}, "
          f"keras {keras.__version__}")
    print()
    print(f"BERT-base shape with MLM head: {len(params)} trainable variables, {n_params:,} parameters, "
          f"{param_bytes:,} bytes ({param_bytes / 2**20:.1f} MiB) in float32.")
    print()
    print("| optimizer | state variables | state bytes | MiB | × parameter bytes |")
    print("|---|---:|---:|---:|---:|")
    for label, make in optimizers:
        optimizer = make()
        optimizer.build(params)
        state = [v for v in optimizer.variables if v is not optimizer._iterations]
        size = nbytes(state)
        print(f"| {label} | {len(state)} | {size:,} | {size / 2**20:.1f} | {size / param_bytes:.3f} |")
        del optimizer, state
        gc.collect()


if __name__ == "__main__":
    main()
