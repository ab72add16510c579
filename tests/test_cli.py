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
    lines = capsys.readouterr().out.strip().splitlines()
    scores = [float(line.split("\t")[0]) for line in lines]
    assert 0 < len(lines) <= 3 and scores == sorted(scores, reverse=True)


def test_bad_input_is_a_clear_error(capsys):
    assert main(["encode", *SIM_ARGS, " "]) == 2
    assert "text 0 is empty" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", "/nonexistent"]) == 2
    assert "unknown checkpoint '/nonexistent'" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", SIM]) == 2
    assert "pass family=" in capsys.readouterr().err
    assert main(["similar", "你好", "--model", SIM, "--family", "t5"]) == 2
    assert "unknown family 't5'" in capsys.readouterr().err
