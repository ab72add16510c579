"""Benchmark: WordPiece encoding speed, kerasformer vs bert4keras 0.11.5 where available.

Encodes synthetic short Chinese sentences (~20 characters, some English words,
numbers and punctuation) with `Tokenizer.encode(sentence, maxlen=64)` on the test
vocabulary (tests/fixtures/tokenizer/vocab.txt) and prints sentences per second.
bert4keras is timed on the same sentences when it can be run: importable here, or in
the reference environment of ../shared/reference/setup-bert4keras.sh (passed as
--reference-python, default /tmp/bert4keras-ref/bin/python); its token ids must then
equal kerasformer's. Otherwise only kerasformer's numbers are printed.

    python tools/bench_tokenizer.py [--sentences 20000] [--repeat 3]
        [--reference-python /tmp/bert4keras-ref/bin/python]
"""
import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB_PATH = REPO / "tests" / "fixtures" / "tokenizer" / "vocab.txt"
MAXLEN = 64


def synthetic_sentences(count, seed=0):
    """Short Chinese sentences (~20 chars) with some English words and digits."""
    from kerasformer.tokenizers import Tokenizer, load_vocab

    rng = random.Random(seed)
    tokens = load_vocab(VOCAB_PATH)
    hanzi = [t for t in tokens if len(t) == 1 and Tokenizer._is_cjk_character(t)]
    words = ["iPhone", "hello", "WiFi", "NASA", "tokenizer", "Python3", "OPPO"]
    punctuation = "，。！？、“”"
    sentences = []
    for _ in range(count):
        parts = []
        while sum(map(len, parts)) < 20:
            roll = rng.random()
            if roll < 0.08:
                parts.append(rng.choice(words))
            elif roll < 0.14:
                parts.append(str(rng.randrange(10_000)))
            elif roll < 0.2:
                parts.append(rng.choice(punctuation))
            else:
                parts.append(rng.choice(hanzi))
        sentences.append("".join(parts))
    return sentences


def timed_encoding(tokenizer_class, sentences, repeat):
    """Token ids of every sentence and the best time of `repeat` passes; a fresh
    tokenizer each pass, so word caches start empty."""
    best, ids = None, None
    for _ in range(repeat):
        tokenizer = tokenizer_class(str(VOCAB_PATH))
        start = time.perf_counter()
        ids = [tokenizer.encode(sentence, maxlen=MAXLEN)[0] for sentence in sentences]
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return ids, best


def bert4keras_tokenizer_class():
    """bert4keras' Tokenizer if it imports in this interpreter, else None."""
    os.environ.setdefault("TF_KERAS", "1")
    try:
        from bert4keras.tokenizers import Tokenizer
    except Exception:  # not installed, or no Keras it can run on
        return None
    return Tokenizer


def run_reference(python, sentences, repeat):
    """Times bert4keras in another interpreter; returns (ids, seconds) or None."""
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch) / "sentences.json"
        path.write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1",
               "CUDA_VISIBLE_DEVICES": ""}
        result = subprocess.run(
            [python, __file__, "--worker", str(path), "--repeat", str(repeat)],
            env=env, capture_output=True, text=True,
        )
    if result.returncode != 0 or "RESULT " not in result.stdout:
        print(f"bert4keras run failed in {python}:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    output = json.loads(result.stdout.split("RESULT ", 1)[1])
    return output["ids"], output["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is kept")
    parser.add_argument("--reference-python", default="/tmp/bert4keras-ref/bin/python",
                        help="interpreter with bert4keras 0.11.5 ('' to skip)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # in the reference interpreter: bert4keras only
        sentences = json.loads(pathlib.Path(args.worker).read_text(encoding="utf-8"))
        tokenizer_class = bert4keras_tokenizer_class()
        if tokenizer_class is None:
            raise SystemExit("bert4keras is not importable here")
        ids, seconds = timed_encoding(tokenizer_class, sentences, args.repeat)
        print("RESULT " + json.dumps({"ids": ids, "seconds": seconds}))
        return

    from kerasformer.tokenizers import Tokenizer

    sentences = synthetic_sentences(args.sentences)
    ids, seconds = timed_encoding(Tokenizer, sentences, args.repeat)
    results = {"kerasformer": seconds}

    reference = None
    tokenizer_class = bert4keras_tokenizer_class()
    if tokenizer_class is not None:
        reference = timed_encoding(tokenizer_class, sentences, args.repeat)
    elif args.reference_python and os.path.exists(args.reference_python):
        reference = run_reference(args.reference_python, sentences, args.repeat)
    if reference is not None:
        reference_ids, results["bert4keras 0.11.5"] = reference
        differing = sum(a != b for a, b in zip(ids, reference_ids))
        if differing:
            raise SystemExit(f"token ids differ from bert4keras on {differing} sentences")

    characters = sum(map(len, sentences))
    print(f"encode(maxlen={MAXLEN}) of {len(sentences)} sentences "
          f"({characters / len(sentences):.1f} characters each), best of {args.repeat}")
    print(f"{'':20} {'seconds':>9} {'sentences/s':>12} {'vs bert4keras':>14}")
    baseline = results.get("bert4keras 0.11.5")
    for name, elapsed in results.items():
        ratio = f"{baseline / elapsed:13.1f}x" if baseline else ""
        print(f"{name:20} {elapsed:9.2f} {len(sentences) / elapsed:12.0f} {ratio}")
    if baseline is None:
        print("(bert4keras not available: see ../shared/reference/setup-bert4keras.sh)")
    else:
        print("token ids identical to bert4keras' on every sentence")


if __name__ == "__main__":
    main()
