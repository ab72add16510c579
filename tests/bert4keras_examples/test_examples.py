"""The ported bert4keras examples run as scripts, and differ from their originals only
as tools/port_bert4keras_examples.py says.

Each port (README.md here) runs as `__main__` in a temporary directory, on the tiny
fixture checkpoints and the hand-written data in data/: one short epoch of training,
then the script's own evaluation, prediction or generation. The tests check what the
script printed and saved, and use what it built (its globals, as `runpy` returns them).
"""
import importlib.util
import pathlib
import re
import runpy

import keras
import numpy as np
import pytest

from kerasformer.layers import activations

HERE = pathlib.Path(__file__).parent
TOOL_PATH = HERE.parents[1] / "tools" / "port_bert4keras_examples.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("port_bert4keras_examples", TOOL_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()

pytestmark = [
    # Keras warns that fit's default shuffle=True does nothing for generators: the
    # scripts never pass shuffle, and their generators shuffle themselves.
    pytest.mark.filterwarnings("ignore:.shuffle=True. was passed"),
    # sentiment.py's Lambda takes the [CLS] vector of the encoder's masked output;
    # Keras 3 warns that a Lambda drops the mask, which the [CLS] vector does not need.
    pytest.mark.filterwarnings(
        "ignore:Layer 'CLS-token' .of type Lambda. was passed an input with a mask"),
]


@pytest.fixture
def run_port(tmp_path, monkeypatch, capsys):
    """Runs a port as `__main__` in tmp_path; returns (its printed output, its globals)."""
    # sentiment.py calls set_gelu('tanh'), process-wide state: later tests get it back.
    monkeypatch.setattr(activations, "_ALIASES", dict(activations._ALIASES))
    monkeypatch.chdir(tmp_path)

    def run(name):
        np.random.seed(0)
        keras.utils.set_random_seed(0)
        namespace = runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
        return capsys.readouterr().out, namespace

    return run


def printed(out, prefix):
    """What follows each `prefix` in `out`, to the end of its line (Keras' progress bar
    ends without a newline, so a printed line may follow it on the same line)."""
    return re.findall(re.escape(prefix) + "(.*)", out)


def test_sentiment(run_port, tmp_path):
    out, _ = run_port("sentiment")
    (scores,) = printed(out, "val_acc: ")
    assert re.fullmatch(r"[\d.]+, best_val_acc: [\d.]+, test_acc: [\d.]+", scores)
    (final,) = printed(out, "final test acc: ")
    assert 0 <= float(final) <= 1
    assert (tmp_path / "best_model.weights.h5").is_file()


def test_seq2seq_autotitle(run_port, tmp_path):
    out, script = run_port("seq2seq_autotitle")
    titles = printed(out, "生成标题: ")
    assert len(titles) == 2 and all(titles)
    # predict's last_token(model) is the training model, whose CrossEntropy layer
    # returns the UniLM output unchanged: beam search ran on the compiled loop.
    assert script["autotitle"]._loops
    assert (tmp_path / "best_model.weights.h5").is_file()


def assert_entities(entities, text, categories):
    for start, end, label in entities:
        assert 0 <= start <= end < len(text) and label in categories


def test_ner_crf(run_port, tmp_path):
    out, script = run_port("ner_crf")
    assert script["categories"] == ["LOC", "ORG", "PER"]
    assert len(printed(out, "valid:  f1: ")) == len(printed(out, "test:  f1: ")) == 1
    assert (tmp_path / "best_model.weights.h5").is_file()
    text = "张明在中国工作。"
    assert_entities(script["NER"].recognize(text), text, script["categories"])


def test_relation_extraction_gplinker(run_port, tmp_path):
    out, script = run_port("relation_extraction_gplinker")
    predicates = ["国籍", "出生地", "导演", "主演", "作者"]  # data/duie/all_50_schemas
    assert list(script["predicate2id"]) == predicates
    # Every hand-written triple is found in its sentence's tokens (else the generator
    # silently drops it).
    tokenizer, search = script["tokenizer"], script["search"]
    for d in script["train_data"] + script["valid_data"]:
        token_ids = tokenizer.encode(d["text"], maxlen=script["maxlen"])[0]
        for s, p, o in d["spo_list"]:
            assert p in predicates
            assert search(tokenizer.encode(s)[0][1:-1], token_ids) != -1
            assert search(tokenizer.encode(o)[0][1:-1], token_ids) != -1
    # The Evaluator (EMA weights swapped in and out) printed its scores once.
    (scores,) = printed(out, "f1: ")
    assert re.fullmatch(r"[\d.]+, precision: [\d.]+, recall: [\d.]+, best f1: [\d.]+", scores)
    assert (tmp_path / "best_model.weights.h5").is_file()
    assert (tmp_path / "dev_pred.json").is_file()
    # The extraction gives (subject, predicate, object) triples: spans of the text and
    # predicates of the schema.
    extract_spoes, d = script["extract_spoes"], script["valid_data"][0]
    spoes = extract_spoes(d["text"])
    assert isinstance(spoes, list)
    for s, p, o in spoes:
        assert s and o and s in d["text"] and o in d["text"] and p in predicates
    # With no threshold every span is a subject and an object, linked by every
    # predicate: the true triples among them (the spans mapped back to the text).
    everything = extract_spoes(d["text"], threshold=float("-inf"))
    assert set(d["spo_list"]) <= set(everything)
    assert {p for _, p, _ in everything} == set(predicates)
    assert extract_spoes(d["text"], threshold=float("inf")) == []


