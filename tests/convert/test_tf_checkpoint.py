"""Tests for kerasformer.convert.tf_checkpoint, the numpy-only checkpoint reader.

The fixtures in tests/fixtures/tf_checkpoint/ were written by real TensorFlow
(tools/make_tf_checkpoint_fixtures.py): `zoo.ckpt` by a TF1 Saver (every
dtype, strings, partitioned variables, ~2,000 BERT-like names) and
`sharded.ckpt` by a TF2 Checkpoint split over three data files. The tests
comparing against TensorFlow skip where it is not installed. TensorFlow's
256 KiB index blocks keep small fixtures to one block, so multi-block
indexes, big-endian bundles and compressed blocks are covered by bundles
this file writes itself (`_write_bundle`).
"""
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kerasformer.convert import tf_checkpoint
from kerasformer.convert.tf_checkpoint import TFCheckpoint, crc32c

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "tf_checkpoint"
ZOO = FIXTURES / "zoo.ckpt"
SHARDED = FIXTURES / "sharded.ckpt"
EMBEDDINGS = "bert/embeddings/word_embeddings"


def _copy_checkpoint(prefix, directory):
    for path in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy(path, directory / path.name)
    return directory / prefix.name


# --------------------------------------------------------------------------
# Against TensorFlow


@pytest.mark.parametrize("prefix, partitioned", [
    (ZOO, {"partitioned/rows", "partitioned/columns"}),
    (SHARDED, {"kernel/.ATTRIBUTES/VARIABLE_VALUE"}),
], ids=["zoo", "sharded"])
def test_every_variable_matches_tensorflow(prefix, partitioned):
    tf = pytest.importorskip("tensorflow")
    checkpoint = TFCheckpoint(prefix)
    expected = [(name, tuple(shape)) for name, shape in tf.train.list_variables(str(prefix))]
    assert checkpoint.variables() == expected
    # The fixture really exercises slice assembly.
    assert {name for name in checkpoint if checkpoint._entries[name].slices} == partitioned

    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    for name, shape in expected:
        want = reader.get_tensor(name)
        got = checkpoint[name]
        assert isinstance(got, np.ndarray) and got.shape == shape == np.shape(want), name
        assert got.dtype == checkpoint.dtype(name) and checkpoint.shape(name) == shape, name
        if dtypes[name] == tf.string:  # TensorFlow gives bytes for scalars
            want = np.asarray(want, dtype=object)
            assert got.dtype == object and got.tolist() == want.tolist(), name
        elif want.dtype.name == "bfloat16":  # numpy lacks it: widened to float32
            assert got.dtype == np.float32, name
            assert got.tobytes() == want.astype(np.float32).tobytes(), name
        else:
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name


MODEL_CHECKPOINTS = sorted((FIXTURES.parent / "models").glob("*/bert_model.ckpt.index"))


@pytest.mark.parametrize("index", MODEL_CHECKPOINTS, ids=lambda p: p.parent.name)
def test_model_fixtures_match_tensorflow(index):
    """The checkpoints bert4keras wrote for the parity tests read identically."""
    tf = pytest.importorskip("tensorflow")
    prefix = str(index)[: -len(".index")]
    checkpoint = TFCheckpoint(prefix)
    reader = tf.train.load_checkpoint(prefix)
    assert checkpoint.variables() == [(n, tuple(s)) for n, s in tf.train.list_variables(prefix)]
    for name in checkpoint:
        assert checkpoint[name].tobytes() == reader.get_tensor(name).tobytes(), name


