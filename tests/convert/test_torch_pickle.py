"""Tests for kerasformer.convert.torch_pickle, the numpy-only PyTorch checkpoint reader.

The fixtures in tests/fixtures/torch/ were written by real torch
(tools/make_torch_fixtures.py): one state dict as `zip.bin` and `legacy.bin`,
its values in `expected.npz`, and two checkpoints whose pickles run a shell
command when trusted. The tests comparing with `torch.load` on freshly
written random files skip where torch is not installed. What torch no longer
writes (legacy storage views, the old `_rebuild_tensor`, big-endian zip
files) and hostile pickles are written by this file itself: `_dumps`
assembles pickle opcodes from a small description.
"""
import copyreg
import io
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys
import tarfile
import textwrap
import warnings
import zipfile
from typing import NamedTuple

import numpy as np
import pytest

from kerasformer.convert import torch_pickle
from kerasformer.convert.torch_pickle import TorchCheckpoint
from tests.convert.hostile import bounded, fails_fast, mentions

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "torch"
ZIP, LEGACY = FIXTURES / "zip.bin", FIXTURES / "legacy.bin"
MARKER = pathlib.Path("/tmp/kerasformer_pwned")  # what the malicious fixtures would create


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURES / "expected.npz") as arrays:
        return {name: arrays[name] for name in arrays.files}


# --------------------------------------------------------------------------
# The fixtures torch wrote


@pytest.mark.parametrize("path", [ZIP, LEGACY], ids=["zip", "legacy"])
def test_fixture_matches_expected(path, expected):
    checkpoint = TorchCheckpoint(path)
    assert list(checkpoint) == list(expected)  # the state dict's order, flattened
    assert checkpoint.variables() == [(name, array.shape) for name, array in expected.items()]
    for name, want in expected.items():
        got = checkpoint[name]
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous, name
        assert got.dtype == want.dtype == checkpoint.dtype(name), name
        assert got.shape == want.shape == checkpoint.shape(name), name
        assert got.tobytes() == want.tobytes(), name  # NaN and -0.0 included


def test_mapping_api():
    checkpoint = TorchCheckpoint(ZIP)
    assert checkpoint.format == "zip" and TorchCheckpoint(str(LEGACY)).format == "legacy"
    assert len(checkpoint) == 23 and list(checkpoint.keys()) == list(checkpoint)
    assert "dense.weight" in checkpoint and "nope" not in checkpoint
    assert checkpoint.get("nope") is None
    assert checkpoint.dtype("dtypes.bfloat16") == np.float32
    assert checkpoint.dtype("dtypes.bool") == bool
    assert checkpoint["scalar.step"].shape == () and checkpoint["scalar.step"] == 123456
    assert checkpoint["empty"].shape == (0, 3)
    sliced = checkpoint["shared.sliced"]
    assert sliced.flags.writeable and sliced.base is None  # copied out of the storage
    np.testing.assert_array_equal(sliced, checkpoint["shared.base"][1:6:2, 2:7])
    np.testing.assert_array_equal(checkpoint["shared.transposed"], checkpoint["shared.base"].T)
    assert "23 tensors" in repr(checkpoint)


def test_nested_dicts_are_flattened_and_other_values_dropped():
    checkpoint = TorchCheckpoint(ZIP)
    assert [name for name in checkpoint if name.startswith("extra.")] == ["extra.inner.tensor"]


@pytest.mark.parametrize("name, refused", [
    ("malicious_zip.bin", "posix.system"),
    ("malicious_legacy.bin", "__builtin__.eval"),  # protocol 2 writes Python 2 names
])
def test_malicious_fixtures_are_refused(name, refused):
    MARKER.unlink(missing_ok=True)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"refusing to unpickle {refused}")):
        TorchCheckpoint(FIXTURES / name)
    assert not MARKER.exists()


# --------------------------------------------------------------------------
# Checkpoints written by hand


class G(NamedTuple):
    """A global, as the GLOBAL opcode names it."""
    module: str
    name: str


class Call(NamedTuple):
    function: object
    args: tuple


class Pid(NamedTuple):
    """A persistent id (BINPERSID)."""
    id: object


class Build(NamedTuple):
    """`obj` with `state` applied by the BUILD opcode."""
    obj: object
    state: object


