"""Write the TensorFlow checkpoints that tests/convert/test_tf_checkpoint.py reads.

Needs TensorFlow (the fixtures were written with 2.21). From the repository
root:

    python tools/make_tf_checkpoint_fixtures.py

It replaces tests/fixtures/tf_checkpoint/ with:

* zoo.ckpt: TF1 style, a tf.compat.v1.train.Saver in a Graph and Session, as
  bert4keras-era checkpoints were written. Every dtype the reader supports
  plus strings, scalars to 4-D, empty tensors, partitioned variables (saved
  as slices), and ~2,000 tiny BERT-like variables (with Adam slots) whose
  long shared name prefixes exercise the index's key prefix compression and
  its restart points (one every 16 keys). TensorFlow writes 256 KiB index
  blocks, so this index still fits in one; spanning several would take
  ~8,000 variables and a 300 KB fixture, so the test builds small
  multi-block indexes itself instead.
* sharded.ckpt: TF2 style, tf.train.Checkpoint.write split over several data
  files by MaxShardSizePolicy, which also cuts the largest variable into
  slices; it holds the string tensor every TF2 checkpoint has.

Only `.index` and `.data-*` files are kept (no `.meta`, no `checkpoint`).
Values are seeded: reruns (with TensorFlow 2.21) give byte-identical files.
"""
import os
import pathlib
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tf_checkpoint"
NUM_LAYERS = 40


def dtype_zoo(rng):
    """{name: (numpy value, TF dtype)}: each dtype, rank 0 to 4, edge values."""
    floats = rng.standard_normal((2, 3, 4)).astype(np.float32)
    floats.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]

    def ints(dtype, shape):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)

    return {
        "dtypes/bfloat16": (rng.standard_normal((3, 5)).astype(np.float32), tf.bfloat16),
        "dtypes/float16": (rng.standard_normal(4).astype(np.float16), tf.float16),
        "dtypes/float32": (floats, tf.float32),
        "dtypes/float64": (rng.standard_normal((2, 3, 4, 5)), tf.float64),
        "dtypes/int8": (ints(np.int8, (7, 11, 13)), tf.int8),  # 1001 bytes: odd size
        "dtypes/int16": (ints(np.int16, ()), tf.int16),
        "dtypes/int32": (ints(np.int32, (5,)), tf.int32),
        "dtypes/int64": (ints(np.int64, (2, 2)), tf.int64),
        "dtypes/uint8": (ints(np.uint8, ()), tf.uint8),
        "dtypes/uint16": (ints(np.uint16, (3, 3)), tf.uint16),
        "dtypes/uint32": (ints(np.uint32, (6,)), tf.uint32),
        "dtypes/uint64": (ints(np.uint64, (2, 3)), tf.uint64),
        "dtypes/bool": (rng.random((4, 4)) < 0.5, tf.bool),
        "dtypes/complex64": (rng.standard_normal(3).astype(np.complex64) * 1j, tf.complex64),
        "dtypes/complex128": (rng.standard_normal((2, 2)) + 2j, tf.complex128),
        "dtypes/string": (np.array([b"kerasformer", b"", b"\x00\xff\x01", "汉字".encode()],
                                   dtype=object), tf.string),
        "dtypes/string_scalar": (np.array(b"bert4keras", dtype=object), tf.string),
        "empty/float32": (np.zeros((2, 0, 3), np.float32), tf.float32),
        "empty/string": (np.zeros((0,), object), tf.string),
        "global_step": (np.int64(123456), tf.int64),
    }


def bert_like(rng):
    """Many tiny float32 variables named like a Google BERT checkpoint."""
    hidden, intermediate = 2, 3
    shapes = {"bert/embeddings/word_embeddings": (300, 16),  # 19 KB: a multi-lane crc32c
              "bert/embeddings/LayerNorm/gamma": (hidden,)}
    for layer in range(NUM_LAYERS):
        prefix = f"bert/encoder/layer_{layer}"
        for part in ("attention/self/query", "attention/self/key", "attention/self/value",
                     "attention/output/dense"):
            shapes[f"{prefix}/{part}/kernel"] = (hidden, hidden)
            shapes[f"{prefix}/{part}/bias"] = (hidden,)
        shapes[f"{prefix}/intermediate/dense/kernel"] = (hidden, intermediate)
        shapes[f"{prefix}/intermediate/dense/bias"] = (intermediate,)
        shapes[f"{prefix}/output/dense/kernel"] = (intermediate, hidden)
        shapes[f"{prefix}/output/dense/bias"] = (hidden,)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[f"{prefix}/{norm}/beta"] = (hidden,)
            shapes[f"{prefix}/{norm}/gamma"] = (hidden,)
    values = {}
    for name, shape in shapes.items():
        for suffix in ("", "/adam_m", "/adam_v"):  # optimizer slots, as in BERT checkpoints
            values[name + suffix] = (rng.standard_normal(shape).astype(np.float32), tf.float32)
    return values


def slice_initializer(full):
    """Initializer giving each partition of a partitioned variable its part of `full`."""
    def initialize(shape, dtype=None, partition_info=None):
        offset = partition_info.var_offset if partition_info else [0] * len(shape)
        return tf.constant(full[tuple(slice(o, o + n) for o, n in zip(offset, shape))], dtype)
    return initialize


def write_zoo(prefix, rng):
    with tf.Graph().as_default():
        variables = {}
        for name, (value, dtype) in {**dtype_zoo(rng), **bert_like(rng)}.items():
            variables[name] = tf.compat.v1.Variable(tf.cast(value, dtype), name=name)
        partitioned = [  # name, value, partitioner
            ("partitioned/rows", rng.standard_normal((10, 4)).astype(np.float32),
             tf.compat.v1.fixed_size_partitioner(3)),
            ("partitioned/columns", rng.standard_normal((3, 9)),
             tf.compat.v1.fixed_size_partitioner(2, axis=1)),
        ]
        for name, value, partitioner in partitioned:
            variables[name] = tf.compat.v1.get_variable(
                name, value.shape, tf.as_dtype(value.dtype),
                initializer=slice_initializer(value), partitioner=partitioner)
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False, write_state=False)


def write_sharded(prefix, rng):
    checkpoint = tf.train.Checkpoint(
        kernel=tf.Variable(rng.standard_normal((40, 8)).astype(np.float32)),  # 1280 bytes
        bias=tf.Variable(rng.standard_normal(8).astype(np.float32)),
        embeddings=tf.Variable(tf.cast(rng.standard_normal((20, 4)), tf.bfloat16)),
        step=tf.Variable(np.int64(7)),
    )
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=512)
    checkpoint.write(str(prefix), options=tf.train.CheckpointOptions(
        experimental_sharding_callback=policy))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    write_zoo(OUT / "zoo.ckpt", np.random.default_rng(0))
    write_sharded(OUT / "sharded.ckpt", np.random.default_rng(1))
    files = sorted(OUT.iterdir())
    unexpected = [path.name for path in files
                  if not path.name.endswith(".index") and ".data-" not in path.name]
    assert not unexpected, f"TensorFlow wrote more than .index/.data files: {unexpected}"
    for path in files:
        print(f"{path.stat().st_size:8d}  {path.relative_to(OUT.parents[2])}")
    print(f"{sum(path.stat().st_size for path in files):8d}  total")


if __name__ == "__main__":
    main()
