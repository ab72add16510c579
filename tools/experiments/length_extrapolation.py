"""Experiment: how far past its training length does a RoPE model stay good?

A small causal RoFormer language model (4 layers of 256, 4 heads, the bundled mini
model's 6000-character vocabulary) is trained here, on a CPU, on 64-character windows
of continuous modern-Chinese text: the 现代文 side of the Classical-Modern chapters of
../shared/data (one document per chapter; every 20th chapter held out). It is trained
twice: with plain RoPE, and with KeyNorm (unit keys, no 1/√d).

It is then evaluated on the same held-out tokens cut into windows of 1×, 2×, 4× and 8×
the training length: mean next-token loss and accuracy over all tokens of each window,
for plain RoPE and for each way of running a model past its training length —
linear position interpolation, NTK-aware, dynamic NTK, NTK-mixed (factor 8, the
longest evaluated length), ReRoPE and Leaky ReRoPE, log-n scaling, their combinations —
without any retraining, and for the KeyNorm model as trained.

Last, the bundled roformer-sim-mini (trained on rows of up to 64 positions) is
evaluated at 1×, 2× and 4× that length: its generator (the MLM head, which
RoFormer-Sim's seq2seq stages turned into a next-token head), teacher-forced to
reproduce a held-out source of 30, 62 or 126 tokens.

    python tools/experiments/length_extrapolation.py train --arm rope      # ~30 min (2 CPU cores)
    python tools/experiments/length_extrapolation.py train --arm keynorm   # ~30 min
    python tools/experiments/length_extrapolation.py evaluate              # tables, plot
    python tools/experiments/length_extrapolation.py report                # them again

Outputs go under --out (default runs/length-extrapolation): each arm's weights and
training log, `results.json`, and the plot `extrapolation.png` (copy it to
docs/images/ for the docs page).
"""
import argparse
import json
import math
import os
import sys
import time
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
CORPUS = "Classical-Modern/Classical-Modern-bitext-subset.zip"
TRAIN_LENGTH = 64
MULTIPLES = (1, 2, 4, 8)
HELD_OUT_EVERY = 20  # every 20th chapter is evaluation text
ARMS = {"rope": {}, "keynorm": {"key_norm": "key"}}
SHAPE = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=1024, hidden_act="gelu")


def chapters(data_dir):
    """The modern-Chinese text of every chapter, in the zip's order."""
    path = os.path.join(data_dir, CORPUS)
    if not os.path.isfile(path):
        sys.exit(f"no corpus at {path}: pass --data, the shared data directory")
    texts = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith("bitext.txt"):
                continue
            lines = archive.read(name).decode("utf-8").splitlines()
            modern = [line[4:].strip() for line in lines if line.startswith("现代文：")]
            texts.append("".join(modern))
    return texts


def tokenizer():
    import kerasformer as kf

    vocab = os.path.join(os.path.dirname(kf.__file__), "bundled", "roformer-sim-mini",
                         "assets", "tokenizer", "vocab.txt")
    return kf.tokenizers.Tokenizer(vocab, do_lower_case=True)


def token_streams(data_dir, held_out):
    """Token ids of each training (or held-out) chapter, without special tokens."""
    tok = tokenizer()
    streams = []
    for index, text in enumerate(chapters(data_dir)):
        if (index % HELD_OUT_EVERY == 0) != held_out or not text:
            continue
        ids = tok.encode(text)[0][1:-1]
        if len(ids) > 1:
            streams.append(np.asarray(ids, np.int32))
    return streams


def language_model(arm, **options):
    import kerasformer as kf

    return kf.models.RoFormer(
        application="lm", with_mlm="linear", segment_vocab_size=0, vocab_size=6000,
        dropout_rate=0.0, attention_dropout_rate=0.0, **SHAPE, **ARMS[arm], **options,
    )


def training_windows(streams, batch_size, rng):
    """Endless batches of `TRAIN_LENGTH + 1` consecutive tokens at random offsets."""
    lengths = np.array([len(s) for s in streams], np.float64)
    usable = np.maximum(lengths - TRAIN_LENGTH - 1, 0)
    weights = usable / usable.sum()
    while True:
        picks = rng.choice(len(streams), batch_size, p=weights)
        rows = []
        for pick in picks:
            start = rng.integers(0, len(streams[pick]) - TRAIN_LENGTH)
            rows.append(streams[pick][start:start + TRAIN_LENGTH + 1])
        rows = np.stack(rows)
        yield rows[:, :-1], rows[:, 1:]


