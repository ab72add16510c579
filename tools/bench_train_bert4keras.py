"""Reference side of tools/bench_train.py: one RoFormer-Sim training step in the original
bert4keras (0.11.5 on tf-keras), timed with `model.train_on_batch`.

Run by tools/bench_train.py (which writes the config and compares the numbers); by hand:

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \
        tools/bench_train_bert4keras.py --config DIR/bert_config.json --mode graph

The model and loss are those of the RoFormer-Sim / SimBERT training scripts: roformer,
application='unilm', with_pool='linear', with_mlm='linear', dropout_rate=0.2; a `Loss`
layer adding the seq2seq cross-entropy (token t+1 predicted at t, masked by
segment_ids[:, 1:], from logits) and the in-batch contrastive cross-entropy on the
l2-normalised pooled vectors (scale 20, diagonal −1e12, label of row i is i xor 1);
AdamW = extend_with_weight_decay(Adam) (bert4keras resolves it to the `_v2`, tf.keras,
variant), lr 1e-5, weight_decay_rate 0.01, exclude ['Norm', 'bias'].

Two deviations, both forced or harmless:
- bert4keras' `Adam` subclasses `keras.optimizers.Optimizer`, which in tf-keras ≥ 2.11 is
  the new optimizer without `_set_hyper` (AttributeError on construction). bert4keras was
  written for the OptimizerV2 API, which tf-keras keeps as
  `keras.optimizers.legacy.Optimizer`: the base class is pointed there before
  bert4keras.optimizers is imported, which restores the original code path.
- The contrastive term is averaged over the batch (`K.mean`) before it is added to the
  (scalar) seq2seq term; the examples add the per-row vector, whose logged value Keras
  averages the same way. Same compute, a well-defined scalar objective.
- `tf.eye` for the examples' `K.eye`: in tf-keras 2.x `K.eye` makes a `tf.Variable`, which
  cannot be created from a dynamic batch size inside the functional model's graph.

Modes: `graph` — `model.compile(optimizer)`, tf.function without XLA, as bert4keras'
scripts run; `xla` — `model.compile(optimizer, jit_compile=True)`; `eager` —
`run_eagerly=True`. Prints one line `BENCH_RESULT {json}`.
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_batch(batch, length, vocab, seed):
    """The benchmark's fixed batch: the same generator as tools/bench_train.py."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, (batch, length)).astype("int32")
    segments = (np.arange(length)[None, :] >= length // 2).repeat(batch, 0).astype("int32")
    return tokens, segments


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="bert_config.json")
    parser.add_argument("--mode", choices=("graph", "xla", "eager"), default="graph")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.2, help="hidden dropout")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from bert4keras.backend import K, keras

    # OptimizerV2, which bert4keras' optimizers are written against (see the docstring).
    keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
    from bert4keras.layers import Loss
    from bert4keras.models import build_transformer_model
    from bert4keras.optimizers import Adam, extend_with_weight_decay

    tf.random.set_seed(args.seed)
    np.random.seed(args.seed)
    with open(args.config) as file:
        vocab = json.load(file)["vocab_size"]

    class TotalLoss(Loss):
        """SimBERT's / RoFormer-Sim's loss: seq2seq CE + in-batch contrastive CE."""

        def compute_loss(self, inputs, mask=None):
            return self.seq2seq_loss(inputs) + K.mean(self.similarity_loss(inputs))

        def seq2seq_loss(self, inputs):
            y_true, y_mask, _, y_pred = inputs
            y_true = y_true[:, 1:]
            y_mask = K.cast(y_mask[:, 1:], K.floatx())
            y_pred = y_pred[:, :-1]
            loss = K.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
            return K.sum(loss * y_mask) / K.sum(y_mask)

        def similarity_loss(self, inputs):
            _, _, y_pred, _ = inputs
            idxs = K.arange(0, K.shape(y_pred)[0])
            labels = K.cast(K.equal(idxs[None, :], (idxs + 1 - idxs % 2 * 2)[:, None]),
                            K.floatx())
            y_pred = K.l2_normalize(y_pred, axis=1)
            similarities = K.dot(y_pred, K.transpose(y_pred))
            similarities = similarities - tf.eye(K.shape(y_pred)[0]) * 1e12
            similarities = similarities * 20
            return K.categorical_crossentropy(labels, similarities, from_logits=True)

    start = time.perf_counter()
    roformer = build_transformer_model(
        config_path=args.config, model="roformer", application="unilm",
        with_pool="linear", with_mlm="linear", dropout_rate=args.dropout, return_keras_model=False,
    )
    outputs = TotalLoss([2, 3])(roformer.inputs + roformer.outputs)
    model = keras.models.Model(roformer.inputs, outputs)
    AdamW = extend_with_weight_decay(Adam, "AdamW")
    optimizer = AdamW(learning_rate=1e-5, weight_decay_rate=0.01,
                      exclude_from_weight_decay=["Norm", "bias"])
    compile_kwargs = {"graph": {}, "xla": {"jit_compile": True},
                      "eager": {"run_eagerly": True}}[args.mode]
    model.compile(optimizer=optimizer, **compile_kwargs)
    build_s = time.perf_counter() - start
    parameters = int(roformer.model.count_params())

    tokens, segments = make_batch(args.batch, args.length, vocab, args.seed)
    result = {"framework": "bert4keras", "mode": args.mode, "build_s": build_s,
              "parameters": parameters, "batch": args.batch, "length": args.length,
              "tf_version": tf.__version__, "load_start": os.getloadavg()[0]}
    losses, times, cpu_times = [], [], []
    try:
        for index in range(args.warmup + args.steps):
            start, start_cpu = time.perf_counter(), sum(os.times()[:2])
            loss = model.train_on_batch([tokens, segments])
            elapsed = time.perf_counter() - start
            cpu = sum(os.times()[:2]) - start_cpu
            loss = float(np.asarray(loss).reshape(-1)[0])
            losses.append(loss)
            if index < args.warmup:
                result.setdefault("first_call_s", elapsed)
                result.setdefault("warmup_times", []).append(elapsed)
            else:
                times.append(elapsed)
                cpu_times.append(cpu)
            print(f"bert4keras {args.mode} step {index}: {elapsed:.2f} s (CPU {cpu:.1f} s), "
                  f"loss {loss:.4f}",
                  file=sys.stderr, flush=True)
    except Exception as error:  # reported in the table, not a crash of the benchmark
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    result.update({
        "losses": losses, "step_times": times, "cpu_times": cpu_times,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_end": os.getloadavg()[0],
    })
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