def _ops(obj):
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        encoded = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
        return b"\x8a" + bytes([len(encoded)]) + encoded  # LONG1
    if isinstance(obj, str):
        return b"X" + struct.pack("<I", len(obj.encode())) + obj.encode()  # BINUNICODE
    if isinstance(obj, G):
        return f"c{obj.module}\n{obj.name}\n".encode()
    if isinstance(obj, Call):
        return _ops(obj.function) + _ops(tuple(obj.args)) + b"R"
    if isinstance(obj, Pid):
        return _ops(obj.id) + b"Q"
    if isinstance(obj, Build):
        return _ops(obj.obj) + _ops(obj.state) + b"b"
    if isinstance(obj, tuple):
        return b"(" + b"".join(map(_ops, obj)) + b"t"
    if isinstance(obj, list):
        return b"](" + b"".join(map(_ops, obj)) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_ops(key) + _ops(value) for key, value in obj.items()) + b"u"
    raise TypeError(type(obj))


def _dumps(obj):
    """A protocol 2 pickle of `obj`, built from the classes above and plain values."""
    return b"\x80\x02" + _ops(obj) + b"."


def _storage(storage_type, key, numel, view=False):
    """The persistent id of a storage; legacy ones (view given) carry view metadata."""
    pid = ("storage", G("torch", storage_type), key, "cpu", numel)
    return Pid(pid if view is False else pid + (view,))


def _tensor(storage, offset, shape, strides, rebuild="_rebuild_tensor_v2"):
    args = (storage, offset, shape, strides)
    if rebuild == "_rebuild_tensor_v2":
        args += (False, Call(G("collections", "OrderedDict"), ()))
    return Call(G("torch._utils", rebuild), args)


