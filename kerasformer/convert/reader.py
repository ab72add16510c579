"""What the checkpoint readers share: a read-only mapping over named tensors."""
import collections.abc
import difflib

import numpy as np


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
