"""Write the checkpoints that tests/convert/test_torch_pickle.py and
test_safetensors_checkpoint.py read.

Needs torch and safetensors (the fixtures were written with torch 2.13 and
safetensors 0.8). From the repository root:

    python tools/make_torch_fixtures.py

It replaces tests/fixtures/torch/ with one small state dict saved four ways:

* zip.bin: `torch.save`, the zip format of torch >= 1.6.
* legacy.bin: `torch.save(..., _use_new_zipfile_serialization=False)`, as
  several Hub checkpoints were saved. torch names its storages by memory
  address there and orders their data by name, so `save_legacy` renames
  them to counters and reorders the data; torch reads the result the same.
* tensors.safetensors: `safetensors.torch.save_file`, each tensor a
  contiguous copy (safetensors refuses shared storage).
* expected.npz: the values as torch converts them to numpy (bfloat16
  widened to float32), under the names the readers give: nested dicts
  flattened with ".".

The state dict is an nn.Module's (an OrderedDict with `_metadata`), plus
float32 with NaN, infinities and -0.0, float16, bfloat16, float64, the
integer types and bool; 0-d and empty tensors; views sharing one storage
(transposed, and sliced with an offset and steps); and a nested dict mixing
a tensor with values that are not tensors.

Two more files must never load: malicious_zip.bin and malicious_legacy.bin
are real torch.save containers whose pickles call `os.system` (zip) and
`eval` (legacy; protocol 2 names it `__builtin__.eval`) to create
/tmp/kerasformer_pwned when unpickled by anything that trusts them
(pickle, torch.load(weights_only=False)).

Values are seeded and the zip timestamps fixed: reruns give byte-identical
files.
"""
import io
import os
import pathlib
import pickle
import pickletools
import re
import shutil
import struct
import zipfile

import numpy as np
import safetensors.torch
import torch

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torch"
MARKER = "/tmp/kerasformer_pwned"


class Tiny(torch.nn.Module):
    """A module whose state_dict() looks like a small BERT's."""

    def __init__(self):
        super().__init__()
        self.embeddings = torch.nn.Embedding(10, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.dense = torch.nn.Linear(4, 3)
        self.register_buffer("position_ids", torch.arange(6).unsqueeze(0))


def state_dict():
    torch.manual_seed(0)
    state = Tiny().state_dict()  # an OrderedDict with _metadata
    assert hasattr(state, "_metadata")
    floats = torch.randn(3, 5)
    floats.view(-1)[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])
    shared = torch.randn(6, 8)
    state.update({
        "dtypes.float32": floats,
        "dtypes.float16": torch.randn(2, 3).half(),
        "dtypes.bfloat16": torch.randn(4, 3).bfloat16(),
        "dtypes.float64": torch.randn(2, 2, 2, dtype=torch.float64),
        "dtypes.int64": torch.randint(-2**40, 2**40, (5,)),
        "dtypes.int32": torch.randint(-2**31, 2**31 - 1, (3,), dtype=torch.int32),
        "dtypes.int16": torch.randint(-2**15, 2**15 - 1, (2, 2), dtype=torch.int16),
        "dtypes.int8": torch.randint(-128, 127, (7,), dtype=torch.int8),
        "dtypes.uint8": torch.randint(0, 255, (3, 1), dtype=torch.uint8),
        "dtypes.bool": torch.rand(4, 4) < 0.5,
        "scalar.float32": torch.tensor(2.5),
        "scalar.step": torch.tensor(123456),
        "empty": torch.zeros(0, 3),
        "shared.base": shared,
        "shared.transposed": shared.t(),
        "shared.sliced": shared[1:6:2, 2:7],  # offset 10, strides (16, 1)
        "extra": {"epoch": 3, "note": "not a tensor", "config": None,
                  "inner": {"tensor": torch.arange(4, dtype=torch.float32)}},
    })
    return state


def flatten(tree, prefix=""):
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from flatten(value, name)
        elif isinstance(value, torch.Tensor):
            yield name, value


