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
from tests.convert.hostile import fails_fast, mentions

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
    value &= (1 << 64) - 1  # a negative int64 as protobuf writes it: ten bytes
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


# --------------------------------------------------------------------------
# Hostile bundles: index entries written field by field. Each must fail fast with a
# ValueError naming the file (see tests/convert/hostile.py), never read garbage,
# allocate what a small file merely declares, or escape as another exception.


def _shape_proto(shape):
    return b"".join(_proto((2, _proto((1, size)))) for size in shape)


def _slice_proto(spec):
    """A TensorSliceProto of ((start, length), ...); length -1: the whole axis."""
    return b"".join(_proto((1, _proto((1, start), *([(2, length)] if length >= 0 else []))))
                    for start, length in spec)


def _entry(dtype, shape, offset=0, size=0, crc=0, slices=()):
    """A BundleEntryProto, field by field."""
    entry = _proto((1, dtype), (2, _shape_proto(shape)), (4, offset), (5, size))
    entry += _varint(6 << 3 | 5) + struct.pack("<I", crc)
    return entry + b"".join(_proto((7, _slice_proto(spec))) for spec in slices)


def _float_entry(array, offset):
    raw = array.astype("<f4").tobytes()
    return _entry(1, array.shape, offset, len(raw), _mask(crc32c(raw))), raw


def _ordered_signed(value):
    """OrderedCode of a signed number (the inverse of tf_checkpoint._ordered_signed)."""
    if value < 0:
        return bytes(byte ^ 0xFF for byte in _ordered_signed(~value))
    size = 1
    while value >= 1 << (7 * size - 1):
        size += 1
    return (((1 << size) - 1) << (7 * size) | value).to_bytes(size, "big")


def _slice_key(name, spec):
    """The key of one slice of a partitioned variable (ASCII names only)."""
    key = b"\x00" + name.encode() + b"\x00\x01" + bytes([1, len(spec)])
    return key + b"".join(_ordered_signed(start) + _ordered_signed(length)
                          for start, length in spec)


def _bundle_header(num_shards=1):
    return _proto((1, num_shards), (2, 0), (3, _proto((1, 1))))


def _write_records(prefix, records, data=b"", header=None):
    """A one-shard bundle from raw (key, value) records and its data file's bytes."""
    records = sorted([(b"", header or _bundle_header())] + list(records))
    pathlib.Path(f"{prefix}.index").write_bytes(_sstable(records, 1000, 16, 0))
    pathlib.Path(f"{prefix}.data-00000-of-00001").write_bytes(data)
    return prefix


def _write_partitioned(prefix, shape, listed, stored):
    """Variable 'v' of `shape` made of the `listed` slices; `stored` {slice spec: array}."""
    data, records = b"", [(b"v", _entry(1, shape, slices=listed))]
    for spec, array in stored.items():
        entry, raw = _float_entry(array, len(data))
        records.append((_slice_key("v", spec), entry))
        data += raw
    return _write_records(prefix, records, data)


def _part_shape(shape, spec):
    return tuple(dim if length < 0 else length for dim, (_, length) in zip(shape, spec))


def test_hand_written_partitioned_variable(tmp_path):
    listed = [((0, 2), (0, -1)), ((2, 1), (0, -1))]
    stored = {listed[0]: np.arange(4).reshape(2, 2), listed[1]: np.array([[8, 9]])}
    checkpoint = TFCheckpoint(_write_partitioned(tmp_path / "p", (3, 2), listed, stored))
    assert checkpoint.variables() == [("v", (3, 2))]
    np.testing.assert_array_equal(checkpoint["v"], [[0, 1], [2, 3], [8, 9]])


