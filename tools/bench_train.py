"""Benchmark (issue 11): one RoFormer-Sim training step, kerasformer on each backend vs bert4keras.

The RoFormer-Sim base shape (roformer, application "unilm", linear pooler, linear MLM
head; hidden 768, 12 layers, 12 heads, intermediate 3072, max_position 512, vocab 12000
— the size of a Chinese char vocab, ids drawn at random, no tokenizer; hidden dropout
0.2 as in RoFormer-Sim stage 1, attention dropout 0.1 from the config) on a fixed
seeded batch of 32 pairs × 64 tokens (64 sequences, segment 0 for the first half, 1
for the second). Loss: `seq2seq_cross_entropy` on the target segment (from logits) +
`in_batch_contrastive(scale=20)` on the pooled vectors; optimizer
`kerasformer.optimizers.Adam(1e-5, weight_decay=0.01, exclude_from_weight_decay=["Norm", "bias"])`.

Every configuration runs in its own subprocess (Keras fixes the backend at import):
kerasformer compiled (jax / tensorflow XLA, torch eager and torch.compile, tensorflow
graph without XLA), kerasformer eager (tensorflow and jax `run_eagerly=True`), ×4
accumulation (`MicroBatched(model, 4)` and Keras' `gradient_accumulation_steps=4`, jax
compiled), the original bert4keras (tools/bench_train_bert4keras.py in the reference
env, TF graph as its scripts run, and with XLA), and a large float32 matmul in each
backend for the machine's measured peak.

    python tools/bench_train.py [--steps 3] [--quick] [--only jax-xla,b4k-graph] [--json out.json]

Each configuration: one warm-up update (two for torch.compile, which recompiles on the
second call; "compile s" = warm-up time − warm-ups × median step), then `--steps` timed
updates (`train_on_batch`; eager ones at most 2); the table gives the median. `--quick`
(tiny shapes, 1 timed step, torch.compile left out unless named in --only) checks the
script end to end. The
loss of every call is printed (the first is the initial loss). Model FLOPs per step
(float32, matmuls only; biases, norms, softmax, GELU and the optimizer left out):

    6·T·(L·(4h² + 2h·i) + h² + V·h) + 6·B·h² + 12·L·T·S·h

with T = B·S tokens: weight matmuls forward + backward (blocks, MLM dense, tied MLM
output), the pooler on the B [CLS] rows, and attention scores + context (QKᵀ and PV,
2·2·S·h per token and layer forward, ×3 with backward). Recomputation under
`MicroBatched` is not counted (MFU, not hardware utilisation). MFU = model FLOPs /
step time / peak, peak = the best measured matmul GFLOP/s of the three backends.
"""
import argparse
import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
BERT4KERAS_PYTHON = "/tmp/bert4keras-ref/bin/python"
SEED = 0

FULL = {
    "vocab_size": 12000, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "batch": 64, "length": 64,
    "matmul": 4096,
}
QUICK = {
    "vocab_size": 500, "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 128, "batch": 8, "length": 16,
    "matmul": 1024,
}
MICRO_BATCHES = 4

# name: (label, kind, backend, options). Kinds: "keras" (kerasformer train step),
# "b4k" (bert4keras), "matmul".
CONFIGS = {
    "matmul-jax": ("matmul peak, jax", "matmul", "jax", {}),
    "matmul-tensorflow": ("matmul peak, tensorflow", "matmul", "tensorflow", {}),
    "matmul-torch": ("matmul peak, torch", "matmul", "torch", {}),
    "b4k-graph": ("bert4keras, TF graph (no XLA)", "b4k", None, {"mode": "graph"}),
    "b4k-xla": ("bert4keras, TF graph + XLA (jit_compile=True)", "b4k", None, {"mode": "xla"}),
    "jax-xla": ("kerasformer jax, jit_compile=True", "keras", "jax", {"jit_compile": True}),
    "tensorflow-xla": ("kerasformer tensorflow, jit_compile=True", "keras", "tensorflow",
                       {"jit_compile": True}),
    "tensorflow-graph": ("kerasformer tensorflow, graph (jit_compile=False)", "keras",
                         "tensorflow", {"jit_compile": False}),
    "torch-eager": ("kerasformer torch, eager (default)", "keras", "torch",
                    {"jit_compile": False}),
    "torch-compile": ("kerasformer torch, jit_compile=True (torch.compile)", "keras", "torch",
                      {"jit_compile": True, "timeout": 900, "warmup": 2}),
    "tensorflow-eager": ("kerasformer tensorflow, run_eagerly=True", "keras", "tensorflow",
                         {"run_eagerly": True, "max_steps": 2}),
    "jax-eager": ("kerasformer jax, run_eagerly=True", "keras", "jax",
                  {"run_eagerly": True, "max_steps": 2}),
    "jax-micro4": (f"kerasformer jax XLA, MicroBatched(×{MICRO_BATCHES}), 1 step of the batch",
                   "keras", "jax", {"jit_compile": True, "micro_batches": MICRO_BATCHES}),
    "jax-accum4": (f"kerasformer jax XLA, gradient_accumulation_steps={MICRO_BATCHES} "
                   f"({MICRO_BATCHES} calls of batch/{MICRO_BATCHES})", "keras", "jax",
                   {"jit_compile": True, "accumulation": MICRO_BATCHES}),
}


