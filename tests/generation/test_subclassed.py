"""bert4keras' subclassable AutoRegressiveDecoder: the generation script of the
fixtures (tools/make_generation_fixtures.py, run with bert4keras) unchanged but for
its imports gives bert4keras' ids, through the compiled loop when `predict` is the
standard call and step by step otherwise."""
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.backend import K
from kerasformer.snippets import AutoRegressiveDecoder
from tests.generation.test_decoder import MODELS, grouped_cases


class Seq2SeqDecoder(AutoRegressiveDecoder):
    """The predict function of the SimBERT and RoFormer-Sim generation scripts."""

    def __init__(self, seq2seq, **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq

    @AutoRegressiveDecoder.wraps(default_rtype="probas")
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = inputs
        token_ids = np.concatenate([token_ids, output_ids], 1)
        segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
        return self.last_token(self.seq2seq).predict([token_ids, segment_ids], verbose=0)


class StatefulDecoder(Seq2SeqDecoder):
    """The same scores through `use_states`: not provably standard, so run eagerly."""

    @AutoRegressiveDecoder.wraps(default_rtype="probas", use_states=True)
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = inputs
        token_ids = np.concatenate([token_ids, output_ids], 1)
        segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
        return self.last_token(self.seq2seq).predict([token_ids, segment_ids]), states


@pytest.fixture(scope="module")
def seq2seq():
    directory = MODELS / "roformer"
    model = kf.build_transformer_model(
        directory / "bert_config.json", directory / "bert_model.ckpt", model="roformer",
        application="unilm", with_pool="linear", layer_norm_epsilon=1e-7)
    return keras.models.Model(model.inputs, model.outputs[1])


# Step by step, each step a whole forward pass of an eager model: a few settings only.
@pytest.mark.parametrize("decoder_class,groups,per_group", [
    pytest.param(Seq2SeqDecoder, None, 2, marks=pytest.mark.backends),
    (StatefulDecoder, 2, 1),  # greedy and a beam of 3
])
def test_beam_search_matches_bert4keras(seq2seq, decoder_class, groups, per_group):
    for (beam, end_id, maxlen, minlen, min_ends), cases in \
            list(grouped_cases("roformer").items())[:groups]:
        for case in cases[:per_group]:
            decoder = decoder_class(seq2seq, start_id=None, end_id=end_id, maxlen=maxlen,
                                    minlen=minlen)
            inputs = [case["token_ids"], [0] * len(case["token_ids"])]
            ids = decoder.beam_search(inputs, topk=beam, min_ends=min_ends)
            assert ids.tolist() == case["output_ids"], (beam, end_id, minlen, min_ends)
            # the standard predict runs on the compiled loop, the stateful one eagerly
            assert bool(decoder._loops) == (decoder_class is Seq2SeqDecoder)


def test_sampling_with_topk_1_is_greedy_on_both_paths(seq2seq):
    case = grouped_cases("roformer")[(1, 3, 12, 1, 1)][0]
    inputs = [case["token_ids"], [0] * len(case["token_ids"])]
    for decoder_class in (Seq2SeqDecoder, StatefulDecoder):
        decoder = decoder_class(seq2seq, start_id=None, end_id=3, maxlen=12)
        samples = decoder.random_sample(inputs, n=3, topk=1)
        assert len(samples) == 3
        assert all(s.tolist() == case["output_ids"] for s in samples), decoder_class


def test_samples_are_reproducible_with_numpy_seeds(seq2seq):
    decoder = Seq2SeqDecoder(seq2seq, start_id=None, end_id=3, maxlen=8)
    inputs = [[2, 40, 41, 3], [0, 0, 0, 0]]
    np.random.seed(5)
    first = decoder.random_sample(inputs, n=4, topp=0.9)
    np.random.seed(5)
    again = decoder.random_sample(inputs, n=4, topp=0.9)
    assert [s.tolist() for s in first] == [s.tolist() for s in again]
    # topp >= 1 keeps every token, as in bert4keras (its cumulative sum never passes it)
    np.random.seed(5)
    unrestricted = decoder.random_sample(inputs, n=4)
    np.random.seed(5)
    beyond_one = decoder.random_sample(inputs, n=4, topp=5)
    assert [s.tolist() for s in beyond_one] == [s.tolist() for s in unrestricted]


def test_a_subclass_without_predict_says_what_to_write():
    with pytest.raises(NotImplementedError, match="write predict"):
        AutoRegressiveDecoder(None, 3, 8).beam_search([[2, 3], [0, 0]], topk=2)
    with pytest.raises(ValueError, match="default_rtype"):
        AutoRegressiveDecoder.wraps(default_rtype="scores")


class CrossEntropy(kf.layers.Loss):
    """The UniLM loss of bert4keras' task_seq2seq_autotitle.py."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
        return K.sum(loss * y_mask[:, 1:]) / K.sum(y_mask[:, 1:])


class RewrappedCrossEntropy(CrossEntropy):
    """Its own `call` (returning the same): not provably the input, so run eagerly."""

    def call(self, inputs, mask=None):
        return super().call(inputs, mask)


@pytest.mark.parametrize("loss_class", [CrossEntropy, RewrappedCrossEntropy])
def test_a_training_model_with_a_loss_layer_decodes_on_the_compiled_loop(loss_class):
    # task_seq2seq_autotitle.py decodes with the model it trains: the UniLM output
    # passed through the loss layer, which returns it unchanged.
    directory = MODELS / "bert"
    bert = kf.build_transformer_model(directory / "bert_config.json",
                                      directory / "bert_model.ckpt", application="unilm")
    output = loss_class(2)(bert.inputs + bert.outputs)
    model = keras.models.Model(bert.inputs, output)
    (case, *_) = grouped_cases("bert")[(3, 288, 12, 1, 1)]  # 2 generated ids
    inputs = [case["token_ids"], [0] * len(case["token_ids"])]
    decoders = [decoder_class(model, start_id=None, end_id=288, maxlen=12)
                for decoder_class in (Seq2SeqDecoder, StatefulDecoder)]
    compiled, eager = (decoder.beam_search(inputs, topk=3) for decoder in decoders)
    assert bool(decoders[0]._loops) == (loss_class is CrossEntropy)
    assert not decoders[1]._loops
    assert compiled.tolist() == eager.tolist() == case["output_ids"]
