"""Read PyTorch checkpoints (`pytorch_model.bin`, `*.pt`) with numpy alone.

`torch.save(state_dict, path)` pickles the object with every tensor storage
replaced by a "persistent id", and writes the storages' raw bytes apart from
the pickle. Two container formats exist:

* zip (torch >= 1.6, the default): an uncompressed zip archive whose members
  all sit in one folder named after the file (`pytorch_model/...`, but the
  name varies, so `data.pkl` is found by its suffix):

      <root>/data.pkl     the pickle (protocol 2)
      <root>/data/<key>   one storage's bytes, back to back
      <root>/byteorder    "little" or "big" (older torch wrote none: little)
      <root>/version, <root>/.data/..., ...   unused here

  A storage's persistent id is `('storage', torch.FloatStorage, key,
  location, numel)`: its element type (a `torch.*Storage` class, or
  `torch.storage.UntypedStorage` for bytes), member name, device and size in
  elements.

* legacy (`_use_new_zipfile_serialization=False`, and torch < 1.6): several
  pickles in a row, then the storages:

      pickle: magic number 0x1950a86a20f9469cfc6c
      pickle: protocol version 1001
      pickle: sys_info {"little_endian": ..., "type_sizes": {...}}
      pickle: the object; its persistent ids are ('storage', type, root_key,
              location, numel, view_metadata), view_metadata None or
              (view_key, offset, size) in elements for a part of the root
      pickle: the list of root keys, in the order their data follows
      per key: int64 element count, then count * element size bytes

  torch's legacy writer converts counts and data to little-endian on
  big-endian machines, so `little_endian` describes the writer, not the
  data; this reader ignores it. The tar-based format of the first torch
  releases is refused with a clear error.

In the pickle a tensor is a call `torch._utils._rebuild_tensor_v2(storage,
storage_offset, size, stride, requires_grad, backward_hooks)` (`_v3` adds
the dtype, for the dtypes without a storage class; plain `_rebuild_tensor`
is the older form without the autograd fields), an `nn.Parameter` a call of
`_rebuild_parameter(tensor, ...)`, and a state dict a
`collections.OrderedDict`. Tensors are views: offset and strides count
elements, and several tensors may share a storage.

Unpickling is the danger: a pickle can call any importable function. So
`_Unpickler.find_class` resolves only the names above, to stand-ins defined
here (torch is never imported), and refuses every other global with a
`pickle.UnpicklingError` naming it; the rebuild stand-ins only record where
each tensor's bytes are. Nothing a file holds can run code. Before it is
unpickled, each pickle's opcodes are walked (`_pickle_end`) so that a
small file cannot make the unpickler allocate what it merely declares: a
length past the file's end, a memo index far beyond the pickle. The EXT1,
EXT2 and EXT4 opcodes, which name a global through copyreg's process-wide
extension registry (and its cache, which bypasses `find_class`), are
refused like other globals. Tensor shapes are checked against the bytes
the file holds, and the names of tensors in nested dicts against its size.

Usage:

    ckpt = TorchCheckpoint("roformer_chinese_base/pytorch_model.bin")
    for name, shape in ckpt.variables():
        ...
    kernel = ckpt["roformer.encoder.layer.0.attention.self.query.weight"]
"""
import collections
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from kerasformer.convert.reader import MAX_RANK, CheckpointReader, bfloat16_to_float32, check_shape


class _DType(NamedTuple):
    """A torch dtype: its stored numpy type (None if unsupported) and size in bytes."""
    name: str
    numpy: str | None  # little-endian numpy type string
    itemsize: int


