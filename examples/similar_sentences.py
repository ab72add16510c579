"""Similar sentences with SimBERT or RoFormer-Sim: text in, ranked paraphrases out.

    python examples/similar_sentences.py CHECKPOINT_DIR "今天天气不错" [--family simbert]

CHECKPOINT_DIR is an original release directory (bert_config.json, bert_model.ckpt.*,
vocab.txt), e.g. chinese_roformer-sim-char_L-12_H-768_A-12 from
https://github.com/ZhuiyiTechnology/roformer-sim.
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import kerasformer as kf  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("text")
    parser.add_argument("--family", default="roformer-sim", help="roformer-sim or simbert")
    parser.add_argument("-n", type=int, default=100, help="sentences to generate")
    parser.add_argument("-k", type=int, default=20, help="sentences to keep")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()

    sim = kf.models.load(args.checkpoint, family=args.family)
    print("greedy:", sim.generate(args.text, beam=1)[0])
    print("beam 3:", sim.generate(args.text, beam=3)[0])
    for sentence, score in sim.similar(args.text, n=args.n, k=args.k, seed=args.seed):
        print(f"{score:.4f}  {sentence}")


if __name__ == "__main__":
    main()
