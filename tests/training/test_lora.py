"""LoRA (`kerasformer.training.lora`): Keras' own `Dense.enable_lora` on the attention
projections, and `merge_lora` folding it back into the ordinary weight layout.

A tiny GPT-2 (vocabulary 50, hidden 16, 2 blocks, 2 heads) trains a few steps on JAX:
only the LoRA weights move; the merged model computes what the LoRA model computed
(within 1e-5, and its kernels are W + (alpha / rank)·A·B by numpy); it saves as a TF
checkpoint and as a preset, and both load back strictly to the same outputs. With
remat the LoRA update is the one without. On a 2×2 ("batch", "model") mesh of four
virtual CPU devices, split by GPT-2's layout map (`kerasformer.distribution`), LoRA
training follows the one-device losses (a subprocess started first, so that it runs
beside the other tests).
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.models import CausalLanguageModel
from kerasformer.optimizers import AdaFactor
from kerasformer.tokenizers import Tokenizer
from kerasformer.training.lora import enable_lora, lora_layers, merge_lora
from tests.helpers import to_numpy

ROOT = str(pathlib.Path(__file__).resolve().parents[2])

CONFIG = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
          "max_position_embeddings": 32, "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0}
ATTENTION = [f"Transformer-{i}-MultiHeadSelfAttention/{d}_dense"
             for i in range(2) for d in "qkvo"]
TOKENS = np.random.default_rng(0).integers(5, 50, (4, 12)).astype("int32")
INPUTS, TARGETS = TOKENS[:, :-1], TOKENS[:, 1:]


# Runs on 4 virtual CPU devices; prints the losses of one device and of the mesh.
MESH_SCRIPT = textwrap.dedent('''
    import json

    import jax
    import keras
    import numpy as np

    from kerasformer import distribution
    from kerasformer.models.builder import make_transformer
    from kerasformer.optimizers import AdaFactor
    from kerasformer.training.lora import enable_lora

    assert len(jax.devices()) == 4
    TINY = dict(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, hidden_act="gelu", application="lm")
    tokens = np.random.default_rng(0).integers(1, 50, (8, 9)).astype("int32")

    def losses(setup=None):
        transformer = make_transformer("gpt2", {}, **TINY)
        if setup is not None:
            setup(transformer)
        try:
            model = transformer.build(weights_follow=True)
            rng = np.random.default_rng(0)
            model.set_weights([np.ones(w.shape) if w.path.endswith("gamma")
                               else rng.normal(0.0, 0.1, w.shape) for w in model.weights])
            enable_lora(transformer, 4)
            for weight in model.trainable_weights:  # A and B, both non-zero
                weight.assign(rng.normal(0.0, 0.1, weight.shape))
            model.compile(optimizer=AdaFactor(1e-2, exclude_from_parameter_scale=["lora"]),
                          loss="sparse_categorical_crossentropy", jit_compile=True)
            values = [float(model.train_on_batch(tokens[:, :-1], tokens[:, 1:]))
                      for _ in range(3)]
            specs = {w.path: str(w.value.sharding.spec) for w in model.weights
                     if hasattr(w.value.sharding, "spec")}
            return values, specs
        finally:
            keras.distribution.set_distribution(None)

    single, _ = losses()
    sharded, specs = losses(lambda t: distribution.model_parallel(t, (2, 2)))
    print(json.dumps([single, sharded, specs]))
''')


@pytest.fixture(scope="module", autouse=True)
def mesh_run(request):
    """The mesh subprocess, started before the module's other tests (JAX only; not
    at all when its test is not selected)."""
    selected = any(item.name == "test_lora_on_a_model_parallel_mesh_follows_one_device"
                   for item in request.session.items)
    if keras.backend.backend() != "jax" or not selected:
        yield None
        return
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4 "
                        "--xla_backend_optimization_level=0"}
    process = subprocess.Popen([sys.executable, "-c", MESH_SCRIPT], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def gpt2(**kwargs):
    return kf.build_transformer_model(model="gpt2", return_keras_model=False,
                                      **{**CONFIG, **kwargs})


def values(model):
    return {w.path: to_numpy(w).copy() for w in model.weights}


def train(model, steps=3):
    model.compile(optimizer=AdaFactor(3e-2, exclude_from_parameter_scale=["lora_kernel"]),
                  loss="sparse_categorical_crossentropy")
    history = model.fit(INPUTS, TARGETS, batch_size=4, epochs=steps, verbose=0, shuffle=False)
    return history.history["loss"]


@pytest.fixture(scope="module")
def trained():
    """`(transformer, weights before, weights after training, losses, remat twin)`:
    LoRA on, three steps; the twin starts from the same weights (LoRA's A included)
    and trains with remat=True. Seeded: LoRA's A is drawn by Keras."""
    keras.utils.set_random_seed(0)
    transformer, twin = gpt2(), gpt2(remat=True)
    before = values(transformer.model)
    assert enable_lora(transformer, rank=4, alpha=8) == ATTENTION
    enable_lora(twin, rank=4, alpha=8)
    twin.model.set_weights(transformer.model.get_weights())
    losses = train(transformer.model)
    train(twin.model)
    return transformer, before, values(transformer.model), losses, twin


def test_only_the_lora_weights_train(trained):
    transformer, before, after, losses, _ = trained
    model = transformer.model
    lora = {w.path for w in model.weights if "lora_kernel" in w.path}
    assert {w.path for w in model.trainable_weights} == lora
    assert len(lora) == 2 * len(ATTENTION)
    assert lora_layers(model) == ATTENTION
    for path, value in before.items():  # base kernels, biases, norms, embeddings
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    for path in lora:
        if path.endswith("lora_kernel_b"):  # starts at zero, moves
            assert np.abs(after[path]).max() > 0, path
    assert losses[-1] < losses[0], losses


def test_tiger_moves_lora_b_from_zero():
    """Tiger's step for a matrix is lr·RMS(θ), which would leave B at zero forever:
    LoRA kernels get the plain learning rate, and nothing else trains. (A's gradient
    is zero while B is: after one step only B has moved.)"""
    from kerasformer.optimizers import Tiger

    transformer = gpt2()
    enable_lora(transformer, rank=2, targets=("q_dense",))
    before = values(transformer.model)
    transformer.model.compile(optimizer=Tiger(1e-2), loss="sparse_categorical_crossentropy")
    transformer.model.fit(INPUTS, TARGETS, batch_size=4, epochs=1, verbose=0)
    after = values(transformer.model)
    for path, value in before.items():
        moved = not np.array_equal(after[path], value)
        assert moved == path.endswith("lora_kernel_b"), path
    b = after["Transformer-0-MultiHeadSelfAttention/q_dense/lora_kernel_b"]
    np.testing.assert_allclose(np.abs(b), 1e-2, rtol=1e-5)  # one sign step of lr


def test_merged_model_computes_what_the_lora_model_did(trained):
    transformer, before, after, *_ = trained
    model = transformer.model
    lora_outputs = to_numpy(model(INPUTS))
    merged = merge_lora(transformer)
    assert merged == ATTENTION and lora_layers(model) == []
    np.testing.assert_allclose(to_numpy(model(INPUTS)), lora_outputs, atol=1e-5, rtol=0)
    # the kernels are W + (alpha / rank)·A·B, and the variables are the plain model's
    now = values(model)
    assert set(now) == set(before)
    for layer in ATTENTION:
        a, b = after[f"{layer}/lora_kernel_a"], after[f"{layer}/lora_kernel_b"]
        np.testing.assert_allclose(now[f"{layer}/kernel"],
                                   before[f"{layer}/kernel"] + 8 / 4 * a @ b, atol=1e-6)
    assert len(model.trainable_weights) == len(model.weights)  # unfrozen again
    # the decode loop runs on the merged weights (its compilations were dropped)
    assert transformer.compiled_functions == {}


def test_merged_weights_load_back_strictly(trained, tmp_path):
    transformer = trained[0]
    if lora_layers(transformer):
        merge_lora(transformer)
    expected = to_numpy(transformer.model(INPUTS))
    # an original TF checkpoint, read by the strict loader
    transformer.save_weights_as_checkpoint(str(tmp_path / "ckpt" / "bert_model.ckpt"))
    config = tmp_path / "ckpt" / "bert_config.json"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    again = kf.build_transformer_model(config, tmp_path / "ckpt" / "bert_model.ckpt",
                                       model="gpt2")
    np.testing.assert_allclose(to_numpy(again(INPUTS)), expected, atol=1e-6, rtol=0)
    # a preset of the causal-LM task
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [chr(0x4e00 + i) for i in range(45)]) + "\n", encoding="utf-8")
    task = CausalLanguageModel(transformer, Tokenizer(str(vocab)), "gpt2",
                               {"type": "wordpiece", "vocab": str(vocab), "do_lower_case": True})
    task.save_preset(tmp_path / "preset")
    loaded = kf.models.load(tmp_path / "preset")
    assert isinstance(loaded, CausalLanguageModel)
    np.testing.assert_allclose(to_numpy(loaded.model(INPUTS)), expected, atol=1e-6, rtol=0)


