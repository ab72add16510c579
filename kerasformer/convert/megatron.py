"""Megatron-LM model-parallel GPT-2 checkpoints (CPM-LM's original release) merged,
streamed, into bert4keras' `gpt/...` TF checkpoint.

CPM-Generate ships `mp_rank_00_model_states.pt` and `mp_rank_01_model_states.pt`, each
a `{"module": state dict}` holding one half of the model. bojone's
CPM_LM_bert4keras `convert.py` merges them by these rules, with `P` partitions and
`h = hidden / P` (torch weights are `[out, in]`; TF kernels `[in, out]`):

| Megatron tensor (per partition) | split | bert4keras tensor |
|---|---|---|
| `word_embeddings.weight` `[vocab/P, H]` | rows (vocabulary) | `gpt/embeddings/word_embeddings` |
| `attention.query_key_value.weight` `[3h, H]`, rows `[q; k; v]` | column-parallel | `attention/self/{query,key,value}/kernel`: each part's q (k, v) rows, stacked, transposed |
| `attention.query_key_value.bias` `[3h]` | column-parallel | the same rows of the bias |
| `attention.dense.weight` `[H, h]` | row-parallel | `attention/output/dense/kernel`: columns joined, transposed |
| `mlp.dense_h_to_4h.{weight,bias}` `[4h, H]` | column-parallel | `intermediate/dense`: rows joined, transposed |
| `mlp.dense_4h_to_h.weight` `[H, 4h]` | row-parallel | `output/dense/kernel`: columns joined, transposed |
| norms, position embeddings, row-parallel biases | replicated | from partition 0 (the others must agree) |

`input_layernorm` is bert4keras' `attention/input/LayerNorm`, `post_attention_layernorm`
its `input/LayerNorm`, `final_layernorm` its `gpt/output/LayerNorm`.

Every output tensor is produced in row blocks of at most `block_bytes` and written as
it comes (`tf_checkpoint.StreamedTensor`); the partitions are read a row range at a
time (`TorchCheckpoint.read_rows`), so memory stays near one block, not the model or
a whole tensor, whatever the checkpoint's size.
"""
import math
import re

import numpy as np

from kerasformer.convert.tf_checkpoint import StreamedTensor, write_checkpoint
from kerasformer.convert.torch_pickle import TorchCheckpoint

BLOCK_BYTES = 64 << 20
_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.")


class Partitions:
    """The model-parallel partitions of one Megatron checkpoint, in rank order.

    Args:
        paths: the `mp_rank_XX_model_states.pt` files, rank 0 first.

    Raises:
        ValueError: when the partitions do not hold the same tensors, or a tensor's
            shape differs between them (naming it).
    """

    def __init__(self, paths):
        if not paths:
            raise ValueError("no Megatron partitions given")
        self.files = [TorchCheckpoint(path) for path in paths]
        self.prefix = "module." if any(n.startswith("module.") for n in self.files[0]) else ""
        names = [{n[len(self.prefix):] for n in f if n.startswith(self.prefix)}
                 for f in self.files]
        for rank, other in enumerate(names[1:], 1):
            if other != names[0]:
                difference = sorted(names[0] ^ other)[:5]
                raise ValueError(f"partition {rank} ({self.files[rank].path}) holds other "
                                 f"tensors than partition 0: {', '.join(difference)}")
        self.names = names[0]
        for name in self.names:
            shapes = {tuple(f.shape(self.prefix + name)) for f in self.files}
            if len(shapes) > 1:
                raise ValueError(f"{name!r} has different shapes in the partitions: "
                                 f"{sorted(shapes)}")
        layers = {int(m.group(1)) for m in map(_LAYER.match, self.names) if m}
        self.num_layers = len(layers)
        if layers != set(range(self.num_layers)):
            raise ValueError(f"the partitions hold layers {sorted(layers)}, not 0..n-1")

    def __len__(self):
        return len(self.files)

    def shape(self, name):
        return tuple(self.files[0].shape(self._name(name)))

    def dtype(self, name):
        return self.files[0].dtype(self._name(name))

    def rows(self, rank, name, start, stop):
        return self.files[rank].read_rows(self._name(name), start, stop)

    def _name(self, name):
        if name not in self.names:
            raise KeyError(f"the partitions hold no {name!r} (a Megatron GPT-2 checkpoint "
                           "has word_embeddings.weight, transformer.layers.N..., "
                           "transformer.final_layernorm...)")
        return self.prefix + name