def _write_zip(path, obj, storages, byteorder="little", compression=zipfile.ZIP_STORED):
    """A zip checkpoint: the pickle of `obj` (or `obj` itself, if bytes), then {key: bytes}
    as storages."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", obj if isinstance(obj, bytes) else _dumps(obj))
        if byteorder:
            archive.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def _write_legacy(path, obj, storages):
    """A legacy checkpoint: the pickles (`obj`'s, or `obj` itself if bytes), then
    {key: (element count, bytes)}."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 8}}
    parts = [pickle.dumps(value, protocol=2)
             for value in (0x1950A86A20F9469CFC6C, 1001, sys_info)]
    parts += [obj if isinstance(obj, bytes) else _dumps(obj),
              pickle.dumps(list(storages), protocol=2)]
    for count, data in storages.values():
        parts += [struct.pack("<q", count), data]
    path.write_bytes(b"".join(parts))
    return path


FLOATS = np.arange(12, dtype="<f4")


def test_hand_written_zip(tmp_path):
    storage = _storage("FloatStorage", "0", 12)
    path = _write_zip(tmp_path / "model.bin", {
        "matrix": _tensor(storage, 0, (3, 4), (4, 1)),
        "column": _tensor(storage, 1, (3,), (4,)),
        "old": _tensor(storage, 2, (2, 2), (1, 2), rebuild="_rebuild_tensor"),
        "parameter": Call(G("torch._utils", "_rebuild_parameter"),
                          (_tensor(storage, 4, (4,), (1,)), True, {})),
        "broadcast": _tensor(storage, 8, (2, 3), (0, 1)),
    }, {"0": FLOATS.tobytes()})
    checkpoint = TorchCheckpoint(path)
    values = FLOATS.reshape(3, 4)
    np.testing.assert_array_equal(checkpoint["matrix"], values)
    np.testing.assert_array_equal(checkpoint["column"], values[:, 1])
    np.testing.assert_array_equal(checkpoint["old"], [[2, 4], [3, 5]])
    np.testing.assert_array_equal(checkpoint["parameter"], [4, 5, 6, 7])
    np.testing.assert_array_equal(checkpoint["broadcast"], [[8, 9, 10]] * 2)


def test_legacy_storage_views(tmp_path):
    """Early torch saved views of storages: offset and size in elements of the root."""
    root = lambda view: _storage("LongStorage", "root", 10, view)  # noqa: E731
    path = _write_legacy(tmp_path / "views.bin", {
        "whole": _tensor(root(None), 0, (10,), (1,)),
        "view": _tensor(root(("view", 3, 5)), 1, (2, 2), (2, 1)),  # root elements 4..7
        "other": _tensor(_storage("FloatStorage", "other", 2, None), 0, (2,), (1,)),
    }, {"root": (10, np.arange(10, dtype="<i8").tobytes()),  # "other" follows its 80 bytes
        "other": (2, np.array([1.5, -2], "<f4").tobytes())})
    checkpoint = TorchCheckpoint(path)
    assert checkpoint.format == "legacy"
    np.testing.assert_array_equal(checkpoint["whole"], np.arange(10))
    np.testing.assert_array_equal(checkpoint["view"], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(checkpoint["other"], [1.5, -2])
    assert checkpoint["whole"].dtype == np.int64


def test_legacy_view_past_its_root(tmp_path):
    path = _write_legacy(tmp_path / "views.bin", {
        "view": _tensor(_storage("FloatStorage", "0", 4, ("v", 2, 3)), 0, (3,), (1,)),
    }, {"0": (4, bytes(16))})
    with pytest.raises(ValueError, match="bad view"):
        TorchCheckpoint(path)


def test_big_endian_zip_is_byte_swapped(tmp_path):
    values = {"float": np.linspace(-1, 1, 6).astype(np.float32).reshape(2, 3),
              "long": np.array([-2, 2**40], np.int64),
              "bfloat16": np.array([1.5, -3.25], np.float32)}
    raw = {"float": values["float"].astype(">f4").tobytes(),
           "long": values["long"].astype(">i8").tobytes(),
           "bfloat16": (values["bfloat16"].view(np.uint32) >> 16).astype(">u2").tobytes()}
    storage_types = {"float": "FloatStorage", "long": "LongStorage",
                     "bfloat16": "BFloat16Storage"}
    obj = {name: _tensor(_storage(storage_types[name], name, value.size), 0, value.shape,
                         tuple(s // value.itemsize for s in value.strides))
           for name, value in values.items()}
    checkpoint = TorchCheckpoint(_write_zip(tmp_path / "big.bin", obj, raw, byteorder="big"))
    for name, value in values.items():
        assert checkpoint[name].dtype == value.dtype and checkpoint[name].dtype.isnative
        np.testing.assert_array_equal(checkpoint[name], value)


def test_compressed_zip_members(tmp_path, expected):
    path = tmp_path / "deflated.bin"
    with zipfile.ZipFile(ZIP) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info))
    checkpoint = TorchCheckpoint(path)
    for name, want in expected.items():
        assert checkpoint[name].tobytes() == want.tobytes(), name


def test_missing_byteorder_means_little_endian(tmp_path):
    path = _write_zip(tmp_path / "old.bin", {"x": _tensor(_storage("FloatStorage", "0", 12), 0,
                                                          (12,), (1,))},
                      {"0": FLOATS.tobytes()}, byteorder=None)
    np.testing.assert_array_equal(TorchCheckpoint(path)["x"], FLOATS)


def test_unsupported_dtype_names_the_tensor(tmp_path):
    path = _write_zip(tmp_path / "complex.bin", {
        "weights.complex": _tensor(_storage("ComplexFloatStorage", "0", 3), 0, (3,), (1,)),
    }, {"0": bytes(24)})
    checkpoint = TorchCheckpoint(path)
    assert checkpoint.shape("weights.complex") == (3,)
    with pytest.raises(NotImplementedError, match="'weights.complex'.*complex64"):
        checkpoint["weights.complex"]


# --------------------------------------------------------------------------
# Hostile pickles


GOOD = _tensor(_storage("FloatStorage", "0", 12), 0, (12,), (1,))


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("__builtin__", "getattr"), ("os", "system"), ("posix", "system"),
    ("subprocess", "Popen"), ("torch", "load"), ("torch", "Tensor"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("numpy.core.multiarray", "_reconstruct"), ("collections", "OrderedDict.fromkeys"),
    ("collections", "defaultdict"), ("kerasformer.convert.torch_pickle", "_read_at"),
])
@pytest.mark.parametrize("writer", [_write_zip, _write_legacy], ids=["zip", "legacy"])
def test_refuses_every_other_global(tmp_path, writer, module, name):
    if writer is _write_zip:
        weight, storages = GOOD, {"0": FLOATS.tobytes()}
    else:
        weight = _tensor(_storage("FloatStorage", "0", 12, None), 0, (12,), (1,))
        storages = {"0": (12, FLOATS.tobytes())}
    obj = {"weight": weight, "bias": Call(G(module, name), ("touch /tmp/kerasformer_pwned",))}
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{module}.{name}")):
        TorchCheckpoint(writer(tmp_path / "evil.bin", obj, storages))


def test_refusal_in_the_legacy_preamble(tmp_path):
    path = tmp_path / "evil.bin"
    path.write_bytes(_dumps(Call(G("builtins", "exec"), ("print('pwned')",))))
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.exec"):
        TorchCheckpoint(path)


@pytest.mark.parametrize("pid", [
    ("module", G("torch", "FloatStorage"), "0", "cpu", 12),
    ("storage", "FloatStorage", "0", "cpu", 12),
    ("storage", G("torch", "FloatStorage"), 0, "cpu", 12),
    ("storage", G("torch", "FloatStorage"), "0", "cpu", -1),
    ("storage", G("torch", "FloatStorage"), "0", "cpu"),
    "storage",
], ids=["module", "type as str", "int key", "negative numel", "short", "not a tuple"])
def test_refuses_malformed_persistent_ids(tmp_path, pid):
    path = _write_zip(tmp_path / "pid.bin", {"x": _tensor(Pid(pid), 0, (12,), (1,))},
                      {"0": FLOATS.tobytes()})
    with pytest.raises(pickle.UnpicklingError, match="refusing persistent id"):
        TorchCheckpoint(path)


@pytest.mark.parametrize("target", [
    G("torch", "FloatStorage"), G("torch._utils", "_rebuild_tensor_v2"), G("torch", "float32"),
    G("collections", "OrderedDict"), GOOD,
], ids=["storage type", "rebuild function", "dtype", "OrderedDict class", "tensor"])
@pytest.mark.parametrize("state", [
    {"dtype": "evil"}, (None, {"function": "evil", "__defaults__": (1,)}),
], ids=["dict state", "slot state"])
def test_build_cannot_alter_the_stand_ins(tmp_path, target, state):
    """BUILD sets attributes: on the allowed globals it must fail, not stick."""
    allowed = dict(torch_pickle._ALLOWED_GLOBALS)
    path = _write_zip(tmp_path / "build.bin", {"x": GOOD, "y": Build(target, state)},
                      {"0": FLOATS.tobytes()})
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TorchCheckpoint(path)
    assert torch_pickle._ALLOWED_GLOBALS == allowed
    np.testing.assert_array_equal(TorchCheckpoint(ZIP)["dtypes.float16"],
                                  TorchCheckpoint(LEGACY)["dtypes.float16"])


def test_bad_rebuild_arguments(tmp_path):
    for bad in [_tensor("not a storage", 0, (1,), (1,)),
                _tensor(GOOD.args[0], 0, (3,), (1, 1)),
                _tensor(GOOD.args[0], -1, (3,), (1,)),
                Call(G("torch._utils", "_rebuild_parameter"), ("not a tensor", True, {})),
                Call(G("torch._utils", "_rebuild_tensor_v2"), (GOOD.args[0],))]:
        path = _write_zip(tmp_path / "bad.bin", {"x": bad}, {"0": FLOATS.tobytes()})
        with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid PyTorch")):
            TorchCheckpoint(path)


def test_dict_nested_in_itself(tmp_path):
    path = tmp_path / "cycle.bin"
    # {}, memoize it, 'a', fetch it back, SETITEM: d = {"a": d}
    path.write_bytes(_dumps(0x1950A86A20F9469CFC6C) + _dumps(1001) + _dumps({})
                     + b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s." + _dumps([]))
    with pytest.raises(ValueError, match="appears twice"):
        TorchCheckpoint(path)


# --------------------------------------------------------------------------
# Damaged and unexpected files


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.bin"))):
        TorchCheckpoint(tmp_path / "nope.bin")


def test_misspelled_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean 'embeddings.weight'"):
        TorchCheckpoint(ZIP)["embedings.weight"]


@pytest.mark.parametrize("source", [ZIP, LEGACY], ids=["zip", "legacy"])
@pytest.mark.parametrize("keep", [0, 0.05, 0.5, 0.9, -1], ids=lambda keep: f"keep {keep}")
def test_truncated_file(tmp_path, source, keep):
    data = source.read_bytes()
    path = tmp_path / source.name
    path.write_bytes(data[:keep if keep <= 0 else int(len(data) * keep)])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TorchCheckpoint(path)


def test_corrupt_zip_storage_fails_its_checksum(tmp_path, expected):
    data = bytearray(ZIP.read_bytes())
    needle = expected["dtypes.float64"].tobytes()
    position = data.find(needle)
    assert position >= 0 and data.count(needle) == 1
    data[position + 5] ^= 0x10
    path = tmp_path / "corrupt.bin"
    path.write_bytes(data)
    checkpoint = TorchCheckpoint(path)
    with pytest.raises(ValueError, match=r"'dtypes\.float64'.*checksum mismatch"):
        checkpoint["dtypes.float64"]
    np.testing.assert_array_equal(checkpoint["dense.bias"], expected["dense.bias"])


@pytest.mark.parametrize("contents, message", [
    (b"", "neither a zip archive nor a legacy"),
    (b"hello world, this is not a checkpoint", "neither a zip archive nor a legacy"),
    (bytes(range(256)) * 4, "neither a zip archive nor a legacy"),
    (_dumps({"weight": 3}), "neither a zip archive nor a legacy"),
    (b"PK\x03\x04" + bytes(100), "not a valid PyTorch checkpoint"),
])
def test_not_a_checkpoint(tmp_path, contents, message):
    path = tmp_path / "file.bin"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        TorchCheckpoint(path)


def test_tar_format_is_refused(tmp_path):
    path = tmp_path / "ancient.pt"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("sys_info")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"info"))
    with pytest.raises(ValueError, match="tar-based format"):
        TorchCheckpoint(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="data.pkl"):
        TorchCheckpoint(path)


