"""Read TensorFlow checkpoints with numpy alone (no TensorFlow needed).

A TensorFlow checkpoint ("tensor bundle") `PREFIX` is a set of files:

* `PREFIX.index`: a sorted key/value table mapping each tensor name to a
  serialized `BundleEntryProto` (dtype, shape, data shard, byte offset, size,
  checksum). The empty key holds a `BundleHeaderProto` (number of shards,
  endianness, format version).
* `PREFIX.data-00000-of-0000N`, ...: the raw tensor bytes, back to back.

The index is an SSTable in the LevelDB table format (all integers
little-endian, "varint" = protobuf base-128 varint):

    data block | trailer | ... | metaindex block | trailer | index block | trailer | footer

* footer (last 48 bytes): varint (offset, size) handles of the metaindex and
  index blocks, zero padding up to byte 40, then the magic 0xdb4775248b80fb57.
* trailer (5 bytes after each block): compression type (0 = none) and the
  masked crc32c of the block plus that type byte.
* block: entries `varint shared | varint unshared | varint value_size |
  key bytes after the shared prefix | value`, where `shared` counts the bytes
  the key has in common with the previous key; then an array of uint32
  "restart" offsets and its uint32 length. Restarts only serve binary search,
  so this reader decodes every entry in order and uses them only to find
  where the entries stop.
* index block: one entry per data block, its value the block's handle. The
  metaindex block would name filter blocks, which TensorFlow never writes.

Usage:

    ckpt = TFCheckpoint("chinese_L-12_H-768_A-12/bert_model.ckpt")
    for name, shape in ckpt.variables():
        ...
    kernel = ckpt["bert/encoder/layer_0/attention/self/query/kernel"]
"""
import functools
import glob
import math
import os
import re
import struct
from typing import NamedTuple

import numpy as np

from kerasformer.convert.reader import (
    MAX_RANK, CheckpointReader, bfloat16_to_float32, check_shape)

# --------------------------------------------------------------------------
# crc32c

_CRC_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reversed
_MASK_DELTA = 0xA282EAD8


def _crc_tables():
    """Register update tables: for one input byte, and for one uint32 word."""
    byte = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        byte = np.where(byte & 1, (byte >> 1) ^ np.uint32(_CRC_POLY), byte >> 1)
    # Feeding a little-endian uint32 w into register r gives f(r ^ w), with f
    # "advance over 4 zero bytes". f is linear, so it splits into a table for
    # the low and one for the high 16 bits: 4 bytes per step, 2 lookups.
    low = np.arange(1 << 16, dtype=np.uint32)
    high = low << 16
    for _ in range(4):
        low = byte[low & 0xFF] ^ (low >> 8)
        high = byte[high & 0xFF] ^ (high >> 8)
    return byte, low, high


_BYTE_TABLE, _LOW_TABLE, _HIGH_TABLE = _crc_tables()
_LOW_INTS, _HIGH_INTS = _LOW_TABLE.tolist(), _HIGH_TABLE.tolist()  # faster for one lane
_BITS = np.arange(32, dtype=np.uint32)


def _gf2_apply(matrix, vector):
    """Multiply uint32 value(s) by a 32x32 GF(2) matrix given as 32 uint32 columns."""
    bits = (np.asarray(vector, dtype=np.uint32)[..., None] >> _BITS) & 1
    return np.bitwise_xor.reduce(matrix * bits, axis=-1)


def _zero_byte_powers(count=64):
    """Matrices advancing a CRC register over 1, 2, 4, ... zero bytes.

    Feeding in a zero byte changes the register linearly, so it is a GF(2)
    matrix; each power of two is the square of the previous one.
    """
    unit = np.uint32(1) << _BITS
    powers = [_BYTE_TABLE[unit & 0xFF] ^ (unit >> 8)]
    while len(powers) < count:
        powers.append(_gf2_apply(powers[-1], powers[-1]))
    return powers


_ZERO_BYTE_POWERS = _zero_byte_powers()


@functools.lru_cache(maxsize=1024)
def _zero_bytes_matrix(length):
    """Matrix advancing a CRC register over `length` zero bytes."""
    matrix = np.uint32(1) << _BITS  # identity
    for bit in range(length.bit_length()):
        if length >> bit & 1:
            matrix = _gf2_apply(_ZERO_BYTE_POWERS[bit], matrix)
    return matrix


_CHUNK_BYTES = 1 << 22  # bounds the padded copy in _crc_register
_MAX_LANES = 1 << 14
_MIN_LANE_BYTES = 256  # shorter lanes spend more time in numpy call overhead


