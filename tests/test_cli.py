from kerasformer.cli import main
from tests.conftest import FIXTURES


def test_encode_prints_vectors_and_cosines(capsys):
    assert main(["encode", "--model", str(FIXTURES / "models" / "roformer"), "今天天气不错", "今天天气很好"]) == 0
    out = capsys.readouterr().out
    assert "今天天气不错" in out and "cosine similarity" in out


def test_encode_bad_input_is_a_clear_error(capsys):
    assert main(["encode", "--model", str(FIXTURES / "models" / "roformer"), " "]) == 2
    assert "text 1 is empty" in capsys.readouterr().err
    assert main(["encode", "--model", "/nonexistent", "你好"]) == 2
    assert "bert_config.json is missing" in capsys.readouterr().err