@pytest.mark.parametrize("shape, listed", [
    ((4,), [((0, 2),), ((0, 2),)]),
    ((4,), [((0, 3),), ((2, 1),)]),
    ((2, 2), [((0, 1), (0, -1)), ((0, 1), (0, -1))]),
    ((4,), [((0, 2),)]),
    ((4,), [((-2, 2),), ((0, 2),)]),
    ((4,), [((0, 2),), ((2, 3),)]),
    ((2, 2), [((0, 2), (0, 1)), ((0, 1), (0, 2))]),
    ((4,), [((0, 4),), ((0, 4),), ((0, 4),)]),
], ids=["one slice twice", "overlap and gap", "2-D slice twice", "gap", "negative start",
        "past the end", "2-D overlap and gap", "three times the whole"])
def test_partitioned_slices_must_tile_exactly(tmp_path, shape, listed):
    """Slices that overlap and leave a gap of the same size passed a count of elements,
    and the gap came back as np.empty's stale memory."""
    stored = {spec: np.full(_part_shape(shape, spec), 7.0) for spec in listed}
    prefix = _write_partitioned(tmp_path / "p", shape, listed, stored)
    with pytest.raises(ValueError, match=re.escape(f"{prefix}.index") + ".*'v'"):
        TFCheckpoint(prefix)["v"]


def test_partitioned_slices_sharing_their_bytes(tmp_path):
    """64 slices stored at the same 1 KiB: a variable 64 times the data file."""
    entry, raw = _float_entry(np.ones((1, 256)), 0)
    listed = [((row, 1), (0, -1)) for row in range(64)]
    records = [(b"v", _entry(1, (64, 256), slices=listed))]
    records += [(_slice_key("v", spec), entry) for spec in listed]
    prefix = _write_records(tmp_path / "shared", records, raw)
    with fails_fast(re.escape(f"{prefix}.index") + ".*overlap"):
        TFCheckpoint(prefix)["v"]


def test_partitioned_variable_larger_than_its_data(tmp_path):
    spec = ((0, 1 << 40),)
    records = [(b"v", _entry(1, (1 << 40,), slices=[spec])),
               (_slice_key("v", spec), _entry(1, (1 << 40,), 0, 1 << 42))]
    prefix = _write_records(tmp_path / "huge", records, bytes(16))
    with fails_fast(mentions(prefix, "'v")):
        TFCheckpoint(prefix)["v"]


def test_tensor_larger_than_its_data_file(tmp_path):
    prefix = _write_records(tmp_path / "huge", [(b"x", _entry(1, (1 << 40,), 0, 1 << 42))],
                            bytes(16))
    with fails_fast(mentions(prefix, "'x'", "truncated")):
        TFCheckpoint(prefix)["x"]


@pytest.mark.parametrize("dtype, shape, offset, size", [
    (1, (2,), (1 << 63) + 8, 8),
    (1, (2,), 8, -8),
    (1, (-1,), 0, 4),
    (1, (1 << 62, 1 << 62), 0, 0),
    (1, (0, 1 << 62), 0, 0),
    (1, (1,) * 100, 0, 4),
    (7, (1 << 40,), 0, 10),
], ids=["negative offset", "negative size", "negative dimension", "overflowing shape",
        "empty but overflowing shape", "rank 100", "2**40 strings in 10 bytes"])
def test_absurd_entries_are_refused(tmp_path, dtype, shape, offset, size):
    crc = _mask(crc32c(bytes(max(0, min(size, 16)))))  # right for the bytes there are
    prefix = _write_records(tmp_path / "absurd",
                            [(b"x", _entry(dtype, shape, offset, size, crc))], bytes(16))
    with fails_fast(mentions(prefix, "'x'")):
        checkpoint = TFCheckpoint(prefix)
        checkpoint["x"]


def test_huge_varint(tmp_path):
    """A dimension written as a 100,000-byte varint: decoding it took seconds."""
    dim = _varint(1 << 3) + b"\xff" * 100_000 + b"\x01"
    entry = _proto((1, 1), (2, _proto((2, dim[1:]))[:1] + _varint(len(dim)) + dim))
    prefix = _write_records(tmp_path / "varint", [(b"x", entry)], bytes(16))
    with fails_fast(re.escape(f"{prefix}.index") + ".*varint"):
        TFCheckpoint(prefix)