_DTYPES = {dtype.name: dtype for dtype in [
    _DType("float32", "<f4", 4), _DType("float64", "<f8", 8), _DType("float16", "<f2", 2),
    _DType("bfloat16", "<u2", 2),  # raw bits, widened to float32 on read
    _DType("int64", "<i8", 8), _DType("int32", "<i4", 4), _DType("int16", "<i2", 2),
    _DType("int8", "|i1", 1), _DType("uint8", "|u1", 1), _DType("bool", "|b1", 1),
    _DType("uint16", "<u2", 2), _DType("uint32", "<u4", 4), _DType("uint64", "<u8", 8),
    # Known so their tensors can be listed and skipped; reading them raises
    # NotImplementedError.
    _DType("complex32", None, 4), _DType("complex64", None, 8), _DType("complex128", None, 16),
    _DType("float8_e4m3fn", None, 1), _DType("float8_e4m3fnuz", None, 1),
    _DType("float8_e5m2", None, 1), _DType("float8_e5m2fnuz", None, 1),
    _DType("float8_e8m0fnu", None, 1),
    _DType("qint8", None, 1), _DType("quint8", None, 1), _DType("qint32", None, 4),
    _DType("quint4x2", None, 1), _DType("quint2x4", None, 1),
]}

_STORAGE_DTYPES = {  # torch.<name> storage class -> element dtype
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}


# --------------------------------------------------------------------------
# What the restricted unpickler builds. All immutable: the pickle BUILD
# opcode sets attributes on the object on top of the stack, which must not
# let one file alter the stand-ins that later files are read with.


class _StorageType(NamedTuple):
    """Stand-in for a `torch.*Storage` class."""
    dtype: _DType


class _QScheme(NamedTuple):
    """Stand-in for a quantization scheme such as `torch.per_tensor_affine`."""
    name: str


class _Storage(NamedTuple):
    """Where a persistent id points: part of a root storage's bytes."""
    key: str  # of the root storage: its zip member, or its place in a legacy file
    dtype: _DType  # the root's element type
    offset: int  # in bytes from the root's start
    nbytes: int


class _Tensor(NamedTuple):
    """A tensor's dtype and layout in its storage, as torch rebuilds it."""
    storage: _Storage
    offset: int  # in elements of dtype, from the storage's start
    shape: tuple
    strides: tuple  # in elements
    dtype: _DType


class _Callable(NamedTuple):
    """An allowed function, immutable unlike a Python function object."""
    function: object

    def __call__(self, *args):
        return self.function(*args)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


def _describe(value, depth=2):
    """A short description of an unpickled value for an error message: never long, and
    never recursing into what a hostile pickle may nest 100,000 deep."""
    if isinstance(value, (str, bytes)):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    if isinstance(value, int) and value.bit_length() > 128:  # repr() of a huge int is slow
        return f"<a {value.bit_length()}-bit integer>"
    if isinstance(value, (int, float, type(None))):
        return repr(value)
    if type(value) is tuple and depth > 0:
        items = [_describe(item, depth - 1) for item in value[:6]]
        return "(" + ", ".join(items + (["..."] if len(value) > 6 else [])) + ")"
    return f"<{type(value).__name__}>"


def _tensor(storage, offset, shape, strides, dtype=None):
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}")
    if isinstance(shape, tuple) and len(shape) > MAX_RANK:
        raise ValueError(f"a tensor of {len(shape)} dimensions (at most {MAX_RANK} are read)")
    if not (_is_count(offset) and isinstance(shape, tuple) and isinstance(strides, tuple)
            and len(shape) == len(strides) and all(map(_is_count, shape + strides))):
        raise ValueError(f"bad tensor layout: offset {_describe(offset)}, size "
                         f"{_describe(shape)}, stride {_describe(strides)}")
    dtype = dtype or storage.dtype
    check_shape(shape, dtype.itemsize)
    return _Tensor(storage, offset, shape, strides, dtype)


def _rebuild_tensor(storage, offset, shape, strides):
    return _tensor(storage, offset, shape, strides)


def _rebuild_tensor_v2(storage, offset, shape, strides, requires_grad, backward_hooks,
                       metadata=None):
    return _tensor(storage, offset, shape, strides)


def _rebuild_tensor_v3(storage, offset, shape, strides, requires_grad, backward_hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, _DType):
        raise ValueError(f"a tensor's dtype is a {type(dtype).__name__}")
    return _tensor(storage, offset, shape, strides, dtype)