def test_reading_does_not_import_tensorflow():
    script = textwrap.dedent(f"""
        import importlib.abc, sys

        class BlockTensorFlow(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "tensorflow":
                    raise ImportError("tensorflow is blocked in this test")

        sys.meta_path.insert(0, BlockTensorFlow())
        from kerasformer.convert.tf_checkpoint import TFCheckpoint
        for prefix in {[str(ZOO), str(SHARDED)]!r}:
            checkpoint = TFCheckpoint(prefix)
            arrays = [checkpoint[name] for name in checkpoint]
            assert len(arrays) == len(checkpoint.variables()) > 0
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print("read without tensorflow")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "read without tensorflow" in result.stdout


# --------------------------------------------------------------------------
# crc32c


def _slow_crc32c(data):
    """Bit-at-a-time CRC-32C, straight from the definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    # RFC 3720 (iSCSI), appendix B.4
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


@pytest.mark.parametrize("size", [1, 2, 3, 255, 511, 512, 513, 1023, 4097, 9001])
def test_crc32c_matches_slow_reference(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc32c(data) == _slow_crc32c(data)


def test_crc32c_across_chunks_and_capped_lanes(monkeypatch):
    monkeypatch.setattr(tf_checkpoint, "_CHUNK_BYTES", 1000)
    monkeypatch.setattr(tf_checkpoint, "_MAX_LANES", 2)
    data = np.random.default_rng(0).integers(0, 256, 4321, dtype=np.uint8).tobytes()
    assert crc32c(data) == _slow_crc32c(data)


def test_crc32c_of_arrays_uses_their_bytes():
    array = np.random.default_rng(0).standard_normal((30, 7))
    assert crc32c(array) == crc32c(array.tobytes())
    assert crc32c(array[:, ::2]) == crc32c(array[:, ::2].tobytes())  # not contiguous
    assert crc32c(bytearray(b"123456789")) == crc32c(memoryview(b"123456789")) == 0xE3069283


# --------------------------------------------------------------------------
# Opening, the Mapping API


def test_mapping_api():
    checkpoint = TFCheckpoint(ZOO)
    names = list(checkpoint)
    assert names == sorted(names) == list(checkpoint.keys())
    assert len(checkpoint) == len(names) > 1900
    assert EMBEDDINGS in checkpoint and "nope" not in checkpoint
    assert checkpoint.shape(EMBEDDINGS) == (300, 16)
    assert checkpoint.shape("global_step") == ()
    assert checkpoint.dtype("dtypes/bfloat16") == np.float32
    assert checkpoint.dtype("dtypes/string") == object
    assert checkpoint.get("nope") is None
    assert checkpoint["global_step"] == 123456
    assert checkpoint["empty/float32"].shape == (2, 0, 3)
    assert checkpoint["dtypes/string_scalar"][()] == b"bert4keras"
    assert "1948 variables" in repr(checkpoint)


def test_paths_it_accepts(tmp_path):
    assert TFCheckpoint(str(ZOO)).prefix == str(ZOO)
    assert TFCheckpoint(FIXTURES / "zoo.ckpt.index").prefix == str(ZOO)
    assert TFCheckpoint(FIXTURES / "sharded.ckpt.data-00001-of-00003").prefix == str(SHARDED)
    copy = _copy_checkpoint(ZOO, tmp_path)
    assert TFCheckpoint(tmp_path).prefix == str(copy)


def test_directory_with_several_checkpoints(tmp_path):
    _copy_checkpoint(ZOO, tmp_path)
    _copy_checkpoint(SHARDED, tmp_path)
    with pytest.raises(ValueError, match="2 TensorFlow checkpoints") as error:
        TFCheckpoint(tmp_path)
    assert "zoo.ckpt.index" in str(error.value) and "sharded.ckpt.index" in str(error.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "model.ckpt.index"))):
        TFCheckpoint(tmp_path / "model.ckpt")
    with pytest.raises(FileNotFoundError, match="no \\*.index file"):
        TFCheckpoint(tmp_path)
    prefix = _copy_checkpoint(SHARDED, tmp_path)
    os.remove(f"{prefix}.data-00001-of-00003")
    with pytest.raises(FileNotFoundError, match="sharded.ckpt.data-00001-of-00003"):
        TFCheckpoint(prefix)


def test_misspelled_name_suggests_close_matches():
    checkpoint = TFCheckpoint(ZOO)
    with pytest.raises(KeyError, match="bert/encoder/layer_1/attention/self/query/kernel"):
        checkpoint["bert/encoder/layer_1/attention/self/qeury/kernel"]


# --------------------------------------------------------------------------
# Damaged files


