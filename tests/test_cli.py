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
    assert "cpm-lm (not buildable yet)" in out and "Apache-2.0" in out
    assert main(["info", "roformer-sim"]) == 0
    out = capsys.readouterr().out
    assert "chinese_roformer-sim-char_L-12_H-768_A-12.zip" in out and "pan.baidu.com" in out
    assert "--family roformer-sim" in out and "pytorch_model.bin" in out
    assert main(["info", "roformer-simm"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", "cpm-lm"]) == 2
    assert "does not build the gpt2 architecture yet" in capsys.readouterr().err


def test_invalid_weights_are_named_with_the_flag_that_accepts_them(capsys):
    bert = str(FIXTURES / "models" / "bert")  # a BERT checkpoint is not a RoFormer-Sim one
    assert main(["encode", "你好", "--model", bert, "--family", "roformer-sim"]) == 2
    err = capsys.readouterr().err
    assert "--ignore-invalid-weights" in err and "ignore_invalid_weights" not in err
    with pytest.warns(UserWarning, match="keep their random initialisation"):
        assert main(["encode", "你好", "--model", bert, "--family", "roformer-sim",
                     "--ignore-invalid-weights"]) == 0
