"""The masked-language-model task: fill in the [MASK]s of a text."""
import numpy as np

from kerasformer.checks import check_integer
from kerasformer.models.task import Task, check_texts, to_numpy


class MaskedLanguageModel(Task):
    """A family with its MLM head (RoFormer, RoFormerV2, GAU-α, BERT) and tokenizer.

    Usually obtained from `kerasformer.models.load(...)`; `model` outputs the MLM
    probabilities `(batch, seq, vocab)` for inputs `[token_ids, segment_ids]`.
    """

    task = "masked_lm"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None):
        if not getattr(transformer, "with_mlm", False):
            raise ValueError("a masked language model needs the MLM head: build with with_mlm=True")
        super().__init__(transformer, tokenizer, family, tokenizer_config)
        if self.tokenizer.mask_id is None:
            raise ValueError("the vocabulary has no [MASK] token")

    def encode_masked(self, text):
        """Token ids of `text` in which each literal "[MASK]" is the mask token."""
        (text,) = check_texts([text])
        pieces = text.split("[MASK]")
        if len(pieces) < 2:
            raise ValueError(f"{text!r} has no [MASK] to fill")
        tokenizer = self.tokenizer
        tokens = [tokenizer._token_start] if tokenizer._token_start else []
        for index, piece in enumerate(pieces):
            if index:
                tokens.append(tokenizer._token_mask)
            if piece.strip():  # the piece's own tokens, without start and end
                inner = tokenizer.tokenize(piece)
                if tokenizer._token_start:
                    inner = inner[1:]
                if tokenizer._token_end:
                    inner = inner[:-1]
                tokens += inner
        if tokenizer._token_end:
            tokens.append(tokenizer._token_end)
        return tokenizer.tokens_to_ids(tokens)

    def _special_ids(self):
        tokenizer = self.tokenizer
        tokens = (tokenizer._token_pad, tokenizer._token_unk, tokenizer._token_start,
                  tokenizer._token_end, tokenizer._token_mask)
        ids = {tokenizer._token_dict.get(t) for t in tokens if t is not None}
        return sorted(i for i in ids if i is not None and i < self.transformer.vocab_size)

    def fill_mask(self, text, k=5):
        """The `k` most probable tokens at each [MASK] of `text`.

        Args:
            text: str containing one or more literal "[MASK]".
            k: int. Candidates per mask.

        Returns:
            A list, one entry per [MASK], of `k` `(token, probability)` pairs, most
            probable first.
        """
        k = check_integer(k, "k")
        ids = self.encode_masked(text)
        token_ids = self.pad([ids])
        predict = self.compiled("mlm", lambda t, s: self.model([t, s]))
        probabilities = to_numpy(predict(token_ids, np.zeros_like(token_ids)))[0]
        results = []
        special = self._special_ids()
        for position in [i for i, token in enumerate(ids) if token == self.tokenizer.mask_id]:
            row = probabilities[position].copy()
            row[special] = -1.0  # [CLS], [SEP], [MASK], [PAD], [UNK] are never an answer
            top = np.argsort(-row, kind="stable")[:k]
            results.append([(self.tokenizer.id_to_token(int(i)), float(row[i])) for i in top])
        return results