def bert_config(shape):
    """The bert_config.json of the benchmark (RoFormer-Sim's keys and dropouts)."""
    return {
        "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": shape["hidden_size"],
        "initializer_range": 0.02, "intermediate_size": shape["intermediate_size"],
        "max_position_embeddings": 512,
        "num_attention_heads": shape["num_attention_heads"],
        "num_hidden_layers": shape["num_hidden_layers"], "type_vocab_size": 2,
        "vocab_size": shape["vocab_size"],
    } | {"attention_probs_dropout_prob": shape.get("attention_dropout", 0.1)}


def model_flops(shape):
    """Model FLOPs of one training step on the whole batch (formula in the docstring)."""
    h, L, i = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    V, B, S = shape["vocab_size"], shape["batch"], shape["length"]
    T = B * S
    per_token = L * (4 * h * h + 2 * h * i) + h * h + V * h
    return 6 * T * per_token + 6 * B * h * h + 12 * L * T * S * h


def make_batch(batch, length, vocab, seed=SEED):
    """Seeded random token ids in [1, vocab) (no padding), segment 1 on the second half."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, (batch, length)).astype("int32")
    segments = (np.arange(length)[None, :] >= length // 2).repeat(batch, 0).astype("int32")
    return tokens, segments


def cpu_seconds():
    """User + system CPU time of this process, all threads (a step that waits shows
    less CPU than 2 × wall time on 2 cores; spinning thread pools show more)."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------ workers

def worker_matmul(args, shape):
    """GFLOP/s of an n×n @ n×n float32 matmul: best of `repeats` after a warm-up."""
    import numpy as np

    n, backend = shape["matmul"], os.environ["KERAS_BACKEND"]
    rng = np.random.default_rng(SEED)
    a_np, b_np = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    if backend == "jax":
        import jax

        a, b = jax.device_put(a_np), jax.device_put(b_np)
        matmul = jax.jit(lambda x, y: x @ y)
        run = lambda: matmul(a, b).block_until_ready()  # noqa: E731
    elif backend == "tensorflow":
        import tensorflow as tf

        a, b = tf.constant(a_np), tf.constant(b_np)
        matmul = tf.function(lambda x, y: tf.matmul(x, y))
        run = lambda: matmul(a, b).numpy()  # noqa: E731
    else:
        import torch

        a, b = torch.from_numpy(a_np), torch.from_numpy(b_np)
        run = lambda: torch.mm(a, b)  # noqa: E731
    run()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    flops = 2 * n ** 3
    return {"n": n, "times": times, "gflops_best": flops / min(times) / 1e9,
            "gflops_median": flops / statistics.median(times) / 1e9}