def train(args):
    import keras

    from kerasformer.training.log import TrainingLog

    keras.utils.set_random_seed(args.seed)
    streams = token_streams(args.data, held_out=False)
    print(f"{len(streams)} training chapters, {sum(map(len, streams)):,} tokens", flush=True)
    transformer = language_model(args.arm)
    model = transformer.build()
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, args.steps - args.warmup, alpha=0.1, warmup_target=args.lr,
        warmup_steps=args.warmup)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    directory = os.path.join(args.out, args.arm)
    os.makedirs(directory, exist_ok=True)
    log = TrainingLog(directory, total_steps=args.steps, every=args.log_every)
    batches = training_windows(streams, args.batch_size, np.random.default_rng(args.seed))
    start = time.time()
    model.fit(batches, steps_per_epoch=args.log_every, epochs=args.steps // args.log_every,
              callbacks=[log], verbose=0)
    weights = os.path.join(directory, "model.weights.h5")
    partial = os.path.join(directory, "partial.weights.h5")
    model.save_weights(partial)
    os.replace(partial, weights)  # a run stopped early leaves no weights that load
    print(f"trained {args.arm} in {(time.time() - start) / 60:.1f} min -> {weights}",
          flush=True)


# (label, trained arm, options applied to the trained weights without retraining)
METHODS = [
    ("RoPE", "rope", {}),
    ("linear ×8", "rope", {"rope_scaling": {"type": "linear", "factor": 8}}),
    ("NTK ×8", "rope", {"rope_scaling": {"type": "ntk", "factor": 8}}),
    ("dynamic NTK", "rope", {"rope_scaling": {"type": "dynamic_ntk", "factor": 1,
                                               "original_max_position": TRAIN_LENGTH}}),
    ("NTK-mixed ×8", "rope", {"rope_scaling": {"type": "ntk_mixed", "factor": 8}}),
    ("log-n", "rope", {"log_scale_length": TRAIN_LENGTH}),
    ("NTK-mixed ×8 + log-n", "rope", {"rope_scaling": {"type": "ntk_mixed", "factor": 8},
                                      "log_scale_length": TRAIN_LENGTH}),
    ("ReRoPE w=32", "rope", {"rope_scaling": {"type": "rerope", "window": 32}}),
    ("ReRoPE w=32 + log-n", "rope", {"rope_scaling": {"type": "rerope", "window": 32},
                                     "log_scale_length": TRAIN_LENGTH}),
    ("Leaky ReRoPE w=32 k=16", "rope", {"rope_scaling": {"type": "leaky_rerope", "window": 32,
                                                         "factor": 16}}),
    ("HWFA w=64", "rope", {"attention_window": TRAIN_LENGTH}),
    ("KeyNorm (trained with)", "keynorm", {}),
    ("KeyNorm + log-n", "keynorm", {"log_scale_length": TRAIN_LENGTH}),
]
# The curves drawn per position at 8×.
DRAWN = ("RoPE", "NTK-mixed ×8", "ReRoPE w=32 + log-n", "Leaky ReRoPE w=32 k=16", "HWFA w=64",
         "KeyNorm (trained with)")
SEGMENTS = 64  # held-out segments of 8 × 64 + 1 tokens
MINI_MULTIPLES = (1, 2, 4)
MINI_METHODS = [
    ("RoPE", {}),
    ("NTK ×4", {"rope_scaling": {"type": "ntk", "factor": 4}}),
    ("NTK-mixed ×4", {"rope_scaling": {"type": "ntk_mixed", "factor": 4}}),
    ("log-n", {"log_scale_length": TRAIN_LENGTH}),
    ("ReRoPE w=32", {"rope_scaling": {"type": "rerope", "window": 32}}),
    ("ReRoPE w=32 + log-n", {"rope_scaling": {"type": "rerope", "window": 32},
                             "log_scale_length": TRAIN_LENGTH}),
    ("Leaky ReRoPE w=32 k=16", {"rope_scaling": {"type": "leaky_rerope", "window": 32,
                                                 "factor": 16}}),
]


