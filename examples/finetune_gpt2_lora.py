"""Fine-tune a GPT-2 with LoRA, merge the LoRA weights and save an ordinary preset.

    # a tiny random GPT-2 (vocabulary built from the text), the lines written below
    python examples/finetune_gpt2_lora.py --out runs/gpt2-lora
    # your own text (one document per line), a bigger rank, bf16 weights, Lion
    python examples/finetune_gpt2_lora.py --corpus my.txt --rank 16 --alpha 32 \\
        --dtype bfloat16 --optimizer lion --steps 500 --out runs/gpt2-lora
    # a causal LM you have (preset, release or Hugging Face directory, hf:// handle)
    python examples/finetune_gpt2_lora.py --init path/to/gpt2 --corpus my.txt --out runs/ft

The path that fits a big model (CPM-LM's 2.6 B, docs/training.md "Fine-tuning
CPM-LM"): `remat=True` (each block recomputed in the backward pass; on by default
here, `--no-remat` turns it off), LoRA on the attention projections
(`kerasformer.training.lora.enable_lora`: only A and B train, every other weight is
frozen), an optimizer with small state (AdaFactor, factored; Lion: one moment) and a
bf16 policy: `--dtype bfloat16` stores the frozen weights in bfloat16 (half the memory;
Keras keeps the LoRA weights in float32), `--dtype mixed_bfloat16` computes in
bfloat16 on float32 weights. `--rank 0` fine-tunes every weight instead (float32 or
mixed_bfloat16 only: bfloat16 weights lose small updates to rounding). `--optimizer
tiger` works either way (it steps LoRA's kernels by the plain learning rate).

It prints the loss of the whole text before and after training (it falls), merges
LoRA into the kernels (`merge_lora`: kernel + (alpha / rank)·A·B), saves a
`CausalLanguageModel` preset in the ordinary weight layout to OUT, loads it back with
`kerasformer.models.load` and checks that it computes what the trained model did;
`--export-checkpoint DIR` also writes bert4keras' `bert_config.json` +
`bert_model.ckpt` (strictly loadable by `build_transformer_model(..., model="gpt2")`).
"""
import argparse
import json
import os
import pathlib
import random
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasformer as kf  # noqa: E402
from kerasformer.models import CausalLanguageModel  # noqa: E402
from kerasformer.models.builder import make_transformer  # noqa: E402
from kerasformer.optimizers import Adam, AdaFactor, Lion, Tiger  # noqa: E402
from kerasformer.tokenizers import Tokenizer  # noqa: E402
from kerasformer.tokenizers.vocab import build_vocab, write_vocab  # noqa: E402
from kerasformer.training.lora import ATTENTION_PROJECTIONS, enable_lora, merge_lora  # noqa: E402

TEXT = """\
美国的首都是华盛顿，法国的首都是巴黎，日本的首都是东京。
今天天气很好，我们去公园散步吧。
明天会下雨吗？记得带伞。
他在图书馆看了一下午的书。
我们都是中国人，我们爱自己的国家。
春天来了，花都开了，小鸟在树上唱歌。
这个手机很好用，电池也很耐用。
北京是中国的首都，上海是中国最大的城市。
周末我和朋友一起去看了一场电影。
学习一门外语需要每天坚持练习。
"""

