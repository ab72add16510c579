"""The example scripts run end to end on a fixture checkpoint."""
import os
import subprocess
import sys

from tests.conftest import FIXTURES

ROOT = FIXTURES.parents[1]
SIM = str(FIXTURES / "models" / "roformer")


def run(script, *args):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_similar_sentences():
    out = run("similar_sentences.py", SIM, "今天天气不错", "-n", "6", "-k", "3", "--seed", "0")
    assert "greedy:" in out and "beam 3:" in out


def test_retrieval(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("今天天气很好\n我们都是中国人\n\n明天会下雨吗\n", encoding="utf-8")
    out = run("retrieval.py", SIM, str(corpus), "今天天气不错", "他们", "-k", "2")
    assert "encoded 3 sentences" in out and "今天天气很好" in out