def _rebuild_qtensor(storage, offset, shape, strides, quantizer_params, requires_grad,
                     backward_hooks):
    return _tensor(storage, offset, shape, strides)  # a quantized dtype: listed, not read


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _Tensor):
        raise ValueError(f"a parameter holds a {type(data).__name__}, not a tensor")
    return data


class _StateDict(collections.OrderedDict):
    """What `collections.OrderedDict` unpickles to."""

    def __setstate__(self, state):
        """BUILD: torch sets `_metadata` (module versions), which is not read. Ignoring
        it keeps BUILD from copying one large state into many dicts."""


def _ordered_dict(*args):
    # torch pickles an OrderedDict as OrderedDict() plus SETITEMS. Arguments would let a
    # few bytes copy a large dict again and again.
    if args:
        raise ValueError("OrderedDict is called with arguments: only OrderedDict() is "
                         "allowed")
    return _StateDict()


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _Callable(_ordered_dict),
    ("torch._utils", "_rebuild_tensor"): _Callable(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Callable(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_qtensor"): _Callable(_rebuild_qtensor),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter),
    ("torch", "UntypedStorage"): _StorageType(_DTYPES["uint8"]),
    ("torch.storage", "UntypedStorage"): _StorageType(_DTYPES["uint8"]),
    **{("torch", name): _StorageType(_DTYPES[dtype]) for name, dtype in _STORAGE_DTYPES.items()},
    **{("torch", name): dtype for name, dtype in _DTYPES.items()},  # arguments of _v3
    **{("torch", name): _QScheme(name) for name in (  # in _rebuild_qtensor's arguments
        "per_tensor_affine", "per_channel_affine", "per_channel_affine_float_qparams",
        "per_tensor_symmetric", "per_channel_symmetric")},
}


class _Refused(pickle.UnpicklingError, ValueError):
    """The pickle asked for something other than tensors and containers.

    An UnpicklingError, and a ValueError like every other error of the readers."""


class _Unpickler(pickle.Unpickler):
    """Unpickles only tensors, storages, dicts and plain values (see the module docstring).

    Storages are recorded in `roots` {key: (dtype, numel)}.
    """

    def __init__(self, file, path, roots):
        super().__init__(file, encoding="utf-8")  # Python 2 pickles: str, as torch.load does
        self.path = path
        self.roots = roots

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise _Refused(f"refusing to unpickle {module}.{name} from {self.path}: only "
                           "tensors and state dicts can be loaded") from None

    def persistent_load(self, pid):
        # ('storage', type, key, location, numel) in zip files; legacy ones
        # add view_metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[3], str) and _is_count(pid[4])):
            raise _Refused(f"refusing persistent id {_describe(pid)} in {self.path}: only "
                           "tensor storages can be loaded")
        _, storage_type, key, _, numel = pid[:5]
        dtype = storage_type.dtype
        if self.roots.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise ValueError(f"storage {key!r} is given two types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _Storage(key, dtype, 0, numel * dtype.itemsize)
        if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1])
                and _is_count(view[2]) and view[1] + view[2] <= numel):
            raise ValueError(f"bad view {_describe(view)} of storage {key!r}")
        _, offset, size = view
        return _Storage(key, dtype, offset * dtype.itemsize, size * dtype.itemsize)


def _key_name(key):
    """A dict key as part of a dotted name."""
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, type(None))) and not (
            isinstance(key, int) and key.bit_length() > 128):
        return str(key)
    return _describe(key)


