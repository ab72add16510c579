"""Peak memory of converting a Hugging Face GPT-2 checkpoint (CPM-Generate's layout) into
a kerasformer preset: the streamed conversion `kerasformer.models.load` runs
(`presets.convert`) against building the model and loading it in memory, as
`build_transformer_model` (and bert4keras) do, then saving it — on a synthetic checkpoint
with CPM-LM's own tensor shapes (vocabulary 30000, width 2560, so its largest tensor is
CPM's: the 307 MB token embedding) but fewer blocks, written by tools/synthetic_cpm.py as
pytorch_model.bin and as model.safetensors.

    python tools/bench_hf_convert.py [--layers 2 --hidden 2560]

Each conversion runs in its own process; its peak resident memory (ru_maxrss) minus
what the process held before converting (its imports, and Keras' backend started) is
reported next to the largest single tensor and the file's size.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

CONVERT = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import keras
from kerasformer import loading, presets
keras.ops.convert_to_numpy(keras.ops.zeros(2))  # the backend started before measuring
directory, weights, how = sys.argv[2], sys.argv[3], sys.argv[4]
vocab = sys.argv[5]
config = presets.read_json(f"{directory}/config.json")
before = rss_mb()
start = time.perf_counter()
if how == "streamed":
    transformer, task_config = loading.task_recipe("cpm-lm", config, vocab)
    presets.convert(f"{directory}/out-{how}-{weights}", transformer, task_config,
                    f"{directory}/{weights}")
else:
    task = loading.build_task("cpm-lm", config, f"{directory}/{weights}", vocab)
    presets.save(task, f"{directory}/out-{how}-{weights}")
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - start)
"""


def run(directory, weights, how):
    out = subprocess.run([sys.executable, "-c", CONVERT, str(ROOT), directory, weights, how,
                          f"{directory}/spiece.model"], check=True, capture_output=True,
                         text=True).stdout.split()
    before, peak, seconds = map(float, out[-3:])
    return {"imports_mb": round(before), "peak_mb": round(peak),
            "converting_mb": round(peak - before), "seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=2560)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    largest_mb = max(30000, 4 * args.hidden) * args.hidden * 4 / 2**20
    results = {"largest_tensor_mb": round(largest_mb)}
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run([sys.executable, str(ROOT / "tools" / "synthetic_cpm.py"), directory,
                        "--hidden", str(args.hidden), "--layers", str(args.layers), "--torch"],
                       check=True)
        for weights in ("model.safetensors", "pytorch_model.bin"):
            file_mb = pathlib.Path(directory, weights).stat().st_size / 2**20
            row = {"file_mb": round(file_mb)}
            for how in ("streamed", "in_memory"):
                measured = run(directory, weights, how)
                measured["per_largest_tensor"] = round(measured["converting_mb"] / largest_mb, 2)
                measured["per_file"] = round(measured["converting_mb"] / file_mb, 2)
                row[how] = measured
            results[weights] = row
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