def to_numpy(tensor):
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def write_zip(path, members):
    """A zip of {name: bytes} with fixed timestamps (np.savez stamps the time)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def write_npz(path, arrays):
    members = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        members[f"{name}.npy"] = buffer.getvalue()
    write_zip(path, members)


def save_legacy(obj, path):
    """torch.save in the legacy format, made reproducible.

    torch names each storage by its memory address and writes their data
    sorted by name. The storages are renamed to counters of the same length,
    in the order the object pickle first mentions them, and their data
    reordered to match.
    """
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    sizes = {str(tensor.untyped_storage()._cdata): tensor.untyped_storage().nbytes()
             for _, tensor in flatten(obj)}
    data = path.read_bytes()
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys_info
        for _ in pickletools.genops(stream):
            pass
    object_start = stream.tell()
    mentioned = [arg for opcode, arg, _ in pickletools.genops(stream)
                 if opcode.name == "BINUNICODE" and arg in sizes]
    order = list(dict.fromkeys(mentioned))
    object_end = stream.tell()
    listed = [arg for opcode, arg, _ in pickletools.genops(stream) if opcode.name == "BINUNICODE"]
    assert sorted(listed) == sorted(order), "every storage is in the object and the key list"
    blocks, position = {}, stream.tell()
    for key in listed:  # int64 element count, then the bytes
        blocks[key] = data[position:position + 8 + sizes[key]]
        position += 8 + sizes[key]
    assert position == len(data)

    renamed = {key: f"{index:0{len(key)}d}" for index, key in enumerate(order)}

    def binunicode(key):  # the pickle opcode holding the string
        return b"X" + struct.pack("<I", len(key)) + key.encode()

    pattern = re.compile(b"|".join(re.escape(binunicode(key)) for key in order))
    object_pickle = pattern.sub(lambda match: binunicode(renamed[match[0][5:].decode()]),
                                data[object_start:object_end])
    path.write_bytes(data[:object_start] + object_pickle
                     + pickle.dumps([renamed[key] for key in order], protocol=2)
                     + b"".join(blocks[key] for key in order))


class SystemCall:
    def __reduce__(self):
        return os.system, (f"touch {MARKER}",)


class Eval:
    def __reduce__(self):
        return eval, (f"__import__('os').system('touch {MARKER}')",)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    state = state_dict()
    tensors = dict(flatten(state))

    torch.save(state, OUT / "zip.bin")
    save_legacy(state, OUT / "legacy.bin")
    safetensors.torch.save_file({name: tensor.contiguous().clone()
                                 for name, tensor in tensors.items()},
                                OUT / "tensors.safetensors", metadata={"format": "pt"})
    write_npz(OUT / "expected.npz", {name: to_numpy(tensor) for name, tensor in tensors.items()})
    for name in ("zip.bin", "legacy.bin"):
        loaded = dict(flatten(torch.load(OUT / name, weights_only=True)))
        assert loaded.keys() == tensors.keys(), name
        for key, tensor in tensors.items():
            assert torch.equal(loaded[key].nan_to_num(), tensor.nan_to_num()), (name, key)

    weight = torch.ones(2, 3)
    torch.save({"weight": weight, "bias": SystemCall()}, OUT / "malicious_zip.bin")
    save_legacy({"weight": weight, "bias": Eval()}, OUT / "malicious_legacy.bin")
    for name in ("malicious_zip.bin", "malicious_legacy.bin"):
        try:
            torch.load(OUT / name, weights_only=True)
        except pickle.UnpicklingError:
            pass
        else:
            raise AssertionError(f"torch.load(weights_only=True) accepted {name}")

    files = sorted(OUT.iterdir())
    for path in files:
        print(f"{path.stat().st_size:8d}  {path.relative_to(OUT.parents[2])}")
    print(f"{sum(path.stat().st_size for path in files):8d}  total")


if __name__ == "__main__":
    main()
