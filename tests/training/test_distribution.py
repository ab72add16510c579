"""Distributed training: `kerasformer.distribution` and the architectures' layout maps.

The layout maps are checked against every weight of every architecture here (each
weight matches exactly one rule, no rule is dead, split axes divide evenly for
released model sizes). Training on several devices runs in a subprocess on four
virtual CPU devices (`XLA_FLAGS` must be set before JAX starts): `DataParallel`
follows the loss trajectory of one device, and on a 2×2 ("batch", "model") mesh each
architecture, split by its layout map, follows its single-device losses for three
steps (the first is the loss before any update, the next ones check the update).
Elsewhere than JAX the helpers refuse with an error that names the backend.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import pytest

from kerasformer import architectures, distribution
from kerasformer.models.builder import make_transformer

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
TINY = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, hidden_act="gelu")

# Every optional weight of each architecture: all heads, factorised embeddings.
COMPLETE = {
    "bert": dict(with_nsp=True, with_mlm=True, embedding_size=16),
    "roformer": dict(with_nsp=True, with_mlm=True, embedding_size=16),
    "roformer_v2": dict(with_mlm=True, embedding_size=16),
    "gau_alpha": dict(with_mlm=True, embedding_size=16, attention_key_size=16),
    "gpt2": dict(),  # its LM head is tied: no factorised embeddings
    "univae": dict(with_mlm=True, embedding_size=16, num_latent_layers=2, latent_size=4),
}

# Released sizes (bert-base-chinese, roformer_chinese_base, RoFormerV2 large,
# GAU-α base, SimBERT tiny): one block is enough, the others are alike.
RELEASED = {
    "bert": [
        dict(vocab_size=21128, hidden_size=768, num_attention_heads=12,
             intermediate_size=3072, with_pool=True, with_nsp=True, with_mlm=True),
        dict(vocab_size=13685, hidden_size=312, num_attention_heads=12,
             intermediate_size=1248, embedding_size=128, with_pool="linear",
             with_mlm="linear", application="unilm"),
    ],
    "roformer": [dict(vocab_size=50000, hidden_size=768, num_attention_heads=12,
                      intermediate_size=3072, with_pool=True, with_mlm=True)],
    "roformer_v2": [dict(vocab_size=12000, hidden_size=1024, num_attention_heads=16,
                         intermediate_size=4096, with_mlm=True)],
    "gau_alpha": [dict(vocab_size=12000, hidden_size=768, intermediate_size=1536,
                       attention_key_size=128, with_mlm=True)],
    # CPM-LM 2.6B and CPM-Generate-distill
    "gpt2": [dict(vocab_size=30000, hidden_size=2560, num_attention_heads=32,
                  intermediate_size=10240),
             dict(vocab_size=30000, hidden_size=768, num_attention_heads=12,
                  intermediate_size=3072)],
    # bojone's UniVAE on RoFormer char base (its 4 latent blocks of 16: one here)
    "univae": [dict(vocab_size=12000, hidden_size=768, num_attention_heads=12,
                    intermediate_size=3072, with_mlm=True, num_latent_layers=1,
                    latent_size=16)],
}
MESHES = [(1, 2), (2, 2), (1, 4), (4, 2), (2, 4)]


def mesh(shape):
    devices = [f"cpu:{i}" for i in range(shape[0] * shape[1])]
    return keras.distribution.DeviceMesh(shape, ["batch", "model"], devices)


def test_every_architecture_of_the_package_is_covered():
    shipped = {
        name for name, cls in architectures.architectures().items()
        if cls.__module__.startswith("kerasformer.architectures.")
    }
    assert shipped == set(COMPLETE) == set(RELEASED)


@pytest.mark.parametrize("architecture", sorted(COMPLETE))
def test_layout_map_covers_every_weight_and_no_key_is_dead(architecture):
    transformer = make_transformer(architecture, {}, **TINY, **COMPLETE[architecture])
    model = transformer.build(weights_follow=True)  # paths and shapes only
    layouts = distribution.check_layout_map(transformer.get_layout_map(mesh((2, 2))), model)
    assert set(layouts) == {w.path for w in model.weights}
    sharded = {path for path, axes in layouts.items() if "model" in axes}
    # Megatron-style: the token table, query/key/value and output projections of
    # every block are split over the model axis.
    assert "Embedding-Token/embeddings" in sharded
    for path in [p for p in layouts if p.startswith("Transformer-1-")]:
        if path.endswith("dense/kernel"):
            assert path in sharded, path
    kernel = "Transformer-0-MultiHeadSelfAttention/q_dense/kernel"
    if kernel in layouts:
        assert layouts[kernel] == ("batch", "model")
        assert layouts["Transformer-0-MultiHeadSelfAttention/o_dense/kernel"] == (
            "model", "batch")


def test_layout_map_follows_the_prefix_and_the_axis_names():
    transformer = make_transformer("roformer", {}, prefix="Student-", with_mlm=True, **TINY)
    layout_map = transformer.get_layout_map(
        mesh((2, 2)), model_parallel_dim_name="batch", data_parallel_dim_name=None
    )
    layouts = distribution.check_layout_map(
        layout_map, transformer.build(weights_follow=True), allow_unused_keys=True  # no pooler, NSP
    )
    assert layouts["Student-Transformer-0-FeedForward/i0_dense/kernel"] == (None, "batch")
    assert layouts["Student-Embedding-Token/embeddings"] == (None, "batch")


@pytest.mark.parametrize("architecture", sorted(RELEASED))
def test_split_axes_divide_for_released_sizes(architecture):
    for arguments in RELEASED[architecture]:
        transformer = make_transformer(architecture, {}, num_hidden_layers=1,
                                       hidden_act="gelu", **arguments)
        model = transformer.build(weights_follow=True)  # zeros: shapes are what counts
        for shape in MESHES:
            distribution.check_layout_map(
                transformer.get_layout_map(mesh(shape)), model, allow_unused_keys=True
            )


def test_check_layout_map_reports_dead_keys_and_uneven_splits():
    transformer = make_transformer("bert", {}, **dict(TINY, vocab_size=51))
    model = transformer.build(weights_follow=True)
    layout_map = transformer.get_layout_map(mesh((2, 2)))
    layout_map["Embedding-Token/embeddings"] = ("model", None)  # a second key
    with pytest.raises(ValueError) as error:
        distribution.check_layout_map(layout_map, model)
    message = str(error.value)
    assert "Embedding-Token/embeddings matches several keys" in message
    assert "key '.*MLM-Dense/kernel' matches no weight" in message  # no MLM head
    del layout_map[".*Embedding-Token/embeddings"]  # 51 rows over 2 devices
    with pytest.raises(ValueError, match=r"an axis of 51 does not divide"):
        distribution.check_layout_map(layout_map, model, allow_unused_keys=True)


@pytest.mark.backends
def test_helpers_refuse_other_backends_by_name():
    backend = keras.backend.backend()
    if backend == "jax":
        distributed = distribution.data_parallel()
        try:
            assert isinstance(distributed, keras.distribution.DataParallel)
            assert keras.distribution.distribution() is distributed
        finally:
            keras.distribution.set_distribution(None)
        return
    for helper, arguments in [
        (distribution.data_parallel, ()),
        (distribution.model_parallel, ("roformer", (1, 1))),
        (distribution.device_mesh, ((1, 1),)),
    ]:
        with pytest.raises(NotImplementedError, match=rf"needs the JAX backend, not '{backend}'"):
            helper(*arguments)


def test_model_parallel_refuses_a_built_model():
    transformer = make_transformer("bert", {}, **TINY)
    transformer.build(weights_follow=True)
    with pytest.raises(ValueError, match="already built"):
        distribution.model_parallel(transformer, (1, 1))
    with pytest.raises(ValueError, match="already built"):
        distribution.model_parallel(transformer.model, (1, 1))
    assert keras.distribution.distribution() is None


# Runs on 4 virtual CPU devices; prints one JSON line of results.
SCRIPT = textwrap.dedent('''
    import json
    import sys

    import jax
    import keras
    import numpy as np

    from kerasformer import distribution
    from kerasformer.models.builder import make_transformer
    from kerasformer.optimizers import Adam

    assert len(jax.devices()) == 4
    # One block (the others have the same layouts) and hidden dropout only, for
    # compile time.
    TINY = dict(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, hidden_act="gelu", dropout_rate=0.1,
                application="unilm", with_mlm=True)
    EXTRA = {"gau_alpha": dict(attention_key_size=16)}
    tokens = np.random.default_rng(0).integers(1, 50, (8, 8)).astype("int32")
    segments = np.zeros_like(tokens)
    segments[:, 4:] = 1

    def losses(architecture, steps, setup=None):
        keras.utils.set_random_seed(0)
        transformer = make_transformer(architecture, {}, **TINY, **EXTRA.get(architecture, {}))
        if setup is not None:
            setup(transformer)
        try:
            # No random initialisers (a compiled kernel per shape and layout): seeded
            # NumPy values, placed where the distribution says.
            model = transformer.build(weights_follow=True)
            rng = np.random.default_rng(0)
            model.set_weights([
                np.ones(w.shape) if w.path.endswith("gamma")
                else rng.normal(0.0, 0.1, w.shape) for w in model.weights
            ])
            model.compile(optimizer=Adam(learning_rate=1e-2),
                          loss="sparse_categorical_crossentropy", jit_compile=True)
            values = [float(model.train_on_batch([tokens, segments], tokens))
                      for _ in range(steps)]
            specs = {w.path: str(w.value.sharding.spec) for w in model.weights
                     if hasattr(w.value.sharding, "spec")}
            return values, specs
        finally:
            keras.distribution.set_distribution(None)

    results = {}
    for architecture in sys.argv[1:]:
        single, _ = losses(architecture, 3)
        if architecture == "roformer":
            parallel, _ = losses(architecture, 3, lambda t: distribution.data_parallel())
            results["data_parallel"] = [single, parallel]
        sharded, specs = losses(
            architecture, 3, lambda t: distribution.model_parallel(t, (2, 2)))
        results[architecture] = [single, sharded, specs]
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def distributed_results():
    if keras.backend.backend() != "jax":
        pytest.skip("keras.distribution is JAX-only")
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]),
        # Four virtual devices; the lowest LLVM optimisation compiles 3× faster.
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4 "
                     "--xla_backend_optimization_level=0",
    }
    # Two processes share the work (XLA compiles on one core each).
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, *names], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for names in (["roformer", "bert"], ["roformer_v2", "gau_alpha"])
    ]
    results = {}
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stdout[-4000:] + stderr[-8000:]
            results.update(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def test_data_parallel_follows_one_device(distributed_results):
    single, parallel = distributed_results["data_parallel"]
    assert single[-1] < single[0]
    assert parallel == pytest.approx(single, rel=1e-5)


@pytest.mark.parametrize("architecture", ["bert", "roformer", "roformer_v2", "gau_alpha"])
def test_model_parallel_step_equals_one_device(distributed_results, architecture):
    single, sharded, specs = distributed_results[architecture]
    assert sharded == pytest.approx(single, rel=1e-5)
    assert specs["Embedding-Token/embeddings"] == "P(None, 'model')"
    kernel = ("Transformer-0-GatedAttentionUnit/o_dense/kernel" if architecture == "gau_alpha"
              else "Transformer-0-FeedForward/o_dense/kernel")
    assert specs[kernel] == "P('model', 'batch')"
