"""Benchmark: time and memory of loading a RoFormer-Sim base checkpoint, against a raw read.

Shape of RoFormer-Sim base (12 layers, hidden 768, 12 heads, FFN 3072, vocab 12000,
linear pooler, UniLM head). Once per --workdir, random float32 weights are written
as a Hugging Face layout (config.json, vocab.txt, model.safetensors under the HF
RoFormer names the model's own weight map gives), a preset is saved from it with
`task.save_preset`, and an offline Hugging Face cache holding the same three files is
laid out for an `hf://` handle. Then each measurement runs in a fresh process (cold
compile caches; the OS page cache stays warm, the files having just been read):

    raw read                  every tensor of model.safetensors into numpy (safe_open)
    directory, first load     kf.models.load(hf_dir, family="roformer-sim"), fresh KERASFORMER_HOME
    directory, second load    the same call in a new process, same KERASFORMER_HOME
    hub handle, first load    kf.models.load("hf://...@commit") offline: convert, cache a preset
    hub handle, second load   the same call in a new process: from the cached preset
    preset directory          kf.models.load(preset_dir)

and reports its wall time (median over --repeat runs), the ratio to the raw read, and
the peak RSS of the process (ru_maxrss), absolute and above the RSS right after
importing keras, the backend and kerasformer.models, each divided by the size of
model.safetensors.

    python tools/bench_load.py [--workdir /tmp/kf-bench-load] [--backend jax] [--repeat 1]
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MODEL = dict(model="roformer", application="unilm", with_pool="linear", vocab_size=12000,
             hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, hidden_act="gelu")
HF_CONFIG = {
    "architectures": ["RoFormerModel"], "model_type": "roformer", "vocab_size": 12000,
    "hidden_size": 768, "embedding_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "pooler_activation": "linear",
}
FAMILY = "roformer-sim"
REPO_ID = "kf-bench/roformer-sim-base"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a made-up commit of the made-up repo
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
RESULT = "BENCH-RESULT "


# ------------------------------------------------------------------- children


def _peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _import_everything():
    """keras, its backend and kerasformer's model API: the baseline of every child."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready(jax.numpy.zeros(1))  # starts the XLA client
    elif backend == "tensorflow":
        import tensorflow  # noqa: F401
    elif backend == "torch":
        import torch  # noqa: F401
    import kerasformer as kf
    import kerasformer.models  # noqa: F401

    return kf, backend