@pytest.mark.parametrize("name, stored_bytes", [
    (EMBEDDINGS, lambda checkpoint: checkpoint[EMBEDDINGS].tobytes()),
    ("dtypes/string", lambda checkpoint: b"kerasformer"),
], ids=["float32", "string"])
def test_corrupt_tensor(tmp_path, name, stored_bytes):
    prefix = _copy_checkpoint(ZOO, tmp_path)
    data_path = tmp_path / "zoo.ckpt.data-00000-of-00001"
    data = bytearray(data_path.read_bytes())
    needle = stored_bytes(TFCheckpoint(prefix))
    position = data.find(needle)
    assert position >= 0 and data.count(needle) == 1
    data[position + len(needle) // 2] ^= 0x10
    data_path.write_bytes(data)

    checkpoint = TFCheckpoint(prefix)
    with pytest.raises(ValueError, match=re.escape(repr(name))) as error:
        checkpoint[name]
    assert str(data_path) in str(error.value)
    assert checkpoint["global_step"] == 123456  # the rest still reads


def test_truncated_data_file(tmp_path):
    prefix = _copy_checkpoint(ZOO, tmp_path)
    data_path = tmp_path / "zoo.ckpt.data-00000-of-00001"
    data_path.write_bytes(data_path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{re.escape(str(data_path))} is truncated"):
        TFCheckpoint(prefix)[EMBEDDINGS]


@pytest.mark.parametrize("damage", [
    lambda index: b"",
    lambda index: index[:-1],
    lambda index: index[len(index) // 2:],
    lambda index: index[:1000] + bytes([index[1000] ^ 1]) + index[1001:],
    lambda index: np.random.default_rng(0).bytes(len(index)),
], ids=["empty", "tail cut", "head cut", "flipped byte", "garbage"])
def test_damaged_index(tmp_path, damage):
    prefix = _copy_checkpoint(ZOO, tmp_path)
    index_path = tmp_path / "zoo.ckpt.index"
    index_path.write_bytes(damage(index_path.read_bytes()))
    with pytest.raises(ValueError, match=re.escape(f"{index_path} is not a valid TensorFlow")):
        TFCheckpoint(prefix)


# --------------------------------------------------------------------------
# Bundles written by hand: what small TensorFlow fixtures cannot show


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _proto(*fields):
    """Serialize (field number, value) pairs: ints as varints, bytes length-delimited."""
    out = b""
    for number, value in fields:
        if isinstance(value, int):
            out += _varint(number << 3) + _varint(value)
        else:
            out += _varint(number << 3 | 2) + _varint(len(value)) + value
    return out


def _mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _sstable(records, block_entries, restart_interval, compression):
    """An SSTable of sorted `records` in blocks of `block_entries` entries."""
    out = bytearray()

    def block(items):
        body, restarts, previous = bytearray(), [], b""
        for position, (key, value) in enumerate(items):
            shared = 0
            if position % restart_interval:
                shared = len(os.path.commonprefix([previous, key]))
            else:
                restarts.append(len(body))
            body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
            body += key[shared:] + value
            previous = key
        return bytes(body) + struct.pack(f"<{len(restarts) + 1}I", *restarts, len(restarts))

    def append(contents):  # block + trailer; returns the block's handle
        handle = _varint(len(out)) + _varint(len(contents))
        trailer = bytes([compression])
        out.extend(contents + trailer + struct.pack("<I", _mask(crc32c(contents + trailer))))
        return handle

    chunks = [records[i:i + block_entries] for i in range(0, len(records), block_entries)]
    index = [(chunk[-1][0], append(block(chunk))) for chunk in chunks]
    handles = append(block([])) + append(block(index))  # metaindex, index
    return bytes(out) + handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)


def _write_bundle(prefix, tensors, big_endian=False, block_entries=1000, restart_interval=16,
                  compression=0):
    """Write {name: (TF DataType enum, array)} as a one-shard tensor bundle."""
    data, records = b"", []
    for name, (dtype, array) in sorted(tensors.items()):
        raw = array.astype(array.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        shape = b"".join(_proto((2, _proto((1, size)))) for size in array.shape)
        entry = _proto((1, dtype), (2, shape), (4, len(data)), (5, len(raw)))
        entry += _varint(6 << 3 | 5) + struct.pack("<I", _mask(crc32c(raw)))  # fixed32 crc32c
        records.append((name.encode(), entry))
        data += raw
    # num_shards, endianness, version { producer }
    header = _proto((1, 1), (2, int(big_endian)), (3, _proto((1, 1))))
    index = _sstable([(b"", header)] + records, block_entries, restart_interval, compression)
    pathlib.Path(f"{prefix}.index").write_bytes(index)
    pathlib.Path(f"{prefix}.data-00000-of-00001").write_bytes(data)
    return prefix


def test_index_of_many_blocks(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"bert/encoder/layer_{i}/attention/self/query/kernel":
               (1, rng.random((2, 3), np.float32)) for i in range(50)}
    checkpoint = TFCheckpoint(_write_bundle(tmp_path / "many", tensors, block_entries=4,
                                            restart_interval=3))
    assert checkpoint.variables() == [(name, (2, 3)) for name in sorted(tensors)]
    for name, (_, array) in tensors.items():
        np.testing.assert_array_equal(checkpoint[name], array)


def test_big_endian_bundle_is_byte_swapped(tmp_path):
    tensors = {"float": (1, np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)),
               "int": (9, np.arange(-2, 3, dtype=np.int64)),
               "half": (19, np.array([1.5, -2.25], np.float16))}
    checkpoint = TFCheckpoint(_write_bundle(tmp_path / "big", tensors, big_endian=True))
    for name, (_, array) in tensors.items():
        assert checkpoint[name].dtype == array.dtype and checkpoint[name].dtype.isnative
        np.testing.assert_array_equal(checkpoint[name], array)


def test_snappy_compressed_index_is_refused(tmp_path):
    prefix = _write_bundle(tmp_path / "snappy", {"x": (1, np.zeros(2, np.float32))}, compression=1)
    with pytest.raises(ValueError, match="snappy"):
        TFCheckpoint(prefix)


@pytest.mark.parametrize("encoded, value", [
    ("80", 0), ("bf", 63), ("c040", 64), ("7f", -1), ("40", -64), ("3fbf", -65),
    ("f0424242", 0x424242), ("3800", -0x800),  # the examples in ordered_code.cc
])
def test_slice_key_numbers(encoded, value):
    encoded = bytes.fromhex(encoded)
    assert tf_checkpoint._ordered_signed(encoded + b"rest", 0) == (value, len(encoded))


def test_unsupported_dtype_names_the_variable(tmp_path):
    prefix = _write_bundle(tmp_path / "quantized", {"weights/qint8": (11, np.zeros(3, np.int8))})
    checkpoint = TFCheckpoint(prefix)
    assert checkpoint.shape("weights/qint8") == (3,)
    with pytest.raises(NotImplementedError, match="'weights/qint8'.*DataType 11"):
        checkpoint["weights/qint8"]
