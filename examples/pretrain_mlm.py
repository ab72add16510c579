"""Masked-LM pre-training of RoFormer, RoFormerV2, GAU-α or BERT, from scratch or continued.

    # from scratch: a character vocabulary is built from the corpus
    python examples/pretrain_mlm.py --corpus corpus.txt --architecture roformer \\
        --size tiny --steps 10000 --out runs/roformer-tiny
    # continued: the checkpoint's configuration, weights and vocabulary
    python examples/pretrain_mlm.py --corpus corpus.txt --init runs/roformer-tiny \\
        --steps 5000 --out runs/roformer-tiny-2

Corpus files hold one sentence (or paragraph) per line, any UTF-8 text of your own; they
are read lazily, shuffled in a bounded buffer, packed into sequences of `--maxlen`
tokens (`[CLS] s1 [SEP] s2 [SEP] ...`) and masked afresh every time a sentence comes
round (BERT's 15 %, 80/10/10; `--whole-word` masks jieba's words whole).

`--steps` counts batches of `--batch-size` sequences, as the log lines do; with
`--grad-accum k` the optimizer updates once every k of them. The learning rate warms up
linearly over `--warmup` batches and decays linearly to zero at the last one.

OUT becomes a `MaskedLanguageModel` preset: `kerasformer.models.load(OUT)` loads it and
`.fill_mask("今天天气很[MASK]")` works. The run's `metrics.jsonl`, `curves.png` and (from
scratch) `vocab.txt` are written to OUT.training/ while it trains and moved to
OUT/training/ once the preset is saved.
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasformer import families  # noqa: E402
from kerasformer.optimizers import Adam, Lion, PiecewiseLinear, Tiger  # noqa: E402
from kerasformer.tokenizers import Tokenizer  # noqa: E402
from kerasformer.tokenizers.vocab import build_vocab, write_vocab  # noqa: E402
from kerasformer.training.log import TrainingLog, logs_beside  # noqa: E402
from kerasformer.training.pretraining import (  # noqa: E402
    MaskedLMAccuracy,
    TextFiles,
    continued_transformer,
    masked_lm_cross_entropy,
    masked_lm_task,
    mlm_batches,
    mlm_transformer,
)
from kerasformer.training.sizes import SIZES, size_config  # noqa: E402

# Learning rates that suit each optimizer for pre-training (bert4keras' LAMB recipe:
# 1.76e-3; Lion wants about a tenth of Adam's; Tiger scales by each weight's RMS).
LEARNING_RATES = {"adamw": 5e-4, "lamb": 1.76e-3, "lion": 1e-4, "tiger": 1e-3}
# Not decayed and not layer-adapted: norms and biases (bert4keras' recipe).
EXCLUDED = ["Norm", "bias"]


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", required=True, metavar="FILE",
                        help="text file, one sentence per line (repeatable)")
    parser.add_argument("--out", required=True, help="the preset directory to write")
    model = parser.add_argument_group("model (from scratch, or --init to continue)")
    model.add_argument("--architecture", choices=sorted(families.of_task("masked_lm")),
                       default="roformer")
    model.add_argument("--size", choices=list(SIZES), default="tiny")
    model.add_argument("--config", metavar="JSON",
                       help="a bert_config.json-style file used instead of --size")
    model.add_argument("--init", metavar="DIR_OR_NAME",
                       help="continue from a checkpoint, preset or name kerasformer.models.load "
                            "takes (its architecture, size and vocabulary)")
    model.add_argument("--family", help="the family of --init where it cannot be told "
                                        "(e.g. an original release directory)")
    model.add_argument("--vocab", metavar="FILE", help="vocabulary (default: built from the corpus)")
    model.add_argument("--vocab-size", type=int, default=12000,
                       help="the most tokens of a vocabulary built from the corpus")
    data = parser.add_argument_group("data")
    data.add_argument("--maxlen", type=int, default=128)
    data.add_argument("--batch-size", type=int, default=32)
    data.add_argument("--whole-word", action="store_true", help="mask jieba's words whole")
    data.add_argument("--mask-rate", type=float, default=0.15)
    data.add_argument("--no-pack", action="store_true", help="one sentence per sequence")
    data.add_argument("--shuffle-buffer", type=int, default=10_000)
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=1000, help="batches to train on")
    training.add_argument("--grad-accum", type=int, default=1,
                          help="batches per optimizer update")
    training.add_argument("--optimizer", choices=sorted(LEARNING_RATES), default="adamw")
    training.add_argument("--lr", type=float, help="peak learning rate (default: by optimizer)")
    training.add_argument("--warmup", type=int, help="warm-up batches (default: 10%% of --steps)")
    training.add_argument("--weight-decay", type=float, default=0.01)
    training.add_argument("--log-every", type=int, default=100, help="batches per log line")
    training.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.init and (args.config or args.vocab):
        parser.error("--init brings its own configuration and vocabulary: "
                     "drop --config / --vocab")
    for path in args.corpus + [p for p in (args.vocab, args.config) if p]:
        if not os.path.isfile(path):
            parser.error(f"no such file: {path}")
    for name in ("maxlen", "batch_size", "steps", "grad_accum", "log_every", "vocab_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.log_every % args.grad_accum:
        parser.error("--log-every must be a multiple of --grad-accum")
    if args.steps % args.log_every:
        args.steps += args.log_every - args.steps % args.log_every
        print(f"training {args.steps} batches: whole --log-every intervals")
    return args


def check_output(out):
    """Fails before training, not after, when OUT cannot become the preset."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        sys.exit(f"{out} exists and is not an empty directory")
    logs = logs_beside(out)
    if logs.exists():  # what an interrupted run into the same OUT left
        print(f"removing {logs}, left by an earlier run")
        shutil.rmtree(logs)
    return logs