@pytest.mark.parametrize("obj, message", [
    ({"epoch": 3, "config": {"name": "x"}}, "holds no tensors"),
    ([GOOD], "holds a list, not a state dict"),
    ({"x": _tensor(GOOD.args[0], 1, (12,), (1,))}, r"'x' runs past the end of its storage"),
    ({"x": _tensor(GOOD.args[0], 0, (4, 4), (3, 1))}, r"'x' runs past the end of its storage"),
    ({"x": _tensor(_storage("FloatStorage", "1", 2), 0, (2,), (1,))}, "no data for storage"),
    ({"x": _tensor(_storage("FloatStorage", "0", 20), 0, (2,), (1,))}, "has 48 bytes"),
])
def test_inconsistent_zip(tmp_path, obj, message):
    path = _write_zip(tmp_path / "bad.bin", obj, {"0": FLOATS.tobytes()})
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        TorchCheckpoint(path)


@pytest.mark.parametrize("storages, message", [
    ({"0": (11, FLOATS.tobytes())}, "has 11 elements, the pickle says 12"),
    ({"0": (12, FLOATS.tobytes()[:-1])}, "truncated: storage '0' ends at byte"),
    ({"0": (12, FLOATS.tobytes()), "9": (1, bytes(4))}, "'9' is unknown"),
    ({}, "no data for storage"),
])
def test_inconsistent_legacy(tmp_path, storages, message):
    obj = {"x": _tensor(_storage("FloatStorage", "0", 12, None), 0, (12,), (1,))}
    path = _write_legacy(tmp_path / "bad.bin", obj, storages)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        TorchCheckpoint(path)


