"""The `kerasformer` command line. Runs on JAX unless KERAS_BACKEND says otherwise."""
import argparse
import os
import sys


def _load(args):
    from kerasformer.models import load

    return load(args.model, family=args.family)


def _similar(args):
    sim = _load(args)
    options = {"n": args.n, "k": args.k, "maxlen": args.maxlen, "seed": args.seed}
    if args.topk is not None:
        options["topk"] = args.topk
    if args.topp is not None:
        options["topp"] = args.topp
    for sentence, score in sim.similar(args.text, **options):
        print(f"{score:.4f}\t{sentence}")


def _encode(args):
    import numpy as np

    sim = _load(args)
    vectors = sim.encode(args.texts)
    np.set_printoptions(precision=4, suppress=True)
    for text, vector in zip(args.texts, vectors):
        print(f"{text}\t{vector[:6]} ... ({len(vector)} dims)")
    print("cosine similarity:")
    print(vectors @ vectors.T)


def build_parser():
    parser = argparse.ArgumentParser(prog="kerasformer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_model_arguments(command):
        command.add_argument(
            "--model", required=True,
            help="checkpoint directory in the original release layout "
                 "(bert_config.json, bert_model.ckpt.*, vocab.txt)",
        )
        command.add_argument("--family", default="roformer-sim",
                             help="roformer-sim (default) or simbert")

    similar = commands.add_parser(
        "similar", help="generate sentences similar to TEXT, ranked by cosine similarity"
    )
    similar.add_argument("text")
    add_model_arguments(similar)
    similar.add_argument("-n", type=int, default=100, help="sentences to generate (100)")
    similar.add_argument("-k", type=int, default=20, help="sentences to print (20)")
    similar.add_argument("--maxlen", type=int, default=32, help="most generated tokens (32)")
    similar.add_argument("--topk", type=int, help="sample among the k most likely tokens")
    similar.add_argument("--topp", type=float, help="nucleus sampling threshold")
    similar.add_argument("--seed", type=int, help="random seed")
    similar.set_defaults(run=_similar)

    encode = commands.add_parser(
        "encode", help="L2-normalised sentence vectors of TEXTS and their cosines"
    )
    encode.add_argument("texts", nargs="+")
    add_model_arguments(encode)
    encode.set_defaults(run=_encode)
    return parser


def main(argv=None):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"kerasformer {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
