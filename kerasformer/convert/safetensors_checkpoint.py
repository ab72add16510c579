"""Read `.safetensors` files with numpy alone (no torch, no safetensors package).

A safetensors file is

    u64 N (little-endian) | N bytes of JSON header | data buffer

The header maps each tensor name to `{"dtype": "F32", "shape": [2, 3],
"data_offsets": [begin, end]}`, the offsets counting bytes from the start of
the data buffer; an optional `"__metadata__"` entry maps strings to strings
(e.g. {"format": "pt"}). Tensors are C-contiguous and little-endian. The
JSON may be padded with trailing spaces.

Usage:

    ckpt = SafetensorsCheckpoint("roformer_v2_chinese_char_base/model.safetensors")
    for name, shape in ckpt.variables():
        ...
    kernel = ckpt["roformer.encoder.layer.0.attention.self.query.weight"]
"""
import json
import math
import os
import struct
from typing import NamedTuple

import numpy as np

from kerasformer.convert.reader import CheckpointReader, bfloat16_to_float32

_NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",  # raw bits, widened on read
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
# Byte sizes of types that can be listed but not read (NotImplementedError).
# Sub-byte types (F4, F6_*) are packed, so their sizes are not checked.
_UNSUPPORTED_ITEMSIZES = {"F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8}
_HEADER_SIZE = struct.Struct("<Q")
_MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors library itself sets


class _Entry(NamedTuple):
    dtype: str  # the safetensors name, e.g. "BF16"
    shape: tuple
    begin: int  # data_offsets, relative to the data buffer
    end: int


def _no_duplicates(pairs):
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"a name appears twice in {names!r:.200}")
    return dict(pairs)


def _parse_entry(name, entry, buffer_size):
    """Check one header entry against the data buffer; return it as an _Entry."""
    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and isinstance(entry.get("data_offsets"), list)
            and len(entry["data_offsets"]) == 2):
        raise ValueError(f"bad header entry for {name!r}: {entry!r:.200}")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0
               for value in shape + offsets):
        raise ValueError(f"{name!r} has a bad shape {shape!r:.100} or data_offsets "
                         f"{offsets!r:.100}")
    begin, end = offsets
    if not begin <= end <= buffer_size:
        raise ValueError(f"{name!r} is stored at bytes {begin}..{end} of the data, which has "
                         f"{buffer_size} (truncated?)")
    dtype = entry["dtype"]
    itemsize = (np.dtype(_NUMPY_DTYPES[dtype]).itemsize if dtype in _NUMPY_DTYPES
                else _UNSUPPORTED_ITEMSIZES.get(dtype))
    if itemsize is not None and end - begin != math.prod(shape) * itemsize:
        raise ValueError(f"{name!r} has {end - begin} bytes, but shape {shape} of {dtype} "
                         f"needs {math.prod(shape) * itemsize}")
    return _Entry(dtype, tuple(shape), begin, end)


class SafetensorsCheckpoint(CheckpointReader):
    """A safetensors file as a read-only mapping {tensor name: np.ndarray}.

    Opening reads and checks only the header (ValueError if it does not fit
    the file); each tensor is read when asked for. Names keep the header's
    order; `metadata` holds its `__metadata__`.

    Arrays keep their dtype, except bfloat16, which numpy lacks: it comes
    back as float32 (exactly, bfloat16 being truncated float32). float8,
    complex and packed sub-byte tensors raise NotImplementedError when read.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.description = f"safetensors file {self.path}"
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no safetensors file at {self.path}")
        file_size = os.path.getsize(self.path)
        try:
            with open(self.path, "rb") as file:
                prefix = file.read(_HEADER_SIZE.size)
                if len(prefix) != _HEADER_SIZE.size:
                    raise ValueError(f"only {file_size} bytes, no header")
                (header_size,) = _HEADER_SIZE.unpack(prefix)
                if header_size > min(file_size - _HEADER_SIZE.size, _MAX_HEADER_BYTES):
                    raise ValueError(f"the header would have {header_size} bytes, but the file "
                                     f"has {file_size} (truncated, or not safetensors)")
                header = json.loads(file.read(header_size).decode("utf-8"),
                                    object_pairs_hook=_no_duplicates)
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            self.metadata = header.pop("__metadata__", {})
            if not isinstance(self.metadata, dict):
                raise ValueError("__metadata__ is not a JSON object")
            self._data_start = _HEADER_SIZE.size + header_size
            buffer_size = file_size - self._data_start
            self._entries = {name: _parse_entry(name, entry, buffer_size)
                             for name, entry in header.items()}
        except ValueError as error:  # includes bad JSON and bad UTF-8
            raise ValueError(f"{self.path} is not a valid safetensors file: {error}") from None

    def __repr__(self):
        return f"SafetensorsCheckpoint({self.path!r}, {len(self)} tensors)"

    def dtype(self, name) -> np.dtype:
        """The dtype `self[name]` will have (float32 for bfloat16)."""
        entry = self._entry(name)
        if entry.dtype == "BF16":
            return np.dtype(np.float32)
        return self._stored_dtype(name, entry).newbyteorder("=")

    def __getitem__(self, name) -> np.ndarray:
        entry = self._entry(name)
        stored = self._stored_dtype(name, entry)
        size = entry.end - entry.begin
        raw = bytearray(size)
        with open(self.path, "rb") as file:
            file.seek(self._data_start + entry.begin)
            size_read = file.readinto(raw)
        if size_read != size:
            raise ValueError(f"{self.path} is truncated: {name!r} is stored at bytes "
                             f"{self._data_start + entry.begin}..{self._data_start + entry.end}, "
                             f"but the file has {os.path.getsize(self.path)} bytes")
        array = np.frombuffer(raw, stored).reshape(entry.shape)
        if entry.dtype == "BF16":
            return bfloat16_to_float32(array)
        return array.astype(stored.newbyteorder("="), copy=False)

    def _stored_dtype(self, name, entry):
        if entry.dtype not in _NUMPY_DTYPES:
            raise NotImplementedError(f"{name!r} in {self.path} has dtype {entry.dtype}, which "
                                      "SafetensorsCheckpoint cannot read")
        return np.dtype(_NUMPY_DTYPES[entry.dtype])
