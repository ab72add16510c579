"""The `kerasformer` command line. Runs on JAX unless KERAS_BACKEND says otherwise.

    kerasformer list                          named checkpoints
    kerasformer info NAME                     one checkpoint: files, release, licence, outputs
    kerasformer download NAME                 fetch and verify a checkpoint's files
    kerasformer convert SRC OUT               any supported source -> Keras preset
    kerasformer similar TEXT [--model NAME]   paraphrases ranked by similarity
    kerasformer encode TEXT... [--model NAME] sentence vectors and their cosines
    kerasformer fill-mask TEXT --model NAME   top tokens at each [MASK]
    kerasformer verify NAME                   compare with the authors' published outputs
    kerasformer eval MODEL --sts FILE_OR_DIR  STS correlations, cosine thresholds, paraphrases
    kerasformer vocab CORPUS... --out PATH    a character vocabulary from text files

Without --model, `similar` and `encode` use roformer-sim-mini, the small model shipped
inside the package (no download); the published checkpoints are the path to full quality.
"""
import argparse
import itertools
import json
import math
import os
import sys
import unicodedata

from kerasformer import families


# What each command needs the model to be, and the families that are.
TASK_OF_COMMAND = {"similar": "similarity", "encode": "similarity", "eval": "similarity",
                   "fill-mask": "masked_lm", "generate": "causal_lm"}


# The bundled model: what `similar` and `encode` use when no --model is given.
DEFAULT_MODEL = "roformer-sim-mini"


class UsageError(ValueError):
    """A command-line argument is wrong; raised before anything is loaded."""


def _load(args):
    from kerasformer.hub.manifests import find_manifest
    from kerasformer.loading import load

    needed = TASK_OF_COMMAND.get(args.command)
    if needed is not None and isinstance(args.model, str):  # refused before any download
        manifest = find_manifest(args.model)
        known = (families.get(args.family, buildable=False) if args.family is not None
                 else families.get(manifest["family"], buildable=False) if manifest else None)
        if known is not None and known.task != needed:
            raise _wrong_task(args, known.task, known.name, needed)
    task = load(args.model, family=args.family, revision=getattr(args, "revision", None),
                ignore_invalid_weights=args.ignore_invalid_weights)
    if needed is not None and task.task != needed:
        raise _wrong_task(args, task.task, task.family, needed)
    return task


def _wrong_task(args, task, family, needed):
    fitting = [f.name for f in families.families().values()
               if f.task == needed and f.unbuildable_reason() is None]
    return UsageError(
        f"{args.model} is a {task} model (family {family}); `{args.command}` "
        f"needs a {needed} model: --family {' or '.join(fitting)}, or another --model"
    )


