"""The causal-LM task (GPT-2 family) on the bert4keras-written GPT-2 fixture."""
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.models import CausalLanguageModel
from tests.conftest import FIXTURES
from tests.helpers import to_numpy, write_toy_cpm

GPT2 = FIXTURES / "models" / "gpt2"


@pytest.fixture(scope="module")
def lm():
    return kf.models.load(GPT2, family="gpt2")


def test_generate_samples_and_beams(lm):
    assert isinstance(lm, CausalLanguageModel) and lm.sampling == {"topp": 0.95}
    prompt = "北京是中国的"
    token_ids = lm.encode_prompt(prompt)
    assert token_ids[0] == lm.tokenizer.start_id and token_ids[-1] != lm.tokenizer.end_id
    samples = lm.generate(prompt, n=4, maxlen=6, seed=1)
    assert lm.generate(prompt, n=4, maxlen=6, seed=1) == samples  # a seed reproduces
    (rows,) = lm.decoder.random_sample([token_ids], n=4, maxlen=6, topp=0.95, seed=1)
    assert samples == [lm.tokenizer.decode([i for i in row if i != lm.decoder.end_id])
                       for row in rows]
    # greedy decoding picks the uncached model's most probable token at every step
    (greedy,) = lm.decoder.beam_search([token_ids], beam=1, maxlen=6)
    probabilities = to_numpy(lm.model(np.array([token_ids + greedy.tolist()])))[0]
    assert probabilities[len(token_ids) - 1:-1].argmax(-1).tolist() == greedy.tolist()
    assert lm.generate(prompt, beam=1, maxlen=6) == [
        lm.tokenizer.decode([i for i in greedy.tolist() if i != lm.decoder.end_id])]


def test_a_preset_round_trip_keeps_the_task(lm, tmp_path):
    lm.save_preset(tmp_path / "gpt2")
    again = kf.models.load(tmp_path / "gpt2")
    assert isinstance(again, CausalLanguageModel) and again.task_options() == lm.task_options()
    assert again.generate("今天天气", n=2, maxlen=5, seed=3) == lm.generate(
        "今天天气", n=2, maxlen=5, seed=3)


def test_bad_requests_are_clear_errors(lm):
    with pytest.raises(ValueError, match="text 0 is empty"):
        lm.generate("  ")
    with pytest.raises(ValueError, match="the model takes at most 64 positions"):
        lm.generate("北京" * 40)
    with pytest.raises(ValueError, match="no newline token"):
        CausalLanguageModel(lm.transformer, lm.tokenizer, end="newline")
    with pytest.raises(ValueError, match="end must be one of"):
        CausalLanguageModel(lm.transformer, lm.tokenizer, end="eod")
    encoder = kf.build_transformer_model(FIXTURES / "models" / "bert" / "bert_config.json",
                                         return_keras_model=False)
    with pytest.raises(ValueError, match="a causal language model must decode"):
        CausalLanguageModel(encoder, lm.tokenizer)


# ---------------------------------------------------------------- CPM-LM

@pytest.fixture(scope="module")
def cpm_directory(tmp_path_factory):
    pytest.importorskip("jieba")
    directory = tmp_path_factory.mktemp("cpm")
    write_toy_cpm(directory, "model.safetensors")
    return directory


def test_a_cpm_repository_loads_as_cpm_lm(cpm_directory):
    from kerasformer.tokenizers import CpmTokenizer

    cpm = kf.models.load(cpm_directory)  # the family from tokenizer_class, streamed into a preset
    assert cpm.family == "cpm-lm" and isinstance(cpm.tokenizer, CpmTokenizer)
    assert cpm.decoder.end_id == 7  # <eod>: the config's bos/eos 50256 lie outside the vocabulary
    assert cpm.transformer.hidden_act == "gelu_new"  # the tanh GELU CPM was trained with
    prompt = "美国的首都是华盛顿\n法国的首都是巴黎\n中国的首都是"
    token_ids = cpm.encode_prompt(prompt)
    assert cpm.tokenizer.decode(token_ids) == prompt
    in_memory = kf.build_transformer_model(cpm_directory / "config.json",
                                           cpm_directory / "model.safetensors", model="gpt2")
    np.testing.assert_allclose(to_numpy(cpm.model(np.array([token_ids]))),
                               to_numpy(in_memory(np.array([token_ids]))), atol=1e-6)
    # a line ends at ▃: decoding with end="newline" stops there, without recompiling
    (whole,) = cpm.generate(prompt, beam=1, maxlen=12, minlen=12)
    (line,) = cpm.generate(prompt, beam=1, maxlen=12, minlen=1, end="newline")
    assert "\n" not in line and whole.startswith(line)
    assert cpm.decoder_for("newline").end_id == cpm.tokenizer.newline_id == 3
    with pytest.raises(ValueError, match="end must be one of"):
        cpm.generate(prompt, end="eod")


def test_cpm_loads_in_bfloat16_from_its_converted_preset(cpm_directory):
    full = kf.models.load(cpm_directory)
    half = kf.models.load(cpm_directory, dtype="bfloat16")
    assert {v.dtype for v in half.model.weights} == {"bfloat16"}
    token_ids = np.array([full.encode_prompt("今天天气不错，")])
    np.testing.assert_allclose(to_numpy(half.model(token_ids)).astype("float32"),
                               to_numpy(full.model(token_ids)), atol=2e-2)
