"""Tests for kerasformer.convert.safetensors_checkpoint, the reader on top of `safe_open`.

`tests/fixtures/torch/tensors.safetensors` was written by `safetensors.torch`
from the same state dict as the torch fixtures (tools/make_torch_fixtures.py),
so it is checked against the same `expected.npz`. Random files are written
at test time with the safetensors package; damaged headers are written by
`_write`, byte by byte.
"""
import json
import os
import pathlib
import re
import struct

import numpy as np
import pytest
import safetensors

from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint
from tests.convert.hostile import fails_fast, mentions

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "torch"
FIXTURE = FIXTURES / "tensors.safetensors"


def _write(path, header, data=b"", header_size=None):
    """A safetensors file from a header (dict, or raw bytes) and a data buffer."""
    if isinstance(header, dict):
        header = json.dumps(header).encode()
    size = len(header) if header_size is None else header_size
    path.write_bytes(struct.pack("<Q", size) + header + data)
    return path


def test_fixture_matches_expected():
    checkpoint = SafetensorsCheckpoint(FIXTURE)
    with np.load(FIXTURES / "expected.npz") as expected:
        assert sorted(checkpoint) == sorted(expected.files)
        for name in expected.files:
            want, got = expected[name], checkpoint[name]
            assert got.dtype == want.dtype == checkpoint.dtype(name), name
            assert got.shape == want.shape == checkpoint.shape(name), name
            assert got.tobytes() == want.tobytes(), name


def test_mapping_api():
    checkpoint = SafetensorsCheckpoint(str(FIXTURE))
    assert len(checkpoint) == 23 and list(checkpoint.keys()) == list(checkpoint)
    assert checkpoint.variables() == [(name, checkpoint.shape(name)) for name in checkpoint]
    assert "dense.weight" in checkpoint and "nope" not in checkpoint
    assert checkpoint.get("nope") is None
    assert checkpoint.metadata == {"format": "pt"}
    assert checkpoint.dtype("dtypes.bfloat16") == np.float32
    assert checkpoint["scalar.float32"].shape == () and checkpoint["scalar.float32"] == 2.5
    assert checkpoint["empty"].shape == (0, 3)
    assert checkpoint["dense.weight"].flags.writeable
    assert "23 tensors" in repr(checkpoint)


