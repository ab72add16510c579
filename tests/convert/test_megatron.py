"""Merging Megatron model-parallel partitions (CPM-LM's release) into bert4keras' TF
checkpoint, against bojone's own converter run on the same partitions
(tests/fixtures/megatron, tools/make_megatron_fixtures.py)."""
import tracemalloc

import numpy as np
import pytest
import torch

from kerasformer.convert.megatron import Partitions, convert_megatron_gpt2
from kerasformer.convert.tf_checkpoint import TFCheckpoint
from tests.conftest import FIXTURES

MEGATRON = FIXTURES / "megatron"
PATHS = [MEGATRON / f"mp_rank_{rank:02d}_model_states.pt" for rank in range(2)]
EXPECTED = np.load(MEGATRON / "expected.npz")


@pytest.mark.parametrize("block_bytes", [1 << 20, 1000])  # whole tensors; many blocks
def test_merged_tensors_are_bojones(tmp_path, block_bytes):
    names = convert_megatron_gpt2(PATHS, tmp_path / "model.ckpt", block_bytes=block_bytes,
                                  progress=None)
    assert sorted(names) == sorted(EXPECTED.files)
    merged = TFCheckpoint(tmp_path / "model.ckpt")
    for name in EXPECTED.files:
        assert merged[name].dtype == EXPECTED[name].dtype, name
        np.testing.assert_array_equal(merged[name], EXPECTED[name], err_msg=name)


def test_the_merged_checkpoint_loads_as_gpt2(tmp_path):
    import kerasformer as kf

    convert_megatron_gpt2(PATHS, tmp_path / "model.ckpt", progress=None)
    transformer = kf.build_transformer_model(
        MEGATRON / "bert_config.json", tmp_path / "model.ckpt", model="gpt2",
        return_keras_model=False)
    assert transformer.load_report.ok
    probabilities = np.asarray(transformer.model.predict(np.array([[2, 40, 41]]), verbose=0))
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)


def test_memory_stays_near_one_block(tmp_path):
    """Streamed: converting a model whose vocabulary makes a 5 MB tensor, the arrays
    alive at once stay near one 64 KB block (plus the partitions' metadata), far
    below that tensor, let alone the model."""
    states = [torch.load(path)["module"] for path in PATHS]
    for rank, state in enumerate(states):
        state["word_embeddings.weight"] = torch.randn(10_000, 64)
        torch.save({"module": state}, tmp_path / f"{rank}.pt")
    paths = [tmp_path / "0.pt", tmp_path / "1.pt"]
    tracemalloc.start()
    try:
        convert_megatron_gpt2(paths, tmp_path / "model.ckpt", block_bytes=64 << 10, progress=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    largest = 20_000 * 64 * 4
    assert peak < largest / 5, peak  # measured: 0.28 MB
    np.testing.assert_array_equal(TFCheckpoint(tmp_path / "model.ckpt")[
        "gpt/embeddings/word_embeddings"][10_000:], states[1]["word_embeddings.weight"].numpy())


def test_partitions_that_disagree_are_named(tmp_path):
    states = [torch.load(path)["module"] for path in PATHS]
    states[1]["transformer.final_layernorm.bias"] = states[1]["transformer.final_layernorm.bias"] + 1
    for rank, state in enumerate(states):
        torch.save({"module": state}, tmp_path / f"{rank}.pt")
    with pytest.raises(ValueError, match="'transformer.final_layernorm.bias' should be the "
                                         "same in every partition but partition 1 differs"):
        convert_megatron_gpt2([tmp_path / "0.pt", tmp_path / "1.pt"], tmp_path / "out.ckpt",
                              progress=None)
    assert not (tmp_path / "out.ckpt.index").exists()  # nothing half-written
    del states[1]["transformer.final_layernorm.bias"]
    torch.save({"module": states[1]}, tmp_path / "1.pt")
    with pytest.raises(ValueError, match="partition 1 .* holds other tensors than partition 0: "
                                         "transformer.final_layernorm.bias"):
        Partitions([tmp_path / "0.pt", tmp_path / "1.pt"])
    with pytest.raises(FileNotFoundError):
        Partitions([tmp_path / "missing.pt"])