def test_reading_does_not_import_torch():
    script = textwrap.dedent(f"""
        import importlib.abc, sys

        # SafetensorsCheckpoint reads through the safetensors package (a core dependency)
        # but widens bfloat16 itself, without ml_dtypes.
        BLOCKED = {{"torch", "keras", "tensorflow", "jax", "ml_dtypes"}}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ImportError(name + " is blocked in this test")

        sys.meta_path.insert(0, Block())
        from kerasformer.convert.torch_pickle import TorchCheckpoint
        from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint
        for checkpoint in [TorchCheckpoint({str(ZIP)!r}), TorchCheckpoint({str(LEGACY)!r}),
                           SafetensorsCheckpoint({str(FIXTURES / "tensors.safetensors")!r})]:
            arrays = [checkpoint[name] for name in checkpoint]
            assert len(arrays) == 23
        assert not BLOCKED & set(sys.modules)
        print("read without torch")
    """)
    # A backend outside kerasformer's list: importing kerasformer then looks for none.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "numpy"})
    assert result.returncode == 0, result.stderr
    assert "read without torch" in result.stdout


# --------------------------------------------------------------------------
# Against torch.load, on random checkpoints written now


def _flatten(torch, tree, prefix=""):
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flatten(torch, value, name)
        elif isinstance(value, torch.Tensor):
            yield name, value


def _random_state(torch, seed):
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    state = {}
    for index in range(20):
        shape = tuple(rng.integers(1, 6, rng.integers(0, 4)))
        dtype = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                 torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool][index % 10]
        values = torch.randn(shape, generator=generator) * 100
        state[f"layer_{index}.{str(dtype)[6:]}"] = (values > 0 if dtype == torch.bool
                                                   else values.to(dtype))
    big = torch.randn(512, 768, generator=generator)
    state.update({
        "big": big,
        "big.T": big.T,
        "big.rows": big[100:300:3],
        "big.block": big[7:20, 300:400],
        "big.column": big[:, 5],
        "big.expanded": big[0, :4].expand(3, 4),
        "half.T": torch.randn(6, 5, generator=generator).half().T,
        "bf16.sliced": torch.randn(8, 8, generator=generator).bfloat16()[::2, 1::3],
        "linear": torch.nn.Linear(5, 3).state_dict(),
        "parameters": {"weight": torch.nn.Parameter(torch.randn(4, 2, generator=generator)),
                       "frozen": torch.nn.Parameter(torch.ones(3), requires_grad=False)},
    })
    return {"module": state, "epoch": 7, "args": {"lr": 0.1, "name": "run"}}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_matches_torch_load(tmp_path, zip_format, protocol):
    torch = pytest.importorskip("torch")
    path = tmp_path / "random.pt"
    torch.save(_random_state(torch, protocol), path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=zip_format)
    # torch's weights-only unpickler lacks protocol 4's framing; this file is our own.
    want = dict(_flatten(torch, torch.load(path, weights_only=protocol == 2)))
    checkpoint = TorchCheckpoint(path)
    assert list(checkpoint) == list(want)
    assert "module.linear.weight" in want and "module.parameters.weight" in want
    for name, tensor in want.items():
        tensor = tensor.detach()
        expected = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        got = checkpoint[name]
        assert got.dtype == expected.dtype == checkpoint.dtype(name), name
        assert got.shape == expected.shape == checkpoint.shape(name), name
        assert got.tobytes() == expected.tobytes(), name