def _width(text):
    """Columns `text` takes in a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _table(rows, header, file=None):
    widths = [max(_width(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell) + " " * (width - _width(str(cell)))
                        for cell, width in zip(row, widths)).rstrip(), file=file)


def _size(size):
    if not size:
        return "?"
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


def _list(args):
    from kerasformer.hub.manifests import bundled_preset, is_bundled, list_manifests

    rows = []
    for name, manifest in sorted(list_manifests().items()):
        unbuildable = families.get(manifest["family"], buildable=False).unbuildable_reason()
        family = manifest["family"] + (" (not buildable yet)" if unbuildable else "")
        licence = manifest["license"].split(" (")[0]
        if is_bundled(manifest):
            weights = bundled_preset(manifest) / "model.weights.h5"
            rows.append((name, family, _size(weights.stat().st_size if weights.is_file() else 0),
                         "(bundled: no download)", "-", licence))
            continue
        weights = next(f for f in manifest["hub"]["files"] if f["role"] == "weights")
        rows.append((
            name, family, _size(weights.get("approx_size")),
            manifest["hub"]["repo_id"],
            manifest["hub"]["revision"][:7] if manifest["hub"]["revision"] else "main (unpinned)",
            licence,
        ))
    _table(rows, ("name", "family", "weights", "hub repo", "revision", "license"))
    print("\noriginal releases and mirrors: kerasformer info NAME")


def _info(args):
    from kerasformer.hub.manifests import find_manifest, is_bundled, suggest

    manifest = find_manifest(args.name)
    if manifest is None:
        close = suggest(args.name)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown checkpoint {args.name!r}{hint}: see `kerasformer list`")
    family = families.get(manifest["family"], buildable=False)
    print(f"{manifest['name']}: {manifest['description']}")
    if manifest["aliases"]:
        print(f"aliases:   {', '.join(manifest['aliases'])}")
    reason = family.unbuildable_reason()
    print(f"family:    {family.name} ({family.task}, architecture {family.architecture})"
          + (f" — {reason}" if reason else ""))
    if is_bundled(manifest):
        _bundled_info(manifest)
        return
    hub = manifest["hub"]
    print(f"hub:       {hub['repo_id']}@{hub['revision'] or 'main (unpinned)'}  ({hub['revision_note']})")
    for entry in hub["files"]:
        print(f"  {entry['path']:<20} {entry['role']:<8} {_size(entry.get('approx_size')):>8}  "
              f"sha256 {entry.get('sha256', '(checked against the Hub’s digest)')}")
    original = manifest["original"]
    print(f"original:  {original.get('url', '?')} ({original.get('layout', '?')} layout)")
    if original.get("mirror"):
        print(f"mirror:    {original['mirror']}")
    print(f"license:   {manifest['license']}")
    if original.get("layout") == "bert4keras-tf":
        print(f"offline:   unpack the release zip, then kerasformer similar TEXT --model DIR "
              f"--family {family.name}")
    fill = manifest.get("verify", {}).get("fill_mask")
    if fill:
        print(f"published: {fill['text']} → {fill['top5']} ({fill['source']})")


def _bundled_info(manifest):
    from kerasformer.hub.manifests import bundled_preset

    training = manifest["training"]
    print(f"bundled:   {bundled_preset(manifest)} (loads with no network)")
    print(f"trained:   {training['command']}")
    for data in training["data"]:
        print(f"  {data['source']:<46} {data['licence']}")
    print(f"license:   {manifest['license']}")
    for name, score in manifest["scores"].items():
        print(f"score:     {name} {score}")


def _download(args):
    from kerasformer.loading import download_files

    for path, local in download_files(args.name, args.revision).items():
        print(f"{path}\t{local}")


def _convert(args):
    task = _load(args)
    directory = task.save_preset(args.out)
    print(f"saved {task.family} {task.task} preset to {directory}")


def _positive(args, *flags):
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < 1:
            name = ("-" if len(flag) == 1 else "--") + flag.replace("_", "-")
            raise UsageError(f"{name} must be at least 1, got {value}")


def _check_topp(args):
    if args.topp is not None and not 0 < args.topp <= 1:
        raise UsageError(f"--topp must be in (0, 1], got {args.topp}")


def _similar(args):
    _need_text(args.text)
    _positive(args, "n", "k", "maxlen", "topk")
    _check_topp(args)
    sim = _load(args)
    options = {"n": args.n, "k": args.k, "maxlen": args.maxlen, "seed": args.seed,
               "near_copies": args.near_copies}
    if args.topk is not None:
        options["topk"] = args.topk
    if args.topp is not None:
        options["topp"] = args.topp
    results = sim.similar(args.text, **options)
    if not results:
        what = "differs from" if args.near_copies else "rewords"
        print(f"(none of the {args.n} generated sentences {what} the input)", file=sys.stderr)
        return
    print("cosine\tsentence")
    for sentence, score in results:
        print(f"{score:.4f}\t{sentence}")


def _need_text(*texts):
    for index, text in enumerate(texts):
        if not text.strip():
            raise UsageError(f"text {index} is empty")


def _encode(args):
    import numpy as np

    _need_text(*args.texts)
    sim = _load(args)
    vectors = sim.encode(args.texts)
    np.set_printoptions(precision=4, suppress=True)
    for text, vector in zip(args.texts, vectors):
        print(f"{text}\t{vector[:6]} ... ({len(vector)} dims)")
    print("cosine similarity:")
    print(vectors @ vectors.T)


def _fill_mask(args):
    _need_text(args.text)
    if "[MASK]" not in args.text:
        raise UsageError(f"{args.text!r} has no [MASK] to fill")
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    task = _load(args)
    for index, candidates in enumerate(task.fill_mask(args.text, k=args.k)):
        print(f"[MASK] {index + 1}: " + "  ".join(f"{t} {p:.3f}" for t, p in candidates))


def _generate(args):
    _need_text(args.prompt)
    _positive(args, "n", "maxlen", "topk", "beam")
    _check_topp(args)
    if args.temperature is not None and not args.temperature > 0:
        raise UsageError(f"--temperature must be positive, got {args.temperature}")
    task = _load(args)
    options = {"maxlen": args.maxlen, "topk": args.topk, "topp": args.topp,
               "temperature": args.temperature, "beam": args.beam, "seed": args.seed,
               "end": args.end}
    for index, text in enumerate(task.generate(args.prompt, n=args.n, **options)):
        print(f"--- {index + 1}\n{args.prompt}{text}")


def _verify(args):
    from kerasformer.hub.manifests import find_manifest

    manifest = find_manifest(args.model)
    if manifest is None or "verify" not in manifest:
        raise ValueError(f"{args.model!r} has no published outputs to verify against")
    expected = manifest["verify"]["fill_mask"]
    task = _load(args)
    got = [[token for token, _ in candidates] for candidates in task.fill_mask(expected["text"], k=5)]
    print(f"{expected['text']}\n  expected {expected['top5']}\n  got      {got}\n  ({expected['source']})")
    # the published candidates, in order, lead ours (a list may leave out some)
    if len(got) != len(expected["top5"]) or any(
            ours[:len(theirs)] != theirs for ours, theirs in zip(got, expected["top5"])):
        raise ValueError(f"{manifest['name']} does not reproduce its published outputs")
    print("OK")


def _number(value):
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _eval(args):
    from kerasformer import evaluation
    from kerasformer.data import read_texts

    if not (args.sts or args.valid or args.test or args.paraphrase):
        raise UsageError("nothing to evaluate: give --sts FILE_OR_DIR, --valid FILE --test FILE "
                         "or --paraphrase FILE")
    if bool(args.valid) != bool(args.test):
        raise UsageError("--valid and --test go together: thresholds chosen on --valid are "
                         "measured on --test")
    _positive(args, "batch_size", "limit")
    if args.n < 2:
        raise UsageError(f"-n must be at least 2 (self-BLEU compares the samples with each "
                         f"other), got {args.n}")
    # every file is read before the model is loaded, so a bad one fails in seconds
    datasets = [evaluation.read_labelled_pairs(path, args.limit)
                for path in evaluation.pair_files(args.sts)] if args.sts else []
    valid = test = None
    if args.valid:
        valid, test = (evaluation.read_labelled_pairs(path, args.limit)
                       for path in (args.valid, args.test))
        for data in (valid, test):
            evaluation.label_cut(data.labels)  # labels that cannot be made 0/1 fail now
    sentences = None
    if args.paraphrase:
        sentences = [text for text in read_texts(args.paraphrase) if text.strip()]
        if not sentences:
            raise UsageError(f"{args.paraphrase} holds no sentence to paraphrase")
    sim = _load(args)
    # with --json, stdout holds only the JSON document; the tables go to stderr
    out = sys.stderr if args.json else sys.stdout
    report = {}
    if datasets:
        results = evaluation.sts(sim, datasets, batch_size=args.batch_size)
        report["sts"] = evaluation.as_json(results)
        _table([(r.dataset, r.pairs, _number(r.model.spearman), _number(r.model.pearson),
                 _number(r.char_jaccard.spearman), _number(r.bm25.spearman)) for r in results],
               ("dataset", "pairs", "spearman", "pearson", "char-jaccard spearman",
                "bm25 spearman"), file=out)
    if valid is not None:
        calibration = evaluation.calibrate(sim, valid, test, batch_size=args.batch_size)
        report["calibration"] = evaluation.as_json(calibration)
        _print_calibration(calibration, valid, test, out, blank_line=bool(datasets))
    if sentences is not None:
        paraphrases = evaluation.paraphrase_report(sim, sentences, n=args.n, seed=args.seed,
                                                   batch_size=args.batch_size)
        report["paraphrase"] = evaluation.as_json(paraphrases)
        _print_paraphrases(paraphrases, args.n, out,
                           blank_line=bool(datasets) or valid is not None)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))


def _print_calibration(calibration, valid, test, out, blank_line):
    from kerasformer.evaluation import label_cut

    if blank_line:
        print(file=out)
    rule = {0.5: "label 1", 2.5: "score above 2.5"}
    cuts = [(data.name, label_cut(data.labels)) for data in (valid, test)]
    rules = (rule[cuts[0][1]] if cuts[0][1] == cuts[1][1]
             else ", ".join(f"{rule[cut]} in {name}" for name, cut in cuts))
    print(f"cosine thresholds chosen on {calibration.valid}, measured on {calibration.test} "
          f"(similar pairs: {rules})", file=out)
    rows = []
    for best, on_valid, on_test in (("accuracy", calibration.on_valid.accuracy,
                                     calibration.test_at_accuracy),
                                    ("F1", calibration.on_valid.f1, calibration.test_at_f1)):
        rows.append((best, _number(on_valid.threshold), _number(on_valid.accuracy),
                     _number(on_valid.f1), _number(on_test.accuracy), _number(on_test.precision),
                     _number(on_test.recall), _number(on_test.f1)))
    _table(rows, ("best", "cosine >=", "valid acc", "valid F1", "test acc", "test precision",
                  "test recall", "test F1"), file=out)
    print(f"similar means cosine >= {calibration.on_valid.accuracy.threshold:.4f} for the best "
          f"accuracy (test accuracy {calibration.test_at_accuracy.accuracy:.4f}), "
          f">= {calibration.on_valid.f1.threshold:.4f} for the best F1 "
          f"(test F1 {calibration.test_at_f1.f1:.4f})", file=out)


def _print_paraphrases(report, n, out, blank_line):
    if blank_line:
        print(file=out)
    print(f"paraphrases: {n} samples per sentence (distinct-n higher and self-BLEU lower = more "
          "diverse; cosine to source = faithfulness; rewordings = samples that are not the "
          "source or a near copy of it)", file=out)
    fields = ("distinct_1", "distinct_2", "self_bleu", "faithfulness", "rewordings")
    rows = [(s.source, *(_number(getattr(s, f)) for f in fields)) for s in report.sentences]
    rows.append(("(mean)", *(_number(getattr(report, f)) for f in fields)))
    _table(rows, ("sentence", "distinct-1", "distinct-2", "self-BLEU", "cosine to source",
                  "rewordings"), file=out)


def _vocab(args):
    from kerasformer.tokenizers.vocab import SPECIAL_TOKENS

    _positive(args, "min_count")
    if args.max_size is not None and args.max_size < len(SPECIAL_TOKENS):
        raise UsageError(f"--max-size must be at least {len(SPECIAL_TOKENS)} (the special tokens "
                         f"{' '.join(SPECIAL_TOKENS)}), got {args.max_size}")
    for path in args.corpus:
        if not os.path.isfile(path):
            raise UsageError(f"no such corpus file: {path}")
    if os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a directory: give the vocabulary file's path "
                         f"(for example {os.path.join(args.out, 'vocab.txt')})")
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise UsageError(f"--out: the directory {parent} does not exist")
    from kerasformer.data import read_texts
    from kerasformer.tokenizers.vocab import build_vocab, write_vocab

    # one file open at a time, read line by line: corpora need not fit in memory
    texts = itertools.chain.from_iterable(read_texts(path, streaming=True) for path in args.corpus)
    tokens = build_vocab(texts, max_size=args.max_size, min_count=args.min_count)
    write_vocab(tokens, args.out)
    print(f"wrote {len(tokens)} tokens to {args.out}")


def build_parser():
    from kerasformer import __version__

    parser = argparse.ArgumentParser(prog="kerasformer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kerasformer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_model(command, positional=False, default=DEFAULT_MODEL):
        help_text = "registered name, hf://owner/repo[@revision] or checkpoint directory"
        if positional:
            command.add_argument("model", help=help_text)
        elif default is None:
            command.add_argument("--model", required=True, help=help_text)
        else:
            command.add_argument("--model", default=default, help=help_text + f" ({default})")
        command.add_argument("--family", help="family, if the source does not say ("
                             + ", ".join(families.names()) + ")")
        command.add_argument("--revision", help="Hub branch, tag or commit")
        command.add_argument("--ignore-invalid-weights", action="store_true",
                             help="load what matches and keep the rest random, with a warning")

    commands.add_parser("list", help="named checkpoints").set_defaults(run=_list)

    info = commands.add_parser("info", help="one named checkpoint: files, release, licence")
    info.add_argument("name")
    info.set_defaults(run=_info)

    download = commands.add_parser("download", help="fetch and verify a checkpoint's files")
    download.add_argument("name", help="registered name, hf://owner/repo[@revision] or owner/repo")
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
    similar.add_argument("--near-copies", action="store_true",
                         help="keep samples that only add, drop or repeat a character or "
                              "punctuation (gen_synonyms keeps them)")
    similar.set_defaults(run=_similar)

    encode = commands.add_parser("encode", help="L2-normalised sentence vectors and their cosines")
    encode.add_argument("texts", nargs="+")
    add_model(encode)
    encode.set_defaults(run=_encode)

    fill = commands.add_parser("fill-mask", help="the most probable tokens at each [MASK]")
    fill.add_argument("text")
    add_model(fill, default=None)
    fill.add_argument("-k", type=int, default=5)
    fill.set_defaults(run=_fill_mask)

    generate = commands.add_parser("generate", help="continue PROMPT with a causal LM (GPT-2)")
    generate.add_argument("prompt")
    add_model(generate, default=None)
    generate.add_argument("-n", type=int, default=1, help="samples (1)")
    generate.add_argument("--maxlen", type=int, default=32, help="most generated tokens (32)")
    generate.add_argument("--topk", type=int, help="sample among the k most likely tokens")
    generate.add_argument("--topp", type=float, help="nucleus sampling threshold")
    generate.add_argument("--temperature", type=float, help="sampling temperature")
    generate.add_argument("--beam", type=int, help="beam search of this width instead")
    generate.add_argument("--seed", type=int, help="random seed")
    generate.add_argument("--end", choices=("end", "newline"),
                          help="stop at the end of the text or of the line (CPM's few-shot "
                               "answers); default the model's")
    generate.set_defaults(run=_generate)

    verify = commands.add_parser("verify", help="compare a checkpoint with its published outputs")
    add_model(verify, positional=True)
    verify.set_defaults(run=_verify)

    evaluate = commands.add_parser(
        "eval", help="STS correlations, cosine thresholds and paraphrase diversity of a model")
    add_model(evaluate, positional=True)
    evaluate.add_argument("--sts", nargs="+", action="extend", metavar="FILE_OR_DIR",
                          help="labelled pair files, or directories of them (every "
                          "*.test.data in the senteval_cn layout)")
    evaluate.add_argument("--valid", metavar="FILE", help="pairs to choose cosine thresholds on")
    evaluate.add_argument("--test", metavar="FILE", help="pairs to measure the thresholds on")
    evaluate.add_argument("--paraphrase", metavar="FILE",
                          help="sentences (one a line) to generate paraphrases of")
    evaluate.add_argument("-n", type=int, default=10, help="paraphrases per sentence (10)")
    evaluate.add_argument("--seed", type=int, default=0, help="paraphrase sampling seed (0)")
    evaluate.add_argument("--batch-size", type=int, default=64, help="encoding batch size (64)")
    evaluate.add_argument("--limit", type=int, help="use the first N pairs of each file")
    evaluate.add_argument("--json", action="store_true",
                          help="print the results as JSON on stdout (the tables go to stderr)")
    evaluate.set_defaults(run=_eval)

    vocab = commands.add_parser("vocab", help="a character vocabulary from text files")
    vocab.add_argument("corpus", nargs="+", help="text files, one sentence a line")
    vocab.add_argument("--out", required=True, help="the vocabulary file to write (vocab.txt)")
    vocab.add_argument("--max-size", type=int,
                       help="keep at most N tokens, the 5 special ones included")
    vocab.add_argument("--min-count", type=int, default=1,
                       help="keep characters seen at least K times (1)")
    vocab.set_defaults(run=_vocab)
    return parser


# Library words in messages, as the command line spells them.
CLI_WORDS = (
    ("pass family=", "pass --family"),
    ("family=", "--family "),
    ("ignore_invalid_weights=True", "--ignore-invalid-weights"),
)


def cli_words(message):
    """`message` with library words in CLI words, except inside `backticks` (code the
    message quotes, which must stay as written)."""
    parts = message.split("`")
    for index in range(0, len(parts), 2):  # the parts outside backticks
        for library, command_line in CLI_WORDS:
            parts[index] = parts[index].replace(library, command_line)
    return "`".join(parts)


def main(argv=None):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, LookupError, OSError, TypeError, ImportError, NotImplementedError) as error:
        message = str(error) if isinstance(error, UsageError) else cli_words(str(error))
        if isinstance(error, KeyError):
            message = str(error.args[0]) if error.args else message
        print(f"kerasformer {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