def test_simbert(run_port, tmp_path):
    out, _ = run_port("simbert")
    # just_show prints three samples; it swallows any error, so the printed list of
    # generated sentences after each is what proves gen_synonyms ran.
    shown = out.split("原句子：")[1:]
    assert len(shown) == 3
    for sample in shown:
        assert re.search(r"\n同义句子：\n(.*\n)*?.*\['.+'\]\n", sample)
    assert (tmp_path / "latest_model.weights.h5").is_file()
    assert (tmp_path / "best_model.weights.h5").is_file()


def test_conditional_language_model(run_port, tmp_path):
    out, script = run_port("conditional_language_model")
    for label in ("正面采样:", "负面采样:"):  # five sampled sentences per sentiment
        (shown,) = re.findall(re.escape(label) + r"\n(\[.*\]) \n", out)
        assert len(eval(shown)) == 5 and all(isinstance(s, str) for s in eval(shown))
    assert (tmp_path / "best_model.weights.h5").is_file()
    # the label reaches every layer normalisation through layer_norm_cond ...
    model = script["model"]
    assert [tuple(t.shape) for t in model.inputs] == [(None, None), (None, None), (None, 1)]
    ids = np.array([[2, 40, 41, 3]])
    outputs = [keras.ops.convert_to_numpy(model([ids, ids * 0, np.array([[label]])]))
               for label in (0, 1)]
    assert np.abs(outputs[0] - outputs[1]).max() > 0  # trained away from zero: it matters
    # ... and the decode loop cannot feed it, so the subclassed decoder ran eagerly
    assert not script["random_sentiment"]._loops


def test_cpm_lm(run_port):
    out, script = run_port("cpm_lm")
    expansion, tokenizer = script["text_expansion"], script["tokenizer"]
    # the four few-shot prompts were continued; their last lines lead each output
    for last_line in ("中国的首都是", "鸟 ", "贡献 ", "她很苦恼。->"):
        echoed = expansion.post_replace(tokenizer.decode(tokenizer.encode(last_line)[0]))
        assert echoed.strip() and echoed.strip() in out, last_line
    # a continuation keeps its prompt, then samples; the standard last-token call on a
    # model of token ids alone ran on the compiled decode loop
    prompt = "美国的首都是华盛顿\n中国的首都是"
    (text,) = expansion.generate(prompt, 1)
    assert text.startswith(expansion.post_replace(tokenizer.decode(tokenizer.encode(prompt)[0])))
    assert expansion._loops


def test_masked_language_model(run_port):
    out, script = run_port("masked_language_model")
    probas = script["probas"]
    np.testing.assert_allclose(probas.sum(axis=-1), 1, rtol=1e-4)
    predicted = script["tokenizer"].decode(probas[3:5].argmax(axis=1))
    assert predicted and out.splitlines()[-1] == predicted


# ------------------------------------------------------------------ the diffs


@pytest.mark.parametrize("port", TOOL.PORTS, ids=lambda port: port.name)
def test_diff_reverses_to_the_original(port):
    ported = (HERE / f"{port.name}.py").read_text(encoding="utf-8")
    diff = (HERE / f"{port.name}.diff").read_text(encoding="utf-8")
    original = TOOL.reverse_patch(ported, diff)
    assert TOOL.sha256(original) == port.sha256
    # The table still makes exactly the committed port and diff from that original.
    assert TOOL.make_port(port, original) == ported
    assert TOOL.make_diff(port, original, ported) == diff


def test_reverse_patch_refuses_a_port_edited_after_its_diff():
    port = TOOL.PORTS[0]
    ported = (HERE / f"{port.name}.py").read_text(encoding="utf-8")
    diff = (HERE / f"{port.name}.diff").read_text(encoding="utf-8")
    with pytest.raises(TOOL.PortError, match="does not match"):
        TOOL.reverse_patch(ported.replace("batch_size = 4", "batch_size = 5"), diff)


def test_a_substitution_must_match_exactly_once():
    port = TOOL.Port("example", "bert4keras", "example.py", "", [("a = 1\n", "a = 2\n")])
    assert TOOL.make_port(port, "# first\na = 1\n").endswith("a = 2\n")
    for original in ("# first\n", "# first\na = 1\na = 1\n"):
        with pytest.raises(TOOL.PortError, match=r"example: substitution 0 'a = 1\\n'"):
            TOOL.make_port(port, original)
