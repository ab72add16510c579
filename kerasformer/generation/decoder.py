"""The decode loop every generative model uses.

The prefix is encoded once into a static KV cache — for UniLM models the source
segment, bidirectionally; the cached keys and values of the source are exactly what the
UniLM mask lets target tokens see — then one token per step attends over the cache.
Batches of prefixes of different lengths are right-padded into one cache: each row
keeps its own positions and only its real prefix keys are visible, so the result does
not depend on the padding. The whole loop is one compiled call (see `compile.py`),
compiled once per shape bucket.

Strategies follow bert4keras' `AutoRegressiveDecoder`: `maxlen` counts generated
tokens; a sequence finishes when its last token is `end_id` (and it holds `min_ends`
of them) once it has at least `minlen` tokens — before that it simply continues;
beam search scores sum log-probabilities `log(p + 1e-12)`, returns the best beam as
soon as it is finished and otherwise drops finished beams, shrinking the beam.
"""
import numpy as np
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.generation import sampling
from kerasformer.generation.compile import compile_model_function

# Prefix lengths are padded up to a multiple of this, so calls share compilations.
PREFIX_BUCKET = 16
# Score of a dead beam: far below any sum of log-probabilities, yet finite.
DEAD = -1e30


class AutoRegressiveDecoder:
    """Generates continuations of token-id prefixes with a model family.

    The transformer answers the decoder protocol of `Transformer`: `can_decode()`,
    `max_positions()`, `uses_segments`, `causal_prefix`, `init_caches`,
    `call_with_cache`, `logits`.

    Every strategy takes `conditions`: a dict of per-prefix arrays `(prefixes, ...)`
    (a UniVAE's latents) that every `call_with_cache` of a row receives in its
    inputs, next to the token ids.

    Args:
        transformer: a `Transformer` with a language-model head, application
            "unilm" (the prefix is the source, generated tokens are segment 1) or
            "lm" (they continue the prefix), e.g. from
            `build_transformer_model(..., return_keras_model=False)`.
        end_id: int. The token that ends a sequence.
        min_ends: int. End tokens a sequence must hold to count as finished.
    """

    def __init__(self, transformer, end_id, min_ends=1):
        reason = transformer.can_decode()
        if reason is not None:
            raise ValueError(reason)
        self.transformer = transformer
        self.model = transformer.build()
        self.vocab_size = transformer.vocab_size
        self.end_id = int(end_id)
        self.min_ends = int(min_ends)
        self.generated_segment = 1 if transformer.application == "unilm" else 0
        self.has_segments = transformer.uses_segments
        self.max_position = transformer.max_positions()
        # Shared by every decoder of this model: end tokens and lengths are inputs
        # of the compiled function, not part of it.
        self._compiled = transformer.compiled_functions

    # ------------------------------------------------------------------ public

    def greedy(self, prefixes, maxlen, minlen=1, conditions=None):
        """The most probable continuation of each prefix (bert4keras' beam search
        with a beam of 1).

        Args:
            prefixes: list of token-id lists.
            maxlen: int. Most tokens to generate.
            minlen: int. Fewest tokens before an end token can finish a sequence.
            conditions: optional dict of per-prefix arrays (see the class).

        Returns:
            One int32 array of generated ids per prefix, ending with `end_id` when
            the sequence finished.
        """
        tokens, lengths = self._run(
            "greedy", prefixes, maxlen, minlen, rows=1, uniforms=None, conditions=conditions
        )
        return _trim(tokens, lengths)

    def random_sample(self, prefixes, n, maxlen, minlen=1, topk=None, topp=None,
                      temperature=1.0, seed=None, restrictions=None, conditions=None):
        """`n` sampled continuations of each prefix, in one batch.

        Args:
            prefixes: list of token-id lists.
            n: int. Samples per prefix.
            maxlen, minlen: as in `greedy`.
            topk: int. Sample only among the k most probable tokens.
            topp: float in (0, 1]. Sample only among the most probable tokens whose
                probabilities first reach `topp` (after `topk`).
            temperature: float. Divides the logits.
            seed: int. The same seed gives the same samples.
            restrictions: list of `kerasformer.generation.sampling.Restriction`
                applied in order instead of temperature / top-k / top-p (which must
                then be left at their defaults).
            conditions: optional dict of per-prefix arrays (see the class).

        Returns:
            For each prefix, a list of `n` int32 arrays of generated ids.
        """
        n = check_integer(n, "n")
        if restrictions is None:
            if topk is not None:
                topk = check_integer(topk, "topk")
                if topk > self.vocab_size:
                    raise ValueError(f"topk={topk} exceeds the vocabulary size {self.vocab_size}")
            restrictions = [sampling.temperature(temperature)]
            if topk is not None:
                restrictions.append(sampling.top_k(topk))
            if topp is not None:
                restrictions.append(sampling.top_p(topp))
        elif topk is not None or topp is not None or temperature != 1.0:
            raise ValueError("pass either restrictions or topk / topp / temperature, not both")
        restrictions = tuple(restrictions)
        if not all(isinstance(r, sampling.Restriction) for r in restrictions):
            raise TypeError("restrictions must be kerasformer.generation.sampling.Restriction objects")
        maxlen = check_integer(maxlen, "maxlen")
        rows = len(prefixes) * n
        uniforms = np.random.default_rng(seed).random((maxlen, rows), dtype=np.float32)
        tokens, lengths = self._run(
            "sample", prefixes, maxlen, minlen, rows=n, uniforms=uniforms,
            restrictions=restrictions, conditions=conditions,
        )
        samples = _trim(tokens, lengths)
        return [samples[i * n:(i + 1) * n] for i in range(len(prefixes))]

    def beam_search(self, prefixes, beam, maxlen, minlen=1, temperature=1.0, conditions=None):
        """The best beam of a beam search for each prefix (bert4keras' semantics).

        Returns:
            One int32 array of generated ids per prefix.
        """
        beam = check_integer(beam, "beam")
        tokens, lengths = self._run(
            "beam", prefixes, maxlen, minlen, rows=beam, uniforms=None,
            temperature=temperature, conditions=conditions,
        )
        return _trim(tokens, lengths)

    # ----------------------------------------------------------------- driving

    def _run(self, strategy, prefixes, maxlen, minlen, rows, uniforms, restrictions=(),
             temperature=1.0, conditions=None):
        maxlen = check_integer(maxlen, "maxlen")
        if isinstance(minlen, bool) or not isinstance(minlen, (int, np.integer)) or minlen < 0:
            raise ValueError(f"minlen must be a non-negative integer, got {minlen!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        token_ids, lengths = self._pad_prefixes(prefixes, maxlen)
        conditions = _check_conditions(conditions, len(lengths))
        # Everything that changes the traced program, and nothing else.
        key = ("decode", strategy, rows, tuple(r.key for r in restrictions), maxlen, len(lengths),
               tuple((name, value.shape, value.dtype.str) for name, value in conditions.items()))
        if key not in self._compiled:
            self._compiled[key] = self._compile(strategy, rows, restrictions, maxlen, len(lengths))
        if uniforms is None:
            uniforms = np.zeros((maxlen, len(lengths) * rows), np.float32)
        scalars = (
            np.int32(minlen),
            np.float32(temperature),
            np.asarray([r.value for r in restrictions] or [0.0], np.float32),
            np.int32(self.end_id),
            np.int32(self.min_ends),
        )
        tokens, out_lengths = self._compiled[key](token_ids, lengths, uniforms, *scalars,
                                                  conditions)
        return ops.convert_to_numpy(tokens), ops.convert_to_numpy(out_lengths)

    def _pad_prefixes(self, prefixes, maxlen):
        if isinstance(prefixes, np.ndarray):
            prefixes = prefixes.tolist()
        if not isinstance(prefixes, (list, tuple)) or not prefixes:
            raise ValueError("prefixes must be a non-empty list of token-id lists")
        lengths = []
        for index, prefix in enumerate(prefixes):
            if isinstance(prefix, (str, bytes)) or not hasattr(prefix, "__len__"):
                raise TypeError(f"prefix {index} must be a list of token ids, got {prefix!r}")
            if len(prefix) == 0:
                raise ValueError(f"prefix {index} is empty")
            lengths.append(len(prefix))
        longest = max(lengths)
        if self.max_position is not None and longest + maxlen > self.max_position:
            raise ValueError(
                f"a prefix of {longest} tokens plus maxlen={maxlen} exceeds the "
                f"{self.max_position} positions of this model"
            )
        width = -(-longest // PREFIX_BUCKET) * PREFIX_BUCKET
        token_ids = np.zeros((len(prefixes), width), np.int32)
        for row, prefix in enumerate(prefixes):
            ids = np.asarray(prefix)
            if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
                raise TypeError(f"prefix {row} must hold integer token ids")
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                raise ValueError(
                    f"prefix {row} has token ids outside [0, {self.vocab_size})"
                )
            token_ids[row, : len(ids)] = ids
        return token_ids, np.asarray(lengths, np.int32)

    def _compile(self, strategy, rows, restrictions, maxlen, inputs):
        def run(token_ids, lengths, uniforms, minlen, temperature, values, end_id, min_ends,
                conditions):
            stop = (end_id, min_ends, minlen)
            if strategy == "beam":
                return self._beam_search(token_ids, lengths, stop, temperature, rows, maxlen,
                                         conditions)
            return self._sample(
                token_ids, lengths, uniforms, stop, values, conditions, rows=rows,
                greedy=strategy == "greedy", restrictions=restrictions, maxlen=maxlen,
            )

        return compile_model_function(run, self.model.variables, rows=inputs * rows)

    # ---------------------------------------------------------- traced pieces

    def _step_inputs(self, token_ids, positions, conditions):
        inputs = {**conditions, "token_ids": token_ids, "position_ids": positions}
        if self.has_segments:
            inputs["segment_ids"] = ops.full_like(token_ids, self.generated_segment)
        return inputs

    def _logits(self, hidden):
        return ops.cast(self.transformer.logits(hidden)[:, 0], "float32")  # (batch, vocab)

    def _encode_prefix(self, token_ids, lengths, maxlen, conditions):
        """Fills the caches with the prefix; returns the logits of the first token."""
        batch, width = ops.shape(token_ids)
        cache_length = width + maxlen
        caches = self.transformer.init_caches(batch, cache_length)
        positions = ops.arange(width, dtype="int32")
        key_valid = ops.concatenate(
            [
                ops.less(positions[None], lengths[:, None]),
                ops.zeros((batch, maxlen), "bool"),
            ],
            axis=1,
        )  # (batch, cache_length): the real prefix tokens
        mask = key_valid[:, None]
        if self.transformer.causal_prefix:
            causal = ops.less_equal(
                ops.arange(cache_length, dtype="int32")[None], positions[:, None]
            )
            mask = ops.logical_and(mask, causal[None])  # (batch, width, cache_length)
        # padding gets position 0, which exists in every position table
        position_ids = ops.where(key_valid[:, :width], positions[None], 0)
        inputs = {**conditions, "token_ids": token_ids, "position_ids": position_ids}
        if self.has_segments:
            inputs["segment_ids"] = ops.zeros_like(token_ids)
        hidden, caches = self.transformer.call_with_cache(inputs, mask, caches, 0)
        last = ops.take_along_axis(hidden, (lengths - 1)[:, None, None], axis=1)
        return self._logits(last), caches, key_valid

    def _decode_step(self, tokens, step, lengths, key_valid, caches, width, conditions):
        """Feeds generated token `step - 1` of every row; returns the next logits."""
        batch = ops.shape(tokens)[0]
        previous = ops.slice(tokens, [0, step - 1], [batch, 1])  # (batch, 1)
        index = width + step - 1
        key_valid = ops.slice_update(key_valid, [0, index], ops.ones((batch, 1), "bool"))
        inputs = self._step_inputs(previous, (lengths + step - 1)[:, None], conditions)
        hidden, caches = self.transformer.call_with_cache(
            inputs, key_valid[:, None], caches, index
        )
        return self._logits(hidden), key_valid, caches

    def _sample(self, token_ids, lengths, uniforms, stop, values, conditions, *, rows, greedy,
                restrictions, maxlen):
        end_id, min_ends, minlen = stop
        width = ops.shape(token_ids)[1]
        logits, caches, key_valid = self._encode_prefix(token_ids, lengths, maxlen, conditions)
        if rows > 1:  # the prefix is encoded once per input, then shared by its samples
            logits, key_valid, lengths = (
                ops.repeat(t, rows, axis=0) for t in (logits, key_valid, lengths)
            )
            caches = [tuple(ops.repeat(c, rows, axis=0) for c in cache) for cache in caches]
            conditions = {k: ops.repeat(v, rows, axis=0) for k, v in conditions.items()}
        batch = ops.shape(logits)[0]

        def choose(logits, step):
            if greedy:
                return ops.cast(ops.argmax(logits, axis=-1), "int32")
            candidates = sampling.restrict(logits, restrictions, values)
            return sampling.draw(candidates, uniforms[step])

        def record(token, step, tokens, out_lengths, finished, end_counts):
            token = ops.where(finished, 0, token)  # finished rows only pad
            tokens = ops.slice_update(tokens, [0, step], token[:, None])
            is_end = ops.equal(token, end_id)
            end_counts = end_counts + ops.cast(is_end, "int32")
            newly = ops.logical_and(
                ops.logical_and(ops.logical_not(finished), is_end),
                ops.logical_and(end_counts >= min_ends, step + 1 >= minlen),
            )
            out_lengths = ops.where(newly, step + 1, out_lengths)
            return tokens, out_lengths, ops.logical_or(finished, newly), end_counts

        state = record(
            choose(logits, 0), 0,
            ops.zeros((batch, maxlen), "int32"),
            ops.full((batch,), maxlen, "int32"),
            ops.zeros((batch,), "bool"),
            ops.zeros((batch,), "int32"),
        )

        def cond(step, tokens, out_lengths, finished, end_counts, key_valid, caches):
            return ops.logical_and(step < maxlen, ops.logical_not(ops.all(finished)))

        def body(step, tokens, out_lengths, finished, end_counts, key_valid, caches):
            logits, key_valid, caches = self._decode_step(
                tokens, step, lengths, key_valid, caches, width, conditions
            )
            tokens, out_lengths, finished, end_counts = record(
                choose(logits, step), step, tokens, out_lengths, finished, end_counts
            )
            return step + 1, tokens, out_lengths, finished, end_counts, key_valid, caches

        final = ops.while_loop(cond, body, (1, *state, key_valid, caches), maximum_iterations=maxlen)
        return final[1], final[2]

    def _beam_search(self, token_ids, lengths, stop, temperature, beam, maxlen, conditions):
        end_id, min_ends, minlen = stop
        width = ops.shape(token_ids)[1]
        logits, caches, key_valid = self._encode_prefix(token_ids, lengths, maxlen, conditions)
        inputs = ops.shape(logits)[0]
        key_valid, lengths = (ops.repeat(t, beam, axis=0) for t in (key_valid, lengths))
        caches = [tuple(ops.repeat(c, beam, axis=0) for c in cache) for cache in caches]
        # a beam's rows stay within its input: its conditions never need gathering
        conditions = {k: ops.repeat(v, beam, axis=0) for k, v in conditions.items()}
        row_offsets = (ops.arange(inputs, dtype="int32") * beam)[:, None]

        def log_probabilities(logits):  # bert4keras scores log(p + 1e-12)
            probabilities = ops.softmax(logits / temperature, axis=-1)
            return ops.log(probabilities + 1e-12)

        def select(log_p, step, state):
            """Extends every alive beam by every token and keeps the best."""
            tokens, scores, alive, end_counts, done, best, best_lengths = state
            candidates = ops.reshape(scores[..., None] + log_p, (inputs, -1))  # (inputs, beam * vocab)
            top_scores, top = ops.top_k(candidates, beam)
            # bert4keras keeps only as many beams as are still alive
            in_beam = ops.arange(beam, dtype="int32")[None] < alive[:, None]
            top_scores = ops.where(in_beam, top_scores, DEAD)
            parents = top // self.vocab_size  # (inputs, beam)
            new = ops.cast(top % self.vocab_size, "int32")
            tokens = ops.take_along_axis(tokens, parents[..., None], axis=1)
            tokens = ops.slice_update(tokens, [0, 0, step], new[..., None])
            end_counts = ops.take_along_axis(end_counts, parents, axis=1) + ops.cast(
                ops.equal(new, end_id), "int32"
            )
            finished = ops.logical_and(ops.equal(new, end_id), end_counts >= min_ends)
            long_enough = step + 1 >= minlen
            leader = ops.argmax(top_scores, axis=1)[:, None]
            leader_finished = ops.logical_and(
                ops.take_along_axis(finished, leader, axis=1)[:, 0], long_enough
            )
            newly_done = ops.logical_and(ops.logical_not(done), leader_finished)
            leader_tokens = ops.take_along_axis(tokens, leader[..., None], axis=1)[:, 0]
            best = ops.where(newly_done[:, None], leader_tokens, best)
            best_lengths = ops.where(newly_done, step + 1, best_lengths)
            done = ops.logical_or(done, newly_done)
            # otherwise finished beams leave, and the beam shrinks
            drop = ops.logical_and(
                ops.logical_and(finished, in_beam),
                ops.logical_and(long_enough, ops.logical_not(leader_finished)[:, None]),
            )
            scores = ops.where(drop, DEAD, top_scores)
            alive = alive - ops.sum(ops.cast(drop, "int32"), axis=1)
            rows = ops.reshape(parents + row_offsets, (-1,))
            state = (tokens, scores, alive, end_counts, done, best, best_lengths)
            return state, rows

        start = ops.concatenate(
            [ops.zeros((inputs, 1)), ops.full((inputs, beam - 1), DEAD)], axis=1
        )  # all beams are the prefix: only the first may extend it
        state = (
            ops.zeros((inputs, beam, maxlen), "int32"),
            start,
            ops.full((inputs,), beam, "int32"),
            ops.zeros((inputs, beam), "int32"),
            ops.zeros((inputs,), "bool"),
            ops.zeros((inputs, maxlen), "int32"),
            ops.full((inputs,), maxlen, "int32"),
        )
        log_p = ops.repeat(log_probabilities(logits)[:, None], beam, axis=1)
        state, rows = select(log_p, 0, state)
        caches = _gather_caches(caches, rows)

        def cond(step, state, key_valid, caches):
            return ops.logical_and(step < maxlen, ops.logical_not(ops.all(state[4])))

        def body(step, state, key_valid, caches):
            flat_tokens = ops.reshape(state[0], (inputs * beam, maxlen))
            logits, key_valid, caches = self._decode_step(
                flat_tokens, step, lengths, key_valid, caches, width, conditions
            )
            log_p = ops.reshape(log_probabilities(logits), (inputs, beam, -1))
            state, rows = select(log_p, step, state)
            return step + 1, state, key_valid, _gather_caches(caches, rows)

        _, state, _, _ = ops.while_loop(
            cond, body, (1, state, key_valid, caches), maximum_iterations=maxlen
        )
        tokens, scores, _, _, done, best, best_lengths = state
        # inputs still open at maxlen take their best remaining beam
        leader = ops.argmax(scores, axis=1)[:, None, None]
        leader_tokens = ops.take_along_axis(tokens, leader, axis=1)[:, 0]
        return ops.where(done[:, None], best, leader_tokens), best_lengths


def _check_conditions(conditions, rows):
    """`conditions` as {name: numpy array with one row per prefix}, or a clear error."""
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise TypeError(f"conditions must be a dict of arrays, got {type(conditions).__name__}")
    checked = {}
    for name, value in sorted(conditions.items()):
        if name in ("token_ids", "segment_ids", "position_ids"):
            raise ValueError(f"conditions cannot replace the decode loop's own {name!r}")
        value = np.asarray(value)
        if value.ndim == 0 or len(value) != rows:
            raise ValueError(f"condition {name!r} must have one row per prefix ({rows}), "
                             f"got shape {value.shape}")
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        checked[name] = value
    return checked


def _gather_caches(caches, rows):
    return [tuple(ops.take(c, rows, axis=0) for c in cache) for cache in caches]


def _trim(tokens, lengths):
    return [np.asarray(row[:length], np.int32) for row, length in zip(tokens, lengths)]