def test_matches_the_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    tensors = {}
    for index, dtype in enumerate(["f8", "f4", "f2", "i8", "i4", "i2", "i1",
                                   "u8", "u4", "u2", "u1", "?"] * 2):
        shape = tuple(rng.integers(0, 5, rng.integers(0, 4)))
        if dtype == "?":
            array = rng.random(shape) < 0.5
        elif dtype.startswith("f"):
            array = rng.standard_normal(shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        tensors[f"layer.{index}.{dtype}"] = np.asarray(array)
    tensors["big"] = rng.standard_normal((256, 1024)).astype(np.float32)
    path = tmp_path / "random.safetensors"
    safetensors_numpy.save_file(tensors, path, metadata={"source": "test"})
    checkpoint = SafetensorsCheckpoint(path)
    want = safetensors_numpy.load_file(path)
    assert sorted(checkpoint) == sorted(want) == sorted(tensors)
    assert checkpoint.metadata == {"source": "test"}
    for name, array in want.items():
        assert checkpoint[name].dtype == array.dtype == checkpoint.dtype(name), name
        assert checkpoint[name].shape == array.shape == checkpoint.shape(name), name
        assert checkpoint[name].tobytes() == array.tobytes(), name


def test_bfloat16_and_float8_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    values = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file({"bf16": values.bfloat16(),
                                 "float8": values.to(torch.float8_e4m3fn)}, path)
    checkpoint = SafetensorsCheckpoint(path)
    assert checkpoint["bf16"].tobytes() == values.bfloat16().float().numpy().tobytes()
    assert checkpoint.shape("float8") == (5, 7)
    with pytest.raises(NotImplementedError, match="'float8'.*F8_E4M3"):
        checkpoint["float8"]


def test_header_padding_and_no_metadata(tmp_path):
    header = json.dumps({"x": {"dtype": "I16", "shape": [2], "data_offsets": [0, 4]}})
    path = _write(tmp_path / "padded.safetensors", (header + " " * 7).encode(),
                  np.array([-3, 7], "<i2").tobytes())
    checkpoint = SafetensorsCheckpoint(path)
    assert checkpoint.metadata == {}
    np.testing.assert_array_equal(checkpoint["x"], [-3, 7])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.safetensors"))):
        SafetensorsCheckpoint(tmp_path / "nope.safetensors")


def test_misspelled_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean 'dense.weight'"):
        SafetensorsCheckpoint(FIXTURE)["dense.wieght"]


ENTRY = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


# Checked by the safetensors package when the file is opened; its SafetensorError comes
# back as a ValueError naming the file. The fragments are the package's words (0.8).
@pytest.mark.parametrize("header, data, message", [
    ({"x": {**ENTRY, "data_offsets": [0, 32]}}, bytes(16), "invalid shape, data type, or offset"),
    ({"x": {**ENTRY, "data_offsets": [1 << 40, (1 << 40) + 16]}}, bytes(16), "invalid offset"),
    ({"x": {**ENTRY, "data_offsets": [8, 4]}}, bytes(16), "invalid offset"),
    ({"x": {**ENTRY, "data_offsets": [-16, 0]}}, bytes(16), "invalid value"),
    ({"x": {**ENTRY, "shape": [2, 3]}}, bytes(16), "invalid shape, data type, or offset"),
    ({"x": {**ENTRY, "shape": [2, "2"]}}, bytes(16), "invalid type"),
    ({"x": {**ENTRY, "shape": [True, 4]}}, bytes(16), "invalid type"),
    ({"x": {**ENTRY, "data_offsets": [0]}}, bytes(16), "invalid length"),
    ({"x": {"dtype": "F32", "shape": [4]}}, bytes(16), "missing field"),
    ({"x": {**ENTRY, "dtype": "F33"}}, bytes(16), "unknown variant"),
    ({"x": ENTRY, "__metadata__": ["a"]}, bytes(16), "invalid type"),
    ({"x": ENTRY, "y": ENTRY}, bytes(16), "invalid offset for tensor"),
    ({"x": ENTRY, "y": {**ENTRY, "data_offsets": [8, 24]}}, bytes(24), "invalid offset"),
    ({"x": {**ENTRY, "data_offsets": [4, 20]}}, bytes(20), "invalid offset"),
    ({"x": ENTRY}, bytes(20), "not fully covered"),
    (b'{"x": ', bytes(16), "EOF while parsing"),
    (b'[1, 2]', b"", "invalid type"),
    (b"\xff\xfe{}", b"", "invalid UTF-8"),
], ids=["past the data", "far past the data", "reversed", "negative", "size != shape x dtype",
        "string in shape", "bool in shape", "one offset", "no offsets", "unknown dtype",
        "metadata a list", "same range twice", "overlap", "gap", "trailing bytes",
        "cut JSON", "JSON list", "not UTF-8"])
def test_bad_header_found_by_the_package(tmp_path, header, data, message):
    path = _write(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid safetensors file: ")
                       ) as raised:
        SafetensorsCheckpoint(path)
    assert isinstance(raised.value.__cause__, safetensors.SafetensorError)
    assert str(raised.value.__cause__) in str(raised.value)
    if safetensors.__version__.startswith("0.8."):  # the words change between versions
        assert message in str(raised.value)


def test_safetensor_error_is_wrapped_naming_the_file(tmp_path):
    path = _write(tmp_path / "short.safetensors", {"x": ENTRY}, bytes(12))
    with pytest.raises(ValueError) as raised:
        SafetensorsCheckpoint(path)
    error = raised.value
    assert type(error) is ValueError and str(path) in str(error)
    assert isinstance(error.__cause__, safetensors.SafetensorError)
    assert str(error) == f"{path} is not a valid safetensors file: {error.__cause__}"


def test_duplicate_names(tmp_path):
    """The package keeps one of two entries with the same name; we refuse the file."""
    entry = '{"dtype": "F32", "shape": [], "data_offsets": [0, 4]}'
    path = _write(tmp_path / "twice.safetensors", f'{{"x": {entry}, "x": {entry}}}'.encode(),
                  bytes(4))
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid safetensors file: ")
                       + "a name appears twice in .*'x', 'x'"):
        SafetensorsCheckpoint(path)