def test_parameters_at_the_top_level(tmp_path):
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(4, 2)
    path = tmp_path / "parameters.pt"
    torch.save(dict(linear.named_parameters()), path)
    checkpoint = TorchCheckpoint(path)
    np.testing.assert_array_equal(checkpoint["weight"], linear.weight.detach().numpy())
    np.testing.assert_array_equal(checkpoint["bias"], linear.bias.detach().numpy())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_dtypes_beyond_numpy(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    state = {"complex": torch.zeros(2, 3, dtype=torch.complex64),
             "float8": torch.zeros(4, dtype=torch.float8_e4m3fn),  # _rebuild_tensor_v3
             "uint16": torch.tensor([0, 1, 65535]).to(torch.uint16),
             "float": torch.ones(2)}
    path = tmp_path / "exotic.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    checkpoint = TorchCheckpoint(path)
    assert checkpoint.shape("complex") == (2, 3) and checkpoint.shape("float8") == (4,)
    for name, dtype in [("complex", "complex64"), ("float8", "float8_e4m3fn")]:
        with pytest.raises(NotImplementedError, match=f"'{name}'.*torch.{dtype}"):
            checkpoint[name]
    assert checkpoint.dtype("uint16") == np.uint16
    np.testing.assert_array_equal(checkpoint["uint16"], [0, 1, 65535])
    np.testing.assert_array_equal(checkpoint["float"], [1, 1])


def test_quantized_tensors_are_listed_not_read(tmp_path):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized dtypes are deprecated
        quantized = torch.quantize_per_channel(torch.ones(2, 3), torch.tensor([0.1, 0.2]),
                                               torch.tensor([0, 1]), 0, torch.qint8)
    path = tmp_path / "quantized.pt"
    torch.save({"quantized": quantized, "float": torch.ones(2)}, path)
    checkpoint = TorchCheckpoint(path)
    assert checkpoint.shape("quantized") == (2, 3)
    with pytest.raises(NotImplementedError, match="'quantized'.*torch.qint8"):
        checkpoint["quantized"]
    np.testing.assert_array_equal(checkpoint["float"], [1, 1])


def test_zip_without_checksums(tmp_path):
    torch = pytest.importorskip("torch")
    config = pytest.importorskip("torch.utils.serialization").config.save
    path = tmp_path / "no_crc.pt"
    values = torch.randn(3, 4)
    config.compute_crc32 = False
    try:
        torch.save({"x": values}, path)
    finally:
        config.compute_crc32 = True
    with zipfile.ZipFile(path) as archive:
        assert not any(info.CRC for info in archive.infolist())
    np.testing.assert_array_equal(TorchCheckpoint(path)["x"], values.numpy())


def test_file_order_and_os_paths(tmp_path):
    torch = pytest.importorskip("torch")
    names = [f"z{index}" if index % 2 else f"a{index}" for index in range(10)]
    path = tmp_path / "order.pt"
    torch.save({name: torch.zeros(1) for name in names}, os.fspath(path))
    assert list(TorchCheckpoint(path)) == names


# --------------------------------------------------------------------------
# Hostile files: small files declaring much. Each must fail fast with a ValueError
# naming the file (see tests/convert/hostile.py), or load without the blow-up.

WRITERS = pytest.mark.parametrize("writer", [_write_zip, _write_legacy], ids=["zip", "legacy"])


def _floats(writer):
    """(persistent id, storages) of 12 floats for `writer`'s format."""
    if writer is _write_zip:
        return _storage("FloatStorage", "0", 12), {"0": FLOATS.tobytes()}
    return _storage("FloatStorage", "0", 12, None), {"0": (12, FLOATS.tobytes())}


def _pickle(body):
    """A protocol 2 pickle of raw opcodes."""
    return b"\x80\x02" + body + b"."


def _key(name):
    return b"X" + struct.pack("<I", len(name)) + name.encode()


@WRITERS
@pytest.mark.parametrize("shape, strides", [
    ((1 << 40,), (0,)), ((1 << 20, 1 << 20), (0, 0)), ((3, 1 << 38), (1, 0)),
], ids=["2**40 copies of one element", "2**40 in two axes", "3 x 2**38"])
def test_repeated_elements_beyond_the_file(tmp_path, writer, shape, strides):
    """Stride 0 repeats a stored element: the copy numpy made was terabytes."""
    storage, storages = _floats(writer)
    path = writer(tmp_path / "broadcast.bin", {"x": _tensor(storage, 0, shape, strides)},
                  storages)
    with fails_fast(mentions(path, "'x'")):
        TorchCheckpoint(path)["x"]


@WRITERS
def test_absurd_rank(tmp_path, writer):
    """50,000 dimensions of 2**61: their product alone took seconds."""
    storage, storages = _floats(writer)
    rank = 50_000
    path = writer(tmp_path / "rank.bin",
                  {"x": _tensor(storage, 0, (1 << 61,) * rank, (0,) * rank)}, storages)
    with fails_fast(mentions(path, "dimensions")):
        TorchCheckpoint(path)["x"]


@WRITERS
def test_memo_index_far_beyond_the_pickle(tmp_path, writer):
    """LONG_BINPUT 2**30: the unpickler grew its memo table to 2**30 entries (16 GB)."""
    storage, storages = _floats(writer)
    body = _ops({"x": _tensor(storage, 0, (12,), (1,))}) + b"r\x00\x00\x00\x40"
    path = writer(tmp_path / "m.bin", _pickle(body), storages)
    with fails_fast(mentions(path, "memo index 1073741824")):
        TorchCheckpoint(path)


@WRITERS
@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"B", b"\x8b"],
                         ids=["BINBYTES8", "BINUNICODE8", "BINBYTES", "LONG4"])
