import pytest

from kerasformer.cli import main
from tests.conftest import FIXTURES

SIM = str(FIXTURES / "models" / "roformer")
SIM_ARGS = ["--model", SIM, "--family", "roformer-sim"]


def test_encode_prints_vectors_and_cosines(capsys):
    assert main(["encode", *SIM_ARGS, "今天天气不错", "今天天气很好"]) == 0
    out = capsys.readouterr().out
    assert "今天天气不错" in out and "cosine similarity" in out


def test_similar_prints_ranked_sentences(capsys):
    assert main(["similar", "今天天气不错", *SIM_ARGS, "-n", "8", "-k", "3", "--seed", "1"]) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header == "cosine\tsentence"
    scores = [float(line.split("\t")[0]) for line in lines]
    assert 0 < len(lines) <= 3 and scores == sorted(scores, reverse=True)


def test_similar_without_a_model_uses_the_bundled_one(capsys):
    assert main(["similar", "今天天气不错", "-n", "20", "-k", "5", "--seed", "0"]) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header == "cosine\tsentence" and lines
    # real sentences: they share words with the input (the fixture's are random tokens)
    sentences = [line.split("\t")[1] for line in lines]
    assert any(len(set(s) & set("今天天气不错")) >= 2 for s in sentences)
    assert main(["similar", "今天天气不错", "-n", "20", "-k", "20", "--seed", "0",
                 "--near-copies"]) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    with_copies = [line.split("\t")[1] for line in lines]
    assert set(sentences) < set(with_copies)  # the same samples, the near copies kept too
    assert main(["info", "mini"]) == 0
    out = capsys.readouterr().out
    assert "bundled:" in out and "tools/train_mini.sh" in out and "spearman" in out


