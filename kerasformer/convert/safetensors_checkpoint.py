"""Read `.safetensors` files through the `safetensors` package (`safe_open`, numpy framework).

The package checks the header when a file is opened: the header's size against the file,
the JSON, known dtype names, and that the tensors' byte ranges tile the data section exactly
(no gap, overlap or trailing bytes), each range the size of shape x dtype. We keep the checks
the package does not make: it silently keeps one of two tensors with the same name (we refuse
the file), its numpy arrays cannot hold bfloat16 without ml_dtypes (we widen the raw bits to
float32, as this reader always has), a file changed after opening is read anew without a word
(we refuse to read it), its errors do not name the file (we wrap each `SafetensorError`
in a ValueError that does), and it accepts empty tensors of shapes numpy cannot make, such
as [0, 2**63] (we refuse the file).

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
import os
import struct
from typing import NamedTuple

import numpy as np
import safetensors

from kerasformer.convert.reader import CheckpointReader, bfloat16_to_float32, check_shape

# What we return for each safetensors dtype. BF16 is read as raw bits and widened to
# float32; the other dtypes the package knows (float8, complex, packed sub-byte types)
# can be listed but raise NotImplementedError when read.
_NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",  # raw bits, widened on read
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_HEADER_SIZE = struct.Struct("<Q")


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


class SafetensorsCheckpoint(CheckpointReader):
    """A safetensors file as a read-only mapping {tensor name: np.ndarray}.

    Opening checks the header (ValueError naming the file if it does not fit
    the file); each tensor is read when asked for, through its own short-lived
    `safe_open`, so no file stays open or mapped between reads. Names keep the
    header's order; `metadata` holds its `__metadata__`.

    Arrays keep their dtype, except bfloat16, which numpy lacks: it comes
    back as float32 (exactly, bfloat16 being truncated float32). float8,
    complex and packed sub-byte tensors raise NotImplementedError when read.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.description = f"safetensors file {self.path}"
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no safetensors file at {self.path}")
        self._stat = self._identity()
        with self._open() as file:  # the package's checks of the whole header
            names = set(file.keys())
        header, self._data_start = self._read_header()
        if not isinstance(header, dict):
            raise self._invalid("the header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        try:
            self._entries = {name: _Entry(entry["dtype"], tuple(entry["shape"]),
                                          *entry["data_offsets"])
                             for name, entry in header.items()}
        except (KeyError, TypeError, ValueError):  # the package checked it: changed since
            raise ValueError(f"{self.path} changed while it was being opened") from None
        if set(self._entries) != names or self._identity() != self._stat:
            raise ValueError(f"{self.path} changed while it was being opened")
        for name, entry in self._entries.items():
            try:
                check_shape(entry.shape, np.dtype(_NUMPY_DTYPES.get(entry.dtype, "u1")).itemsize)
            except ValueError as error:
                raise self._invalid(f"{name!r}: {error}") from None

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
        self._check_unchanged(name)
        if entry.dtype == "BF16":
            return bfloat16_to_float32(self._read_bits(name, entry, stored))
        with self._open() as file:
            try:
                array = file.get_tensor(name)
            except (safetensors.SafetensorError, ValueError) as error:
                raise ValueError(f"cannot read {name!r} from {self.path}: {error}") from None
        if array.dtype != stored or array.shape != entry.shape:
            raise ValueError(f"{self.path} changed since it was opened: {name!r} is now "
                             f"{array.dtype} {array.shape}, not {entry.dtype} {entry.shape}")
        return array

    def read_rows(self, name, start, stop):
        """Rows `start:stop` of tensor `name`, reading only their bytes."""
        entry = self._entry(name)
        rows = entry.shape[0] if entry.shape else 0
        start, stop = max(0, min(start, rows)), max(0, min(stop, rows))
        if not entry.shape or stop <= start:
            return self[name][start:stop]
        stored = self._stored_dtype(name, entry)
        self._check_unchanged(name)
        row_bytes = (entry.end - entry.begin) // rows
        raw = bytearray((stop - start) * row_bytes)
        with open(self.path, "rb") as file:
            file.seek(self._data_start + entry.begin + start * row_bytes)
            if file.readinto(raw) != len(raw):
                raise ValueError(f"{self.path} is truncated: rows {start}..{stop} of {name!r} "
                                 "cannot be read")
        array = np.frombuffer(raw, stored).reshape((stop - start, *entry.shape[1:]))
        if entry.dtype == "BF16":
            return bfloat16_to_float32(array)
        return array

    def _open(self):
        try:
            return safetensors.safe_open(self.path, framework="np")
        except safetensors.SafetensorError as error:
            raise self._invalid(error) from error

    def _invalid(self, what):
        return ValueError(f"{self.path} is not a valid safetensors file: {what}")

    def _read_header(self):
        """The header as JSON (refusing duplicate names) and where the data buffer starts."""
        with open(self.path, "rb") as file:
            prefix = file.read(_HEADER_SIZE.size)
            # safe_open has bounded the size by the file's; this guards against a file
            # replaced since.
            if len(prefix) != _HEADER_SIZE.size:
                raise ValueError(f"{self.path} changed while it was being opened")
            (header_size,) = _HEADER_SIZE.unpack(prefix)
            if header_size > self._stat[0] - _HEADER_SIZE.size:
                raise ValueError(f"{self.path} changed while it was being opened")
            raw = file.read(header_size)
        try:
            return json.loads(raw, object_pairs_hook=_no_duplicates), len(prefix) + header_size
        except ValueError as error:  # also bad UTF-8
            raise self._invalid(error) from None
        except RecursionError:  # the package refuses deep nesting first; a file changed since
            raise self._invalid("the JSON header is nested too deep") from None

    def _identity(self):
        stat = os.stat(self.path)
        return stat.st_size, stat.st_mtime_ns

    def _check_unchanged(self, name):
        """Refuse to read a file that was rewritten after it was opened."""
        size, _ = now = self._identity()
        if now == self._stat:
            return
        if size < self._stat[0]:
            raise ValueError(f"{self.path} is truncated: {name!r} cannot be read, the file has "
                             f"{size} bytes, {self._stat[0]} when it was opened")
        raise ValueError(f"{self.path} changed since it was opened; open it again to read "
                         f"{name!r}")

    def _read_bits(self, name, entry, stored):
        """The tensor's bytes, read at the offsets the package has checked, as `stored`."""
        size = entry.end - entry.begin
        raw = bytearray(size)
        with open(self.path, "rb") as file:
            file.seek(self._data_start + entry.begin)
            size_read = file.readinto(raw)
        if size_read != size:
            raise ValueError(f"{self.path} is truncated: {name!r} is stored at bytes "
                             f"{self._data_start + entry.begin}..{self._data_start + entry.end}, "
                             f"but the file has {os.path.getsize(self.path)} bytes")
        return np.frombuffer(raw, stored).reshape(entry.shape)

    def _stored_dtype(self, name, entry):
        if entry.dtype not in _NUMPY_DTYPES:
            raise NotImplementedError(f"{name!r} in {self.path} has dtype {entry.dtype}, which "
                                      "SafetensorsCheckpoint cannot read")
        return np.dtype(_NUMPY_DTYPES[entry.dtype])