def _flatten(tree, budget):
    """{dotted name: _Tensor} of the tensors in a dict, possibly of nested dicts.

    Each name repeats the keys of the dicts above it, so dicts nested deep in a small
    pickle spell out enormous names: they may add up to `budget` characters.
    """
    tensors, expanded = {}, set()
    pending = [("", tree)]  # a stack, children pushed in reverse to keep the file's order
    while pending:
        name, node = pending.pop()
        if isinstance(node, _Tensor):
            if name in tensors:
                raise ValueError(f"two tensors are named {name[:200]!r}")
            tensors[name] = node
        elif isinstance(node, dict):
            if id(node) in expanded:  # real state dicts never share or nest a dict twice
                raise ValueError(f"the dict at {name[:200]!r} appears twice")
            expanded.add(id(node))
            children = []
            for key, value in node.items():
                if not isinstance(value, (_Tensor, dict)):
                    continue  # dropped: no name needed
                child = f"{name}.{_key_name(key)}" if name else _key_name(key)
                budget -= len(child)
                if budget < 0:
                    raise ValueError("its tensor names add up to more characters than the "
                                     "file could hold (dicts nested very deep?)")
                children.append((child, value))
            pending.extend(reversed(children))
    return tensors


# --------------------------------------------------------------------------
# Walking a pickle's opcodes before unpickling it

_MAX_LINE = 1 << 16  # text opcodes (GLOBAL's module and name) are short lines
_FIRST_READ = 1 << 20  # real pickles fit; one that does not is read again, 4 times more
# opcode byte -> (name, argument size, argument kind), from pickletools' table.
_OPCODES = {ord(op.code): (op.name, op.arg.n if op.arg else 0, op.arg.name if op.arg else None)
            for op in pickletools.opcodes}
_LENGTH_PREFIXES = {  # an argument whose length comes first: how it is written
    pickletools.TAKEN_FROM_ARGUMENT1: struct.Struct("<B"),
    pickletools.TAKEN_FROM_ARGUMENT4: struct.Struct("<i"),
    pickletools.TAKEN_FROM_ARGUMENT4U: struct.Struct("<I"),
    pickletools.TAKEN_FROM_ARGUMENT8U: struct.Struct("<Q"),
}
_EXTENSION_OPCODES = {"EXT1", "EXT2", "EXT4"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _Incomplete(Exception):
    """The pickle goes on past the bytes at hand; at least `needed` bytes would do."""

    def __init__(self, needed):
        super().__init__(needed)
        self.needed = needed


def _pickle_end(data, path):
    """Where the pickle at the start of `data` ends (just after STOP).

    Walks the opcodes without building anything, so that unpickling the bytes found
    allocates no more than they hold: each declared length must lie within them, a
    memo index within what the opcodes so far can have stored. Refuses EXT1/EXT2/EXT4
    (see the module docstring). Raises `_Incomplete` if `data` ends first.
    """
    pos, count, size = 0, 0, len(data)
    while True:
        if pos >= size:
            raise _Incomplete(size + 1)
        start = pos
        try:
            name, width, kind = _OPCODES[data[pos]]
        except KeyError:
            raise ValueError(f"damaged pickle: no opcode {data[pos]:#04x} (byte {pos})") from None
        pos += 1
        count += 1
        value = None
        if width >= 0:  # a fixed-size argument
            if pos + width > size:
                raise _Incomplete(pos + width)
            if name in _MEMO_PUTS or name in _EXTENSION_OPCODES or name == "FRAME":
                value = int.from_bytes(data[pos:pos + width], "little")
            pos += width
        elif width == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if kind == "stringnl_noescape_pair" else 1):
                end = data.find(b"\n", pos, pos + _MAX_LINE)
                if end < 0:
                    if size - pos < _MAX_LINE:
                        raise _Incomplete(max(size + 1, pos + _MAX_LINE))
                    raise ValueError(f"damaged pickle: {name} (byte {start}) has a line "
                                     f"longer than {_MAX_LINE} bytes")
                line, pos = data[pos:end], end + 1
            if name == "PUT":
                try:
                    value = int(line)
                except ValueError:
                    raise ValueError(f"damaged pickle: PUT (byte {start}) of "
                                     f"{bytes(line[:20])!r}") from None
        else:  # the argument's length comes first
            prefix = _LENGTH_PREFIXES[width]
            if pos + prefix.size > size:
                raise _Incomplete(pos + prefix.size)
            (length,) = prefix.unpack_from(data, pos)
            pos += prefix.size
            if length < 0:
                raise ValueError(f"damaged pickle: {name} (byte {start}) of {length} bytes")
            if pos + length > size:
                raise _Incomplete(pos + length)
            pos += length
        if name in _EXTENSION_OPCODES:
            raise _Refused(f"refusing extension code {value} ({name}) in {path}: globals "
                           "named through copyreg's extension registry are not resolved; only "
                           "tensors and state dicts can be loaded")
        if name in _MEMO_PUTS and not 0 <= value <= count:
            raise ValueError(f"damaged pickle: memo index {value} (byte {start}), more than a "
                             f"pickle of {count} opcodes can use")
        if name == "FRAME" and pos + value > size:
            raise _Incomplete(pos + value)
        if name == "STOP":
            return pos


