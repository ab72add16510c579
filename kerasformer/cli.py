"""The `kerasformer` command line. Runs on JAX unless KERAS_BACKEND says otherwise.

    kerasformer list                          named checkpoints
    kerasformer download NAME                 fetch and verify a checkpoint's files
    kerasformer convert SRC OUT               any supported source -> Keras preset
    kerasformer similar TEXT --model NAME     paraphrases ranked by similarity
    kerasformer encode TEXT... --model NAME   sentence vectors and their cosines
    kerasformer fill-mask TEXT --model NAME   top tokens at each [MASK]
    kerasformer verify NAME                   compare with the authors' published outputs
"""
import argparse
import os
import sys

from kerasformer import families


def _load(args):
    from kerasformer.loading import load

    return load(args.model, family=args.family, revision=getattr(args, "revision", None))


def _list(args):
    from kerasformer.hub.manifests import list_manifests

    rows = []
    for name, manifest in sorted(list_manifests().items()):
        weights = next(f for f in manifest["hub"]["files"] if f["role"] == "weights")
        size = weights.get("approx_size")
        rows.append((
            name, manifest["family"], manifest["task"],
            f"{size / 1e6:,.0f} MB" if size else "?",
            manifest["hub"]["repo_id"],
            manifest["hub"]["revision"][:7] if manifest["hub"]["revision"] else "main (unpinned)",
        ))
    header = ("name", "family", "task", "weights", "hub repo", "revision")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _download(args):
    from kerasformer.loading import download_files

    for path, local in download_files(args.name, args.revision).items():
        print(f"{path}\t{local}")


def _convert(args):
    task = _load(args)
    directory = task.save_preset(args.out)
    print(f"saved {task.family} {task.task} preset to {directory}")


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


def _fill_mask(args):
    task = _load(args)
    for index, candidates in enumerate(task.fill_mask(args.text, k=args.k)):
        print(f"[MASK] {index + 1}: " + "  ".join(f"{t} {p:.3f}" for t, p in candidates))


def _verify(args):
    from kerasformer.hub.manifests import find_manifest

    manifest = find_manifest(args.model)
    if manifest is None or "verify" not in manifest:
        raise ValueError(f"{args.model!r} has no published outputs to verify against")
    expected = manifest["verify"]["fill_mask"]
    task = _load(args)
    got = [[token for token, _ in candidates] for candidates in task.fill_mask(expected["text"], k=5)]
    print(f"{expected['text']}\n  expected {expected['top5']}\n  got      {got}\n  ({expected['source']})")
    if got != expected["top5"]:
        raise ValueError(f"{manifest['name']} does not reproduce its published outputs")
    print("OK")


def build_parser():
    parser = argparse.ArgumentParser(prog="kerasformer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add_model(command, positional=False):
        help_text = "registered name, hf://owner/repo[@revision] or checkpoint directory"
        if positional:
            command.add_argument("model", help=help_text)
        else:
            command.add_argument("--model", default="roformer-sim", help=help_text + " (roformer-sim)")
        command.add_argument("--family", help="family, if the source does not say ("
                             + ", ".join(families.names()) + ")")
        command.add_argument("--revision", help="Hub branch, tag or commit")

    commands.add_parser("list", help="named checkpoints").set_defaults(run=_list)

    download = commands.add_parser("download", help="fetch and verify a checkpoint's files")
    download.add_argument("name", help="registered name or hf://owner/repo[@revision]")
    download.add_argument("--revision")
    download.set_defaults(run=_download)

    convert = commands.add_parser("convert", help="any supported source to a Keras preset directory")
    add_model(convert, positional=True)
    convert.add_argument("out", help="new preset directory")
    convert.set_defaults(run=_convert)

    similar = commands.add_parser("similar", help="sentences similar to TEXT, ranked by cosine")
    similar.add_argument("text")
    add_model(similar)
    similar.add_argument("-n", type=int, default=100, help="sentences to generate (100)")
    similar.add_argument("-k", type=int, default=20, help="sentences to print (20)")
    similar.add_argument("--maxlen", type=int, default=32, help="most generated tokens (32)")
    similar.add_argument("--topk", type=int, help="sample among the k most likely tokens")
    similar.add_argument("--topp", type=float, help="nucleus sampling threshold")
    similar.add_argument("--seed", type=int, help="random seed")
    similar.set_defaults(run=_similar)

    encode = commands.add_parser("encode", help="L2-normalised sentence vectors and their cosines")
    encode.add_argument("texts", nargs="+")
    add_model(encode)
    encode.set_defaults(run=_encode)

    fill = commands.add_parser("fill-mask", help="the most probable tokens at each [MASK]")
    fill.add_argument("text")
    add_model(fill)
    fill.add_argument("-k", type=int, default=5)
    fill.set_defaults(run=_fill_mask)

    verify = commands.add_parser("verify", help="compare a checkpoint with its published outputs")
    add_model(verify, positional=True)
    verify.set_defaults(run=_verify)
    return parser


def main(argv=None):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, LookupError, OSError, TypeError, ImportError) as error:
        print(f"kerasformer {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