def test_absurd_shard_count(tmp_path):
    prefix = _write_records(tmp_path / "shards", [(b"x", _entry(1, (0,)))],
                            header=_bundle_header(num_shards=1 << 40))
    with fails_fast(re.escape(f"{prefix}.index") + ".*shards"):
        TFCheckpoint(prefix)


def _block(entries):
    """An SSTable block of (shared, unshared key bytes, value) entries, one restart."""
    body = b"".join(_varint(shared) + _varint(len(unshared)) + _varint(len(value))
                    + unshared + value for shared, unshared, value in entries)
    return body + struct.pack("<II", 0, 1)


def _sstable_of_blocks(blocks, index_entries=None):
    """An SSTable of ready-made data blocks; the index names each block once, or
    `index_entries(handles)` gives its entries."""
    out, handles = bytearray(), []

    def append(contents):
        handle = _varint(len(out)) + _varint(len(contents))
        out.extend(contents + b"\0" + struct.pack("<I", _mask(crc32c(contents + b"\0"))))
        return handle

    handles = [append(block) for block in blocks]
    entries = (index_entries or (lambda handles: [(0, b"\xff" * (i + 1), handle)
                                                  for i, handle in enumerate(handles)]))(handles)
    footer = append(_block([])) + append(_block(entries))
    return bytes(out) + footer.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)


def test_keys_that_expand_beyond_the_index(tmp_path):
    """Prefix compression: 30,000 keys of 100 kB each from a 700 kB index."""
    value = _entry(1, (0,))
    entries = [(0, b"", _bundle_header()), (0, b"k" * 100_000, value)]
    entries += [(100_000, i.to_bytes(2, "big"), value) for i in range(1, 30_000)]
    prefix = tmp_path / "keys"
    pathlib.Path(f"{prefix}.index").write_bytes(_sstable_of_blocks([_block(entries)]))
    pathlib.Path(f"{prefix}.data-00000-of-00001").write_bytes(b"")
    with fails_fast(re.escape(f"{prefix}.index") + ".*key"):
        TFCheckpoint(prefix)


def test_index_naming_one_block_many_times(tmp_path):
    """10,000 index entries naming the same 100 kB block: 1 GB to check and parse."""
    block = _block([(0, b"", _bundle_header()), (0, b"x", _entry(1, (0,)) + _proto(
        (15, bytes(100_000))))])
    prefix = tmp_path / "blocks"
    index = _sstable_of_blocks([block], lambda handles: [(0, b"x" + i.to_bytes(2, "big"),
                                                          handles[0]) for i in range(10_000)])
    pathlib.Path(f"{prefix}.index").write_bytes(index)
    pathlib.Path(f"{prefix}.data-00000-of-00001").write_bytes(b"")
    with fails_fast(re.escape(f"{prefix}.index") + ".*block"):
        TFCheckpoint(prefix)


@pytest.mark.parametrize("entry", [
    _proto((1, 1), (2, 5)),
    _proto((1, b"float"), (2, b"")),
    _proto((1, 1), (2, _proto((2, 7)))),
    _proto((1, 1), (7, 3)),
    _proto((1, 1), (7, _proto((1, 4)))),
    _proto((1, 1)) + _varint(2 << 3 | 3),
    _proto((1, 1), (4, b"\x01")),
], ids=["shape a number", "dtype bytes", "dimension a number", "slice a number",
        "extent a number", "wire type 3", "offset bytes"])
def test_malformed_wire_types(tmp_path, entry):
    """Fields of the wrong wire type raised TypeError (or went unnoticed)."""
    prefix = _write_records(tmp_path / "wire", [(b"x", entry)], bytes(16))
    with fails_fast(mentions(f"{prefix}.index", "'x'")):
        TFCheckpoint(prefix)


