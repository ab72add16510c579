"""The causal-language-model task: continue a prompt (GPT-2, CPM-LM)."""
import numpy as np

from kerasformer.generation import AutoRegressiveDecoder
from kerasformer.models.task import Task, check_texts

# Where a continuation may stop: the tokenizer's end of document or end token, or a
# newline (CPM's few-shot prompts put one answer on a line).
ENDS = ("end", "newline")


class CausalLanguageModel(Task):
    """A GPT-2-style model with its tokenizer: `generate` continues a prompt on the
    shared compiled decode loop (sampling or beam search).

    Usually obtained from `kerasformer.models.load(...)`.

    Args:
        transformer: a causal architecture (`model="gpt2"`).
        tokenizer: its tokenizer (`Tokenizer` for a WordPiece vocabulary,
            `CpmTokenizer` for CPM-LM).
        family: the family name.
        tokenizer_config: the tokenizer's recipe (see `Task`).
        end: "end" to stop at the end of the text (`<eod>` for CPM, the tokenizer's
            end token otherwise) or "newline" to stop at the end of the line.
        sampling: dict of `topk` / `topp` / `temperature` defaults of `generate`.
    """

    task = "causal_lm"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None,
                 end="end", sampling=None):
        reason = transformer.can_decode()
        if reason is not None:
            raise ValueError(f"a causal language model must decode: {reason}")
        super().__init__(transformer, tokenizer, family, tokenizer_config)
        self.end = end
        self.sampling = dict(sampling or {})
        self._decoders = {}
        self.decoder = self.decoder_for(end)

    def decoder_for(self, end):
        """The decode loop that stops at `end` ("end" or "newline"); the end token is
        an input of the compiled loop, so either end shares its compilation."""
        if end not in ENDS:
            raise ValueError(f"end must be one of {ENDS}, got {end!r}")
        if end not in self._decoders:
            self._decoders[end] = AutoRegressiveDecoder(self.transformer, end_id=self._end_id(end))
        return self._decoders[end]

    def _end_id(self, end):
        tokenizer = self.tokenizer
        if end == "newline":
            end_id = getattr(tokenizer, "newline_id", None)
            if end_id is None:
                raise ValueError("this tokenizer has no newline token: use end='end'")
            return end_id
        end_id = getattr(tokenizer, "eod_id", None)
        if end_id is None:
            end_id = tokenizer.end_id
        if end_id is None:
            raise ValueError("this tokenizer has no end token to stop at")
        return end_id

    def task_options(self):
        return {"end": self.end, "sampling": dict(self.sampling)}

    def encode_prompt(self, prompt):
        """Token ids of `prompt` as the model continues it: no end token after it."""
        (prompt,) = check_texts([prompt])
        ids = self.tokenizer.encode(prompt)[0]
        if self.tokenizer.end_id is not None and ids and ids[-1] == self.tokenizer.end_id:
            ids = ids[:-1]
        limit = self.transformer.max_positions()
        if limit is not None and len(ids) >= limit:
            raise ValueError(f"the prompt is {len(ids)} tokens long; the model takes at most "
                             f"{limit} positions, and needs room to continue")
        return ids

    def generate(self, prompt, n=1, maxlen=32, minlen=1, topk=None, topp=None,
                 temperature=None, beam=None, seed=None, end=None):
        """Continuations of `prompt`, without the prompt itself.

        Args:
            prompt: str.
            n: int. Number of samples (ignored with `beam`).
            maxlen: int. Most tokens to generate; a continuation ends earlier at the
                task's end token (see `end`), which is not part of the text.
            minlen: int. Fewest tokens before the end token may end it.
            topk, topp, temperature: sampling restrictions; the task's `sampling`
                gives the defaults, none samples from the whole distribution.
            beam: int. Beam search instead of sampling: the best beam alone.
            seed: int. The same seed gives the same samples.
            end: "end" or "newline" (see the class); default the task's `end`.

        Returns:
            list of str: `n` continuations, or the best beam alone.
        """
        decoder = self.decoder_for(self.end if end is None else end)
        token_ids = self.encode_prompt(prompt)
        options = {**self.sampling, **{k: v for k, v in (
            ("topk", topk), ("topp", topp), ("temperature", temperature)) if v is not None}}
        if beam is not None:
            (ids,) = decoder.beam_search([token_ids], beam=beam, maxlen=maxlen, minlen=minlen,
                                         temperature=options.get("temperature", 1.0))
            return [self._text(ids, decoder.end_id)]
        (samples,) = decoder.random_sample(
            [token_ids], n=n, maxlen=maxlen, minlen=minlen, topk=options.get("topk"),
            topp=options.get("topp"), temperature=options.get("temperature", 1.0), seed=seed)
        return [self._text(ids, decoder.end_id) for ids in samples]

    def _text(self, ids, end_id):
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if ids and ids[-1] == end_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids)
