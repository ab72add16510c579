"""Opening a checkpoint of any supported format; its layout; canonical Hugging Face names.

Which architecture a checkpoint belongs to is each architecture's own knowledge
(`kerasformer.architectures.recognise_checkpoint`)."""
import collections.abc
import os
import re

from kerasformer.convert.tf_checkpoint import TFCheckpoint

TORCH_SUFFIXES = (".bin", ".pt", ".pth")


def open_checkpoint(checkpoint):
    """Returns a mapping tensor name -> array for `checkpoint`.

    Args:
        checkpoint: a mapping (returned as is), or a path: an original TF checkpoint
            (its prefix `.../bert_model.ckpt`, `.index` or `.data-*` file, or a
            directory holding one), a `.safetensors` file, or a pickled PyTorch
            file (`pytorch_model.bin`, `.pt`), read without torch.

    Raises:
        FileNotFoundError: naming the path when nothing loadable is there.
    """
    if isinstance(checkpoint, collections.abc.Mapping):
        return checkpoint
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            "checkpoint must be a path or a mapping of tensor names to arrays, got "
            f"{type(checkpoint).__name__}"
        )
    path = os.fspath(checkpoint)
    if path.endswith(".safetensors"):
        from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint

        return SafetensorsCheckpoint(path)
    if path.endswith(TORCH_SUFFIXES) and os.path.isfile(path):
        from kerasformer.convert.torch_pickle import TorchCheckpoint

        return TorchCheckpoint(path)
    return TFCheckpoint(path)


def checkpoint_layout(names):
    """"tf" for TensorFlow variable names (`a/b/c`), "hf" for PyTorch ones (`a.b.c`)."""
    return "tf" if any("/" in name for name in names) else "hf"


class RenamedCheckpoint(collections.abc.Mapping):
    """A read-only view of a checkpoint under other tensor names.

    Raises:
        ValueError: when two tensors get the same name (naming both): loading one of
            them would leave the other neither loaded nor reported.
    """

    def __init__(self, checkpoint, rename):
        self.checkpoint = checkpoint
        self._names = {}
        for name in checkpoint.keys():
            renamed = rename(name)
            other = self._names.setdefault(renamed, name)
            if other != name:
                where = getattr(checkpoint, "description", "the checkpoint")
                raise ValueError(
                    f"{where} holds both {other!r} and {name!r}, which both stand for "
                    f"{renamed!r}: which one to load is ambiguous; remove one of them"
                )

    def __getitem__(self, name):
        return self.checkpoint[self._names[name]]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def read_rows(self, name, start, stop):
        original = self._names[name]
        if hasattr(self.checkpoint, "read_rows"):
            return self.checkpoint.read_rows(original, start, stop)
        return self.checkpoint[original][start:stop]

    def shape(self, name):
        original = self._names[name]
        if hasattr(self.checkpoint, "shape"):
            return tuple(self.checkpoint.shape(original))
        return tuple(getattr(self.checkpoint[original], "shape", ()))


def canonical_hf_names(checkpoint, prefix, head_prefixes=("cls.",)):
    """`checkpoint` under the canonical Hugging Face names of a model with `prefix`.

    Files saved from a base model (`RoFormerModel` rather than
    `RoFormerForMaskedLM`) lack the `roformer.` prefix, some re-exports keep the
    pooler unprefixed, and TF-converted BERTs such as bert-base-chinese name their
    LayerNorm parameters `gamma` / `beta`: one weight map serves them all once the
    names are canonical.
    """
    names = list(checkpoint.keys())
    prefixed = any(name.startswith(prefix) for name in names)

    def rename(name):
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        if not name.startswith((prefix, *head_prefixes)) and (
            not prefixed or name.startswith("pooler.")
        ):
            name = prefix + name
        return name

    if all(rename(name) == name for name in names):
        return checkpoint
    return RenamedCheckpoint(checkpoint, rename)