def test_sizes_beyond_the_pickle(tmp_path, writer, opcode):
    """A value declared 2**40 (or 2**31 - 1) bytes long in a pickle of a few hundred."""
    size = (1 << 40).to_bytes(8, "little") if opcode in (b"\x8e", b"\x8d") else \
        struct.pack("<i", 0x7FFFFFFF)
    storage, storages = _floats(writer)
    body = b"}(" + _key("x") + _ops(_tensor(storage, 0, (12,), (1,))) + _key("y") + opcode
    path = writer(tmp_path / "size.bin", _pickle(body + size + b"abc" + b"u"), storages)
    with fails_fast(mentions(path, "damaged pickle")):
        TorchCheckpoint(path)


def _nested_dicts(depth, tensor):
    return _pickle((b"}" + _key("a")) * depth + _ops(tensor) + b"s" * depth)


@WRITERS
def test_dicts_nested_100000_deep(tmp_path, writer):
    """Each level's name repeats the levels above: 10**10 characters of names."""
    storage, storages = _floats(writer)
    path = writer(tmp_path / "deep.bin",
                  _nested_dicts(100_000, _tensor(storage, 0, (12,), (1,))), storages)
    with fails_fast(mentions(path, "names")):
        TorchCheckpoint(path)


@WRITERS
def test_key_nested_100000_deep(tmp_path, writer):
    """A dict key that is a tuple in a tuple in ...: str() of it raised RecursionError.
    Such a key now gets a short name."""
    storage, storages = _floats(writer)
    tensor = _ops(_tensor(storage, 0, (12,), (1,)))
    path = writer(tmp_path / "key.bin", _pickle(b"})" + b"\x85" * 100_000 + tensor + b"s"),
                  storages)
    with bounded():
        checkpoint = TorchCheckpoint(path)
    (name,) = checkpoint
    assert len(name) < 100
    np.testing.assert_array_equal(checkpoint[name], FLOATS)


def _state(items):
    """A dict of `items` str keys, memoized at 0."""
    return b"}q\x00(" + b"".join(b"\x8c\x05" + f"{i:05d}".encode() + b"N"
                                 for i in range(items)) + b"u"