def test_remat_gives_the_same_lora_update(trained):
    """remat=True rematerialises each block (a custom VJP on JAX): the LoRA weights,
    which it reads as block weights, get the gradient they get without it."""
    *_, twin = trained
    after = trained[2]
    lora = [w for w in twin.model.weights if "lora_kernel" in w.path]
    assert {w.path for w in twin.model.trainable_weights} == {w.path for w in lora}
    for weight in lora:
        np.testing.assert_allclose(to_numpy(weight), after[weight.path], atol=1e-5,
                                   err_msg=weight.path)


def test_targets_and_freezing():
    transformer = gpt2(prefix="G-")
    model = transformer.model
    # a bare "o_dense" is the attention output, never the feed-forward one
    assert enable_lora(model, 2, targets=["o_dense", r"Transformer-\d+-FeedForward/i0_dense"],
                       freeze=False) == [
        "G-Transformer-0-MultiHeadSelfAttention/o_dense", "G-Transformer-0-FeedForward/i0_dense",
        "G-Transformer-1-MultiHeadSelfAttention/o_dense", "G-Transformer-1-FeedForward/i0_dense"]
    frozen = {w.path for w in model.non_trainable_weights}
    assert frozen == {f"G-Transformer-{i}-{layer}/kernel" for i in range(2)
                      for layer in ("MultiHeadSelfAttention/o_dense", "FeedForward/i0_dense")}
    with pytest.raises(ValueError, match="already enabled on 'G-Transformer-0-Multi"):
        enable_lora(model, 2)
    merge_lora(model)
    assert model.non_trainable_weights == []
    # a Dense layer of the model itself, by name
    pooled = kf.build_transformer_model(model="roformer", with_pool=True, **CONFIG)
    assert enable_lora(pooled, 2, targets=["Pooler-Dense", "v_dense"]) == [
        "Transformer-0-MultiHeadSelfAttention/v_dense",
        "Transformer-1-MultiHeadSelfAttention/v_dense", "Pooler-Dense"]


