"""Peak memory of merging Megatron partitions into a bert4keras TF checkpoint:
kerasformer's streamed converter against bojone's convert.py (which loads both
partitions whole with torch.load and builds every merged tensor before saving), on a
synthetic two-partition GPT-2 of a few hundred MB written here.

    python tools/bench_megatron_convert.py [--checkout /path/to/CPM_LM_bert4keras]
        [--vocab 30000 --hidden 1024 --layers 4]

Each side runs in its own process; its peak resident memory (ru_maxrss) minus what
the process held before converting (its imports) is reported next to the largest
single tensor and the checkpoint's size. bojone's script is stopped before its TF1
Saver (which needs TensorFlow 1 sessions), so its figure is the merge alone: a lower
bound of what it needs. Without --checkout only kerasformer is measured.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

MAKE = """
import sys, torch
vocab, hidden, layers, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
part, ffn = hidden // 2, 4 * hidden // 2
shared = {"position_embeddings.weight": torch.randn(1024, hidden),
          "transformer.final_layernorm.weight": torch.ones(hidden),
          "transformer.final_layernorm.bias": torch.zeros(hidden)}
for i in range(layers):
    p = f"transformer.layers.{i}."
    for name in ("input_layernorm", "post_attention_layernorm"):
        shared[p + name + ".weight"] = torch.ones(hidden)
        shared[p + name + ".bias"] = torch.zeros(hidden)
    shared[p + "attention.dense.bias"] = torch.zeros(hidden)
    shared[p + "mlp.dense_4h_to_h.bias"] = torch.zeros(hidden)
for rank in range(2):
    state = {"word_embeddings.weight": torch.randn(vocab // 2, hidden)}
    for i in range(layers):
        p = f"transformer.layers.{i}."
        state[p + "attention.query_key_value.weight"] = torch.randn(3 * part, hidden)
        state[p + "attention.query_key_value.bias"] = torch.zeros(3 * part)
        state[p + "attention.dense.weight"] = torch.randn(hidden, part)
        state[p + "mlp.dense_h_to_4h.weight"] = torch.randn(ffn, hidden)
        state[p + "mlp.dense_h_to_4h.bias"] = torch.zeros(ffn)
        state[p + "mlp.dense_4h_to_h.weight"] = torch.randn(hidden, ffn)
    state.update(shared)
    torch.save({"module": state}, f"{out}/mp_rank_{rank:02d}_model_states.pt")
"""

RSS = """
import resource
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

KERASFORMER = RSS + """
import sys, time
sys.path.insert(0, sys.argv[2])
from kerasformer.convert.megatron import convert_megatron_gpt2
before = rss_mb()
start = time.perf_counter()
d = sys.argv[1]
convert_megatron_gpt2([f"{d}/mp_rank_00_model_states.pt", f"{d}/mp_rank_01_model_states.pt"],
                      f"{d}/out/model.ckpt", progress=None)
print(before, peak_mb(), time.perf_counter() - start)
"""

BOJONE = RSS + """
import subprocess, sys, time
import numpy as np, torch
d, checkout, layers, hidden = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
source = subprocess.run(["git", "-C", checkout, "show", "13acbd5:convert.py"],
                        capture_output=True, text=True, check=True).stdout
source = source[:source.index("with tf.Graph().as_default():")]
for old in ("import tensorflow as tf\\n", "import keras.backend as K\\n", "from tqdm import tqdm\\n"):
    source = source.replace(old, "")
source = source.replace("num_hidden_layers = 32", f"num_hidden_layers = {layers}")
source = source.replace("./model-v1/80000", d).replace("1280", str(hidden // 2))
before = rss_mb()
start = time.perf_counter()
exec(compile(source, "convert.py", "exec"), {"__name__": "convert"})
print(before, peak_mb(), time.perf_counter() - start)
"""


def run(program, *args):
    out = subprocess.run([sys.executable, "-c", program, *map(str, args)], check=True,
                         capture_output=True, text=True).stdout.split()
    before, peak, seconds = map(float, out[-3:])
    return {"imports_mb": round(before), "peak_mb": round(peak),
            "converting_mb": round(peak - before), "seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", help="a checkout (or git dir) of bojone/CPM_LM_bert4keras")
    parser.add_argument("--vocab", type=int, default=30000)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run([sys.executable, "-c", MAKE, str(args.vocab), str(args.hidden),
                        str(args.layers), directory], check=True)
        files = [pathlib.Path(directory, f"mp_rank_{r:02d}_model_states.pt") for r in range(2)]
        checkpoint_mb = sum(f.stat().st_size for f in files) / 2**20
        largest_mb = max(args.vocab, 4 * args.hidden) * args.hidden * 4 / 2**20
        result = {"checkpoint_mb": round(checkpoint_mb), "largest_tensor_mb": round(largest_mb),
                  "kerasformer": run(KERASFORMER, directory, ROOT)}
        if args.checkout:
            result["bojone_convert_py"] = run(BOJONE, directory, args.checkout, args.layers,
                                              args.hidden)
    for side in ("kerasformer", "bojone_convert_py"):
        if side in result:
            result[side]["converting_per_largest_tensor"] = round(
                result[side]["converting_mb"] / largest_mb, 2)
            result[side]["converting_per_checkpoint"] = round(
                result[side]["converting_mb"] / checkpoint_mb, 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
