"""UniVAE: train a sentence VAE on a text file, then reconstruct, sample, interpolate and
swap latent chunks (https://kexue.fm/archives/8475).

    python examples/univae.py ../shared/data/FewCLUE/tnews/unlabeled.json
    python examples/univae.py titles.txt --init roformer-sim-mini --steps 3000 \\
        --latent-layers 2 --latent-size 16 --kappa 32 --out runs/univae

The text file holds one sentence per line (or JSON lines with a `sentence` / `text`
field). The model starts from the encoder of `--init` (default the bundled
roformer-sim-mini, 4 blocks; any RoFormer with its MLM head): its last
`--latent-layers` blocks each get a `--latent-size` latent, sampled from a vMF
posterior of concentration `--kappa` in training. It trains `--steps` batches
(bojone: Adam 2e-5, batch 128, 4 latent blocks of 16 on RoFormer base), holding
`--holdout` sentences out, then prints:

- reconstruction: the characters of held-out and training sentences that greedy
  decoding of their own latents puts back in place, against latents drawn from the
  prior (every chunk uniform on its sphere) decoded and compared with the same
  sentences — the baseline of a decoder that ignores the sentence;
- examples of reconstructions, of prior samples, an interpolation between two
  sentences, and sentences with one latent chunk taken from another.

`--out` saves the trained UniVAE as a preset (`kerasformer.models.load(OUT)`), with the
training log and its curves (`OUT/training/curves.png`).
"""
import argparse
import os
import pathlib
import shutil
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasformer.data import read_texts  # noqa: E402
from kerasformer.models import UniVAEModel  # noqa: E402
from kerasformer.training.log import TrainingLog, logs_beside  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", help="a text file, one sentence per line (or JSON lines)")
    parser.add_argument("--init", default="roformer-sim-mini",
                        help="the RoFormer to start from (a name, preset or checkpoint directory)")
    parser.add_argument("--steps", type=int, default=3000, help="training batches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate")
    parser.add_argument("--latent-layers", type=int, default=2)
    parser.add_argument("--latent-size", type=int, default=16)
    parser.add_argument("--kappa", type=float, default=32.0)
    parser.add_argument("--half-length", type=int, default=32,
                        help="tokens of each copy of a sentence, [CLS] and [SEP] included")
    parser.add_argument("--limit", type=int, default=None, help="use the first N sentences")
    parser.add_argument("--holdout", type=int, default=256, help="sentences held out")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--show", type=int, default=5, help="examples of each kind printed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="save the preset here")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.texts):
        parser.error(f"no such file: {args.texts}")
    for name in ("steps", "batch_size", "latent_layers", "log_every", "holdout", "show"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.steps % args.log_every:
        args.steps += args.log_every - args.steps % args.log_every
        print(f"training {args.steps} batches: whole --log-every intervals")
    if args.out is not None and args.out.exists() and (
            not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"{args.out} exists and is not an empty directory")
    return args


def character_accuracy(texts, outputs):
    """The characters of `outputs` equal to those of `texts` at the same place."""
    right = total = 0
    for text, output in zip(texts, outputs):
        text, output = text.replace(" ", ""), output.replace(" ", "")
        right += sum(a == b for a, b in zip(text, output))
        total += len(text)
    return right / max(total, 1)


def main(argv=None):
    args = parse_args(argv)
    texts = read_texts(args.texts)
    rng = np.random.default_rng(args.seed)
    texts = [texts[i] for i in rng.permutation(len(texts))][:args.limit]
    if len(texts) < args.holdout + args.batch_size:
        sys.exit(f"{len(texts)} sentences: too few for --holdout {args.holdout} and a batch")
    held_out, train = texts[:args.holdout], texts[args.holdout:]
    print(f"{len(train)} training sentences, {len(held_out)} held out")

    keras.utils.set_random_seed(args.seed)
    vae = UniVAEModel.from_encoder(args.init, num_latent_layers=args.latent_layers,
                                   latent_size=args.latent_size, kappa=args.kappa,
                                   half_length=args.half_length)
    transformer = vae.transformer
    print(f"UniVAE on {args.init}: {transformer.num_hidden_layers} blocks, latents in the last "
          f"{args.latent_layers} ({args.latent_layers} x {args.latent_size} dims), "
          f"kappa {args.kappa:g}, {transformer.num_parameters:,} parameters")

    logs = None
    if args.out is not None:
        logs = logs_beside(args.out)
        shutil.rmtree(logs, ignore_errors=True)  # what an interrupted run left
    sample_texts = held_out[:64]

    def evaluate():
        return {"reconstruction": character_accuracy(sample_texts, vae.reconstruct(sample_texts))}

    log = TrainingLog(logs, total_steps=args.steps, every=args.log_every, evaluate=evaluate,
                      evaluate_every=max(args.log_every, args.steps // 5 // args.log_every
                                         * args.log_every))
    vae.fit(train, epochs=args.steps // args.log_every, steps_per_epoch=args.log_every,
            batch_size=args.batch_size, optimizer=keras.optimizers.Adam(args.lr),
            seed=args.seed, callbacks=[log], verbose=0)

    print("\ncharacters put back in place by greedy decoding (of the first 256 sentences):")
    rows = []
    for name, sentences in (("held out", held_out[:256]), ("training", train[:256])):
        own = character_accuracy(sentences, vae.reconstruct(sentences))
        prior = character_accuracy(sentences, vae.sample(len(sentences), seed=args.seed))
        rows.append((name, own, prior))
        print(f"  {name:9s} own latents {own:.4f}   prior latents {prior:.4f}")

    show = args.show
    print("\nreconstruction (held out):")
    for text, output in zip(held_out[:show], vae.reconstruct(held_out[:show])):
        print(f"  {text}\n  -> {output}")
    print("\nsamples of the prior:")
    for text in vae.sample(show, seed=args.seed + 1):
        print(f"  {text}")
    a, b = held_out[0], held_out[1]
    print(f"\ninterpolation from {a!r} to {b!r}:")
    for text in vae.interpolate(a, b, steps=show + 2):
        print(f"  {text}")
    print("\nchunk swapping (chunk 0 is the shallowest latent block):")
    for pair in range(min(show, len(held_out) // 2)):
        a, b = held_out[2 * pair], held_out[2 * pair + 1]
        for chunk in range(vae.chunks):
            first, second = vae.swap(a, b, [chunk])
            print(f"  {a} | {b}  chunk {chunk} ->  {first} | {second}")

    if args.out is not None:
        source = {"univae": {"texts": os.path.abspath(args.texts), "init": args.init,
                             "steps": args.steps, "batch_size": args.batch_size,
                             "lr": args.lr, "reconstruction": {
                                 name: {"own": own, "prior": prior} for name, own, prior in rows}}}
        vae.save_preset(args.out, source=source)
        print(f"\nsaved the preset to {args.out} (its training log: {log.move_into(args.out)})")


if __name__ == "__main__":
    main()