def _wait_for_weights(task):
    """JAX assigns asynchronously: wait until every weight holds its value."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.block_until_ready([variable.value for variable in task.model.weights])


def _hf_sources(transformer):
    """[(variable, HF tensor name, transposed?)] for every weight of the built model,
    from `transformer.weight_map("hf")` (a `WeightMap` with `.sources`, or the plain
    dict older versions returned)."""
    weight_map = transformer.weight_map("hf")
    sources = getattr(weight_map, "sources", weight_map)
    prefix = getattr(transformer, "prefix", "") or ""
    variables = {variable.path: variable for variable in transformer.model.weights}
    found = []
    for path, source in sources.items():
        variable = variables.pop(prefix + path, None)
        if variable is None:
            continue  # a part of the architecture this model was not built with
        if isinstance(source, str):
            name, transform = source, None
        elif hasattr(source, "name"):
            name, transform = source.name, getattr(source, "transform", None)
        else:
            raise SystemExit(f"{path} has no HF tensor ({source!r}): cannot write a checkpoint")
        transform = getattr(transform, "name", transform)
        if transform not in (None, "transpose"):
            raise SystemExit(f"{path} <- {name} goes through {transform!r}, which this tool "
                             "cannot invert")
        found.append((variable, name, transform == "transpose"))
    if variables:
        raise SystemExit(f"no HF tensor for {sorted(variables)[:5]} (of {len(variables)})")
    return found


def child_setup(workdir):
    """Writes the HF layout directory, the preset and the offline Hub cache (once)."""
    import numpy as np
    from safetensors.numpy import save_file

    kf, _ = _import_everything()
    hf_dir, done = workdir / "hf", workdir / "hf-complete.json"
    if not done.is_file():
        transformer = kf.build_transformer_model(config_path=None, return_keras_model=False,
                                                 **MODEL)
        rng = np.random.default_rng(0)
        tensors = {}
        for variable, name, transposed in _hf_sources(transformer):
            shape = tuple(variable.shape)
            value = (rng.standard_normal(shape, np.float32) * 0.02).astype(np.float32)
            tensors[name] = np.ascontiguousarray(value.T) if transposed else value
        shutil.rmtree(hf_dir, ignore_errors=True)
        hf_dir.mkdir(parents=True)
        (hf_dir / "config.json").write_text(json.dumps(HF_CONFIG, indent=2) + "\n")
        extra = MODEL["vocab_size"] - len(SPECIAL_TOKENS)
        tokens = SPECIAL_TOKENS + [chr(0x4E00 + index) for index in range(extra)]
        (hf_dir / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
        save_file(tensors, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
        parameters = sum(int(np.prod(array.shape)) for array in tensors.values())
        done.write_text(json.dumps({"tensors": len(tensors), "parameters": parameters}))
        for stale in ("preset", "hub"):
            shutil.rmtree(workdir / stale, ignore_errors=True)

    snapshot = workdir / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    if not snapshot.is_dir():
        snapshot.mkdir(parents=True)
        for name in ("config.json", "vocab.txt", "model.safetensors"):
            try:
                os.link(hf_dir / name, snapshot / name)
            except OSError:
                shutil.copyfile(hf_dir / name, snapshot / name)
        refs = snapshot.parents[1] / "refs"
        refs.mkdir(exist_ok=True)
        (refs / "main").write_text(COMMIT)

    if not (workdir / "preset" / "config.json").is_file():
        shutil.rmtree(workdir / "preset", ignore_errors=True)
        with tempfile.TemporaryDirectory() as home:
            os.environ["KERASFORMER_HOME"] = home
            task = kf.models.load(str(hf_dir), family=FAMILY)
            task.save_preset(str(workdir / "preset"))
    return json.loads(done.read_text())


def child_measure(kind, workdir):
    """One measurement: imports (the baseline), then `kind`, timed."""
    started = time.perf_counter()
    kf, backend = _import_everything()
    imported = time.perf_counter()
    baseline = _peak_rss_bytes()
    if kind == "raw":
        from safetensors import safe_open

        with safe_open(str(workdir / "hf" / "model.safetensors"), framework="np") as file:
            arrays = {name: file.get_tensor(name) for name in file.keys()}
        described = f"{len(arrays)} tensors"
    else:
        source = {"directory": str(workdir / "hf"), "hub": f"hf://{REPO_ID}@{COMMIT}",
                  "preset": str(workdir / "preset")}[kind]
        task = kf.models.load(source, family=None if kind == "preset" else FAMILY)
        _wait_for_weights(task)
        described = type(task).__name__
    finished = time.perf_counter()
    return {"seconds": finished - imported, "import_seconds": imported - started,
            "baseline_rss": baseline, "peak_rss": _peak_rss_bytes(), "backend": backend,
            "what": described}


# --------------------------------------------------------------------- parent

ROWS = ["raw read of model.safetensors", "directory, first load", "directory, second load",
        "hub handle, first load", "hub handle, second load (cached preset)",
        "preset directory (save_preset)"]


def run_child(args, mode, env=None):
    """Runs this script as a child; its result, or {"error": last line of its stderr}."""
    command = [sys.executable, os.path.abspath(__file__), "--child", mode,
               "--workdir", str(args.workdir), "--backend", args.backend]
    full_env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "3",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", **(env or {})}
    process = subprocess.run(command, env=full_env, capture_output=True, text=True)
    for line in process.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    return {"error": lines[-1] if lines else f"exit status {process.returncode}",
            "stderr": process.stderr}


def measure(args, scratch):
    """{row label: [result per repeat]}, each run in a fresh process."""
    rows = {label: [] for label in ROWS}
    for repeat in range(args.repeat):
        print(f"repeat {repeat + 1}/{args.repeat}", file=sys.stderr, flush=True)
        rows["raw read of model.safetensors"].append(run_child(args, "raw"))
        for kind, first, second in [("directory", ROWS[1], ROWS[2]), ("hub", ROWS[3], ROWS[4])]:
            home = pathlib.Path(tempfile.mkdtemp(prefix=f"home-{kind}-", dir=scratch))
            env = {"KERASFORMER_HOME": str(home)}
            if kind == "hub":
                env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(args.workdir / "hub"))
            rows[first].append(run_child(args, kind, env))
            cached = sorted(str(p.relative_to(home)) for p in home.glob("converted/*/*"))
            rows[second].append({**run_child(args, kind, env), "cached": cached})
            shutil.rmtree(home, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=scratch) as home:
            rows["preset directory (save_preset)"].append(
                run_child(args, "preset", {"KERASFORMER_HOME": home}))
    return rows


def table(rows, file_size):
    mib = 1 << 20
    raw = [r["seconds"] for r in rows[ROWS[0]] if "error" not in r]
    raw_seconds = statistics.median(raw) if raw else None
    lines = [
        "| measurement | wall s | × raw read | import s | peak RSS MiB | peak RSS / file "
        "| Δ RSS over imports MiB | Δ RSS / file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in ROWS:
        results = rows[label]
        good = [r for r in results if "error" not in r]
        if not good:
            error = results[0]["error"] if results else "not run"
            lines.append(f"| {label} | failed: {error[:120]} | | | | | | |")
            continue
        seconds = [r["seconds"] for r in good]
        wall = f"{statistics.median(seconds):.2f}"
        if len(seconds) > 1:
            wall += f" ({min(seconds):.2f}–{max(seconds):.2f})"
        ratio = f"{statistics.median(seconds) / raw_seconds:.1f}" if raw_seconds else ""
        peak = statistics.median(r["peak_rss"] for r in good)
        delta = statistics.median(r["peak_rss"] - r["baseline_rss"] for r in good)
        imports = statistics.median(r["import_seconds"] for r in good)
        lines.append(f"| {label} | {wall} | {ratio} | {imports:.1f} | {peak / mib:.0f} "
                     f"| {peak / file_size:.2f} | {delta / mib:.0f} | {delta / file_size:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/kf-bench-load"))
    parser.add_argument("--backend", default="jax", choices=["jax", "tensorflow", "torch"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir = args.workdir.absolute()

    if args.child:
        workdir = args.workdir
        if args.child == "setup":
            result = child_setup(workdir)
        else:
            result = child_measure(args.child, workdir)
        print(RESULT + json.dumps(result), flush=True)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"preparing {args.workdir} ...", file=sys.stderr, flush=True)
    setup = run_child(args, "setup")
    if "error" in setup:
        sys.stderr.write(setup["stderr"])
        raise SystemExit(f"setup failed: {setup['error']}")
    weights = args.workdir / "hf" / "model.safetensors"
    file_size = weights.stat().st_size
    with open(weights, "rb") as file:  # the same warm page cache for every measurement
        while file.read(1 << 24):
            pass
    with tempfile.TemporaryDirectory(prefix="kf-bench-load-") as scratch:
        rows = measure(args, scratch)

    versions = subprocess.run(
        [sys.executable, "-c", "import keras, safetensors, numpy; print(f'keras "
         "{keras.__version__}, safetensors {safetensors.__version__}, numpy {numpy.__version__}')"],
        env={**os.environ, "KERAS_BACKEND": args.backend}, capture_output=True, text=True,
    ).stdout.strip()
    print(f"\nRoFormer-Sim base shape, random float32 weights: {setup['parameters']:,} parameters "
          f"in {setup['tensors']} tensors, model.safetensors {file_size / (1 << 20):.0f} MiB; "
          f"backend {args.backend}; {versions}; {os.cpu_count()} CPUs; median of "
          f"{args.repeat} run(s), each in a fresh process, page cache warm.\n")
    print(table(rows, file_size))
    print("\nThe raw read's peak RSS counts the file's pages, mapped by safe_open while every "
          "tensor is copied out, besides the copies. A hub handle's first load also hashes "
          "the files it uses (sha256), and every preset load checks its weights' sha256.")
    for label in ("directory, second load", "hub handle, second load (cached preset)"):
        cached = [r.get("cached") for r in rows[label] if "error" not in r]
        if cached:
            print(f"\n{label}: presets cached by the first load: {cached[0] or 'none'}")
    failures = [(label, r) for label in ROWS for r in rows[label] if "error" in r]
    for label, result in failures[:3]:
        print(f"\n{label} failed:\n{result['stderr'][-3000:]}", file=sys.stderr)
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
