"""Loading CPM-LM-shaped models on a laptop-sized machine: resident memory and generation
speed of the 12-layer CPM-Generate-distill shape and CPM-LM's own 32-layer shape (2.6B
parameters), with random weights, in float32, bfloat16 and int8 (Keras' weight-only
quantization of the Dense kernels, after loading in bfloat16).

    python tools/bench_cpm_generation.py [--shapes distill full] [--tokens 16]
    KERAS_BACKEND=torch python tools/bench_cpm_generation.py    # on PyTorch (default jax)

For each shape a synthetic CPM-Generate repository (config.json, model.safetensors in
float32, the real spiece.model) is written to a temporary directory by
tools/synthetic_cpm.py, and each dtype
runs in its own process: `kerasformer.models.load(DIR, dtype=...)` converts it
(streamed, into a temporary KERASFORMER_HOME) and loads the preset in that dtype
without a float32 copy of the model. Reported, above what the process held after its
imports: the resident memory of the loaded model, the peak while loading, the peak
including generation; and tokens/s of sampling `--tokens` tokens after a warm-up
call that compiles the decode loop. The 32-layer shape needs about 21 GB of disk.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPES = {"distill": {"hidden": 768, "layers": 12, "heads": 12},
          "full": {"hidden": 2560, "layers": 32, "heads": 32}}

MEASURE = """
import math, resource, sys, time, warnings
sys.path.insert(0, sys.argv[1])
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import keras
import kerasformer as kf
keras.ops.convert_to_numpy(keras.ops.zeros(2))
directory, dtype, tokens = sys.argv[2], sys.argv[3], int(sys.argv[4])
before = rss_mb()
start = time.perf_counter()
cpm = kf.models.load(directory, dtype="bfloat16" if dtype == "int8" else dtype)
if dtype == "int8":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layers without weights have nothing to quantize
        cpm.model.quantize("int8")
loading = time.perf_counter() - start
loaded, load_peak = rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
prompt = "美国的首都是华盛顿\\n法国的首都是巴黎\\n中国的首都是"
options = dict(n=1, maxlen=tokens, minlen=tokens, topk=10, seed=0)
cpm.generate(prompt, **options)  # compiles the decode loop
start = time.perf_counter()
cpm.generate(prompt, **options)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
parameters = sum(math.prod(v.shape) for v in cpm.model.weights)
print(before, loaded, load_peak, peak, loading, tokens / seconds, parameters)
"""


def measure(directory, dtype, tokens, home):
    environment = {**os.environ, "KERASFORMER_HOME": home, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), directory, dtype, str(tokens)],
                         check=True, capture_output=True, text=True, env=environment).stdout.split()
    before, loaded, load_peak, peak, seconds, speed, parameters = map(float, out[-7:])
    return {"resident_mb": round(loaded - before), "loading_peak_mb": round(load_peak - before),
            "peak_mb": round(peak - before),
            "load_seconds": round(seconds, 1), "tokens_per_second": round(speed, 2),
            "parameters": int(parameters)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--scratch", help="where to write the synthetic checkpoints")
    args = parser.parse_args()
    results = {"backend": os.environ.get("KERAS_BACKEND", "jax")}
    for shape in args.shapes:
        with tempfile.TemporaryDirectory(dir=args.scratch) as directory:
            sizes = SHAPES[shape]
            subprocess.run([sys.executable, str(ROOT / "tools" / "synthetic_cpm.py"), directory,
                            "--hidden", str(sizes["hidden"]), "--layers", str(sizes["layers"]),
                            "--heads", str(sizes["heads"])], check=True)
            home = os.path.join(directory, "home")
            results[shape] = {dtype: measure(directory, dtype, args.tokens, home)
                              for dtype in args.dtypes}
            print(json.dumps({shape: results[shape]}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