def _read_pickle(file, end, path):
    """The bytes of the pickle at the file's position, checked by `_pickle_end` (which
    never reads past `end`); the file is left just after it."""
    start = file.tell()
    available = max(0, end - start)
    size = min(available, _FIRST_READ)
    while True:
        file.seek(start)
        data = file.read(size)
        try:
            length = _pickle_end(data, path)
            break
        except _Incomplete as incomplete:
            if len(data) >= available or incomplete.needed > available:
                if not data:
                    raise ValueError("the file ends before a pickle (truncated?)") from None
                raise ValueError("damaged pickle: it runs past the end of the file (truncated, "
                                 f"or a length it declares is beyond the {available} bytes "
                                 "left)") from None
            size = min(available, max(incomplete.needed, 4 * size))
    file.seek(start + length)
    return data[:length]


# --------------------------------------------------------------------------
# The two container formats

# Tensor names are keys the pickle spells out, plus the keys of the dicts above them:
# a few times the pickle's size even for deep nesting. This leaves room to spare.
_NAME_CHARS_PER_BYTE = 16
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_EXPANSION = 1032  # the most deflate expands; torch stores members uncompressed
_LEGACY_PROTOCOL = 1001
_ZIP_LOCAL_HEADER = struct.Struct("<4s5H3I2H")


def _read_at(file, position, size):
    if position + size > os.fstat(file.fileno()).st_size:  # before allocating
        raise ValueError(f"the file ends before byte {position + size}")
    raw = bytearray(size)
    file.seek(position)
    if file.readinto(raw) != size:
        raise ValueError(f"the file ends before byte {position + size}")
    return raw


def _zip_data_offset(file, info):
    """Where a zip member's (stored) data starts: after its local header."""
    if info.header_offset < 0:
        raise ValueError(f"member {info.filename!r} has a negative offset")
    if info.header_offset + _ZIP_LOCAL_HEADER.size > os.fstat(file.fileno()).st_size:
        raise ValueError(f"member {info.filename!r} is cut off")
    file.seek(info.header_offset)
    header = file.read(_ZIP_LOCAL_HEADER.size)
    if len(header) != _ZIP_LOCAL_HEADER.size:
        raise ValueError(f"member {info.filename!r} is cut off")
    signature, _, flags, *_, name_size, extra_size = _ZIP_LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise ValueError(f"no local header for member {info.filename!r}")
    if flags & 1:
        raise ValueError(f"member {info.filename!r} is encrypted")
    return info.header_offset + _ZIP_LOCAL_HEADER.size + name_size + extra_size