LEARNING_RATES = {"adafactor": 1e-2, "lion": 1e-3, "adam": 3e-3, "tiger": 1e-2}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the preset directory to write")
    parser.add_argument("--corpus", metavar="FILE", help="text, one document per line "
                        "(default: ten lines written in this script)")
    model = parser.add_argument_group("model (from scratch, or --init)")
    model.add_argument("--init", metavar="DIR_OR_NAME",
                       help="a causal LM kerasformer.models.load reads (default: a random one)")
    model.add_argument("--hidden", type=int, default=64)
    model.add_argument("--layers", type=int, default=2)
    model.add_argument("--heads", type=int, default=2)
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--rank", type=int, default=8, help="0: fine-tune every weight")
    lora.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank)")
    lora.add_argument("--targets", default=",".join(ATTENTION_PROJECTIONS),
                      help="comma-separated Dense layers (see kerasformer.training.lora)")
    training = parser.add_argument_group("training")
    training.add_argument("--optimizer", choices=sorted(LEARNING_RATES), default="adafactor")
    training.add_argument("--lr", type=float, help="learning rate (default: by optimizer)")
    training.add_argument("--steps", type=int, default=100)
    training.add_argument("--batch-size", type=int, default=8)
    training.add_argument("--maxlen", type=int, default=64, help="tokens per document")
    training.add_argument("--log-every", type=int, default=20)
    training.add_argument("--dtype", choices=("float32", "mixed_bfloat16", "bfloat16"),
                          default="float32", help="the dtype policy (default float32)")
    training.add_argument("--no-remat", action="store_true", help="no gradient checkpointing")
    training.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-checkpoint", metavar="DIR",
                        help="also write bert_config.json + bert_model.ckpt here")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "maxlen", "log_every", "hidden", "layers", "heads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.rank < 0:
        parser.error("--rank must be positive (or 0 to fine-tune every weight)")
    if not args.rank and args.dtype == "bfloat16":
        parser.error("--dtype bfloat16 stores the weights in bfloat16, which loses small "
                     "updates: fine-tune every weight (--rank 0) in float32 or mixed_bfloat16")
    if args.corpus and not os.path.isfile(args.corpus):
        parser.error(f"no such file: {args.corpus}")
    out = pathlib.Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"{out} exists and is not an empty directory")
    return args


def read_lines(args):
    if args.corpus:
        with open(args.corpus, encoding="utf-8") as file:
            lines = [line.strip() for line in file]
    else:
        lines = TEXT.splitlines()
    lines = [line for line in lines if line]
    if not lines:
        sys.exit("the corpus has no text")
    return lines