@pytest.mark.parametrize("header", [
    _proto((1, 1), (3, 5)),
    _proto((1, b"\x01")),
    _proto((1, 1), (2, b"big")),
], ids=["version a number", "num_shards bytes", "endianness bytes"])
def test_malformed_bundle_header(tmp_path, header):
    prefix = _write_records(tmp_path / "header", [(b"x", _entry(1, (0,)))], header=header)
    with fails_fast(re.escape(f"{prefix}.index") + ".*header"):
        TFCheckpoint(prefix)


def test_keys_out_of_order(tmp_path):
    entries = [(0, b"", _bundle_header()), (0, b"b", _entry(1, (0,))), (0, b"a", _entry(1, (0,)))]
    prefix = tmp_path / "order"
    pathlib.Path(f"{prefix}.index").write_bytes(_sstable_of_blocks([_block(entries)]))
    pathlib.Path(f"{prefix}.data-00000-of-00001").write_bytes(b"")
    with fails_fast(re.escape(f"{prefix}.index") + ".*order"):
        TFCheckpoint(prefix)


@pytest.mark.parametrize("key", [b"\xff\xfe", b"\x00\xc3(\x00\x01\x01\x01\x80\x81",
                                 b"\x00v\x00\x01\x01\x01\x80\x81extra"],
                         ids=["name not UTF-8", "slice of a name not UTF-8", "slice key too long"])
def test_bad_keys(tmp_path, key):
    prefix = _write_records(tmp_path / "keys", [(key, _entry(1, (1,)))], bytes(16))
    with fails_fast(mentions(f"{prefix}.index")):
        TFCheckpoint(prefix)


# --------------------------------------------------------------------------
# Writing


def test_written_checkpoints_read_in_tensorflow(tmp_path):
    """`write_checkpoint` makes what TensorFlow reads (checksums verified) and what
    `TFCheckpoint` reads, over several index blocks, every dtype a model holds."""
    tf = pytest.importorskip("tensorflow")
    import ml_dtypes

    rng = np.random.default_rng(0)
    tensors = {f"bert/encoder/layer_{i}/attention/self/query/kernel":
               rng.normal(size=(4, 3)).astype(np.float32) for i in range(300)}
    tensors.update({"ints": np.arange(6, dtype=np.int32).reshape(2, 3),
                    "half": rng.normal(size=(5,)).astype(np.float16),
                    "brain": rng.normal(size=(2, 2)).astype(ml_dtypes.bfloat16),
                    "scalar": np.float32(2.5), "empty": np.zeros((0, 4), np.float32)})
    prefix = tmp_path / "out" / "model.ckpt"
    tf_checkpoint.write_checkpoint(prefix, tensors)
    assert len(list((tmp_path / "out").iterdir())) == 3  # index, data, checkpoint: no leftovers
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(prefix)
    reader = tf.train.load_checkpoint(str(prefix))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(tensors)
    ours = TFCheckpoint(prefix)
    for name, value in tensors.items():
        want = np.asarray(value)
        assert reader.get_tensor(name).tobytes() == want.tobytes(), name
        if want.dtype == ml_dtypes.bfloat16:  # read back widened to float32
            np.testing.assert_array_equal(ours[name], want.astype(np.float32))
        else:
            assert ours[name].dtype == want.dtype and ours[name].tobytes() == want.tobytes()


def test_a_failed_write_leaves_nothing(tmp_path):
    def tensors():
        yield "first", np.zeros(3, np.float32)
        raise KeyboardInterrupt  # interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        tf_checkpoint.write_checkpoint(tmp_path / "model.ckpt", tensors())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="'strings': dtype <U1 has no TensorFlow"):
        tf_checkpoint.write_checkpoint(tmp_path / "model.ckpt", {"strings": np.array(["a"])})
    with pytest.raises(ValueError, match="tensor names must be non-empty strings"):
        tf_checkpoint.write_checkpoint(tmp_path / "model.ckpt", [("", np.zeros(1))])
    assert list(tmp_path.iterdir()) == []
