"""Benchmark: RoFormer-Sim random sampling, kerasformer (jax / tensorflow / torch) vs bert4keras.

Shape of RoFormer-Sim base (12 layers, hidden 768, 12 heads, FFN 3072, vocab 12000),
random weights written once as an original TF checkpoint and loaded by both libraries;
one input of 16 characters ([CLS] + 16 + [SEP]), n=20 samples, topk=5,
maxlen=minlen=32 so every sample runs all 32 steps. Reports the first call (which
compiles) and the mean of warm calls, per backend, and the ratio to bert4keras'
`AutoRegressiveDecoder.random_sample` measured in the same run.

    python tools/bench_generate.py [--warm 3] [--backends jax,tensorflow,torch]
        [--reference-python /tmp/bert4keras-ref/bin/python]

The reference needs ../shared/reference/setup-bert4keras.sh. To time kerasformer
alone on a checkpoint the reference wrote earlier: --checkpoint DIR --reference-python ''.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

CONFIG = {
    "vocab_size": 12000, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2,
}
SAMPLES, TOPK, STEPS, END_ID = 20, 5, 32, 102
PREFIX = [101] + list(range(3000, 3016)) + [102]  # [CLS] 16 characters [SEP]


def reference(directory, warm):
    """bert4keras: writes the random checkpoint, then times random_sample."""
    import numpy as np
    import tensorflow as tf
    from bert4keras.models import build_transformer_model
    from bert4keras.snippets import AutoRegressiveDecoder

    config_path = directory / "bert_config.json"
    config_path.write_text(json.dumps(CONFIG))
    transformer = build_transformer_model(
        str(config_path), model="roformer", application="unilm", with_pool="linear",
        return_keras_model=False,
    )
    values = {}
    for layer_name, names in transformer.variable_mapping().items():
        if layer_name in transformer.layers:
            for name, weight in zip(names, transformer.layers[layer_name].trainable_weights):
                values[name] = weight.numpy()
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(
                session, str(directory / "bert_model.ckpt"), write_meta_graph=False
            )
    seq2seq = tf.keras.models.Model(transformer.model.inputs, transformer.model.outputs[1])

    class Decoder(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return self.last_token(seq2seq).predict([token_ids, segment_ids], verbose=0)

    decoder = Decoder(start_id=None, end_id=END_ID, maxlen=STEPS, minlen=STEPS)
    inputs = [PREFIX, [0] * len(PREFIX)]
    return timed(lambda: decoder.random_sample(inputs, SAMPLES, topk=TOPK), warm)


def kerasformer(directory, warm):
    """kerasformer on the backend named by KERAS_BACKEND."""
    import kerasformer as kf
    from kerasformer.generation import AutoRegressiveDecoder

    transformer = kf.build_transformer_model(
        directory / "bert_config.json", directory / "bert_model.ckpt", model="roformer",
        application="unilm", with_pool="linear", return_keras_model=False,
    )
    decoder = AutoRegressiveDecoder(transformer, end_id=END_ID)
    seeds = iter(range(100))
    result = timed(
        lambda: decoder.random_sample([PREFIX], n=SAMPLES, maxlen=STEPS, minlen=STEPS,
                                      topk=TOPK, seed=next(seeds)),
        warm,
    )
    samples = decoder.random_sample([PREFIX], n=SAMPLES, maxlen=STEPS, minlen=STEPS, topk=TOPK)[0]
    assert len(samples) == SAMPLES and all(len(s) == STEPS for s in samples)
    return result


def timed(call, warm):
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(warm):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"first": first, "warm": sum(times) / len(times), "warm_all": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=3, help="warm calls to average")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--reference-python", default="/tmp/bert4keras-ref/bin/python")
    parser.add_argument("--checkpoint", help="reuse this checkpoint directory")
    parser.add_argument("--worker", choices=["reference", "kerasformer"], help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        work = reference if args.worker == "reference" else kerasformer
        print("RESULT " + json.dumps(work(pathlib.Path(args.directory), args.warm)))
        return

    def run(python, worker, directory, env):
        output = subprocess.run(
            [python, __file__, "--worker", worker, "--directory", str(directory),
             "--warm", str(args.warm)],
            env={**os.environ, **env}, capture_output=True, text=True, check=True,
        ).stdout
        return json.loads(output.split("RESULT ", 1)[1])

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        directory = pathlib.Path(args.checkpoint or scratch)
        if args.reference_python:
            reference_env = {"TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1",
                             "CUDA_VISIBLE_DEVICES": ""}
            results["bert4keras"] = run(args.reference_python, "reference", directory, reference_env)
        elif not (directory / "bert_model.ckpt.index").exists():
            raise SystemExit("without the reference, pass --checkpoint of an earlier run")
        for backend in args.backends.split(","):
            results[backend] = run(sys.executable, "kerasformer", directory,
                                   {"KERAS_BACKEND": backend})

    baseline = results.get("bert4keras", {}).get("warm")
    print(f"{'':12} {'first call (s)':>15} {'warm call (s)':>14} {'vs bert4keras warm':>19}")
    for name, result in results.items():
        ratio = f"{baseline / result['warm']:18.1f}x" if baseline else ""
        print(f"{name:12} {result['first']:15.2f} {result['warm']:14.3f} {ratio}")


if __name__ == "__main__":
    main()