def new_task(args, lines, workdir):
    """A random GPT-2 with a character vocabulary of the text."""
    vocab = write_vocab(build_vocab(lines), workdir / "vocab.txt")
    tokenizer = Tokenizer(str(vocab), do_lower_case=True)
    config = {"vocab_size": tokenizer.vocab_size, "hidden_size": args.hidden,
              "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
              "intermediate_size": 4 * args.hidden, "hidden_act": "gelu",
              "max_position_embeddings": max(64, args.maxlen),
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    with open(workdir / "bert_config.json", "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2)
    transformer = make_transformer("gpt2", config, application="lm",
                                   dtype=None if args.dtype == "float32" else args.dtype,
                                   remat=not args.no_remat)
    return CausalLanguageModel(transformer, tokenizer, "gpt2",
                               {"type": "wordpiece", "vocab": str(vocab), "do_lower_case": True})


def loaded_task(args):
    try:
        task = kf.models.load(args.init, dtype=None if args.dtype == "float32" else args.dtype)
    except (ValueError, LookupError, OSError) as error:
        sys.exit(f"--init {args.init}: {error}")
    if task.task != "causal_lm":
        sys.exit(f"--init {args.init} is a {task.task} model, not a causal language model")
    # remat changes how training runs, not the graph or the weights
    task.transformer.remat = not args.no_remat
    return task


def encode(task, lines, maxlen):
    """`(inputs, targets, weights)`: each document with the tokenizer's start and end
    tokens (CPM: its end of document), truncated and zero-padded to `maxlen + 1`."""
    tokenizer, rows = task.tokenizer, []
    for line in lines:
        ids = list(tokenizer.encode(line)[0])
        eod = getattr(tokenizer, "eod_id", None)
        if eod is not None and (not ids or ids[-1] != eod):
            ids.append(eod)
        rows.append(ids[:maxlen + 1])
    width = max(len(ids) for ids in rows)
    limit = task.transformer.max_positions()
    if limit is not None and width - 1 > limit:
        sys.exit(f"--maxlen {maxlen} is longer than the model's {limit} positions")
    tokens = np.zeros((len(rows), width), "int32")
    for row, ids in enumerate(rows):
        tokens[row, :len(ids)] = ids
    weights = (tokens[:, 1:] > 0).astype("float32")
    for row, ids in enumerate(rows):
        weights[row, len(ids) - 1:] = 0.0
    return tokens[:, :-1], tokens[:, 1:], weights


def corpus_loss(model, data):
    """Mean cross-entropy per target token of the whole text."""
    inputs, targets, weights = data
    probabilities = model.predict(inputs, batch_size=16, verbose=0).astype("float64")
    picked = np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]
    return float(-(np.log(np.maximum(picked, 1e-12)) * weights).sum() / weights.sum())


def make_optimizer(args):
    lr = args.lr or LEARNING_RATES[args.optimizer]
    if args.optimizer == "adafactor":  # factored second moments; B must not be scaled by
        return AdaFactor(lr, exclude_from_parameter_scale=["lora_kernel"])  # its zero RMS
    if args.optimizer == "lion":
        return Lion(lr)
    if args.optimizer == "tiger":
        return Tiger(lr)
    return Adam(lr)


def main(argv=None):
    args = parse_arguments(argv)
    random.seed(args.seed)  # Keras draws unseeded initialisers from Python's random
    rng = np.random.default_rng(args.seed)
    lines = read_lines(args)
    out = pathlib.Path(args.out)
    with tempfile.TemporaryDirectory(prefix="finetune-gpt2-") as workdir:
        task = loaded_task(args) if args.init else new_task(args, lines, pathlib.Path(workdir))
        transformer, model = task.transformer, task.model
        data = encode(task, lines, args.maxlen)
        print(f"gpt2: {transformer.num_hidden_layers} layers of {transformer.hidden_size}, "
              f"{transformer.num_parameters:,} parameters; {len(lines)} documents; "
              f"remat={transformer.remat}, policy {transformer.dtype or 'float32'}")
        if args.rank:
            targets = [t for t in args.targets.split(",") if t]
            try:
                enabled = enable_lora(task, args.rank, targets=targets, alpha=args.alpha)
            except ValueError as error:
                sys.exit(f"--targets: {error}")
            trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
            print(f"LoRA rank {args.rank} on {len(enabled)} layers: {trainable:,} trainable "
                  f"parameters ({trainable / transformer.num_parameters:.2%})")
        before = corpus_loss(model, data)
        # the mean over real tokens, as corpus_loss computes it
        loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
        model.compile(optimizer=make_optimizer(args), loss=loss,
                      jit_compile=keras.backend.backend() != "torch")
        inputs, targets, weights = data
        started, losses = time.time(), []
        for step in range(1, args.steps + 1):
            batch = rng.integers(0, len(inputs), args.batch_size)
            losses.append(float(model.train_on_batch(inputs[batch], targets[batch],
                                                     sample_weight=weights[batch])))
            if step % args.log_every == 0 or step == args.steps:
                print(f"step {step} loss {np.mean(losses[-args.log_every:]):.4f} "
                      f"({(time.time() - started) / step:.3f} s/step)")
        after = corpus_loss(model, data)
        print(f"corpus loss {before:.4f} -> {after:.4f}")

        if args.rank:
            expected = model.predict(inputs, verbose=0)
            merge_lora(task)
            merged = model.predict(inputs, verbose=0)
            print(f"merged LoRA into the kernels: max |Δp| {np.abs(merged - expected).max():.2e}")
        expected = model.predict(inputs, verbose=0)
        task.save_preset(out, source={"finetune": {
            "corpus": os.path.abspath(args.corpus) if args.corpus else None,
            "init": args.init, "rank": args.rank, "alpha": args.alpha,
            "optimizer": args.optimizer, "steps": args.steps, "corpus_loss": [before, after]}})
        if args.export_checkpoint:
            export = pathlib.Path(args.export_checkpoint)
            export.mkdir(parents=True, exist_ok=True)
            transformer.save_weights_as_checkpoint(str(export / "bert_model.ckpt"))
            config = {  # bert4keras' keys
                "vocab_size": transformer.vocab_size, "hidden_size": transformer.hidden_size,
                "num_hidden_layers": transformer.num_hidden_layers,
                "num_attention_heads": transformer.num_attention_heads,
                "intermediate_size": transformer.intermediate_size,
                "hidden_act": transformer.hidden_act,
                "max_position_embeddings": transformer.max_positions(),
                "hidden_dropout_prob": transformer.dropout_rate,
                "attention_probs_dropout_prob": transformer.attention_dropout_rate}
            with open(export / "bert_config.json", "w", encoding="utf-8") as file:
                json.dump(config, file, indent=2)
            print(f"wrote a bert4keras checkpoint to {export}")
    print(f"saved the merged preset to {out}")

    again = kf.models.load(out)
    difference = np.abs(again.model.predict(inputs, verbose=0) - expected).max()
    print(f"reloaded {out}: max |Δp| {difference:.2e}")
    prompt = lines[0][:4]
    print(f"greedy: {prompt}{again.generate(prompt, beam=1, maxlen=16)[0]}")


if __name__ == "__main__":
    main()
