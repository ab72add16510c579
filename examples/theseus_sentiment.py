"""BERT-of-Theseus on sentiment classification: fine-tune a classifier, compress it by
progressive module replacement, and compare with fine-tuning its first layers directly.

    python examples/theseus_sentiment.py ../shared/data/sentiment.zip
    python examples/theseus_sentiment.py sentiment.zip --model roformer-sim-mini --layers 2 \\
        --epochs 2 --theseus-epochs 2 --successor-epochs 1 --out runs/theseus

The data is bert4keras' sentiment set (hotel, book and product reviews, labels 0/1:
`sentiment/sentiment.{train,valid,test}.data`, `text<TAB>label` lines), read from the
zip (or its unpacked directory) at run time. The steps, as in Xu et al. 2020 and
bert4keras' `task_iflytek_bert_of_theseus.py`:

1. the predecessor: the encoder of `--model` (default the bundled roformer-sim-mini,
   4 blocks) with a [CLS] softmax head, fine-tuned for `--epochs`;
2. Theseus: the predecessor frozen, each group of N/M of its blocks replaced by one
   successor block with probability `--replacement` per module and batch (the
   successor starts from the predecessor's first M blocks), for `--theseus-epochs`;
   then the successor alone, for `--successor-epochs`;
3. the baseline: the pre-trained encoder's first M blocks with a fresh head, fine-tuned
   directly for `--epochs` (the paper's "fine-tune the first layers").

It prints the test accuracy of the three, their blocks, and the successor's speed-up
in classifying the test set; `--out` saves the successor as a preset
(`kerasformer.models.load(OUT)`).
"""
import argparse
import os
import pathlib
import sys
import time
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasformer as kf  # noqa: E402
from kerasformer.models.classifier import TextClassifier  # noqa: E402
from kerasformer.training.theseus import Theseus  # noqa: E402
from kerasformer.training.weights import copy_weights, rebuilt  # noqa: E402

LABELS = ["negative", "positive"]
SPLITS = ("train", "valid", "test")