def held_out_segments(data_dir, length, count):
    """`count` segments of `length` consecutive held-out tokens, taken in turn from
    the held-out chapters (the first, then the second segment of each...)."""
    streams = [s for s in token_streams(data_dir, held_out=True) if len(s) >= length]
    segments = []
    for turn in range(max(len(s) // length for s in streams)):
        for stream in streams:
            if (turn + 1) * length <= len(stream) and len(segments) < count:
                segments.append(stream[turn * length:(turn + 1) * length])
    if len(segments) < count:
        sys.exit(f"only {len(segments)} held-out segments of {length} tokens")
    return np.stack(segments)


def next_token_scores(model, inputs, targets, batch_size=16):
    """Per-token loss and correctness `(rows, length)` of a causal LM's logits."""
    from keras import ops

    losses, correct = [], []
    for start in range(0, len(inputs), batch_size):
        logits = ops.cast(model(inputs[start:start + batch_size], training=False), "float32")
        log_p = ops.log_softmax(logits, axis=-1)
        rows = targets[start:start + batch_size]
        picked = ops.take_along_axis(log_p, ops.convert_to_tensor(rows[..., None]), axis=-1)
        losses.append(-np.asarray(picked)[..., 0])
        correct.append(np.asarray(ops.argmax(logits, axis=-1)) == rows)
    return np.concatenate(losses), np.concatenate(correct)


def evaluate_language_model(args, segments):
    """Mean next-token loss and accuracy of every method at every multiple, and the
    per-position losses at the longest."""
    results, curves = {}, {}
    for label, arm, options in METHODS:
        weights = os.path.join(args.out, arm, "model.weights.h5")
        if not os.path.isfile(weights):
            sys.exit(f"no {weights}: run `train --arm {arm}` first")
        model = language_model(arm, **options).build()
        model.load_weights(weights)
        results[label] = {}
        for multiple in MULTIPLES:
            length = TRAIN_LENGTH * multiple
            # every target of the segments, cut into windows of `length` with their own context
            inputs = segments[:, :-1].reshape(-1, length)
            targets = segments[:, 1:].reshape(-1, length)
            losses, correct = next_token_scores(model, inputs, targets)
            results[label][str(multiple)] = {"loss": float(losses.mean()),
                                        "accuracy": float(correct.mean())}
            if multiple == MULTIPLES[-1]:
                curves[label] = losses.mean(axis=0).tolist()
        print(label.ljust(24), "  ".join(
            f"{m}×: {r['loss']:.3f} / {r['accuracy']:.3f}" for m, r in results[label].items()),
            flush=True)
    return results, curves


def mini_model(options):
    """The bundled roformer-sim-mini's transformer with `options`, and its tokenizer."""
    import kerasformer as kf
    from kerasformer import architectures, presets

    directory = os.path.join(os.path.dirname(kf.__file__), "bundled", "roformer-sim-mini")
    config = dict(presets.read_config(directory)["transformer"])
    config.update(options)
    config["dropout_rate"] = config["attention_dropout_rate"] = 0.0
    transformer = architectures.get(config["architecture"]).from_config(config)
    model = transformer.build()
    model.load_weights(os.path.join(directory, presets.WEIGHTS))
    return model


def evaluate_mini(args, segments):
    """The bundled mini's generator, teacher-forced, on `[CLS] s [SEP] s [SEP]` rows
    of 1×, 2× and 4× its 64-position training rows: mean loss and accuracy of the
    second copy of s given the first (what RoFormer-Sim's seq2seq is trained on, a
    paraphrase of the source; here the source itself), s a piece of held-out text.

    Not masked-LM accuracy: RoFormer-Sim's stages retrained the MLM head as the
    seq2seq head, which now predicts the next token (a masked token at its own
    position: 3 % of the time).
    """
    tok = tokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    longest = TRAIN_LENGTH * MINI_MULTIPLES[-1] // 2 - 2
    text = segments[:, :longest]
    results = {}
    for label, options in MINI_METHODS:
        model = mini_model(options)
        results[label] = {}
        for multiple in MINI_MULTIPLES:
            width = TRAIN_LENGTH * multiple // 2 - 2  # rows of 2·width + 3 < 64·multiple
            pieces = longest // width
            rows = text[:, :pieces * width].reshape(-1, width)
            column = np.ones((len(rows), 1), np.int32)
            ids = np.concatenate([cls_id * column, rows, sep_id * column, rows, sep_id * column],
                                 axis=1).astype(np.int32)
            segment_ids = np.concatenate([np.zeros((len(rows), width + 2), np.int32),
                                          np.ones((len(rows), width + 1), np.int32)], axis=1)
            losses, correct = [], []
            for start in range(0, len(ids), 16):
                probabilities = np.asarray(model([ids[start:start + 16],
                                                  segment_ids[start:start + 16]],
                                                 training=False)[1])
                # from the first [SEP] on, each position predicts the next copied token
                predicting = probabilities[:, width + 1:2 * width + 1]
                targets = rows[start:start + 16]
                picked = np.take_along_axis(predicting, targets[..., None], axis=-1)[..., 0]
                losses.append(-np.log(np.maximum(picked, 1e-12)))
                correct.append(predicting.argmax(-1) == targets)
            results[label][str(multiple)] = {"loss": float(np.concatenate(losses).mean()),
                                             "accuracy": float(np.concatenate(correct).mean())}
        print("mini", label.ljust(24), "  ".join(
            f"{m}×: {r['loss']:.3f} / {r['accuracy']:.3f}" for m, r in results[label].items()),
            flush=True)
    return results


def draw(results, curves, path, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (training, left, right) = plt.subplots(1, 3, figsize=(19, 5))
    for arm in ARMS:
        with open(os.path.join(out, arm, "metrics.jsonl"), encoding="utf-8") as file:
            records = [json.loads(line) for line in file]
        training.plot([r["step"] for r in records], [r["loss"] for r in records], label=arm)
    training.set_xlabel("step (batches of 32 × 64 tokens)")
    training.set_ylabel("training loss (mean of each 100 steps)")
    training.legend()
    training.grid(alpha=0.3)
    colours = plt.get_cmap("tab20").colors
    for index, (label, by_length) in enumerate(results.items()):
        style = "--" if "KeyNorm" in label else "-"
        left.plot(MULTIPLES, [by_length[str(m)]["loss"] for m in MULTIPLES], style,
                  marker="os^vD"[index % 5], color=colours[index % len(colours)], label=label)
    left.set_xscale("log", base=2)
    left.set_xticks(MULTIPLES, [f"{m}× ({m * TRAIN_LENGTH})" for m in MULTIPLES])
    left.set_xlabel("evaluation window (× the 64-token training length)")
    left.set_ylabel("mean next-token loss (held-out text)")
    left.set_ylim(top=min(left.get_ylim()[1], 9))
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    kernel = np.ones(16) / 16
    for label in DRAWN:
        smooth = np.convolve(curves[label], kernel, mode="valid")
        right.plot(np.arange(len(smooth)) + 8, smooth, label=label)
    right.axvline(TRAIN_LENGTH, color="gray", linestyle=":")
    right.set_xlabel("position in a 512-token window (the dotted line: training length)")
    right.set_ylabel("loss at that position (moving mean of 16)")
    right.set_ylim(top=min(right.get_ylim()[1], 9))
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    figure.suptitle("Causal RoFormer (4×256) trained on 64 tokens, evaluated on longer windows")
    figure.tight_layout()
    partial = path + ".partial.png"
    figure.savefig(partial, dpi=110)
    os.replace(partial, path)


def evaluate(args):
    segments = held_out_segments(args.data, TRAIN_LENGTH * MULTIPLES[-1] + 1, SEGMENTS)
    print(f"{segments.shape[0]} held-out segments of {segments.shape[1]} tokens", flush=True)
    results, curves = evaluate_language_model(args, segments)
    mini = evaluate_mini(args, segments)
    record = {"train_length": TRAIN_LENGTH, "segments": int(segments.shape[0]),
              "language_model": results, "mini_language_model": mini,
              "per_position_loss_8x": curves}
    path = os.path.join(args.out, "results.json")
    with open(path + ".partial", "w", encoding="utf-8") as file:
        json.dump(record, file, ensure_ascii=False, indent=1)
    os.replace(path + ".partial", path)
    report(args)


def report(args):
    """Prints the tables of `results.json` and draws `extrapolation.png`."""
    with open(os.path.join(args.out, "results.json"), encoding="utf-8") as file:
        record = json.load(file)
    path = os.path.join(args.out, "extrapolation.png")
    draw(record["language_model"], record["per_position_loss_8x"], path, args.out)
    print(markdown_tables(record))
    print(f"-> {os.path.join(args.out, 'results.json')}, {path}")


def markdown_tables(record):
    """The docs page's tables of a `results.json` record."""
    lines = ["| method | " + " | ".join(f"{m}× ({m * TRAIN_LENGTH})" for m in MULTIPLES) + " |",
             "|---|" + "---|" * len(MULTIPLES)]
    for label, by_length in record["language_model"].items():
        cells = [f"{by_length[str(m)]['loss']:.3f} / {100 * by_length[str(m)]['accuracy']:.1f} %"
                 for m in MULTIPLES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| roformer-sim-mini | " + " | ".join(f"{m}× ({m * TRAIN_LENGTH})"
                                                       for m in MINI_MULTIPLES) + " |",
              "|---|" + "---|" * len(MINI_MULTIPLES)]
    for label, by_length in record["mini_language_model"].items():
        cells = [f"{by_length[str(m)]['loss']:.3f} / {100 * by_length[str(m)]['accuracy']:.1f} %"
                 for m in MINI_MULTIPLES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("train", "evaluate", "report"))
    parser.add_argument("--arm", choices=sorted(ARMS), default="rope")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--out", default="runs/length-extrapolation")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "train":
        train(args)
    elif args.command == "evaluate":
        evaluate(args)
    else:  # the tables and plot of an earlier evaluation
        report(args)


if __name__ == "__main__":
    main()