def worker_keras(args, shape, options):
    """Times `train_on_batch` of one kerasformer configuration."""
    import keras
    import numpy as np
    from keras import ops

    from kerasformer.models import build_transformer_model
    from kerasformer.optimizers import Adam
    from kerasformer.training import MicroBatched, in_batch_contrastive, seq2seq_cross_entropy

    backend = keras.backend.backend()
    result = {"backend": backend, "keras_version": keras.__version__}

    def contrastive(y_true, y_pred):
        return in_batch_contrastive(y_pred, scale=20.0)

    def seq2seq(y_true, y_pred):
        return seq2seq_cross_entropy(y_true[..., 0], y_true[..., 1], y_pred, from_logits=True)

    class Unmasked(keras.Model):
        """The plain model minus the Keras mask its MLM output carries (the token
        embedding's mask_zero): the losses mask by segment themselves, and Keras would
        apply a (batch, seq) mask to the per-row seq2seq loss. As in
        tests/training/test_micro_batches.py; `MicroBatched`'s outputs carry none."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, inputs, training=None):
            return [ops.add(output, 0.0) for output in self.inner(inputs, training=training)]

    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    transformer = build_transformer_model(
        args.config, model="roformer", application="unilm", with_pool="linear",
        with_mlm="linear", dropout_rate=shape.get("dropout", 0.2), return_keras_model=False,
    )
    inner = transformer.model
    micro_batches = options.get("micro_batches")
    trained = MicroBatched(inner, micro_batches) if micro_batches else Unmasked(inner)
    accumulation = options.get("accumulation")
    optimizer_kwargs = {"gradient_accumulation_steps": accumulation} if accumulation else {}
    optimizer = Adam(1e-5, weight_decay=0.01, exclude_from_weight_decay=["Norm", "bias"],
                     **optimizer_kwargs)
    trained.compile(optimizer=optimizer, loss=[contrastive, seq2seq],
                    jit_compile=options.get("jit_compile", False),
                    run_eagerly=options.get("run_eagerly", False))
    result["build_s"] = time.perf_counter() - start
    result["parameters"] = int(inner.count_params())
    embeddings = sum(int(np.prod(w.shape)) for layer in ("Embedding-Token", "Embedding-Segment")
                     for w in inner.get_layer(layer).weights)
    result["non_embedding_parameters"] = result["parameters"] - embeddings

    tokens, segments = make_batch(shape["batch"], shape["length"], shape["vocab_size"])
    labels = np.stack([tokens, segments], axis=-1)
    zeros = np.zeros((shape["batch"],), "float32")
    calls = accumulation or 1  # train_on_batch calls per big-batch update
    pieces = [
        ([t, s], [z, y]) for t, s, z, y in zip(
            np.split(tokens, calls), np.split(segments, calls), np.split(zeros, calls),
            np.split(labels, calls))
    ]

    def update():
        """One optimizer update on the whole batch; the losses of its calls."""
        return [float(trained.train_on_batch(x, y, return_dict=True)["loss"])
                for x, y in pieces]

    steps = min(args.steps, options.get("max_steps", args.steps))
    warmup = options.get("warmup", 1)
    losses, times, warmup_times, cpu_times = [], [], [], []
    for index in range(warmup + steps):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        losses.extend(update())
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
        (warmup_times if index < warmup else times).append(elapsed)
        if index >= warmup:
            cpu_times.append(cpu)
        print(f"{args.worker} update {index}: {elapsed:.2f} s (CPU {cpu:.1f} s), "
              f"loss {losses[-1]:.4f}",
              file=sys.stderr, flush=True)
    result.update({"losses": losses, "step_times": times, "warmup_times": warmup_times,
                   "cpu_times": cpu_times,
                   "first_call_s": warmup_times[0], "peak_rss_mb": peak_rss_mb()})

    if backend == "jax" and options.get("jit_compile") and not options.get("run_eagerly"):
        result.update(jax_memory(trained, pieces[0]))
        result["peak_rss_mb_after_analysis"] = peak_rss_mb()
    return result


def jax_memory(trained, piece):
    """XLA's memory analysis of the trainer's train step (`model.train_step`, jitted as
    Keras jits it, donating the state) on one call's batch. JAX finds the executable
    the timed calls compiled in its cache (`lower_compile_s` says whether it did)."""
    import jax
    from keras.src.backend.jax.trainer import _distribute_data

    state = trained._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
        metrics_variables=True, purge_model_variables=False,
    )
    data = _distribute_data((piece[0], piece[1], None))
    start = time.perf_counter()
    try:
        lowered = jax.jit(trained.train_step, donate_argnums=0).lower(state, data)
        compiled = lowered.compile()
    except Exception as error:
        return {"memory_error": f"{type(error).__name__}: {str(error)[:200]}"}
    analysis = compiled.memory_analysis()
    return {
        "lower_compile_s": time.perf_counter() - start,
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "alias_bytes": int(analysis.alias_size_in_bytes),
    }


def worker(args):
    shape = json.loads(args.shape)
    label, kind, backend, options = CONFIGS[args.worker]
    load_start = os.getloadavg()[0]
    if kind == "matmul":
        result = worker_matmul(args, shape)
    else:
        result = worker_keras(args, shape, options)
    result.update({"load_start": load_start, "load_end": os.getloadavg()[0]})
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print("BENCH_RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ driver

def run_config(name, args, shape, config_path):
    label, kind, backend, options = CONFIGS[name]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    if kind == "b4k":
        env.update(TF_USE_LEGACY_KERAS="1", TF_KERAS="1")
        env.pop("KERAS_BACKEND", None)
        command = [BERT4KERAS_PYTHON, str(REPO / "tools/bench_train_bert4keras.py"),
                   "--config", config_path, "--mode", options["mode"],
                   "--batch", str(shape["batch"]), "--length", str(shape["length"]),
                   "--steps", str(args.steps), "--seed", str(SEED),
                   "--dropout", str(shape["dropout"])]
    else:
        env["KERAS_BACKEND"] = backend
        command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", name,
                   "--shape", json.dumps(shape), "--config", config_path,
                   "--steps", str(args.steps), "--repeats", str(args.repeats)]
    timeout = options.get("timeout", args.timeout)
    start = time.perf_counter()
    print(f"\n### {name}: {label}", flush=True)
    try:
        process = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                                 timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        progress = [line for line in stderr.splitlines() if " update " in line or " step " in line]
        print("\n".join(progress[-5:]), flush=True)
        return {"error": f"timed out after {timeout} s"
                         + (f" (last: {progress[-1]})" if progress else " (still compiling)"),
                "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    lines = process.stdout.splitlines()
    progress = [line for line in process.stderr.splitlines()
                if " update " in line or " step " in line]
    print("\n".join(progress), flush=True)
    results = [line for line in lines if line.startswith("BENCH_RESULT ")]
    if process.returncode or not results:
        tail = [line for line in process.stderr.splitlines() if line.strip()][-6:]
        print("\n".join(tail), flush=True)
        message = tail[-1] if tail else f"exit status {process.returncode}"
        return {"error": message[:300], "wall_s": wall}
    result = json.loads(results[-1][len("BENCH_RESULT "):])
    result["wall_s"] = wall
    shown = {k: v for k, v in result.items() if k not in ("step_times", "losses", "times")}
    print(json.dumps(shown), flush=True)
    return result


def merge(previous, new):
    """One configuration's results over rounds: step times pooled, warm-ups kept per
    round, the largest memory, the first round's losses."""
    new.setdefault("warmup_rounds", [new.get("warmup_times") or
                                     ([new["first_call_s"]] if "first_call_s" in new else [])])
    if previous is None:
        return new
    if not new.get("step_times") and "gflops_best" not in new:
        previous.setdefault("round_errors", []).append(new.get("error", "no result"))
        return previous
    if not previous.get("step_times") and "gflops_best" not in previous:
        new.setdefault("round_errors", []).append(previous.get("error", "no result"))
        return new
    merged = dict(previous)
    merged["rounds"] = previous.get("rounds", 1) + 1
    merged["load_end"] = new.get("load_end")
    for key in ("peak_rss_mb", "temp_bytes", "gflops_best", "gflops_median"):
        if key in new:
            merged[key] = max(previous.get(key, 0), new[key])
    for key in ("step_times", "times", "cpu_times"):
        if key in new:
            merged[key] = previous.get(key, []) + new[key]
    merged["warmup_rounds"] = previous["warmup_rounds"] + new["warmup_rounds"]
    return merged