def read_split(source, split):
    """[(text, label name)] of one split, from the zip or its unpacked directory."""
    name = f"sentiment/sentiment.{split}.data"
    source = pathlib.Path(source)
    if source.is_dir():
        path = source / name if (source / name).is_file() else source / pathlib.Path(name).name
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        with zipfile.ZipFile(source) as archive:
            lines = archive.read(name).decode("utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab or label not in ("0", "1"):
            sys.exit(f"{source}:{name}:{number}: expected text<TAB>0|1, got {line[:60]!r}")
        rows.append((text, LABELS[int(label)]))
    return rows


def batches(classifier, rows, batch_size, rng=None):
    """Padded (inputs, targets) batches of `rows`, shuffled when `rng` is given."""
    order = np.arange(len(rows)) if rng is None else rng.permutation(len(rows))
    for start in range(0, len(rows), batch_size):
        chosen = [rows[i] for i in order[start:start + batch_size]]
        token_ids, segment_ids = classifier.encode_batch([text for text, _ in chosen])
        yield [token_ids, segment_ids], classifier.label_ids([label for _, label in chosen])


def train(model, classifier, rows, epochs, batch_size, learning_rate, seed):
    """`epochs` passes over `rows`, batch by batch; the mean loss of each epoch."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        epoch_losses = [float(np.asarray(model.train_on_batch(x, y)).reshape(-1)[0])
                        for x, y in batches(classifier, rows, batch_size, rng)]
        losses.append(float(np.mean(epoch_losses)))
        print(f"  epoch {epoch + 1}: loss {losses[-1]:.4f}", flush=True)
    return losses


def accuracy(classifier, rows, batch_size=64):
    predicted = classifier.predict([text for text, _ in rows], batch_size=batch_size)
    return float(np.mean([p == label for p, (_, label) in zip(predicted, rows)]))


def seconds_to_classify(classifier, rows, batch_size=64):
    texts = [text for text, _ in rows]
    classifier.predict(texts[:batch_size], batch_size=batch_size)  # compiled before timing
    start = time.perf_counter()
    classifier.predict(texts, batch_size=batch_size)
    return time.perf_counter() - start


def first_blocks(source, layers, maxlen):
    """A fresh classifier on the pre-trained encoder's first `layers` blocks."""
    whole = TextClassifier.from_encoder(source, LABELS, text_maxlen=maxlen)
    encoder = rebuilt(whole.transformer, num_hidden_layers=layers)
    missing = copy_weights(whole.encoder, encoder.model)
    assert not missing, missing  # every block kept is one of the first ones
    return TextClassifier(encoder, whole.tokenizer, None, whole.tokenizer_config, labels=LABELS,
                          text_maxlen=maxlen)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="sentiment.zip (or the directory unpacked from it)")
    parser.add_argument("--model", default="roformer-sim-mini",
                        help="the pre-trained encoder: a name, hf:// handle or directory")
    parser.add_argument("--family", help="the family of a directory that does not say it")
    parser.add_argument("--layers", type=int, default=2, help="the successor's blocks (2)")
    parser.add_argument("--epochs", type=int, default=2, help="predecessor and baseline epochs")
    parser.add_argument("--theseus-epochs", type=int, default=2)
    parser.add_argument("--successor-epochs", type=int, default=1)
    parser.add_argument("--replacement", type=float, default=0.5,
                        help="replacement probability per module and batch (0.5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128, help="tokens kept of a review")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, help="use only this many training reviews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="save the successor classifier here, as a preset")
    args = parser.parse_args(argv)
    for name in ("layers", "epochs", "theseus_epochs", "batch_size", "maxlen"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.replacement <= 1:
        parser.error("--replacement must be a probability")
    if not os.path.exists(args.data):
        parser.error(f"no such file or directory: {args.data}")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    keras.utils.set_random_seed(args.seed)
    train_rows, test_rows = (read_split(args.data, split) for split in ("train", "test"))
    if args.limit:
        train_rows = train_rows[:args.limit]
    source = kf.models.load(args.model, **({"family": args.family} if args.family else {}))
    print(f"{len(train_rows)} training reviews, {len(test_rows)} test reviews; encoder "
          f"{args.model} ({source.transformer.num_hidden_layers} blocks)")

    print("1. the predecessor, fine-tuned")
    predecessor = TextClassifier.from_encoder(source, LABELS, text_maxlen=args.maxlen)
    train(predecessor.model, predecessor, train_rows, args.epochs, args.batch_size, args.lr,
          args.seed)
    blocks = predecessor.transformer.num_hidden_layers
    if blocks % args.layers:
        sys.exit(f"--layers {args.layers} does not divide the predecessor's {blocks} blocks")

    print(f"2. Theseus: {blocks} -> {args.layers} blocks, replacement {args.replacement}")
    theseus = Theseus(predecessor, args.layers, replacement_rate=args.replacement,
                      seed=args.seed)
    train(theseus, predecessor, train_rows, args.theseus_epochs, args.batch_size, args.lr,
          args.seed + 1)
    successor = theseus.successor_task()
    if args.successor_epochs:
        print("   the successor alone")
        train(successor.model, successor, train_rows, args.successor_epochs, args.batch_size,
              args.lr, args.seed + 2)

    print(f"3. the baseline: the first {args.layers} pre-trained blocks, fine-tuned directly")
    baseline = first_blocks(source, args.layers, args.maxlen)
    train(baseline.model, baseline, train_rows, args.epochs, args.batch_size, args.lr,
          args.seed + 3)

    results = [("predecessor", blocks, accuracy(predecessor, test_rows)),
               ("Theseus successor", args.layers, accuracy(successor, test_rows)),
               (f"first {args.layers} blocks fine-tuned", args.layers,
                accuracy(baseline, test_rows))]
    speed_up = seconds_to_classify(predecessor, test_rows) / seconds_to_classify(successor,
                                                                                  test_rows)
    print("\nmodel\tblocks\ttest accuracy")
    for name, layers, value in results:
        print(f"{name}\t{layers}\t{value:.4f}")
    print(f"successor speed-up classifying the test set: {speed_up:.2f}x")
    if args.out:
        print(f"saved the successor to {successor.save_preset(args.out)}")


if __name__ == "__main__":
    main()