class TorchCheckpoint(CheckpointReader):
    """A PyTorch checkpoint as a read-only mapping {tensor name: np.ndarray}.

    `path` is a file written by `torch.save`, in the zip or the legacy
    format. Opening unpickles only the tensors' metadata (refusing anything
    but tensors and dicts, see the module docstring); a tensor's bytes are
    read when it is asked for.

    The file should hold a state dict. Dicts nested in it (`{"module":
    {...}}`, `{"state_dict": {...}}`) are flattened, "." joining the keys;
    values that are not tensors or dicts are dropped. Names keep the file's
    order.

    Arrays keep their dtype, except bfloat16, which numpy lacks: it comes
    back as float32 (exactly, bfloat16 being truncated float32). Views
    sharing a storage come out as separate arrays. Complex, float8 and
    quantized tensors raise NotImplementedError when read. Zip checkpoints
    written on big-endian machines are byte-swapped to native order.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.description = f"PyTorch checkpoint {self.path}"
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no PyTorch checkpoint at {self.path}")
        self._size = os.path.getsize(self.path)
        self._pickle_bytes = 0
        with open(self.path, "rb") as file:
            head = file.read(512)
            try:
                if head.startswith(b"PK\x03\x04"):
                    self.format = "zip"
                    tree, roots = self._open_zip(file)
                elif head[257:262] == b"ustar":
                    raise ValueError("this is the tar-based format of the first torch "
                                     "releases, which TorchCheckpoint does not read; re-save "
                                     "it with a recent torch.save")
                else:
                    self.format = "legacy"
                    tree, roots = self._open_legacy(file)
                if not isinstance(tree, dict):
                    raise ValueError(f"it holds a {type(tree).__name__}, not a state dict")
                self._entries = _flatten(tree, _NAME_CHARS_PER_BYTE * self._pickle_bytes
                                         + (1 << 20))
            except _Refused:
                raise
            except ValueError as error:
                raise ValueError(f"{self.path} is not a valid PyTorch checkpoint: "
                                 f"{error}") from None
        if not self._entries:
            raise ValueError(f"{self.path} holds no tensors")
        for name, tensor in self._entries.items():
            start, size = self._extent(tensor)
            if start + size > tensor.storage.nbytes:
                raise ValueError(f"{self.path} is corrupt: {name!r} runs past the end of its "
                                 f"storage ({start + size} > {tensor.storage.nbytes} bytes)")
            # Strides of 0 (or overlapping ones) repeat stored elements: bound the copy
            # reading makes by the file, not by the shape a few bytes declare.
            nbytes = math.prod(tensor.shape) * tensor.dtype.itemsize
            if nbytes > max(size, self._size):
                raise ValueError(f"{self.path} is corrupt: {name!r} of shape {tensor.shape} "
                                 f"repeats its {size} stored bytes into {nbytes}, more than "
                                 f"the file's {self._size}")
        self._check_storages(roots)

    def _unpickle(self, file, roots, end=None):
        """Unpickle one object from the file's position (checked first, see
        `_pickle_end`), turning every failure but a refusal into ValueError."""
        data = _read_pickle(file, self._size if end is None else end, self.path)
        self._pickle_bytes += len(data)
        try:
            return _Unpickler(io.BytesIO(data), self.path, roots).load()
        except _Refused:
            raise
        except EOFError:
            raise ValueError("the file ends before a pickle (truncated?)") from None
        except Exception as error:  # a damaged pickle can raise almost anything
            raise ValueError(f"bad pickle: {type(error).__name__}: {error}") from None

    def _open_zip(self, file):
        try:
            with zipfile.ZipFile(file) as archive:
                self._members = {info.filename: info for info in archive.infolist()}
        except Exception as error:  # zipfile's own errors, and what damage makes it raise
            # The central directory is at the very end: a cut file has none.
            raise ValueError(f"a damaged zip archive (truncated?): {error}") from None
        pickles = [name for name in self._members
                   if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"expected one <folder>/data.pkl member, found {len(pickles)}")
        self._root = pickles[0][:-len("/data.pkl")]
        byteorder = self._members.get(f"{self._root}/byteorder")
        byteorder = self._read_member(file, byteorder).decode() if byteorder else "little"
        if byteorder not in ("little", "big"):
            raise ValueError(f"unknown byte order {byteorder!r}")
        self._byteorder = "<" if byteorder == "little" else ">"
        roots = {}
        data = self._read_member(file, self._members[pickles[0]])
        return self._unpickle(io.BytesIO(data), roots, len(data)), roots

    def _open_legacy(self, file):
        file.seek(0)
        roots = {}
        try:
            magic = self._unpickle(file, roots)
        except _Refused:
            raise
        except ValueError:
            magic = None
        if magic != _LEGACY_MAGIC:
            raise ValueError("neither a zip archive nor a legacy torch.save file")
        protocol = self._unpickle(file, roots)
        if protocol != _LEGACY_PROTOCOL:
            raise ValueError(f"unknown legacy protocol version {_describe(protocol)}")
        self._unpickle(file, roots)  # sys_info: nothing in it matters (see the docstring)
        tree = self._unpickle(file, roots)
        keys = self._unpickle(file, roots)
        if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
            raise ValueError("the storage key list is not a list of str")
        # Walk the size headers to find each storage's data, without reading it.
        self._byteorder = "<"
        self._offsets = {}
        position = file.tell()
        for key in keys:
            if key not in roots or key in self._offsets:
                raise ValueError(f"storage {key!r} is unknown or listed twice")
            file.seek(position)
            header = file.read(8)
            if len(header) != 8:
                raise ValueError(f"truncated: the file ends before storage {key!r}")
            (count,) = struct.unpack("<q", header)
            dtype, numel = roots[key]
            if count != numel:
                raise ValueError(f"storage {key!r} has {count} elements, the pickle says {numel}")
            self._offsets[key] = position + 8
            position += 8 + count * dtype.itemsize
            if position > self._size:
                raise ValueError(f"truncated: storage {key!r} ends at byte {position}, but the "
                                 f"file has {self._size}")
        return tree, roots

    def _check_storages(self, roots):
        """Every storage's bytes are there (legacy: checked while walking them)."""
        if self.format == "legacy":
            missing = set(roots) - set(self._offsets)
        else:
            missing = set()
            for key, (dtype, numel) in roots.items():
                info = self._members.get(f"{self._root}/data/{key}")
                if info is None:
                    missing.add(key)
                elif info.file_size < numel * dtype.itemsize:
                    raise ValueError(f"{self.path} is corrupt: storage {key!r} has "
                                     f"{info.file_size} bytes, the pickle says "
                                     f"{numel * dtype.itemsize}")
        if missing:
            raise ValueError(f"{self.path} is corrupt: no data for storage(s) "
                             f"{', '.join(map(repr, sorted(missing)))}")

    def __repr__(self):
        return f"TorchCheckpoint({self.path!r}, {len(self)} tensors)"

    def dtype(self, name) -> np.dtype:
        """The dtype `self[name]` will have (float32 for bfloat16)."""
        dtype = self._entry(name).dtype
        if dtype.name == "bfloat16":
            return np.dtype(np.float32)
        return self._stored_dtype(name, dtype).newbyteorder("=")

    def __getitem__(self, name) -> np.ndarray:
        tensor = self._entry(name)
        stored = self._stored_dtype(name, tensor.dtype)
        if math.prod(tensor.shape) == 0:
            return np.empty(tensor.shape, self.dtype(name))
        start, size = self._extent(tensor)
        raw = self._read(name, tensor.storage, start, size)
        itemsize = stored.itemsize
        span = np.frombuffer(raw, stored)
        array = np.lib.stride_tricks.as_strided(  # a dimension of 1 never steps
            span, tensor.shape, [stride * itemsize if size > 1 else 0
                                 for size, stride in zip(tensor.shape, tensor.strides)])
        if array.size != span.size or not array.flags.c_contiguous:
            array = array.copy()  # a strided view: keep only its elements
        if tensor.dtype.name == "bfloat16":
            return bfloat16_to_float32(array)
        return array.astype(stored.newbyteorder("="), copy=False)

    def read_rows(self, name, start, stop):
        """Rows `start:stop` of tensor `name`, reading only their bytes when the tensor
        is laid out row-major (as saved weights are); any other layout reads it all."""
        tensor = self._entry(name)
        rows = tensor.shape[0] if tensor.shape else 0
        start, stop = max(0, min(start, rows)), max(0, min(stop, rows))
        row_elements = math.prod(tensor.shape[1:])
        contiguous = list(tensor.strides) == [
            math.prod(tensor.shape[i + 1:]) for i in range(len(tensor.shape))]
        if (not contiguous or tensor.dtype.name == "bfloat16" or stop <= start
                or row_elements == 0):
            return self[name][start:stop]
        stored = self._stored_dtype(name, tensor.dtype)
        itemsize = stored.itemsize
        first = (tensor.offset + start * row_elements) * itemsize
        raw = self._read(name, tensor.storage, first, (stop - start) * row_elements * itemsize)
        array = np.frombuffer(raw, stored).reshape((stop - start, *tensor.shape[1:]))
        return array.astype(stored.newbyteorder("="), copy=False)

    def _stored_dtype(self, name, dtype):
        if dtype.numpy is None:
            raise NotImplementedError(f"{name!r} in {self.path} has dtype torch.{dtype.name}, "
                                      "which TorchCheckpoint cannot read")
        return np.dtype(dtype.numpy).newbyteorder(self._byteorder)

    @staticmethod
    def _extent(tensor):
        """(first byte, byte count) of the storage bytes the tensor's elements lie in."""
        if math.prod(tensor.shape) == 0:
            return 0, 0
        last = tensor.offset + sum((size - 1) * stride
                                   for size, stride in zip(tensor.shape, tensor.strides))
        itemsize = tensor.dtype.itemsize
        return tensor.offset * itemsize, (last + 1 - tensor.offset) * itemsize

    def _read(self, name, storage, start, size):
        """`size` bytes at `start` in the storage, as a bytearray."""
        with open(self.path, "rb") as file:
            try:
                if self.format == "legacy":
                    return _read_at(file, self._offsets[storage.key] + storage.offset
                                         + start, size)
                info = self._members[f"{self._root}/data/{storage.key}"]
                return self._read_member(file, info, storage.offset + start, size)
            except ValueError as error:
                raise ValueError(f"cannot read {name!r} from {self.path}: {error}") from None

    def _read_member(self, file, info, start=0, size=None):
        """Bytes of a zip member: `size` of them from `start`, or all.

        Members torch writes are stored uncompressed, so they are read in
        place; whole ones are checked against their CRC-32 (0 means torch
        was told not to compute it). Compressed members, from archives
        rewritten by other tools, go through zipfile; one that would expand
        more than deflate can (1032-fold) is refused.
        """
        size = info.file_size - start if size is None else size
        if info.compress_type != zipfile.ZIP_STORED:
            # What a member unpacks to is bounded by the compressed bytes the file holds,
            # times what deflate can expand (bzip2 and LZMA go far beyond).
            if info.compress_size > self._size or \
                    info.file_size > _MAX_EXPANSION * max(info.compress_size, 1):
                raise ValueError(f"member {info.filename!r} claims {info.file_size} bytes "
                                 f"from {info.compress_size} compressed ones, more than "
                                 f"{_MAX_EXPANSION} times as many")
            try:
                with zipfile.ZipFile(self.path) as archive, archive.open(info) as member:
                    member.seek(start)
                    raw = bytearray(member.read(size))
            except Exception as error:  # zipfile, zlib, bz2 and lzma raise errors of their own
                raise ValueError(f"cannot read member {info.filename!r}: {error}") from None
            if len(raw) != size:
                raise ValueError(f"member {info.filename!r} is shorter than expected")
            return raw
        if start + size > info.file_size:
            raise ValueError(f"bytes {start}..{start + size} lie outside member "
                             f"{info.filename!r} ({info.file_size} bytes)")
        data_offset = _zip_data_offset(file, info)
        if data_offset + info.file_size > self._size:
            raise ValueError(f"member {info.filename!r} runs past the end of the file")
        raw = _read_at(file, data_offset + start, size)
        if start == 0 and size == info.file_size and info.CRC and zlib.crc32(raw) != info.CRC:
            raise ValueError(f"checksum mismatch in member {info.filename!r}: the file is "
                             "corrupt")
        return raw

