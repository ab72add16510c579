"""Writes decoding fixtures (generation.json) for the SimBERT / RoFormer-Sim style
parity fixtures, with the ORIGINAL bert4keras' AutoRegressiveDecoder.

For each model fixture built with `application="unilm", with_pool="linear"` (SimBERT
is bert, RoFormer-Sim is roformer; both with factorised-embedding variants), it
records, for a few texts:
- `encode`: the L2-normalised linear-pooler vectors of each text encoded alone
  (segment 0), as the SimBERT / RoFormer-Sim retrieval scripts compute them;
- `beam_search` results with topk (beam size) 1 and 3 — bert4keras' greedy and beam
  decoding — for several end tokens, minimum lengths and `min_ends`, using the
  seq2seq `predict` of the SimBERT / RoFormer-Sim generation scripts (source ids with
  segment 0, generated ids with segment 1, probabilities at the last position).
The random fixture models rarely emit [SEP], so some cases take a token that greedy
decoding does produce as `end_id`, to exercise the stop rules.

Run with the reference environment (see make_model_fixtures.py):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python tools/make_generation_fixtures.py
"""
import json
import pathlib

import numpy as np
import tensorflow as tf
from tensorflow import keras

from bert4keras.models import build_transformer_model
from bert4keras.snippets import AutoRegressiveDecoder
from bert4keras.tokenizers import Tokenizer

MODELS = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
FIXTURES = {"bert": "bert", "bert_factorized": "bert", "roformer": "roformer",
            "roformer_factorized": "roformer"}
TEXTS = ["的一是了我不在人有", "他们大家中国", "今天你好吗", "我"]
TEXT_MAXLEN = 32


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


def main():
    for fixture, model_name in FIXTURES.items():
        directory = MODELS / fixture
        tokenizer = Tokenizer(str(directory / "vocab.txt"), do_lower_case=True)
        model = build_transformer_model(
            str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
            model=model_name, application="unilm", with_pool="linear",
        )
        encoder = keras.models.Model(model.inputs, model.outputs[0])
        seq2seq = keras.models.Model(model.inputs, model.outputs[1])

        encoded = []
        for text in TEXTS:
            token_ids, segment_ids = tokenizer.encode(text, maxlen=TEXT_MAXLEN)
            vector = encoder.predict([np.array([token_ids]), np.array([segment_ids])], verbose=0)[0]
            encoded.append({"text": text, "token_ids": token_ids,
                            "vector": (vector / np.linalg.norm(vector)).tolist()})

        cases = []
        for text in TEXTS:
            token_ids, segment_ids = tokenizer.encode(text, maxlen=TEXT_MAXLEN)
            greedy = Seq2SeqDecoder(seq2seq, start_id=None, end_id=tokenizer._token_end_id,
                                    maxlen=12).beam_search([token_ids, segment_ids], topk=1)
            frequent = int(greedy[2])  # ends greedy decoding at its third token
            for end_id, minlen, min_ends in [
                (tokenizer._token_end_id, 1, 1),
                (frequent, 1, 1),
                (frequent, 5, 1),
                (frequent, 1, 2),
            ]:
                for beam in (1, 3):
                    decoder = Seq2SeqDecoder(seq2seq, start_id=None, end_id=end_id,
                                             maxlen=12, minlen=minlen)
                    ids = decoder.beam_search([token_ids, segment_ids], topk=beam,
                                              min_ends=min_ends)
                    cases.append({"text": text, "token_ids": token_ids, "beam": beam,
                                  "end_id": end_id, "maxlen": 12, "minlen": minlen,
                                  "min_ends": min_ends, "output_ids": [int(i) for i in ids]})
        (directory / "generation.json").write_text(
            json.dumps({"model": model_name, "text_maxlen": TEXT_MAXLEN, "encode": encoded,
                        "beam_search": cases}, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        print(fixture, len(cases), "decoding cases")
        keras.backend.clear_session()


if __name__ == "__main__":
    tf.config.set_visible_devices([], "GPU")
    main()