@WRITERS
def test_build_cannot_copy_a_dict_into_every_ordered_dict(tmp_path, writer):
    """BUILD applies the same 30,000-item state to 30,000 OrderedDicts: 9 * 10**8 items.

    torch's BUILD on a state dict only sets `_metadata`, which is not read: a file
    that does this loads, fast."""
    storage, storages = _floats(writer)
    ordered_dicts = b"c" + b"collections\nOrderedDict\nq\x01)R" + b"h\x00b" + \
        b"h\x01)Rh\x00b" * 29_999
    body = b"}(" + _key("x") + _ops(_tensor(storage, 0, (12,), (1,))) + _key("y") + _state(
        30_000) + b"0" + b"](" + ordered_dicts + b"e" + b"u"
    path = writer(tmp_path / "build.bin", _pickle(body), storages)
    with bounded():
        checkpoint = TorchCheckpoint(path)
    assert list(checkpoint) == ["x"]
    np.testing.assert_array_equal(checkpoint["x"], FLOATS)


@WRITERS
def test_ordered_dict_with_arguments(tmp_path, writer):
    """OrderedDict(d) copies d: 20,000 copies of a 20,000-item dict from 200 kB."""
    storage, storages = _floats(writer)
    copies = b"c" + b"collections\nOrderedDict\nq\x01h\x00\x85R" + b"h\x01h\x00\x85R" * 19_999
    body = b"}(" + _key("x") + _ops(_tensor(storage, 0, (12,), (1,))) + _key("y") + _state(
        20_000) + b"0" + b"](" + copies + b"e" + b"u"
    path = writer(tmp_path / "copies.bin", _pickle(body), storages)
    with fails_fast(mentions(path, "OrderedDict")):
        TorchCheckpoint(path)


@WRITERS
def test_legacy_storage_count_beyond_the_file(tmp_path, writer):
    storage = _storage("FloatStorage", "0", 1 << 40, None if writer is _write_legacy else False)
    storages = {"0": (1 << 40, FLOATS.tobytes())} if writer is _write_legacy else \
        {"0": FLOATS.tobytes()}
    path = writer(tmp_path / "count.bin", {"x": _tensor(storage, 0, (1 << 40,), (1,))}, storages)
    with fails_fast(mentions(path, "'0'")):
        TorchCheckpoint(path)["x"]


@WRITERS
@pytest.mark.parametrize("module, name", [("builtins", "print"), ("collections", "OrderedDict")])
@pytest.mark.parametrize("opcode, code", [(b"\x82", 0xF1), (b"\x83", 0xBEEF),
                                          (b"\x84", 0x7EADBEEF)], ids=["EXT1", "EXT2", "EXT4"])
def test_extension_codes_are_refused(tmp_path, writer, module, name, opcode, code):
    """EXT1/2/4 name a global by a number in copyreg's process-wide registry; once
    resolved, the unpickler took it from copyreg's cache without asking find_class."""
    argument = code.to_bytes({b"\x82": 1, b"\x83": 2, b"\x84": 4}[opcode], "little")
    storage, storages = _floats(writer)
    body = b"}(" + _key("x") + _ops(_tensor(storage, 0, (12,), (1,))) + _key("y") + opcode + \
        argument + b"u"
    path = writer(tmp_path / "ext.bin", _pickle(body), storages)
    copyreg.add_extension(module, name, code)
    try:
        assert pickle.loads(_pickle(opcode + argument)) is getattr(
            __import__(module), name)  # now in copyreg's cache
        with pytest.raises(pickle.UnpicklingError, match=mentions(path, "extension")):
            TorchCheckpoint(path)
    finally:
        copyreg.remove_extension(module, name, code)


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["bzip2", "lzma"])
def test_compressed_member_expanding_past_deflate(tmp_path, compression):
    """bzip2 packs 10 MB of zeros into 49 bytes: a data.pkl member of a few hundred bytes
    unpacked to 10 MB, at a ratio that makes gigabytes of a few kB. torch never compresses
    members; deflate, what tools re-zipping use, expands at most 1032-fold."""
    storage, storages = _floats(_write_zip)
    body = b"}(" + _key("x") + _ops(_tensor(storage, 0, (12,), (1,))) + _key("y") + b"\x8e" + \
        (10 ** 7).to_bytes(8, "little") + bytes(10 ** 7) + b"u"
    path = _write_zip(tmp_path / "packed.bin", _pickle(body), storages, compression=compression)
    assert path.stat().st_size < 5000
    with fails_fast(mentions(path, "compressed")):
        TorchCheckpoint(path)


@WRITERS
def test_huge_stride_of_a_dimension_of_one(tmp_path, writer):
    """A dimension of size 1 never steps, whatever its stride says: 2**61 elements
    overflowed numpy's strides (OverflowError) although the tensor is sound."""
    storage, storages = _floats(writer)
    path = writer(tmp_path / "stride.bin", {"x": _tensor(storage, 0, (3, 1), (1, 1 << 61))},
                  storages)
    with bounded():
        np.testing.assert_array_equal(TorchCheckpoint(path)["x"], FLOATS[:3, None])