def new_model(args, corpus, logs):
    """`(transformer, tokenizer, tokenizer_config, family)` of a model from scratch."""
    vocab = args.vocab
    if vocab is None:
        tokens = build_vocab(corpus, max_size=args.vocab_size)
        vocab = write_vocab(tokens, logs / "vocab.txt")
        print(f"built a vocabulary of {len(tokens)} tokens: {vocab}")
    tokenizer = Tokenizer(vocab, do_lower_case=True)
    if args.config:
        with open(args.config, encoding="utf-8") as file:
            config = json.load(file)
        config["vocab_size"] = tokenizer.vocab_size
    else:
        config = size_config(args.size, args.architecture, tokenizer.vocab_size,
                             max_position=max(512, args.maxlen))
    transformer = mlm_transformer(args.architecture, config)
    tokenizer_config = {"type": "wordpiece", "vocab": os.fspath(vocab), "do_lower_case": True}
    family = families.of_task("masked_lm")[args.architecture]
    return transformer, tokenizer, tokenizer_config, family


def continued_model(args):
    """`(transformer, tokenizer, tokenizer_config, family)` continuing `--init`."""
    options = {"family": args.family} if args.family else {}
    try:
        transformer, task = continued_transformer(args.init, **options)
    except (ValueError, LookupError, OSError) as error:
        sys.exit(f"--init {args.init}: {error}")
    family = task.family if task.task == "masked_lm" else None
    return transformer, task.tokenizer, task.tokenizer_config, family


def learning_rate(args):
    """Linear warm-up to the peak, then linear decay to 0 at the last batch (the
    schedule counts batches, the optimizer's micro-steps)."""
    peak = args.lr or LEARNING_RATES[args.optimizer]
    warmup = args.steps // 10 if args.warmup is None else args.warmup
    warmup = min(max(warmup, 0), args.steps - 1)
    return PiecewiseLinear({warmup: 1.0, args.steps: 0.0}, learning_rate=peak)


def make_optimizer(args):
    schedule = learning_rate(args)
    accumulation = {"gradient_accumulation_steps": args.grad_accum} if args.grad_accum > 1 else {}
    if args.optimizer == "tiger":  # accumulates in its momentum, without a buffer
        return Tiger(schedule, weight_decay=args.weight_decay, grad_accum_steps=args.grad_accum)
    if args.optimizer == "lion":
        return Lion(schedule, weight_decay=args.weight_decay, exclude_from_weight_decay=EXCLUDED,
                    **accumulation)
    lamb = args.optimizer == "lamb"
    return Adam(schedule, weight_decay=args.weight_decay, exclude_from_weight_decay=EXCLUDED,
                layer_adaptation=lamb, exclude_from_layer_adaptation=EXCLUDED if lamb else None,
                bias_correction=not lamb, **accumulation)


def main(argv=None):
    args = parse_arguments(argv)
    out = pathlib.Path(args.out)
    logs = check_output(out)
    logs.mkdir(parents=True)
    # Keras draws unseeded initialisers and dropout seeds from Python's `random`
    # (keras.utils.set_random_seed would also import TensorFlow, seconds for nothing).
    random.seed(args.seed)
    corpus = TextFiles(*args.corpus)

    if args.init:
        transformer, tokenizer, tokenizer_config, family = continued_model(args)
    else:
        transformer, tokenizer, tokenizer_config, family = new_model(args, corpus, logs)
    limit = transformer.max_positions()
    if limit is not None and args.maxlen > limit:
        sys.exit(f"--maxlen {args.maxlen} is longer than the model's {limit} positions")
    print(f"{transformer.architecture}: {transformer.num_hidden_layers} layers of "
          f"{transformer.hidden_size}, {transformer.num_parameters:,} parameters, "
          f"vocabulary {tokenizer.vocab_size}")

    model = transformer.model
    model.compile(optimizer=make_optimizer(args), loss=masked_lm_cross_entropy,
                  metrics=[MaskedLMAccuracy()],
                  jit_compile=keras.backend.backend() != "torch")
    batches = mlm_batches(corpus, tokenizer, args.batch_size, args.maxlen,
                          np.random.default_rng(args.seed), whole_word=args.whole_word,
                          pack=not args.no_pack, rate=args.mask_rate,
                          shuffle_buffer=args.shuffle_buffer)
    log = TrainingLog(logs, total_steps=args.steps, every=args.log_every)
    model.fit(batches, steps_per_epoch=args.log_every, epochs=args.steps // args.log_every,
              callbacks=[log], shuffle=False, verbose=0)

    task = masked_lm_task(transformer, tokenizer, tokenizer_config, family)
    source = {"pretraining": {"corpus": [os.path.abspath(p) for p in args.corpus],
                              "init": args.init, "batches": args.steps,
                              "batch_size": args.batch_size, "maxlen": args.maxlen,
                              "optimizer": args.optimizer, "whole_word": args.whole_word}}
    task.save_preset(out, source=source)
    logs = log.move_into(out)
    print(f"saved the preset to {out} (its training log: {logs})")


if __name__ == "__main__":
    main()
