"""roformer-sim-mini, the model shipped inside the package: it loads with no network and
no cache on every backend, and it tells paraphrases from unrelated sentences and writes
sentences about its input — which the random-weight fixture does not."""
import socket

import numpy as np
import pytest

from kerasformer import models
from kerasformer.hub import manifests

pytestmark = pytest.mark.backends

# (sentence, a paraphrase of it, an unrelated sentence of the same kind)
TRIPLES = [
    ("今天天气不错", "今天的天气很好", "我想买一部新手机"),
    ("怎么开通花呗", "花呗怎样才能开通", "这家餐厅的菜很好吃"),
    ("我的快递什么时候到", "快递大概几天能送到", "北京是中国的首都"),
    ("这部电影太感人了", "这个电影让我很感动", "明天早上八点开会"),
    ("一只小狗在草地上奔跑", "一条狗在草地上跑", "一个男人在厨房做饭"),
    ("如何提高英语口语水平", "怎样才能练好英语口语", "手机屏幕摔碎了怎么办"),
]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """The bundled model loaded with empty caches and every network connection refused."""
    home = tmp_path_factory.mktemp("offline")

    def refuse(*args, **kwargs):
        raise AssertionError("roformer-sim-mini tried to reach the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home / "hf"))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("KERASFORMER_HOME", str(home / "kerasformer"))
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        task = models.load("roformer-sim-mini")
        assert not (home / "hf").exists() and not (home / "kerasformer" / "converted").exists()
    return task


def test_it_loads_offline_as_a_roformer_sim_model(mini):
    manifest = manifests.find_manifest("roformer-sim-mini")
    assert manifests.is_bundled(manifest)
    assert mini.family == "roformer-sim" and mini.task == "similarity"
    assert models.load("mini").transformer.get_config() == mini.transformer.get_config()


def test_paraphrases_score_above_unrelated_sentences(mini):
    texts = [text for triple in TRIPLES for text in triple]
    vectors = mini.encode(texts).reshape(len(TRIPLES), 3, -1)
    paraphrase = np.einsum("nd,nd->n", vectors[:, 0], vectors[:, 1])
    unrelated = np.einsum("nd,nd->n", vectors[:, 0], vectors[:, 2])
    assert (paraphrase > unrelated).all(), list(zip(paraphrase, unrelated))
    assert (paraphrase - unrelated).mean() > 0.1


def test_similar_sentences_are_about_the_input(mini):
    results = mini.similar("今天天气不错", n=20, k=10, seed=0)
    assert len(results) >= 5
    for sentence, cosine in results:
        assert sentence != "今天天气不错"
        # Chinese, not a soup of random vocabulary entries
        assert sum("\u4e00" <= c <= "\u9fff" for c in sentence) >= 0.8 * len(sentence)
    # the best ones share the input's words: a random-weight model shares ~nothing
    best = [sentence for sentence, _ in results[:5]]
    assert sum(len(set(s) & set("今天天气不错")) >= 2 for s in best) >= 3, best
    assert results[0][1] > 0.7


def test_a_revision_or_another_family_is_refused(mini):
    with pytest.raises(ValueError, match="bundled with kerasformer: it has no Hub revisions"):
        models.load("roformer-sim-mini", revision="main")
    with pytest.raises(ValueError, match="is a roformer-sim model, not simbert"):
        models.load("roformer-sim-mini", family="simbert")
