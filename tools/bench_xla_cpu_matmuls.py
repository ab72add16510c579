"""Benchmark: which XLA:CPU matmul path decodes faster, by number of decoding rows.

XLA:CPU sends matrix products to YNNPACK by default; `kerasformer.generation.compile`
switches the decode loop to XLA's Eigen path for the row counts in `EIGEN_ROWS`. This
times random sampling (topk=5, 32 steps) on the RoFormer-Sim base shape both ways,
alternating the two compiled loops in one process, for each `n` (rows = samples):

    KERAS_BACKEND=jax python tools/bench_xla_cpu_matmuls.py --checkpoint DIR [--n 1,5,8,10,16,20,24,32,40]

DIR is a checkpoint written by tools/bench_generate.py (its --checkpoint directory).
"""
import argparse
import os
import pathlib
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

PREFIX = [101] + list(range(3000, 3016)) + [102]  # as in bench_generate.py
STEPS, TOPK, END_ID = 32, 5, 102


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--n", default="1,5,8,10,16,20,24,32,40")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import kerasformer as kf
    from kerasformer.generation import AutoRegressiveDecoder
    from kerasformer.generation import compile as compile_module

    directory = pathlib.Path(args.checkpoint)
    transformer = kf.build_transformer_model(
        directory / "bert_config.json", directory / "bert_model.ckpt", model="roformer",
        application="unilm", with_pool="linear", return_keras_model=False,
    )
    decoder = AutoRegressiveDecoder(transformer, end_id=END_ID)
    cache = transformer.compiled_functions

    def sample(n, seed):
        decoder.random_sample([PREFIX], n=n, maxlen=STEPS, minlen=STEPS, topk=TOPK, seed=seed)

    print(f"{'n':>4} {'YNNPACK min / median (s)':>26} {'Eigen min / median (s)':>24}")
    for n in (int(value) for value in args.n.split(",")):
        loops = {}
        for path, rows in (("ynnpack", range(0)), ("eigen", range(n, n + 1))):
            compile_module.EIGEN_ROWS = rows
            cache.clear()
            sample(n, 0)  # compiles
            loops[path] = dict(cache)
        times = {path: [] for path in loops}
        for repeat in range(args.repeats):
            for path, compiled in loops.items():
                cache.clear()
                cache.update(compiled)
                start = time.perf_counter()
                sample(n, repeat)
                times[path].append(time.perf_counter() - start)
        cells = [
            f"{min(t):.2f} / {sorted(t)[len(t) // 2]:.2f}" for t in times.values()
        ]
        print(f"{n:>4} {cells[0]:>26} {cells[1]:>24}")


if __name__ == "__main__":
    main()