def test_generate_continues_a_prompt(capsys):
    gpt2 = str(FIXTURES / "models" / "gpt2")
    args = ["generate", "北京是中国的", "--model", gpt2, "--family", "gpt2", "--maxlen", "4"]
    assert main([*args, "-n", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- ") == 2 and out.count("\n北京是中国的") == 2
    assert main([*args, "--beam", "0"]) == 2
    assert "--beam must be at least 1" in capsys.readouterr().err
    assert main([*args, "--temperature", "0"]) == 2
    assert "--temperature must be positive" in capsys.readouterr().err
    assert main(["generate", "你好", *SIM_ARGS]) == 2  # a similarity model
    assert "needs a causal_lm model: --family gpt2 or cpm-lm, or another" in capsys.readouterr().err


def test_bad_input_is_a_clear_error(capsys):
    assert main(["encode", *SIM_ARGS, " "]) == 2
    assert "text 0 is empty" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", "/nonexistent"]) == 2
    assert "unknown checkpoint '/nonexistent'" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", SIM]) == 2
    assert "pass --family" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", SIM, "--family", "t5"]) == 2
    assert "unknown family 't5'" in capsys.readouterr().err


def test_arguments_are_checked_before_a_model_is_loaded(capsys, monkeypatch):
    from kerasformer import loading

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a model for a bad command line")

    monkeypatch.setattr(loading, "load", no_loading)
    for argv, message in [
        (["similar", ""], "text 0 is empty"),
        (["similar", "你好", "-k", "0"], "-k must be at least 1"),
        (["similar", "你好", "-n", "-3"], "-n must be at least 1"),
        (["similar", "你好", "--topp", "1.5"], "--topp must be in (0, 1]"),
        (["encode", "好", " "], "text 1 is empty"),
        (["fill-mask", "今天很好", "--model", SIM], "has no [MASK]"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_a_command_on_a_model_of_another_task_says_so(capsys):
    bert = str(FIXTURES / "models" / "bert")
    assert main(["similar", "你好", "--model", bert, "--family", "bert"]) == 2
    err = capsys.readouterr().err
    assert "is a masked_lm model (family bert)" in err and "--family roformer-sim or simbert" in err
    assert main(["fill-mask", "今天[MASK]", *SIM_ARGS]) == 2
    assert "needs a masked_lm model" in capsys.readouterr().err


def test_version_list_and_info(capsys):
    import subprocess
    import sys

    import kerasformer

    result = subprocess.run([sys.executable, "-m", "kerasformer", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == f"kerasformer {kerasformer.__version__}"
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cpm-lm " in out and "not buildable" not in out and "Apache-2.0" in out
    assert main(["info", "roformer-sim"]) == 0
    out = capsys.readouterr().out
    assert "chinese_roformer-sim-char_L-12_H-768_A-12.zip" in out and "pan.baidu.com" in out
    assert "--family roformer-sim" in out and "pytorch_model.bin" in out
    assert main(["info", "roformer-simm"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", "cpm-lm"]) == 2  # refused before downloading
    assert "cpm-lm is a causal_lm model (family cpm-lm)" in capsys.readouterr().err


def test_invalid_weights_are_named_with_the_flag_that_accepts_them(capsys):
    bert = str(FIXTURES / "models" / "bert")  # a BERT checkpoint is not a RoFormer-Sim one
    assert main(["encode", "你好", "--model", bert, "--family", "roformer-sim"]) == 2
    err = capsys.readouterr().err
    assert "--ignore-invalid-weights" in err and "ignore_invalid_weights" not in err
    with pytest.warns(UserWarning, match="keep their random initialisation"):
        assert main(["encode", "你好", "--model", bert, "--family", "roformer-sim",
                     "--ignore-invalid-weights"]) == 0


def _pairs_file(path, labels):
    sentences = ["今天天气不错", "今天天气很好", "你好吗", "我们去公园玩吧", "他在家里看书",
                 "女人在跑步", "狗在吃东西", "男孩在看电视"]
    lines = [f"{sentences[i % 8]}\t{sentences[(i * 3 + 1) % 8]}\t{label}\n"
             for i, label in enumerate(labels)]
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


def test_eval_prints_sts_thresholds_and_paraphrases(capsys, tmp_path):
    import json

    sts = _pairs_file(tmp_path / "toy.test.data", [0, 3, 5, 1, 4, 2, 5, 0, 3, 1])
    valid = _pairs_file(tmp_path / "toy.valid.data", [0, 1, 1, 0, 1, 0, 0, 1])
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("今天天气不错\n\n你好吗\n", encoding="utf-8")
    assert main(["eval", SIM, "--family", "roformer-sim", "--sts", sts, "--valid", valid,
                 "--test", sts, "--paraphrase", str(sentences), "-n", "2", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # with --json, stdout is JSON alone
    assert report["sts"][0]["dataset"] == "toy.test" and report["sts"][0]["pairs"] == 10
    assert set(report["sts"][0]) >= {"model", "char_jaccard", "bm25"}
    assert report["calibration"]["on_valid"]["f1"]["threshold"] is not None
    assert [s["source"] for s in report["paraphrase"]["sentences"]] == ["今天天气不错", "你好吗"]
    tables = captured.err
    assert "dataset   pairs  spearman  pearson  char-jaccard spearman  bm25 spearman" in tables
    assert "similar pairs: label 1 in toy.valid, score above 2.5 in toy.test" in tables
    assert "similar means cosine >= " in tables and "(mean)" in tables


def test_eval_without_json_prints_one_row_per_dataset(capsys, tmp_path):
    for task in ("A", "B"):
        (tmp_path / task).mkdir()
        _pairs_file(tmp_path / task / f"{task}.test.data", [0, 1, 1, 0, 1, 0])
    assert main(["eval", SIM, "--family", "roformer-sim", "--sts", str(tmp_path),
                 "--limit", "4"]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:3] == ["dataset", "pairs", "spearman"]
    assert [row.split()[:2] for row in rows] == [["A.test", "4"], ["B.test", "4"]]


def test_eval_and_vocab_arguments_are_checked_before_a_model_is_loaded(capsys, monkeypatch,
                                                                       tmp_path):
    from kerasformer import loading

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a model for a bad command line")

    monkeypatch.setattr(loading, "load", no_loading)
    good = _pairs_file(tmp_path / "good.tsv", [0, 1])
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("今天\t明天\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("今天\n", encoding="utf-8")
    for argv, message in [
        (["eval", SIM], "nothing to evaluate: give --sts FILE_OR_DIR"),
        (["eval", SIM, "--valid", good], "--valid and --test go together"),
        (["eval", SIM, "--sts", good, "--batch-size", "0"], "--batch-size must be at least 1"),
        (["eval", SIM, "--sts", good, "--limit", "0"], "--limit must be at least 1"),
        (["eval", SIM, "--paraphrase", good, "-n", "1"], "-n must be at least 2"),
        (["eval", SIM, "--sts", str(tmp_path / "nope")], "no such file or directory"),
        (["eval", SIM, "--sts", str(unlabelled)], f"pair 1 of {unlabelled} has no label"),
        (["eval", SIM, "--valid", good, "--test", _pairs_file(tmp_path / "bad.tsv", [0, 9])],
         "labels must be 0/1 or scores in [0, 5]"),
        (["vocab", str(corpus), "--out", str(tmp_path)], "is a directory"),
        (["vocab", str(tmp_path / "nope.txt"), "--out", "v.txt"], "no such corpus file"),
        (["vocab", str(corpus), "--out", "v.txt", "--max-size", "3"],
         "--max-size must be at least 5"),
        (["vocab", str(corpus), "--out", "v.txt", "--min-count", "0"],
         "--min-count must be at least 1"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_vocab_writes_a_character_vocabulary(capsys, tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("今天天气不错\n天气很好\n", encoding="utf-8")
    second.write_text("今天好\n", encoding="utf-8")
    out = tmp_path / "vocab.txt"
    assert main(["vocab", str(first), str(second), "--out", str(out), "--min-count", "2"]) == 0
    tokens = out.read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "天", "今", "好", "气"]
    assert capsys.readouterr().out.strip() == f"wrote 9 tokens to {out}"
