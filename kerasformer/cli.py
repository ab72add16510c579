"""The `kerasformer` command line. Runs on JAX unless KERAS_BACKEND says otherwise."""
import argparse
import os
import sys


def _encode(args):
    import numpy as np

    from kerasformer.models.builder import build_transformer_model
    from kerasformer.tokenizers import Tokenizer

    texts = args.texts
    for index, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"text {index + 1} is empty")
    directory = args.model
    config = os.path.join(directory, "bert_config.json")
    vocab = os.path.join(directory, "vocab.txt")
    for path in (config, vocab):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{directory!r} is not an original checkpoint directory: "
                f"{os.path.basename(path)} is missing"
            )
    tokenizer = Tokenizer(vocab, do_lower_case=True)
    model = build_transformer_model(
        config, os.path.join(directory, "bert_model.ckpt"), model=args.family,
        with_pool="linear",
    )
    batch = [tokenizer.encode(text, maxlen=args.maxlen)[0] for text in texts]
    length = max(len(ids) for ids in batch)
    token_ids = np.array([ids + [0] * (length - len(ids)) for ids in batch], dtype="int32")
    vectors = np.asarray(model.predict([token_ids, np.zeros_like(token_ids)], verbose=0))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.set_printoptions(precision=4, suppress=True)
    for text, vector in zip(texts, vectors):
        print(f"{text}\t{vector[:6]} ... ({len(vector)} dims)")
    print("cosine similarity:")
    print(vectors @ vectors.T)


def build_parser():
    parser = argparse.ArgumentParser(prog="kerasformer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    encode = commands.add_parser(
        "encode", help="sentence vectors ([CLS] linear pooler) of texts, and their cosines"
    )
    encode.add_argument("texts", nargs="+", help="texts to encode")
    encode.add_argument(
        "--model", required=True,
        help="directory of an original checkpoint (bert_config.json, bert_model.ckpt.*, vocab.txt)",
    )
    encode.add_argument("--family", default="roformer", help="bert, roberta or roformer")
    encode.add_argument("--maxlen", type=int, default=64, help="tokens per text")
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
