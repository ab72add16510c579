"""Tests for kerasformer.convert.safetensors_checkpoint, the numpy-only safetensors reader.

`tests/fixtures/torch/tensors.safetensors` was written by `safetensors.torch`
from the same state dict as the torch fixtures (tools/make_torch_fixtures.py),
so it is checked against the same `expected.npz`. Random files are written
at test time with the safetensors package (skipped where it is missing);
damaged headers are written by `_write`, byte by byte.
"""
import json
import pathlib
import re
import struct

import numpy as np
import pytest

from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint

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


@pytest.mark.parametrize("header, data, message", [
    ({"x": {**ENTRY, "data_offsets": [0, 32]}}, bytes(16), "stored at bytes 0..32 of the data, "
                                                           "which has 16"),
    ({"x": {**ENTRY, "data_offsets": [1 << 40, (1 << 40) + 16]}}, bytes(16), "stored at bytes"),
    ({"x": {**ENTRY, "data_offsets": [8, 4]}}, bytes(16), "stored at bytes 8..4"),
    ({"x": {**ENTRY, "data_offsets": [-16, 0]}}, bytes(16), "bad shape .* or data_offsets"),
    ({"x": {**ENTRY, "shape": [2, 3]}}, bytes(16), "has 16 bytes, but shape .* needs 24"),
    ({"x": {**ENTRY, "shape": [2, "2"]}}, bytes(16), "bad shape"),
    ({"x": {**ENTRY, "data_offsets": [0]}}, bytes(16), "bad header entry"),
    ({"x": {"dtype": "F32", "shape": [4]}}, bytes(16), "bad header entry"),
    ({"x": ENTRY, "__metadata__": ["a"]}, bytes(16), "__metadata__ is not"),
    (b'{"x": ', bytes(16), "Expecting value"),
    (b'[1, 2]', b"", "not a JSON object"),
    (b"\xff\xfe{}", b"", "utf-8"),
    (b'{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "x": {}}', bytes(4),
     "appears twice"),
])
def test_bad_header(tmp_path, header, data, message):
    path = _write(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid safetensors file")
                       + ".*" + message):
        SafetensorsCheckpoint(path)


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


def test_unknown_dtype_names_the_tensor(tmp_path):
    path = _write(tmp_path / "f4.safetensors",
                  {"packed": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, bytes(2))
    checkpoint = SafetensorsCheckpoint(path)
    assert checkpoint.shape("packed") == (4,)
    with pytest.raises(NotImplementedError, match="'packed'.*F4"):
        checkpoint.dtype("packed")