def _row_blocks(rows, row_bytes, block_bytes):
    """(start, stop) ranges covering `rows` rows, each at most `block_bytes`."""
    step = max(1, block_bytes // max(row_bytes, 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def stacked(partitions, parts, block_bytes=BLOCK_BYTES):
    """The row ranges `parts` = [(rank, name, start, stop)], stacked (axis 0)."""
    name = parts[0][1]
    shape = partitions.shape(name)
    dtype = partitions.dtype(name)
    row_bytes = math.prod(shape[1:]) * dtype.itemsize

    def blocks():
        for rank, name, start, stop in parts:
            for a, b in _row_blocks(stop - start, row_bytes, block_bytes):
                yield partitions.rows(rank, name, start + a, start + b)

    rows = sum(stop - start for _, _, start, stop in parts)
    return StreamedTensor(dtype, (rows, *shape[1:]), blocks)


def transposed(partitions, parts, block_bytes=BLOCK_BYTES):
    """The row ranges `parts` of 2-D tensors, stacked, then transposed: the output's
    row block `i0:i1` is columns `i0:i1` of every part, read a row block at a time."""
    name = parts[0][1]
    columns = partitions.shape(name)[1]
    dtype = partitions.dtype(name)
    rows = sum(stop - start for _, _, start, stop in parts)

    def blocks():
        for i0, i1 in _row_blocks(columns, rows * dtype.itemsize, block_bytes):
            block = np.empty((i1 - i0, rows), dtype)
            offset = 0
            for rank, name, start, stop in parts:
                for a, b in _row_blocks(stop - start, columns * dtype.itemsize, block_bytes):
                    chunk = partitions.rows(rank, name, start + a, start + b)
                    block[:, offset + a:offset + b] = chunk[:, i0:i1].T
                offset += stop - start
            yield block

    return StreamedTensor(dtype, (columns, rows), blocks)


def joined(tensors):
    """Tensors with the same trailing shape, one after the other along axis 0."""
    def blocks():
        for tensor in tensors:
            yield from tensor.blocks()

    first = tensors[0]
    return StreamedTensor(first.dtype, (sum(t.shape[0] for t in tensors), *first.shape[1:]),
                          blocks)


def replicated(partitions, name, block_bytes=BLOCK_BYTES):
    """A replicated tensor from partition 0, checked against the others block by block."""
    shape = partitions.shape(name)
    dtype = partitions.dtype(name)
    row_bytes = math.prod(shape[1:]) * dtype.itemsize

    def blocks():
        for a, b in _row_blocks(shape[0], row_bytes, block_bytes):
            first = partitions.rows(0, name, a, b)
            for rank in range(1, len(partitions)):
                if not np.array_equal(first, partitions.rows(rank, name, a, b)):
                    raise ValueError(f"{name!r} should be the same in every partition but "
                                     f"partition {rank} differs (rows {a}..{b})")
            yield first

    return StreamedTensor(dtype, shape, blocks)


def gpt2_tensors(partitions, block_bytes=BLOCK_BYTES):
    """(bert4keras TF name, `StreamedTensor`) of every tensor of the merged model, in
    bojone's converter's order."""
    every = range(len(partitions))

    def whole(name):
        return [(rank, name, 0, partitions.shape(name)[0]) for rank in every]

    def row_parallel(name):  # [H, h] per partition: columns joined, transposed
        return joined([transposed(partitions, [part], block_bytes) for part in whole(name)])

    yield "gpt/embeddings/word_embeddings", stacked(
        partitions, whole("word_embeddings.weight"), block_bytes)
    yield "gpt/embeddings/position_embeddings", replicated(
        partitions, "position_embeddings.weight", block_bytes)
    for i in range(partitions.num_layers):
        source, target = f"transformer.layers.{i}.", f"gpt/transformer/layer_{i}/"
        qkv = source + "attention.query_key_value."
        third = partitions.shape(qkv + "weight")[0] // 3
        if 3 * third != partitions.shape(qkv + "weight")[0]:
            raise ValueError(f"{qkv}weight has {partitions.shape(qkv + 'weight')[0]} rows, "
                             "not three equal parts (query, key, value)")
        for index, kind in enumerate(("query", "key", "value")):
            rows = [(rank, qkv + "weight", index * third, (index + 1) * third) for rank in every]
            yield f"{target}attention/self/{kind}/kernel", transposed(partitions, rows, block_bytes)
            rows = [(rank, qkv + "bias", index * third, (index + 1) * third) for rank in every]
            yield f"{target}attention/self/{kind}/bias", stacked(partitions, rows, block_bytes)
        dense = source + "attention.dense."
        yield f"{target}attention/output/dense/kernel", row_parallel(dense + "weight")
        yield f"{target}attention/output/dense/bias", replicated(partitions, dense + "bias",
                                                                  block_bytes)
        for megatron, bert4keras in (("input_layernorm", "attention/input/LayerNorm"),
                                     ("post_attention_layernorm", "input/LayerNorm")):
            yield f"{target}{bert4keras}/gamma", replicated(
                partitions, f"{source}{megatron}.weight", block_bytes)
            yield f"{target}{bert4keras}/beta", replicated(
                partitions, f"{source}{megatron}.bias", block_bytes)
        up, down = source + "mlp.dense_h_to_4h.", source + "mlp.dense_4h_to_h."
        yield f"{target}intermediate/dense/kernel", transposed(
            partitions, whole(up + "weight"), block_bytes)
        yield f"{target}intermediate/dense/bias", stacked(partitions, whole(up + "bias"),
                                                          block_bytes)
        yield f"{target}output/dense/kernel", row_parallel(down + "weight")
        yield f"{target}output/dense/bias", replicated(partitions, down + "bias", block_bytes)
    yield "gpt/output/LayerNorm/gamma", replicated(
        partitions, "transformer.final_layernorm.weight", block_bytes)
    yield "gpt/output/LayerNorm/beta", replicated(
        partitions, "transformer.final_layernorm.bias", block_bytes)


def convert_megatron_gpt2(paths, prefix, block_bytes=BLOCK_BYTES, progress="converting"):
    """Merges Megatron partitions `paths` (rank 0 first) into the bert4keras TF
    checkpoint `prefix` (e.g. "cpm/model.ckpt"), streamed and written atomically;
    returns the merged tensor names. `build_transformer_model(config, prefix,
    model="gpt2")` and bert4keras load the result.

    Args:
        paths: the `mp_rank_XX_model_states.pt` files, rank 0 first.
        prefix: the checkpoint prefix to write.
        block_bytes: the most bytes of one tensor held at a time (about twice this
            while a transposed block is assembled).
        progress: label of the progress bar over the tensors, or None.
    """
    tensors = list(gpt2_tensors(Partitions(paths), block_bytes))
    write_checkpoint(prefix, tensors, progress=progress)
    return [name for name, _ in tensors]
