"""Sentence retrieval with SimBERT or RoFormer-Sim vectors: a query against a corpus file.

    python examples/retrieval.py CHECKPOINT_DIR CORPUS.txt "明天会下雨吗" [-k 10]

CORPUS.txt holds one sentence per line (any UTF-8 text file of your own). The
corpus is encoded once, in length-sorted batches; each query is a dot product with its
L2-normalised vectors.
"""
import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import kerasformer as kf  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("corpus", help="text file, one sentence per line")
    parser.add_argument("queries", nargs="+")
    parser.add_argument("--family", default="roformer-sim", help="roformer-sim or simbert")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--limit", type=int, help="use only the first LIMIT sentences")
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as file:
        corpus = [line.strip() for line in file if line.strip()]
    corpus = corpus[: args.limit]
    sim = kf.models.load(args.checkpoint, family=args.family)
    start = time.perf_counter()
    vectors = sim.encode(corpus)
    print(f"encoded {len(corpus)} sentences in {time.perf_counter() - start:.1f}s")
    indices, scores = sim.search(args.queries, vectors, k=args.k)
    for query, row, row_scores in zip(args.queries, indices, scores):
        print(f"\n{query}")
        for index, score in zip(row, row_scores):
            print(f"  {score:.4f}  {corpus[index]}")


if __name__ == "__main__":
    main()
