"""Train your own RoFormer-Sim (or SimBERT) on sentence pairs: the published recipes.

    python examples/train_roformer_sim.py --pairs pairs.tsv --size small \
        --steps 20000 --batch-size 64 --out my-roformer-sim
    python examples/train_roformer_sim.py --pairs mine.jsonl --init roformer-sim-small \
        --objective stage1 --steps 2000 --batch-size 32 --grad-accum 4 --out tuned \
        --eval ../senteval_cn/LCQMC/LCQMC.test.data

--pairs takes any format of `kerasformer.data.read_pairs` (tab-separated a/b[/label],
senteval_cn `.data`, SimBERT's {"text","synonyms"} JSONL, NLI / SimCLUE JSONL, CSV),
repeatable; the files are drawn from in turn. Objectives (bert4keras-spec.md §3.9–3.10):

  simbert     SimBERT v1: seq2seq + in-batch contrastive (scale 30)
  stage1      RoFormer-Sim stage 1: the same at scale 20, half the sources corrupted
  stage2      RoFormer-Sim stage 2: seq2seq + distillation of --teacher's similarities
  supervised  RoFormer-Sim-FT: [a, b, |a-b|] -> 5 classes (binary pairs vs NLI labels)
  cosent      CoSENT on scored pairs
  cosent_seq2seq  CoSENT on scored pairs + seq2seq on their positives (keeps generating)

From scratch (--size tiny|small|base, or --config JSON), the vocabulary is --vocab or
one built from the pairs' characters. `--grad-accum K` runs each batch in K
micro-batches with the big batch's gradient, contrastive negatives included. Prints one
`step N loss X ...` line per --log-every steps; --eval files (scored pairs) are
evaluated (Spearman) before training and every --eval-every steps. The result is a
preset in --out that `kerasformer.models.load(OUT)` returns as a similarity model
(encode, generate, similar), with training/metrics.jsonl and training/curves.png
inside it; while it trains they are in OUT.training/.
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from kerasformer import families  # noqa: E402  (light: Keras is imported later)

# Defaults of the recipes when fine-tuning a trained model (the original scripts).
RECIPE_LEARNING_RATES = {"simbert": 1e-5, "stage1": 1e-5, "stage2": 1e-5,
                         "supervised": 2e-5, "cosent": 2e-5, "cosent_seq2seq": 2e-5}
SCRATCH_LEARNING_RATE = 5e-4


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--pairs", action="append", required=True, metavar="FILE",
                        help="training pairs (repeatable)")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", metavar="NAME_OR_DIR",
                       help="a similarity model to continue from, or a RoFormer / BERT masked "
                       "LM to start one from (name, hf://, directory)")
    start.add_argument("--size", choices=("tiny", "small", "base"), help="from scratch")
    start.add_argument("--config", metavar="JSON", help="from scratch, a bert_config.json")
    parser.add_argument("--family", help="--init: the family of an original release "
                        "directory (roformer-sim, simbert, or a masked LM's: roformer, bert)")
    parser.add_argument("--architecture", choices=sorted(families.of_task("similarity")),
                        default="roformer",
                        help="from scratch: roformer (RoFormer-Sim) or bert (SimBERT)")
    parser.add_argument("--vocab", help="from scratch: vocabulary file (default: built "
                        "from the pairs)")
    parser.add_argument("--vocab-size", type=int, default=12000,
                        help="cap of a vocabulary built from the pairs")
    parser.add_argument("--objective", choices=("simbert", "stage1", "stage2", "supervised",
                                                "cosent", "cosent_seq2seq"), default="stage1")
    parser.add_argument("--teacher", metavar="NAME_OR_DIR", help="stage2: the teacher model")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64, help="rows (2 per pair)")
    parser.add_argument("--grad-accum", type=int, default=1, metavar="K",
                        help="micro-batches per batch (exact also for contrastive losses)")
    parser.add_argument("--optimizer", choices=("adamw", "tiger", "lion"), default="adamw")
    parser.add_argument("--lr", type=float, help="learning rate (default: the recipe's "
                        f"when fine-tuning, {SCRATCH_LEARNING_RATE} from scratch)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, help="linear warm-up steps (default: 5%% of "
                        "the steps from scratch, then a linear decay to 0; none when "
                        "fine-tuning)")
    parser.add_argument("--maxlen", type=int, default=64, help="tokens per text")
    parser.add_argument("--stream", action="store_true",
                        help="read --pairs files lazily each pass (larger than memory), "
                        "shuffled through a buffer of --shuffle-buffer records")
    parser.add_argument("--shuffle-buffer", type=int, default=10000)
    parser.add_argument("--threshold", type=float,
                        help="labels above it are positives (default 0.5, 2.5 for 0-5 scores)")
    parser.add_argument("--eval", action="append", default=[], metavar="FILE",
                        help="scored pairs for Spearman during training (repeatable)")
    parser.add_argument("--eval-every", type=int, help="steps between evaluations "
                        "(default: 5 log intervals)")
    parser.add_argument("--eval-limit", type=int, default=2000, help="pairs per eval file")
    parser.add_argument("--log-every", type=int, default=10, help="steps per log line")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jit", action="store_true", help="do not compile the train step")
    parser.add_argument("--out", required=True, help="directory of the trained preset")
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def check_arguments(parser, args):
    """Every argument checked before anything is loaded or built."""
    for name in ("steps", "batch_size", "grad_accum", "log_every", "maxlen", "eval_limit",
                 "vocab_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.shuffle_buffer < 0:
        parser.error("--shuffle-buffer must be 0 (keep the file's order) or more")
    if args.batch_size % 2:
        parser.error("--batch-size must be even: rows come in pairs")
    if args.batch_size % (2 * args.grad_accum):
        parser.error(f"--batch-size {args.batch_size} must be a multiple of 2 x --grad-accum "
                     f"({2 * args.grad_accum}): each micro-batch holds whole pairs")
    if args.steps % args.log_every:
        parser.error(f"--steps {args.steps} must be a multiple of --log-every {args.log_every}")
    args.eval_every = args.eval_every or 5 * args.log_every
    if args.eval_every % args.log_every:
        parser.error("--eval-every must be a multiple of --log-every")
    if args.objective == "stage2" and not args.teacher:
        parser.error("--objective stage2 distils a teacher: give --teacher NAME_OR_DIR")
    if args.teacher and args.objective != "stage2":
        parser.error("--teacher is only used by --objective stage2")
    if args.maxlen < 3:
        parser.error("--maxlen must be at least 3 ([CLS], a token, [SEP])")
    for path in args.pairs + args.eval + ([args.vocab] if args.vocab else []) + (
            [args.config] if args.config else []):
        if not os.path.isfile(path):
            parser.error(f"no such file: {path}")
    if args.vocab and args.init:
        parser.error("--vocab is for training from scratch; --init brings its own")
    if args.family and not args.init:
        parser.error("--family goes with --init (from scratch, choose --architecture)")
    out = pathlib.Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out {out} exists and is not empty")


def read_sources(paths, stream=False):
    """One source per file: its records, or with `stream` a reader called afresh for
    every pass (files larger than memory; their errors surface as they are read)."""
    import functools

    from kerasformer.data import DataFormatError, read_pairs

    if stream:
        return [functools.partial(read_pairs, path, streaming=True) for path in paths]
    sources = []
    for path in paths:
        try:
            records = read_pairs(path)
        except (DataFormatError, UnicodeDecodeError) as error:
            raise SystemExit(f"--pairs: {error}") from None
        if not records:
            raise SystemExit(f"{path}: no pairs")
        print(f"{path}: {len(records)} records", file=sys.stderr)
        sources.append(records)
    return sources


def pair_texts(sources):
    from kerasformer.data import Group

    for source in sources:
        for record in source() if callable(source) else source:
            yield from (record.texts if isinstance(record, Group)
                        else (record.text_a, record.text_b))


def new_task(args, sources, scratch):
    """A randomly initialised similarity model of --size / --config, its vocabulary
    given or built from the pairs (written into `scratch`)."""
    from kerasformer.models import SimilarityModel
    from kerasformer.models.builder import make_transformer
    from kerasformer.presets import read_json
    from kerasformer.tokenizers import Tokenizer
    from kerasformer.training.sizes import size_config

    vocab = args.vocab
    if vocab is None:
        from kerasformer.tokenizers.vocab import build_vocab, write_vocab

        vocab = os.path.join(scratch, "vocab.txt")
        tokens = build_vocab(pair_texts(sources), max_size=args.vocab_size)
        write_vocab(tokens, vocab)
        print(f"built a vocabulary of {len(tokens)} tokens from the pairs", file=sys.stderr)
    tokenizer = Tokenizer(vocab, do_lower_case=True)
    if args.config:
        config = read_json(args.config, "config")
        config["vocab_size"] = tokenizer.vocab_size
    else:
        config = size_config(args.size, args.architecture, tokenizer.vocab_size)
    family = families.get(families.of_task("similarity")[args.architecture])
    transformer = make_transformer(args.architecture, config, **family.build)
    options = dict(family.task_options, text_maxlen=min(args.maxlen, transformer.max_positions()
                                                        or args.maxlen))
    return SimilarityModel(transformer, tokenizer, family.name,
                           {"vocab": vocab, "do_lower_case": True}, **options)


def load_model(flag, source, family=None):
    """`kerasformer.models.load(source)`, its errors one line naming the flag."""
    import kerasformer as kf

    try:
        return kf.models.load(source, family=family)
    except (ValueError, LookupError, OSError) as error:
        raise SystemExit(f"{flag} {source}: {error}") from None


def make_optimizer(args, from_scratch):
    from kerasformer.optimizers import Adam, Lion, PiecewiseLinear, Tiger

    lr = args.lr or (SCRATCH_LEARNING_RATE if from_scratch
                     else RECIPE_LEARNING_RATES[args.objective])
    warmup = args.warmup if args.warmup is not None else (
        max(1, args.steps // 20) if from_scratch else 0)
    # From scratch: warm up, then decay linearly to zero at the last step (a short run
    # ends converged rather than at full step size); fine-tuning: the recipe's constant.
    if from_scratch:
        schedule = PiecewiseLinear({warmup: 1.0, max(args.steps, warmup + 1): 0.0}, lr)
    else:
        schedule = PiecewiseLinear({warmup: 1.0}, lr) if warmup else lr
    if args.optimizer == "adamw":
        return Adam(schedule, weight_decay=args.weight_decay)
    kind = Tiger if args.optimizer == "tiger" else Lion
    return kind(schedule, weight_decay=args.weight_decay)


def main(argv=None):
    args = parse_arguments(argv)
    import keras

    from kerasformer.training.log import TrainingLog, logs_beside
    from kerasformer.training.similarity import (
        SimilarityTraining,
        similarity_batches,
        similarity_task,
    )

    # Keras draws unseeded initialisers and dropout seeds from Python's `random`
    # (keras.utils.set_random_seed would also import TensorFlow, seconds for nothing).
    random.seed(args.seed)
    sources = read_sources(args.pairs, args.stream)
    from kerasformer import evaluation

    try:  # read once, before anything is built: a bad file fails now
        eval_sets = [evaluation.read_labelled_pairs(path, args.eval_limit) for path in args.eval]
    except ValueError as error:
        raise SystemExit(f"--eval: {error}") from None
    scratch = tempfile.mkdtemp(prefix="kerasformer-train-")
    try:
        from_scratch = args.init is None
        if from_scratch:
            task = new_task(args, sources, scratch)
        else:  # a similarity model, or a RoFormer / BERT masked LM to start one from
            try:
                task = similarity_task(load_model("--init", args.init, family=args.family))
            except ValueError as error:
                raise SystemExit(f"--init {args.init}: {error}") from None
        teacher = load_model("--teacher", args.teacher) if args.teacher else None
        if teacher is not None and teacher.task != "similarity":
            raise SystemExit(f"--teacher {args.teacher} is a {teacher.task} model: the teacher "
                             "must be a similarity model")
        print(f"model: {task.family}, {task.transformer.num_parameters:,} parameters "
              f"({'from scratch' if from_scratch else args.init}); objective {args.objective}",
              file=sys.stderr)

        trainer = SimilarityTraining.from_task(task, args.objective,
                                               micro_batches=args.grad_accum)
        trainer.compile(optimizer=make_optimizer(args, from_scratch),
                        jit_compile=not args.no_jit and keras.backend.backend() != "torch")
        batches = similarity_batches(sources, task.tokenizer, args.objective, args.batch_size,
                                     maxlen=args.maxlen, seed=args.seed, teacher=teacher,
                                     threshold=args.threshold,
                                     shuffle_buffer=args.shuffle_buffer)

        def evaluate():
            trainer.export_to(task)
            results = evaluation.sts(task, eval_sets)
            return {f"spearman/{result.dataset}": result.model.spearman for result in results}

        log_directory = logs_beside(args.out)
        log = TrainingLog(log_directory, total_steps=args.steps, every=args.log_every,
                          evaluate=evaluate if args.eval else None,
                          evaluate_every=args.eval_every)
        print(f"logs and curves: {log_directory}/", file=sys.stderr)
        if args.eval:
            log.record(evaluate(), step=0)
        started = time.perf_counter()
        trainer.fit(batches, steps_per_epoch=args.log_every, epochs=args.steps // args.log_every,
                    callbacks=[log], shuffle=False, verbose=0)
        seconds = time.perf_counter() - started

        trainer.export_to(task)
        out = task.save_preset(args.out)
        log.move_into(out)
        first, last = log.records[1 if args.eval else 0], log.records[-1]
        summary = {"steps": args.steps, "seconds": round(seconds, 1),
                   "seconds_per_step": round(seconds / args.steps, 4),
                   "first": first, "last": last}
        print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
        print(f"saved {task.family} preset to {out}: "
              f"kerasformer similar TEXT --model {out}")
        sample = next(iter(pair_texts(sources)))
        print(f"{sample} → {task.generate(sample, beam=1)[0]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