def test_bfloat16_round_trip(tmp_path):
    """bfloat16 comes back as the float32 it stands for, bit for bit, with or without ml_dtypes."""
    want = np.array([[1.0, -2.5, 3.140625, -0.0], [np.inf, -np.inf, 1e-40, 3.3895314e38],
                     [65280.0, -1.0 / 1024, 0.0, 2.0 ** -133]], np.float32)
    want = (want.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exactly bfloat16
    bits = (want.view(np.uint32) >> 16).astype("<u2")
    nan_bits = np.array([0x7FC0, 0xFFC1], "<u2")  # a quiet NaN and a negative one with payload
    header = {"w": {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 24]},
              "nan": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]}}
    path = _write(tmp_path / "bf16.safetensors", header, bits.tobytes() + nan_bits.tobytes())
    checkpoint = SafetensorsCheckpoint(path)
    assert checkpoint.dtype("w") == np.float32 and checkpoint.shape("w") == (3, 4)
    got = checkpoint["w"]
    assert got.dtype == np.float32 and got.shape == (3, 4) and got.flags.writeable
    assert got.tobytes() == want.tobytes()
    assert (checkpoint["nan"].view(np.uint32) >> 16).tolist() == [0x7FC0, 0xFFC1]

    ml_dtypes = pytest.importorskip("ml_dtypes")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "ml_dtypes.safetensors"
    safetensors_numpy.save_file({"w": want.astype(ml_dtypes.bfloat16)}, path)
    assert SafetensorsCheckpoint(path)["w"].tobytes() == want.tobytes()


def test_header_size_beyond_the_file(tmp_path):
    """A header claiming more bytes than the file holds, e.g. a download cut in the header."""
    good = _write(tmp_path / "good.safetensors", {"x": ENTRY}, bytes(16)).read_bytes()
    for claimed in [len(good) - 7, len(good), 1 << 20, 99_999_999]:
        path = tmp_path / f"claims-{claimed}.safetensors"
        path.write_bytes(struct.pack("<Q", claimed) + good[8:])
        with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid safetensors file: ")
                           ) as raised:
            SafetensorsCheckpoint(path)
        assert isinstance(raised.value.__cause__, safetensors.SafetensorError), claimed


@pytest.mark.parametrize("contents", [b"", b"\x10\x00", struct.pack("<Q", 1 << 62) + b"{}",
                                      struct.pack("<Q", 3) + b"{}"],
                         ids=["empty", "short", "huge header size", "header past the end"])
def test_header_size_outside_the_file(tmp_path, contents):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        SafetensorsCheckpoint(path)


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.9, -1], ids=lambda keep: f"keep {keep}")
def test_truncated_fixture(tmp_path, keep):
    data = FIXTURE.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep if keep < 0 else int(len(data) * keep)])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        SafetensorsCheckpoint(path)


def test_file_shrunk_after_opening(tmp_path):
    path = _write(tmp_path / "x.safetensors", {"x": ENTRY}, bytes(16))
    checkpoint = SafetensorsCheckpoint(path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match=re.escape(f"{path} is truncated: 'x'")):
        checkpoint["x"]


@pytest.mark.parametrize("name", ["x", "b"])
def test_file_rewritten_after_opening(tmp_path, name):
    """Same size, other contents: the header read at opening no longer describes the file."""
    header = {"x": ENTRY, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]}}
    path = _write(tmp_path / "x.safetensors", header, bytes(20))
    checkpoint = SafetensorsCheckpoint(path)
    stat = path.stat()
    _write(path, {"b": header["b"], "x": {**ENTRY, "data_offsets": [4, 20]}}, bytes(20))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ValueError, match=re.escape(f"{path} changed since it was opened")):
        checkpoint[name]


def test_unknown_dtype_names_the_tensor(tmp_path):
    path = _write(tmp_path / "f4.safetensors",
                  {"packed": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, bytes(2))
    checkpoint = SafetensorsCheckpoint(path)
    assert checkpoint.shape("packed") == (4,)
    with pytest.raises(NotImplementedError, match="'packed'.*F4"):
        checkpoint.dtype("packed")


# --------------------------------------------------------------------------
# Hostile headers the package lets through, or refuses in ways that must name the file


@pytest.mark.parametrize("shape", [[0, 1 << 63], [0, 1 << 62], [1 << 62, 0, 4]],
                         ids=["dimension past int64", "empty, 2**64 bytes", "empty, 2**65 bytes"])
def test_empty_tensor_of_absurd_shape(tmp_path, shape):
    """Zero elements, so zero bytes: the package accepts it, numpy cannot make the array."""
    path = _write(tmp_path / "absurd.safetensors",
                  {"x": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}})
    with fails_fast(mentions(path, "'x'")):
        checkpoint = SafetensorsCheckpoint(path)
        checkpoint["x"]


def test_header_nested_100000_deep(tmp_path):
    path = _write(tmp_path / "deep.safetensors",
                  b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with fails_fast(mentions(path)):
        SafetensorsCheckpoint(path)