def test_bad_requests_are_clear_errors():
    transformer = gpt2()
    for rank in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="rank must be a positive integer"):
            enable_lora(transformer, rank)
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        enable_lora(transformer, 2, alpha=0)
    with pytest.raises(ValueError, match="targets is empty"):
        enable_lora(transformer, 2, targets=())
    with pytest.raises(ValueError, match=r"no Dense layer matches target\(s\) 'x_dense'.*"
                                         r"here: k_dense, o_dense, q_dense, v_dense\) or "
                                         r"Dense layers of the model itself \(here: none"):
        enable_lora(transformer, 2, targets=["q_dense", "x_dense"])
    with pytest.raises(ValueError, match="not a regular expression"):
        enable_lora(transformer, 2, targets=["Transformer-(/q_dense"])
    with pytest.raises(TypeError, match="expected a keras.Model"):
        enable_lora("gpt2", 2)
    with pytest.raises(ValueError, match="no layer of this model has LoRA enabled"):
        merge_lora(transformer)
    assert transformer.model.non_trainable_weights == []  # nothing was changed


def test_lora_on_a_model_parallel_mesh_follows_one_device(mesh_run):
    if mesh_run is None:
        pytest.skip("keras.distribution is JAX-only")
    stdout, stderr = mesh_run.communicate(timeout=600)
    assert mesh_run.returncode == 0, stdout[-2000:] + stderr[-6000:]
    single, sharded, specs = json.loads(stdout.strip().splitlines()[-1])
    assert single[-1] < single[0]
    assert sharded == pytest.approx(single, rel=1e-5)
    attention = "Transformer-0-MultiHeadSelfAttention"
    assert specs[f"{attention}/q_dense/kernel"] == "P('batch', 'model')"
    assert specs[f"{attention}/o_dense/kernel"] == "P('model', 'batch')"
    assert specs[f"{attention}/q_dense/lora_kernel_b"] == "P(None, None)"  # replicated
