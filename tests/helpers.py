"""One shared helper per kind of test: layer, precision, model saving, toy checkpoints."""
import json
import shutil

import keras
import numpy as np

PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16", "bfloat16")


def to_numpy(outputs):
    if isinstance(outputs, (list, tuple)):
        return [to_numpy(output) for output in outputs]
    return keras.ops.convert_to_numpy(outputs)


def assert_all_close(actual, expected, atol=1e-5):
    actual, expected = to_numpy(actual), to_numpy(expected)
    if isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, atol=atol, rtol=0)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


def run_layer_test(cls, init_kwargs, inputs, call_kwargs=None, expected_shape=None, tmp_path=None):
    """Builds and calls a layer, then checks its config and `.keras` round trips.

    - `get_config` → `from_config` → `get_config` is the identity;
    - a layer rebuilt from its config with the same weights gives the same output;
    - a functional model around the layer survives `.keras` save/load (when
      `tmp_path` is given and every input is a tensor argument).

    Returns:
        The layer's output on `inputs`.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    output = layer(inputs, **call_kwargs)
    if expected_shape is not None:
        assert tuple(to_numpy(output).shape) == tuple(expected_shape)

    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    assert_all_close(clone(inputs, **call_kwargs), output)

    if tmp_path is not None:
        tensor_kwargs = {k: v for k, v in call_kwargs.items() if hasattr(v, "shape")}
        other_kwargs = {k: v for k, v in call_kwargs.items() if k not in tensor_kwargs}
        symbolic = {
            "inputs": keras.Input(batch_shape=np.shape(inputs), dtype=_dtype(inputs)),
            **{k: keras.Input(batch_shape=np.shape(v), dtype=_dtype(v))
               for k, v in tensor_kwargs.items()},
        }
        feed = {"inputs": inputs, **tensor_kwargs}
        model_inputs = symbolic.pop("inputs")
        model = keras.Model(
            [model_inputs, *symbolic.values()],
            layer(model_inputs, **symbolic, **other_kwargs),
        )
        path = tmp_path / f"{cls.__name__}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        values = list(feed.values())
        assert_all_close(restored(values), model(values))
    return output


def run_precision_test(cls, init_kwargs, inputs, call_kwargs=None):
    """The layer runs under each reduced-precision policy and stays finite."""
    for policy in PRECISION_POLICIES:
        layer = cls(**init_kwargs, dtype=policy)
        outputs = layer(inputs, **(call_kwargs or {}))
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            values = to_numpy(keras.ops.cast(output, "float32"))
            assert np.isfinite(values).all(), f"non-finite output under {policy}"


def run_model_saving_test(model, inputs, tmp_path):
    """A model survives `.keras` save/load and `get_config`/`from_config` intact."""
    expected = model(inputs, training=False)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_all_close(restored(inputs, training=False), expected)
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert_all_close(clone(inputs, training=False), expected)
    return restored


def _dtype(value):
    return str(keras.ops.convert_to_numpy(value).dtype)


def assert_matches_bert4keras(actual, key):
    """Within 1e-5 relative / 1e-4 absolute of bert4keras' value `key` in
    tests/fixtures/compat/layers.npz (tools/make_compat_layer_fixtures.py); -inf where
    it has -inf."""
    np.testing.assert_allclose(to_numpy(actual), _compat_reference()[key], rtol=1e-5, atol=1e-4)


def _compat_reference():
    global _COMPAT
    if _COMPAT is None:
        from tests.conftest import FIXTURES

        _COMPAT = np.load(FIXTURES / "compat" / "layers.npz")
    return _COMPAT


_COMPAT = None


# TsinghuaAI/CPM-Generate's config.json at toy width: its bos/eos 50256 lie outside the
# 30,000-piece vocabulary, as in the real one.
TOY_CPM_CONFIG = {
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
    "n_embd": 16, "n_layer": 2, "n_head": 2, "n_inner": None, "n_positions": 64, "n_ctx": 64,
    "vocab_size": 30000, "layer_norm_epsilon": 1e-5, "attn_pdrop": 0.1, "embd_pdrop": 0.1,
    "resid_pdrop": 0.1, "pad_token_id": 0, "bos_token_id": 50256, "eos_token_id": 50256,
    "tokenizer_class": "CpmTokenizer",
}


def write_toy_cpm(directory, weights="model.safetensors"):
    """A CPM-Generate repository at toy width in `directory`: the Hub's config, the real
    30,000-piece spiece.model, random GPT-2 weights (with the causal-mask buffers older
    exports keep) as `model.safetensors` or `pytorch_model.bin`. Returns its files."""
    from tests.conftest import FIXTURES

    rng = np.random.default_rng(0)
    width, positions = TOY_CPM_CONFIG["n_embd"], TOY_CPM_CONFIG["n_positions"]
    shapes = {"transformer.wte.weight": (30000, width), "transformer.wpe.weight": (positions, width),
              "transformer.ln_f.weight": (width,), "transformer.ln_f.bias": (width,)}
    for i in range(TOY_CPM_CONFIG["n_layer"]):
        for name, shape in {"ln_1.weight": (width,), "ln_1.bias": (width,),
                            "attn.c_attn.weight": (width, 3 * width), "attn.c_attn.bias": (3 * width,),
                            "attn.c_proj.weight": (width, width), "attn.c_proj.bias": (width,),
                            "attn.bias": (1, 1, positions, positions),
                            "ln_2.weight": (width,), "ln_2.bias": (width,),
                            "mlp.c_fc.weight": (width, 4 * width), "mlp.c_fc.bias": (4 * width,),
                            "mlp.c_proj.weight": (4 * width, width), "mlp.c_proj.bias": (width,)}.items():
            shapes[f"transformer.h.{i}.{name}"] = shape
    tensors = {name: rng.normal(0, 0.3, shape).astype("float32") for name, shape in shapes.items()}
    if weights == "model.safetensors":
        from safetensors.numpy import save_file

        save_file(tensors, str(directory / weights))
    else:
        import torch

        torch.save({name: torch.from_numpy(value) for name, value in tensors.items()},
                   directory / weights)
    (directory / "config.json").write_text(json.dumps(TOY_CPM_CONFIG))
    shutil.copy(FIXTURES / "tokenizers" / "cpm" / "chinese_vocab.model", directory / "spiece.model")
    return {name: (directory / name).read_bytes() for name in ("config.json", "spiece.model", weights)}
