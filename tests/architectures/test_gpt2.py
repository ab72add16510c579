"""GPT-2 (`model="gpt2"`): Hugging Face GPT2LMHeadModel files against transformers'
own outputs (tools/make_gpt2_hf_fixtures.py), recognition of both layouts, and the
decode loop on a pre-LN causal model. The original TF layout against bert4keras is
tests/architectures/test_parity.py (fixture gpt2)."""
import numpy as np
import pytest

import kerasformer as kf
from kerasformer import architectures
from kerasformer.convert.checkpoints import open_checkpoint
from kerasformer.generation import AutoRegressiveDecoder
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

GPT2 = FIXTURES / "models" / "gpt2"
HF = np.load(GPT2 / "hf_reference.npz")
BERT4KERAS = np.load(GPT2 / "reference.npz")


def build(checkpoint=GPT2 / "bert_model.ckpt", **kwargs):
    return kf.build_transformer_model(GPT2 / "bert_config.json", checkpoint, model="gpt2",
                                      return_keras_model=False, **kwargs)


@pytest.mark.backends
@pytest.mark.parametrize("file", ["model.safetensors", "pytorch_model.bin"])
def test_hugging_face_files_match_transformers(file):
    # the Hugging Face config's keys (n_embd, n_layer, ...) are read as bert4keras' own
    transformer = kf.build_transformer_model(GPT2 / "hf" / "config.json", GPT2 / "hf" / file,
                                             model="gpt2", return_keras_model=False)
    same = {k: v for k, v in build().get_config().items() if "dropout" not in k}
    assert {k: v for k, v in transformer.get_config().items() if "dropout" not in k} == same
    assert transformer.load_report.ok
    token_ids, mask = HF["lm/token_ids"], HF["lm/attention_mask"].astype(bool)
    probabilities = to_numpy(transformer.model(token_ids))
    # every position that is not padding: HF and bert4keras differ on padded rows only
    np.testing.assert_allclose(probabilities[mask], HF["lm/probabilities"][mask], atol=1e-4)
    np.testing.assert_allclose(probabilities[mask], BERT4KERAS["lm/output_0"][mask], atol=1e-4)


def test_hugging_face_config_defaults():
    from kerasformer.architectures.gpt2 import GPT2 as Architecture

    config = Architecture.standard_config({"n_embd": 8, "n_layer": 1, "n_head": 2,
                                           "vocab_size": 10, "n_inner": None})
    assert config["intermediate_size"] == 32 and config["hidden_act"] == "gelu_new"


def test_both_layouts_are_recognised_as_gpt2():
    for path in (GPT2 / "bert_model.ckpt", GPT2 / "hf" / "model.safetensors",
                 GPT2 / "hf" / "pytorch_model.bin"):
        assert architectures.recognise_checkpoint(open_checkpoint(path).keys()) == "gpt2", path


def test_decoding_follows_the_full_forward_pass():
    """Greedy decoding through the KV cache (the final norm in `logits`) picks, at each
    step, the most probable next token of the uncached model: one causal forward pass
    over prefix + decoded tokens checks every step at once."""
    transformer = build()
    prefix = [2, 40, 41, 42]
    (greedy,) = AutoRegressiveDecoder(transformer, end_id=3).beam_search(
        [prefix], beam=1, maxlen=10)
    sequence = np.array([prefix + greedy.tolist()])
    probabilities = to_numpy(transformer.model(sequence))[0]
    picked = probabilities[len(prefix) - 1:-1].argmax(-1)
    assert len(greedy) == 10 or greedy[-1] == 3
    assert picked.tolist() == greedy.tolist()


def test_what_gpt2_does_not_have_is_a_clear_error():
    config = GPT2 / "bert_config.json"
    with pytest.raises(ValueError, match="application must be 'lm'"):
        kf.build_transformer_model(config, model="gpt2", application="unilm")
    with pytest.raises(ValueError, match="GPT-2 has no with_pool"):
        kf.build_transformer_model(config, model="gpt2", with_pool=True)
    with pytest.raises(ValueError, match="embedding_size 32 must equal hidden_size 64"):
        kf.build_transformer_model(config, model="gpt2", embedding_size=32)


def test_fit_trains_the_language_model_with_and_without_remat():
    """GPT-2 takes a bare array of token ids, under `fit` too; remat (each block
    rematerialised, dropout replayed) gives the plain model's losses."""
    import keras

    ids = np.random.default_rng(0).integers(1, 50, (4, 8))
    losses = []
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = kf.build_transformer_model(
            None, model="gpt2", vocab_size=50, hidden_size=16, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
            max_position_embeddings=16, hidden_dropout_prob=0.1, remat=remat)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        losses.append(model.fit(ids[:, :-1], ids[:, 1:], epochs=3, verbose=0).history["loss"])
    assert losses[0][-1] < losses[0][0]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
