"""What the checkpoint readers share: a read-only mapping over named tensors."""
import collections.abc
import difflib

import numpy as np


# numpy 1 makes arrays of at most 32 dimensions; no weight has more than a handful.
MAX_RANK = 32
_MAX_BYTES = (1 << 63) - 1  # numpy's limit on an array's size in bytes, empty or not


def check_shape(shape, itemsize):
    """The element count of `shape`, after checking numpy could make an array of it.

    Raises ValueError (without the file's name: the caller adds it) for a rank over
    MAX_RANK, a dimension that is not an int >= 0, or a size in bytes beyond what
    numpy can address — checked on the non-zero dimensions too, as numpy does even
    for an empty array. Each reader then bounds the byte size by what its file holds.
    """
    if len(shape) > MAX_RANK:
        raise ValueError(f"{len(shape)} dimensions (at most {MAX_RANK} are read)")
    nonzero = 1
    for size in shape:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"shape {tuple(shape)!r:.200} has a dimension that is not a "
                             "count")
        nonzero *= size or 1
        if nonzero * max(itemsize, 1) > _MAX_BYTES:
            raise ValueError(f"shape {tuple(shape)!r:.200} is too large for any array")
    return 0 if 0 in shape else nonzero


def bfloat16_to_float32(bits):
    """bfloat16 bit patterns (uint16) as float32 — exact, bfloat16 being truncated float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class CheckpointReader(collections.abc.Mapping):
    """Base of `TFCheckpoint`, `TorchCheckpoint` and `SafetensorsCheckpoint`.

    Subclasses fill `self._entries` (name -> an entry with a `.shape`, in the file's
    order) and set `self.description` (e.g. "safetensors file /x/model.safetensors"),
    then implement `__getitem__` and `dtype`.
    """

    noun = "tensor"  # what a name is called in errors ("variable" for TensorFlow)

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def variables(self):
        """[(name, shape)] in the file's order."""
        return [(name, entry.shape) for name, entry in self._entries.items()]

    def shape(self, name) -> tuple:
        return self._entry(name).shape

    def _entry(self, name):
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._entries, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"no {self.noun} {name!r} in {self.description}{hint}") from None

    def read_rows(self, name, start, stop):
        """Rows `start:stop` of the first axis of tensor `name`. Readers that can read
        a part of a tensor without the rest override this (converters stream large
        tensors through it); the default reads the whole tensor."""
        return self[name][start:stop]