def _crc_register(data):
    """CRC register after feeding the uint8 array `data` into a zero register.

    The buffer is cut into equal lanes whose registers advance in lock-step,
    one vectorised numpy step per uint32 position. Since the register is
    linear in the input, register(a + b) = register(a) advanced over len(b)
    zero bytes, xor register(b); neighbouring lanes merge that way in a tree.
    """
    lanes = min(_MAX_LANES, 1 << max(0, (data.size // _MIN_LANE_BYTES).bit_length() - 1))
    lane_words = -(-data.size // (4 * lanes))
    # Leading zeros leave a zero register at zero, so padding the front gives
    # every lane the same whole number of uint32 words for free.
    padding = 4 * lanes * lane_words - data.size
    if padding:
        data = np.concatenate([np.zeros(padding, np.uint8), data])
    words = data.view("<u4").reshape(lanes, lane_words)
    if lanes == 1:
        register = 0
        for word in words[0].tolist():
            register ^= word
            register = _LOW_INTS[register & 0xFFFF] ^ _HIGH_INTS[register >> 16]
        return register
    registers = np.zeros(lanes, np.uint32)
    low, high = np.empty_like(registers), np.empty_like(registers)
    for column in words.T:
        np.bitwise_xor(registers, column, out=low)
        np.right_shift(low, 16, out=high)
        np.bitwise_and(low, 0xFFFF, out=low)
        np.take(_LOW_TABLE, low, out=registers)
        registers ^= _HIGH_TABLE[high]
    lane_bytes = 4 * lane_words
    while registers.size > 1:
        registers = _gf2_apply(_zero_bytes_matrix(lane_bytes), registers[0::2]) ^ registers[1::2]
        lane_bytes *= 2
    return int(registers[0])


def crc32c(data, crc=0) -> int:
    """CRC-32C (Castagnoli) of `data`: bytes-like, or a numpy array's memory.

    `crc` continues a checksum: `crc32c(b, crc32c(a)) == crc32c(a + b)`, so data
    written in pieces is checked in pieces. Pure numpy, vectorised across lanes (see
    `_crc_register`): a few hundred MB/s on one core, so checking a 400 MB
    checkpoint takes seconds.
    """
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        data = np.frombuffer(data, dtype=np.uint8)
    register = crc ^ 0xFFFFFFFF
    for start in range(0, data.size, _CHUNK_BYTES):
        chunk = data[start:start + _CHUNK_BYTES]
        advanced = int(_gf2_apply(_zero_bytes_matrix(chunk.size), register))
        register = advanced ^ _crc_register(chunk)
    return register ^ 0xFFFFFFFF


def _mask(crc):
    """Checksum as TensorFlow and LevelDB store it: rotated and offset, so a
    crc over data that itself holds crcs does not degenerate."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------
# Protobuf wire format and SSTable blocks. These raise ValueError on bad
# input; TFCheckpoint adds the file name.

_MAX_VARINT_BYTES = 10  # a 64-bit value; a longer varint is damage, not a number
_INT64_LIMIT = 1 << 63  # int64 fields: a larger varint is a negative number


def _varint(buf, pos):
    """Decode the varint at buf[pos]; return (value, position after it)."""
    value = shift = 0
    end = min(len(buf), pos + _MAX_VARINT_BYTES)
    while pos < end:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:
                raise ValueError("varint beyond 64 bits")
            return value, pos
        shift += 7
    if shift == 7 * _MAX_VARINT_BYTES:
        raise ValueError(f"varint longer than {_MAX_VARINT_BYTES} bytes")
    raise ValueError("truncated varint")


def _proto_fields(buf):
    """Split a protobuf message into {field number: [values]}.

    Varint and fixed-width fields give ints, length-delimited ones bytes
    (sub-messages are parsed by calling this again).
    """
    fields = {}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wire_type = tag & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = int.from_bytes(buf[pos:pos + size], "little"), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        fields.setdefault(tag >> 3, []).append(value)
    return fields


def _int_field(fields, number, default=0):
    """A singular number field (the last one wins, as in protobuf)."""
    value = fields.get(number, [default])[-1]
    if not isinstance(value, int):
        raise ValueError(f"protobuf field {number} is {len(value)} bytes, not a number")
    return value


def _message_fields(fields, number):
    """A singular sub-message field, split into its fields (empty if absent)."""
    return _proto_fields((_repeated_messages(fields, number) or [b""])[-1])


def _repeated_messages(fields, number):
    """The values of a repeated sub-message (or bytes) field."""
    values = fields.get(number, [])
    for value in values:
        if isinstance(value, int):
            raise ValueError(f"protobuf field {number} is a number, not a message")
    return values


def _block_handle(buf, pos):
    """Decode an SSTable block handle; return ((offset, size), position after it)."""
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


_BLOCK_TRAILER_BYTES = 5


def _read_block(table, handle):
    """Contents of the block at `handle` in the SSTable bytes `table`, checked."""
    offset, size = handle
    end = offset + size
    if end + _BLOCK_TRAILER_BYTES > len(table):
        raise ValueError(f"block at bytes {offset}..{end} runs past the end of the file "
                         "(truncated?)")
    compression = table[end]
    (stored_crc,) = struct.unpack_from("<I", table, end + 1)
    if _mask(crc32c(table[offset:end + 1])) != stored_crc:
        raise ValueError(f"checksum mismatch in the block at bytes {offset}..{end}")
    if compression == 1:
        # TensorFlow has written bundle indexes uncompressed since (at least) 1.2.
        raise ValueError("snappy-compressed index blocks are not supported; "
                         "re-save the checkpoint with a recent TensorFlow")
    if compression != 0:
        raise ValueError(f"unknown block compression type {compression}")
    return table[offset:end]


def _block_entries(block, budget=None):
    """Yield the (key, value) pairs of an SSTable block.

    Keys share prefixes with the keys before them, so a small block can spell
    enormous keys; `budget`, a one-element list, is what their bytes may still
    add up to (decremented here).
    """
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * num_restarts
    if entries_end < 0:
        raise ValueError("block restart array larger than the block")
    key, pos = b"", 0
    while pos < entries_end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_size, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_size > entries_end:
            raise ValueError("malformed block entry")
        if budget is not None:
            budget[0] -= shared + unshared
            if budget[0] < 0:
                raise ValueError("its keys spell out far more bytes than the index holds "
                                 "(a damaged or hostile prefix compression)")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_size]
        pos += value_size


_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
# TensorFlow writes a whole key every 16 entries (its restart interval), so its keys add
# up to at most ~16 times the index's size; this bound leaves room to spare.
_KEY_BYTES_PER_INDEX_BYTE = 32


def _read_table(table):
    """All (key, value) pairs of an SSTable, in key order (which is checked).

    Each data block is read once: the index must name them in order, without overlap,
    so no part of the file is checked and parsed twice.
    """
    if len(table) < _FOOTER_BYTES:
        raise ValueError(f"only {len(table)} bytes, shorter than the {_FOOTER_BYTES}-byte footer")
    (magic,) = struct.unpack_from("<Q", table, len(table) - 8)
    if magic != _TABLE_MAGIC:
        raise ValueError("bad magic number (not an SSTable, or truncated)")
    footer = table[-_FOOTER_BYTES:]
    _, pos = _block_handle(footer, 0)  # metaindex: TensorFlow stores nothing there
    index_handle, _ = _block_handle(footer, pos)
    budget = [_KEY_BYTES_PER_INDEX_BYTE * len(table) + (1 << 16)]
    previous_key, next_block = None, 0
    for _, handle in _block_entries(_read_block(table, index_handle), budget):
        (offset, size), _ = _block_handle(handle, 0)
        if offset < next_block:
            raise ValueError(f"the index names the block at byte {offset} out of order or "
                             "twice")
        next_block = offset + size + _BLOCK_TRAILER_BYTES
        for key, value in _block_entries(_read_block(table, (offset, size)), budget):
            if previous_key is not None and key <= previous_key:
                raise ValueError(f"keys out of order: {key[:100]!r} after {previous_key[:100]!r}")
            previous_key = key
            yield key, value


# --------------------------------------------------------------------------
# Tensor bundles

# TensorFlow DataType enum values (tensorflow/core/framework/types.proto).
_DT_STRING = 7
_DT_BFLOAT16 = 14
_NUMPY_DTYPES = {
    1: "f4", 2: "f8", 3: "i4", 4: "u1", 5: "i2", 6: "i1", 8: "c8", 9: "i8", 10: "?",
    _DT_BFLOAT16: "u2",  # raw bits, widened to float32 on read
    17: "u2", 18: "c16", 19: "f2", 22: "u4", 23: "u8",
}

_DATA_SUFFIX = re.compile(r"\.data-\d+-of-\d+$")


class _Entry(NamedTuple):
    """A decoded BundleEntryProto."""
    dtype: int  # DataType enum
    shape: tuple
    shard: int
    offset: int
    size: int
    masked_crc: int
    slices: tuple  # of a partitioned variable: ((start, length), ...) per slice


# DataType values are small; 101 and up are the "_REF" types of graph edges, which
# are never saved. Anything else in an entry is damage, not a type TensorFlow has.
_MAX_DATA_TYPE = 100


def _int64(value):
    """A varint as the int64 protobuf meant (two's complement)."""
    return value - (1 << 64) if value >= _INT64_LIMIT else value


def _parse_entry(value):
    """A BundleEntryProto, checked: numbers a checkpoint can hold, a shape numpy can make."""
    fields = _proto_fields(value)
    dims = _repeated_messages(_message_fields(fields, 2), 2)
    if len(dims) > MAX_RANK:
        raise ValueError(f"{len(dims)} dimensions (at most {MAX_RANK} are read)")
    entry = _Entry(
        dtype=_int_field(fields, 1),
        shape=tuple(_int64(_int_field(_proto_fields(dim), 1)) for dim in dims),
        shard=_int_field(fields, 3),
        offset=_int_field(fields, 4),
        size=_int_field(fields, 5),
        masked_crc=_int_field(fields, 6),
        slices=tuple(_parse_slice(spec) for spec in _repeated_messages(fields, 7)),
    )
    if not 0 < entry.dtype <= _MAX_DATA_TYPE:
        raise ValueError(f"DataType {entry.dtype} is not one TensorFlow has")
    for field in ("shard", "offset", "size"):
        if getattr(entry, field) >= _INT64_LIMIT:
            raise ValueError(f"negative {field} {_int64(getattr(entry, field))}")
    itemsize = 8 if entry.dtype == _DT_STRING else \
        np.dtype(_NUMPY_DTYPES.get(entry.dtype, "u1")).itemsize
    check_shape(entry.shape, itemsize)
    return entry


def _parse_slice(spec):
    """A TensorSliceProto as ((start, length), ...); length -1 means the whole axis."""
    extents = _repeated_messages(_proto_fields(spec), 1)
    if len(extents) > MAX_RANK:
        raise ValueError(f"a slice of {len(extents)} dimensions")
    extents = [_proto_fields(extent) for extent in extents]
    return tuple((_int64(_int_field(extent, 1, 0)), _int64(_int_field(extent, 2, -1)))
                 for extent in extents)


def _slice_label(name, spec):
    """How errors name one slice of a variable: name[0:2, :]."""
    axes = ", ".join(":" if length < 0 else f"{start}:{start + length}" for start, length in spec)
    return f"{name}[{axes}]"


# Each slice of a partitioned variable is a tensor of its own, keyed by
# "OrderedCode" (tensorflow/core/lib/strings/ordered_code.h): the number 0,
# the variable name, the rank, then start and length per axis.


def _ordered_string(buf, pos):
    """Decode an OrderedCode string: 00 FF stands for 00, FF 00 for FF, 00 01 ends it."""
    out = bytearray()
    while True:
        if pos >= len(buf):
            raise ValueError("unterminated string in slice key")
        if buf[pos] not in (0x00, 0xFF):
            out.append(buf[pos])
            pos += 1
            continue
        pair = buf[pos:pos + 2]
        if pair == b"\x00\x01":
            return bytes(out), pos + 2
        if pair not in (b"\x00\xff", b"\xff\x00"):
            raise ValueError("bad escape in slice key")
        out.append(pair[0] ^ 0xFF)
        pos += 2


def _ordered_unsigned(buf, pos):
    """Decode an OrderedCode unsigned number: a length byte, then big-endian bytes."""
    if pos >= len(buf) or pos + 1 + buf[pos] > len(buf):
        raise ValueError("truncated number in slice key")
    end = pos + 1 + buf[pos]
    return int.from_bytes(buf[pos + 1:end], "big"), end


def _ordered_signed(buf, pos):
    """Decode an OrderedCode signed number.

    A non-negative number of n bytes starts with n one bits, then a zero bit,
    then the value in the remaining 7n - 1 bits, big-endian. A negative x is
    the bitwise complement of the encoding of ~x.
    """
    if pos >= len(buf):
        raise ValueError("truncated number in slice key")
    flip = 0 if buf[pos] & 0x80 else 0xFF
    head = (buf[pos] ^ flip) << 8 | ((buf[pos + 1] ^ flip) if pos + 1 < len(buf) else 0)
    size = 16 - (~head & 0xFFFF).bit_length()  # count of leading one bits
    if pos + size > len(buf):
        raise ValueError("truncated number in slice key")
    encoded = int.from_bytes(bytes(byte ^ flip for byte in buf[pos:pos + size]), "big")
    value = encoded & ((1 << (7 * size - 1)) - 1)
    return (~value if flip else value), pos + size


def _parse_slice_key(key):
    """(variable name, ((start, length), ...)) of a slice entry's key."""
    name, pos = _ordered_string(key, 1)  # key[0] is the number 0
    rank, pos = _ordered_unsigned(key, pos)
    if rank > MAX_RANK:
        raise ValueError(f"a slice of {rank} dimensions")
    extents = []
    for _ in range(rank):
        start, pos = _ordered_signed(key, pos)
        length, pos = _ordered_signed(key, pos)
        extents.append((start, length))
    if pos != len(key):
        raise ValueError("bytes after the last number")
    return _decode_name(name), tuple(extents)


def _decode_name(raw):
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValueError(f"the name {raw[:100]!r} is not UTF-8") from None


# TensorFlow names data files "%05d-of-%05d"; a header claiming more is damage (and each
# one is looked for on disk).
_MAX_SHARDS = 99_999


def _parse_header(value):
    """(number of data files, big-endian?) from the BundleHeaderProto."""
    try:
        header = _proto_fields(value)
        min_consumer = _int_field(_message_fields(header, 3), 2)
        num_shards = _int_field(header, 1)
        endianness = _int_field(header, 2)
    except ValueError as error:
        raise ValueError(f"bad bundle header: {error}") from None
    if min_consumer > 1:  # this reader implements bundle format version 1
        raise ValueError(f"needs a reader of bundle format version >= {min_consumer}")
    if num_shards > _MAX_SHARDS:
        raise ValueError(f"the bundle header claims {num_shards} data files (shards)")
    if endianness not in (0, 1):
        raise ValueError(f"the bundle header claims endianness {endianness}")
    return num_shards, endianness == 1


def _check_disjoint(labelled):
    """No two entries share data bytes: TensorFlow writes each tensor once, so every
    tensor read (and a partitioned variable, the sum of its slices) fits in the files."""
    stored = sorted((entry.shard, entry.offset, entry.offset + entry.size, label)
                    for label, entry in labelled if entry.size)
    for (shard, _, end, label), (next_shard, start, _, next_label) in zip(stored, stored[1:]):
        if shard == next_shard and start < end:
            raise ValueError(f"{label!r} and {next_label!r} overlap: both are stored at byte "
                             f"{start} of data file {shard}")


def _checkpoint_prefix(path):
    """The checkpoint prefix named by a prefix, .index / .data file, or directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        indexes = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
        if not indexes:
            raise FileNotFoundError(f"no TensorFlow checkpoint in directory {path}: "
                                    "no *.index file")
        if len(indexes) > 1:
            raise ValueError(f"directory {path} holds {len(indexes)} TensorFlow checkpoints, "
                             f"pass the prefix of one: {', '.join(indexes)}")
        path = indexes[0]
    if path.endswith(".index"):
        return path[:-len(".index")]
    return _DATA_SUFFIX.sub("", path)


class TFCheckpoint(CheckpointReader):
    """A TensorFlow checkpoint as a read-only mapping {variable name: np.ndarray}.

    `path` may be the checkpoint prefix (`.../bert_model.ckpt`), its `.index`
    or one of its `.data-*` files, or a directory holding exactly one
    checkpoint. Opening reads only the index; each tensor is read from its
    data shard when asked for, and its checksum verified (ValueError if the
    file is corrupt or truncated).

    Nothing a small file declares is taken on trust: opening checks every
    entry (field types, shapes numpy can make, no two tensors sharing data
    bytes, keys in order and of a total size the index can spell), and a
    tensor's size is checked against its shape and its data file before
    anything is allocated. The slices of a partitioned variable must tile it
    exactly, without overlap or gap. Every error is a ValueError naming the
    file (FileNotFoundError for a missing one).

    Arrays keep their dtype, except bfloat16, which numpy lacks: it comes
    back as float32 (exactly, bfloat16 being truncated float32). Strings
    come back as object arrays of bytes, like TensorFlow's own reader.
    Partitioned variables are assembled from their slices. Big-endian
    checkpoints are byte-swapped to native order. Exotic dtypes (quantized,
    resource, variant, float8, int4, ...) raise NotImplementedError when read.
    """

    noun = "variable"

    def __init__(self, path):
        self.prefix = _checkpoint_prefix(path)
        self.description = f"TensorFlow checkpoint {self.prefix}"
        self.index_path = self.prefix + ".index"
        if not os.path.isfile(self.index_path):
            raise FileNotFoundError(f"no TensorFlow checkpoint at {self.prefix}: expected "
                                    f"{self.index_path} and {self.prefix}.data-00000-of-00001")
        with open(self.index_path, "rb") as file:
            table = file.read()
        try:
            records = dict(_read_table(table))
            if b"" not in records:
                raise ValueError("no bundle header entry")
            num_shards, big_endian = _parse_header(records.pop(b""))
            self._entries = {}  # name -> _Entry, as tf.train.list_variables shows them
            self._slices = {}  # (name, slice spec) -> _Entry of that slice
            labelled = []  # (what errors call it, _Entry)
            for key, value in records.items():
                if key.startswith(b"\0"):  # only slice keys start with a zero byte
                    try:
                        name, spec = slice_key = _parse_slice_key(key)
                    except ValueError as error:
                        raise ValueError(f"bad slice key {key[:100]!r}: {error}") from None
                    label = _slice_label(name, spec)
                else:
                    label = _decode_name(key)
                try:
                    entry = _parse_entry(value)
                    if entry.shard >= num_shards:
                        raise ValueError(f"it is in data file {entry.shard} of {num_shards}")
                except ValueError as error:
                    raise ValueError(f"{label!r}: {error}") from None
                if key.startswith(b"\0"):
                    self._slices[slice_key] = entry
                else:
                    self._entries[label] = entry
                labelled.append((label, entry))
            _check_disjoint(labelled)
        except (ValueError, struct.error) as error:
            raise ValueError(f"{self.index_path} is not a valid TensorFlow checkpoint index: "
                             f"{error}") from None
        self._byteorder = ">" if big_endian else "<"
        self.data_paths = [f"{self.prefix}.data-{shard:05d}-of-{num_shards:05d}"
                           for shard in range(num_shards)]
        missing = [path for path in self.data_paths if not os.path.isfile(path)]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise FileNotFoundError(f"TensorFlow checkpoint {self.prefix} is missing data "
                                    f"file(s): {', '.join(missing[:3])}{more}")

    def __repr__(self):
        return f"TFCheckpoint({self.prefix!r}, {len(self)} variables)"

    def dtype(self, name) -> np.dtype:
        """The dtype `self[name]` will have (float32 for bfloat16)."""
        entry = self._entry(name)
        if entry.dtype == _DT_STRING:
            return np.dtype(object)
        if entry.dtype == _DT_BFLOAT16:
            return np.dtype(np.float32)
        return self._stored_dtype(name, entry).newbyteorder("=")

    def __getitem__(self, name) -> np.ndarray:
        entry = self._entry(name)
        if not entry.slices:
            return self._read_tensor(name, entry)
        return self._assemble(name, entry)

    def _assemble(self, name, entry):
        """A partitioned variable, filled in from its slices once they are known to tile
        it exactly (no overlap, no gap) and to fit their data files."""
        parts, total = [], 0
        for spec in entry.slices:
            label = _slice_label(name, spec)
            region = self._region(name, entry.shape, spec, label)
            shape = tuple(axis.stop - axis.start for axis in region)
            part = self._slices.get((name, spec))
            if part is None or part.dtype != entry.dtype or part.shape != shape:
                raise ValueError(f"{self.index_path}: slice {label!r} is missing or does "
                                 f"not fit {name!r}")
            self._check_stored(label, part)
            parts.append((region, label, part))
            total += math.prod(shape)
        count = math.prod(entry.shape)
        if total != count:
            raise ValueError(f"{self.index_path}: the slices of {name!r} hold {total} "
                             f"elements, the variable {count}: they "
                             + ("overlap" if total > count else "do not cover it"))
        # The right total; without overlap, the slices tile the variable exactly.
        covered = np.zeros(entry.shape, bool)
        for region, label, _ in parts:
            if covered[region].any():
                raise ValueError(f"{self.index_path}: slice {label!r} overlaps another slice "
                                 f"of {name!r}, which leaves part of it uncovered")
            covered[region] = True
        array = np.empty(entry.shape, self.dtype(name))
        for region, label, part in parts:
            array[region] = self._read_tensor(label, part)
        return array

    def _region(self, name, shape, spec, label):
        """The slice `spec` of a variable of `shape`, as a tuple of slices (checked)."""
        if len(spec) != len(shape):
            raise ValueError(f"{self.index_path}: slice {label!r} has {len(spec)} "
                             f"dimensions, {name!r} {len(shape)}")
        region = []
        for (start, length), size in zip(spec, shape):
            stop = size if length == -1 else start + length
            if start < 0 or length < -1 or (length == -1 and start != 0) or stop > size:
                raise ValueError(f"{self.index_path}: slice {label!r} lies outside {name!r} "
                                 f"of shape {shape}")
            region.append(slice(start, stop))
        return tuple(region)

    def _stored_dtype(self, name, entry):
        if entry.dtype not in _NUMPY_DTYPES:
            raise NotImplementedError(
                f"{name!r} in {self.prefix} has TensorFlow DataType {entry.dtype} (see "
                "tensorflow/core/framework/types.proto), which TFCheckpoint cannot read")
        return np.dtype(self._byteorder + _NUMPY_DTYPES[entry.dtype])

    def _check_stored(self, name, entry):
        """Before anything is allocated: the entry's size fits its shape, and its bytes
        lie in its data file."""
        count = math.prod(entry.shape)
        if entry.dtype == _DT_STRING:  # a varint length per string, 4 bytes of checksum
            if count and count + 4 > entry.size:
                raise ValueError(f"{self.index_path}: {name!r} has {entry.size} bytes, too "
                                 f"few for {count} strings")
        else:
            stored = self._stored_dtype(name, entry)
            expected_size = count * stored.itemsize
            if entry.size != expected_size:
                raise ValueError(f"{self.index_path}: {name!r} has {entry.size} bytes, but "
                                 f"shape {entry.shape} of {stored} needs {expected_size}")
        path = self.data_paths[entry.shard]
        try:
            file_size = os.path.getsize(path)
        except OSError as error:
            raise FileNotFoundError(f"cannot read {name!r}: {path}: {error}") from None
        if entry.offset + entry.size > file_size:
            raise ValueError(self._truncated(path, name, entry, file_size))

    @staticmethod
    def _truncated(path, name, entry, file_size):
        return (f"{path} is truncated: {name!r} is stored at bytes {entry.offset}.."
                f"{entry.offset + entry.size}, but the file has {file_size} bytes")

    def _read_tensor(self, name, entry):
        """Read and check one stored tensor (a whole variable or one slice)."""
        self._check_stored(name, entry)
        if entry.dtype == _DT_STRING:
            return self._read_strings(name, entry)
        stored = self._stored_dtype(name, entry)
        raw, path = self._read_bytes(name, entry)
        if _mask(crc32c(raw)) != entry.masked_crc:
            raise ValueError(f"checksum mismatch for {name!r} in {path}: the file is corrupt")
        array = np.frombuffer(raw, stored).reshape(entry.shape)
        if entry.dtype == _DT_BFLOAT16:
            return bfloat16_to_float32(array)
        return array.astype(stored.newbyteorder("="), copy=False)

    def _read_bytes(self, name, entry):
        """The entry's bytes from its data file, as a writable bytearray."""
        path = self.data_paths[entry.shard]
        with open(path, "rb") as file:
            file_size = os.fstat(file.fileno()).st_size  # the file may have changed
            if entry.offset + entry.size > file_size:
                raise ValueError(self._truncated(path, name, entry, file_size))
            raw = bytearray(entry.size)
            file.seek(entry.offset)
            size_read = file.readinto(raw)
        if size_read != entry.size:
            raise ValueError(self._truncated(path, name, entry, os.path.getsize(path)))
        return raw, path

    def _read_strings(self, name, entry):
        """Decode a string tensor: varint lengths, a 4-byte checksum of them, the bytes.

        TensorFlow's checksum covers each length as a uint32 (uint64 if it does
        not fit) in the writer's byte order rather than the varints on disk,
        so it is recomputed from the decoded lengths.
        """
        raw, path = self._read_bytes(name, entry)
        count = math.prod(entry.shape)  # at most entry.size - 4: see _check_stored
        try:
            lengths, pos = [], 0
            for _ in range(count):
                length, pos = _varint(raw, pos)
                lengths.append(length)
            lengths_crc, pos = raw[pos:pos + 4], pos + 4
            strings = []
            for length in lengths:
                strings.append(bytes(raw[pos:pos + length]))
                pos += length
            if pos != len(raw):
                raise ValueError("string lengths do not add up to the entry size")
        except ValueError as error:
            raise ValueError(f"{name!r} in {path} is corrupt: {error}") from None
        checked = b"".join(struct.pack(self._byteorder + ("I" if n <= 0xFFFFFFFF else "Q"), n)
                           for n in lengths)
        if _mask(crc32c(checked + lengths_crc + b"".join(strings))) != entry.masked_crc:
            raise ValueError(f"checksum mismatch for {name!r} in {path}: the file is corrupt")
        array = np.empty(count, dtype=object)
        array[:] = strings
        return array.reshape(entry.shape)


# --------------------------------------------------------------------------
# Writing: the same format, for bert4keras' `save_weights_as_checkpoint`

_WRITE_DTYPES = {np.dtype(v): k for k, v in _NUMPY_DTYPES.items() if k != _DT_BFLOAT16}


def _write_dtype(name, dtype):
    """The DataType a tensor of numpy `dtype` is stored as (ml_dtypes' bfloat16 too)."""
    if dtype.name == "bfloat16":
        return _DT_BFLOAT16
    code = _WRITE_DTYPES.get(dtype.newbyteorder("<"))
    if code is None:
        raise ValueError(f"tensor {name!r}: dtype {dtype} has no TensorFlow checkpoint type")
    return code


_RESTART_INTERVAL = 16  # keys written whole every 16 entries, as TensorFlow does
_BLOCK_BYTES = 4096


def _write_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _proto_varint(number, value):
    return _write_varint(number << 3) + _write_varint(value)


def _proto_bytes(number, payload):
    return _write_varint(number << 3 | 2) + _write_varint(len(payload)) + payload


def _entry_proto(dtype, shape, offset, size, masked_crc):
    """A BundleEntryProto: dtype, shape, shard 0, offset, size, crc32c (fixed32)."""
    dims = b"".join(_proto_bytes(2, _proto_varint(1, dim)) for dim in shape)
    return (_proto_varint(1, dtype) + _proto_bytes(2, dims) + _proto_varint(4, offset)
            + _proto_varint(5, size) + _write_varint(6 << 3 | 5) + struct.pack("<I", masked_crc))


def _block(entries):
    """An SSTable block of sorted (key, value) pairs, prefix-compressed, with its
    restart array."""
    out, restarts, previous = bytearray(), [], b""
    for count, (key, value) in enumerate(entries):
        shared = 0
        if count % _RESTART_INTERVAL:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _write_varint(shared) + _write_varint(len(key) - shared) \
            + _write_varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    out += struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _table(entries):
    """An SSTable of sorted (key, value) pairs: data blocks, an empty metaindex block,
    the index block and the footer."""
    out, index, pending, pending_bytes = bytearray(), [], [], 0

    def add(contents):
        handle = _write_varint(len(out)) + _write_varint(len(contents))
        out.extend(contents + b"\0")
        out.extend(struct.pack("<I", _mask(crc32c(contents + b"\0"))))
        return handle

    def flush():
        nonlocal pending, pending_bytes
        if pending:
            index.append((pending[-1][0], add(_block(pending))))
            pending, pending_bytes = [], 0

    for key, value in entries:
        pending.append((key, value))
        pending_bytes += len(key) + len(value)
        if pending_bytes >= _BLOCK_BYTES:
            flush()
    flush()
    metaindex = add(_block([]))
    footer = metaindex + add(_block(index))
    out += footer + b"\0" * (_FOOTER_BYTES - 8 - len(footer)) + struct.pack("<Q", _TABLE_MAGIC)
    return bytes(out)


class StreamedTensor(NamedTuple):
    """A tensor written in pieces: `blocks()` yields arrays whose elements, in order,
    are the tensor's in C order (e.g. row blocks), so no more than a block is held."""
    dtype: np.dtype
    shape: tuple
    blocks: object  # () -> iterator of arrays


def write_checkpoint(prefix, tensors, progress=None):
    """Writes a TensorFlow checkpoint (tensor bundle) `prefix`: `prefix.index`,
    `prefix.data-00000-of-00001` and the `checkpoint` file beside them, as
    `tf.train.Saver` would; TensorFlow, bert4keras and `TFCheckpoint` read it.

    Args:
        prefix: path prefix, e.g. "out/bert_model.ckpt".
        tensors: iterable of (name, numpy array or `StreamedTensor`) pairs, written
            one at a time (the data file streams; only the index is kept in memory).
        progress: optional `kerasformer.progress.progress` label.

    Every file is written under a temporary name and renamed when complete, so an
    interrupted write leaves no checkpoint that loads half-written.
    """
    prefix = os.fspath(prefix)
    directory = os.path.dirname(prefix) or "."
    os.makedirs(directory, exist_ok=True)
    data_path = f"{prefix}.data-00000-of-00001"
    entries, offset = {}, 0
    temporary = [f"{path}.partial" for path in (data_path, f"{prefix}.index")]
    try:
        with open(temporary[0], "wb") as data:
            items = tensors.items() if isinstance(tensors, dict) else tensors
            if progress is not None:
                from kerasformer.progress import progress as bar

                items = bar(list(items), progress, unit="tensor")
            for name, value in items:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
                if name in entries:
                    raise ValueError(f"tensor {name!r} is given twice")
                if not isinstance(value, StreamedTensor):
                    array = np.asarray(value)
                    value = StreamedTensor(array.dtype, array.shape, lambda a=array: [a])
                dtype = _write_dtype(name, np.dtype(value.dtype))
                crc, size = 0, 0
                for block in value.blocks():
                    block = np.asarray(block)
                    if block.dtype.name == "bfloat16":  # ml_dtypes: stored as its bits
                        block = block.view(np.uint16)
                    raw = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
                    data.write(raw.data)
                    crc, size = crc32c(raw, crc), size + raw.nbytes
                expected = math.prod(value.shape) * np.dtype(value.dtype).itemsize
                if size != expected:
                    raise ValueError(f"tensor {name!r} of shape {tuple(value.shape)} came in "
                                     f"{size} bytes, not {expected}")
                entries[name] = _entry_proto(dtype, value.shape, offset, size, _mask(crc))
                offset += size
        header = _proto_varint(1, 1) + _proto_varint(2, 0) + _proto_bytes(3, _proto_varint(1, 1))
        table = _table([(b"", header)] + [(key.encode("utf-8"), entries[key])
                                          for key in sorted(entries, key=str.encode)])
        with open(temporary[1], "wb") as index:
            index.write(table)
        os.replace(temporary[0], data_path)
        os.replace(temporary[1], f"{prefix}.index")
    finally:
        for path in temporary:
            if os.path.exists(path):
                os.remove(path)
    name = os.path.basename(prefix)
    state = f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    with open(os.path.join(directory, "checkpoint.partial"), "w", encoding="utf-8") as file:
        file.write(state)
    os.replace(os.path.join(directory, "checkpoint.partial"), os.path.join(directory, "checkpoint"))
