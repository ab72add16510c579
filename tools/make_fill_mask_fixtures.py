"""Writes fill_mask.json for the RoFormerV2 and BERT parity fixtures with the ORIGINAL
bert4keras: the five most probable tokens at each [MASK] of the sentence JunnYu's
README uses for RoFormerV2 ("今天[MASK]很好，我[MASK]去公园玩。"), masked the way
bert4keras' MLM example does (encode the text, then set [MASK] ids).

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python tools/make_fill_mask_fixtures.py
"""
import json
import pathlib

import numpy as np

from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer

MODELS = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
TEXT = "今天[MASK]很好，我[MASK]去公园玩。"


def main():
    for fixture, model in [("roformer_v2", "roformer_v2"), ("bert", "bert")]:
        directory = MODELS / fixture
        tokenizer = Tokenizer(str(directory / "vocab.txt"), do_lower_case=True)
        pieces = TEXT.split("[MASK]")
        token_ids, segment_ids = tokenizer.encode("".join(pieces))
        positions = [1 + len(pieces[0]), 1 + len(pieces[0]) + 1 + len(pieces[1])]
        for position in positions:
            token_ids.insert(position, tokenizer._token_mask_id)
            segment_ids.append(0)
        mlm = build_transformer_model(
            str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
            model=model, with_mlm=True,
        )
        probabilities = mlm.predict([np.array([token_ids]), np.array([segment_ids])], verbose=0)[0]
        top5 = [[tokenizer.id_to_token(int(i)) for i in np.argsort(-probabilities[p])[:5]]
                for p in positions]
        (directory / "fill_mask.json").write_text(json.dumps(
            {"text": TEXT, "token_ids": token_ids, "top5": top5,
             "source": "bert4keras 0.11.5, tools/make_fill_mask_fixtures.py"},
            ensure_ascii=False) + "\n", encoding="utf-8")
        print(fixture, top5)


if __name__ == "__main__":
    main()