def fmt(value, spec):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def summarise(results, shape, args, command):
    flops = model_flops(shape)
    peaks = {name: r["gflops_best"] for name, r in results.items()
             if name.startswith("matmul-") and "gflops_best" in r}
    peak = max(peaks.values()) if peaks else None
    reference = results.get("b4k-graph", {})
    reference_s = statistics.median(reference["step_times"]) if reference.get("step_times") else None

    out = []
    out.append(f"Command: `{command}`")
    out.append("")
    out.append(
        f"Shape: roformer unilm, linear pooler + linear MLM, vocab {shape['vocab_size']}, "
        f"hidden {shape['hidden_size']}, {shape['num_hidden_layers']} layers, "
        f"{shape['num_attention_heads']} heads, intermediate {shape['intermediate_size']}, "
        f"dropout {shape['dropout']} (attention {shape['attention_dropout']}); batch {shape['batch']} sequences × {shape['length']} "
        f"tokens; float32. Model FLOPs per update: {flops / 1e9:.1f} GFLOP.")
    if peaks:
        cells = ", ".join(f"{name[7:]} {value:.1f}" for name, value in peaks.items())
        out.append(f"Measured matmul peak ({shape['matmul']}² float32, best of "
                   f"{args.repeats}): {cells} GFLOP/s → peak {peak:.1f} GFLOP/s.")
    out.append(f"Step times: median of {args.steps} timed updates × {args.rounds} round(s) "
               "(rounds run every configuration in turn, each in a fresh process) after 1 warm-up "
               "(torch.compile: 2, it recompiles on the second call; eager: ≤ 2 timed); "
               "compile s = warm-up time − warm-ups × median step (median over rounds). "
               "The machine is shared "
               "(other jobs run), so the 1-minute load average before→after is shown.")
    out.append("")
    out.append("| configuration | steps/s | s/step (median [min–max]) | CPU s/step | compile s "
               "| MFU % | peak RSS MB | XLA temp MB | vs bert4keras graph | initial loss | load |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        label = CONFIGS[name][0]
        if name.startswith("matmul-"):
            continue
        if "error" in result and not result.get("step_times"):
            out.append(f"| {label} | failed: {result['error']} | | | | | | | | | |")
            continue
        times = result["step_times"]
        median = statistics.median(times)
        compile_s = statistics.median(
            sum(warmups) - len(warmups) * median for warmups in result["warmup_rounds"])
        mfu = 100 * flops / median / (peak * 1e9) if peak else None
        temp = result.get("temp_bytes")
        temp_cell = fmt(temp / 2 ** 20 if temp is not None else None, ".0f")
        ratio = reference_s / median if reference_s else None
        losses = result.get("losses") or [float("nan")]
        out.append(
            f"| {label} | {1 / median:.3f} | {median:.2f} [{min(times):.2f}–{max(times):.2f}] "
            f"| {fmt(statistics.median(result['cpu_times']) if result.get('cpu_times') else None, '.1f')} "
            f"| {compile_s:.1f} | {fmt(mfu, '.1f')} | {result.get('peak_rss_mb', 0):.0f} "
            f"| {temp_cell} | {fmt(ratio, '.2f')}× | {losses[0]:.3f} "
            f"| {result.get('load_start', 0):.1f}→{result.get('load_end', 0):.1f} |")
    out.append("")
    out.append("Losses of every call (first = initial loss; accumulation: one per micro-batch "
               "of batch/4, whose contrastive term has batch/4 − 1 negatives):")
    for name, result in results.items():
        if result.get("losses"):
            out.append(f"- {name}: " + ", ".join(f"{x:.4f}" for x in result["losses"]))
    failed = {name: r["error"] for name, r in results.items() if "error" in r}
    if failed:
        out.append("")
        out.append("Failed / incomplete:")
        out.extend(f"- {name}: {error}" for name, error in failed.items())
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="timed updates per configuration "
                        "(default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, end to end check")
    parser.add_argument("--only", help="comma-separated configuration names: "
                        + ",".join(CONFIGS))
    parser.add_argument("--skip", help="comma-separated configuration names to leave out")
    parser.add_argument("--repeats", type=int, default=5, help="matmul repeats")
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="hidden dropout (RoFormer-Sim stage 1: 0.2); a diagnostic knob")
    parser.add_argument("--attention-dropout", type=float, default=0.1,
                        help="attention dropout, written to the config (0.1)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the configurations this many times in turn and pool "
                        "the step times (less sensitive to other jobs on the machine)")
    parser.add_argument("--timeout", type=int, default=3600, help="per configuration, s")
    parser.add_argument("--json", help="write the raw results here")
    # Internal: one configuration in this process.
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    command = "python tools/bench_train.py " + " ".join(sys.argv[1:])
    shape = dict(QUICK if args.quick else FULL, dropout=args.dropout,
                 attention_dropout=args.attention_dropout)
    if args.steps is None:
        args.steps = 1 if args.quick else 3
    # torch.compile alone takes minutes even on the tiny shapes: --only includes it.
    names = args.only.split(",") if args.only else [
        name for name in CONFIGS if not (args.quick and name == "torch-compile")]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    skipped = set(args.skip.split(",")) if args.skip else set()
    names = [name for name in names if name not in skipped]
    if not os.path.exists(BERT4KERAS_PYTHON):
        print(f"{BERT4KERAS_PYTHON} not found: bert4keras configurations skipped "
              "(see /work/shared/reference/README.md)", flush=True)
        names = [name for name in names if CONFIGS[name][1] != "b4k"]

    with tempfile.TemporaryDirectory() as directory:
        config_path = os.path.join(directory, "bert_config.json")
        with open(config_path, "w") as file:
            json.dump(bert_config(shape), file, indent=2)
        print(f"{command}\nconfig: {json.dumps(bert_config(shape))}\n"
              f"batch {shape['batch']} × {shape['length']}; {os.cpu_count()} CPUs; "
              f"load {os.getloadavg()}", flush=True)
        results = {}
        for round_index in range(args.rounds):
            if args.rounds > 1:
                print(f"\n## round {round_index + 1}/{args.rounds}", flush=True)
            for name in names:
                results[name] = merge(results.get(name),
                                      run_config(name, args, shape, config_path))
                if args.json:
                    pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    print("\n" + summarise(results, shape, args, command), flush=True)


if __name__ == "__main__":
    main()
