"""bert4keras' subclassable `AutoRegressiveDecoder` (`kerasformer.snippets`).

bert4keras scripts generate by subclassing a decoder and writing one method:

    class SynonymsGenerator(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return self.last_token(seq2seq).predict([token_ids, segment_ids])

and calling `beam_search(inputs, topk)` or `random_sample(inputs, n, topk, topp)`.
This class runs such scripts unchanged, with bert4keras' algorithms step by step in
numpy (every step recomputes the whole sequence, as there).

When `predict` is the standard call above — one `last_token(model)` call on a model
cut from a kerasformer transformer (or on a training model whose one output is the
transformer's, passed through a `kerasformer.layers.Loss` layer that returns it
unchanged: bert4keras' `CrossEntropy(2)(model.inputs + model.outputs)`), with the
inputs and output ids concatenated as a UniLM (segment 1) or a language model
(segment 0) does, its output returned unchanged — the decoder proves it on two probe
calls and hands the whole generation to the shared decode loop
(`kerasformer.generation.AutoRegressiveDecoder`: a KV cache and one compiled call)
instead. Beam search gives the same ids either way; sampling draws from the same
distribution with another random stream (seeded from numpy's global generator, so
`np.random.seed` still makes a script reproducible).
"""
import functools

import numpy as np
from keras import ops

from kerasformer.architectures.base import OWNER, transformer_of
from kerasformer.generation.decoder import AutoRegressiveDecoder as DecodeLoop
from kerasformer.layers.loss import Loss

RTYPES = ("probas", "logits")


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    x = np.exp(x)
    return x / x.sum(axis=axis, keepdims=True)


class AutoRegressiveDecoder:
    """The base class of a bert4keras-style generator: subclass it and write
    `predict(self, inputs, output_ids, states)`, decorated with `wraps`.

    Args:
        start_id: the id every output starts with, or None (UniLM models: the
            output follows the source directly).
        end_id: the id that ends an output.
        maxlen: int. Most tokens to generate.
        minlen: int. Fewest output ids (the start id included) before an end id
            can finish an output.
    """

    def __init__(self, start_id, end_id, maxlen, minlen=1):
        self.start_id = start_id
        self.end_id = end_id
        self.maxlen = maxlen
        self.minlen = minlen
        self.models = {}
        if start_id is None:
            self.first_output_ids = np.empty((1, 0), dtype=int)
        else:
            self.first_output_ids = np.array([[start_id]])
        self._probe = None
        self._loops = {}

    @staticmethod
    def wraps(default_rtype="probas", use_states=False):
        """Decorates `predict` as bert4keras does: `default_rtype` says what it
        returns ("probas", or "logits" before the softmax); with `use_states` it
        returns `(scores, states)`. The decorated method takes `temperature` and
        `rtype` ("probas", or "logits" for log-probabilities) and returns
        `(scores, states)`."""
        if default_rtype not in RTYPES:
            raise ValueError(f"default_rtype must be 'probas' or 'logits', got {default_rtype!r}")

        def decorator(predict):
            @functools.wraps(predict)
            def wrapped(self, inputs, output_ids, states, temperature=1, rtype=default_rtype):
                if rtype not in RTYPES:
                    raise ValueError(f"rtype must be 'probas' or 'logits', got {rtype!r}")
                prediction = predict(self, inputs, output_ids, states)
                scores, states = prediction if use_states else (prediction, None)
                scores = np.asarray(ops.convert_to_numpy(scores), dtype=np.float64)
                if self._probe is not None:
                    self._probe.returned.append(scores)
                if default_rtype == "logits":
                    probas = _softmax(scores / temperature)
                elif temperature != 1:
                    probas = np.power(scores, 1.0 / temperature)
                    probas = probas / probas.sum(axis=-1, keepdims=True)
                else:
                    probas = scores
                if rtype == "probas":
                    return probas, states
                return np.log(probas + 1e-12), states

            wrapped.default_rtype = default_rtype
            wrapped.use_states = use_states
            return wrapped

        return decorator

    def last_token(self, model):
        """`model` giving only its outputs at the last position, with `.predict`."""
        if model not in self.models:
            self.models[model] = _LastToken(model, self)
        return self.models[model]

    def predict(self, inputs, output_ids, states=None, *args, **kwargs):
        """Written by the subclass (decorated with `wraps`): the scores of the next
        token of each row of `output_ids`, given the encoder `inputs`."""
        raise NotImplementedError(
            "subclass AutoRegressiveDecoder and write predict(self, inputs, output_ids, "
            "states), decorated with @AutoRegressiveDecoder.wraps(default_rtype=...)")

    # ------------------------------------------------------------- strategies

    def beam_search(self, inputs, topk, states=None, temperature=1, min_ends=1):
        """The best output of a beam search with `topk` beams (bert4keras' rules:
        summed `log(p + 1e-12)`, the best beam returned as soon as it ends,
        finished beams dropped). Returns one array of ids, the start id included."""
        inputs = [np.array([i]) for i in inputs]
        loop = self._decode_loop(inputs, states, min_ends)
        if loop is not None:
            (generated,) = loop.beam_search([self._prefix(inputs)], beam=topk,
                                            maxlen=self.maxlen, minlen=self._loop_minlen(),
                                            temperature=temperature)
            return np.concatenate([self.first_output_ids[0], generated]).astype(int)
        output_ids, output_scores = self.first_output_ids, np.zeros(1)
        for step in range(self.maxlen):
            scores, states = self.predict(inputs, output_ids, states, temperature, "logits")
            if step == 0:
                inputs = [np.repeat(i, topk, axis=0) for i in inputs]
            scores = output_scores.reshape((-1, 1)) + scores
            best = scores.argpartition(-topk, axis=None)[-topk:]
            rows, tokens = best // scores.shape[1], (best % scores.shape[1]).reshape((-1, 1))
            output_ids = np.concatenate([output_ids[rows], tokens], 1)
            output_scores = np.take_along_axis(scores, best, axis=None)
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                leader = output_scores.argmax()
                if is_end[leader] and end_counts[leader] >= min_ends:
                    return output_ids[leader]
                unfinished = ~is_end | (end_counts < min_ends)
                if not unfinished.all():
                    inputs = [i[unfinished] for i in inputs]
                    output_ids = output_ids[unfinished]
                    output_scores = output_scores[unfinished]
                    topk = int(unfinished.sum())
        return output_ids[output_scores.argmax()]

    def random_sample(self, inputs, n, topk=None, topp=None, states=None, temperature=1,
                      min_ends=1):
        """`n` sampled outputs (among the `topk` most probable tokens, then the
        smallest set reaching probability `topp`). Returns a list of id arrays, the
        start id included."""
        inputs = [np.array([i]) for i in inputs]
        loop = self._decode_loop(inputs, states, min_ends)
        if loop is not None:
            # bert4keras keeps every token when topp >= 1 (the cumulative sum never
            # passes it): task_conditional_language_model.py passes topp=5
            (samples,) = loop.random_sample(
                [self._prefix(inputs)], n=n, maxlen=self.maxlen, minlen=self._loop_minlen(),
                topk=topk, topp=None if topp is not None and topp >= 1 else topp,
                temperature=temperature,
                seed=int(np.random.randint(2**31 - 1)))
            return [np.concatenate([self.first_output_ids[0], s]).astype(int) for s in samples]
        output_ids, results = self.first_output_ids, []
        for step in range(self.maxlen):
            probas, states = self.predict(inputs, output_ids, states, temperature, "probas")
            probas = probas / probas.sum(axis=1, keepdims=True)
            if step == 0:
                probas = np.repeat(probas, n, axis=0)
                inputs = [np.repeat(i, n, axis=0) for i in inputs]
                output_ids = np.repeat(output_ids, n, axis=0)
            if topk is not None:
                k_indices = probas.argpartition(-topk, axis=1)[:, -topk:]
                probas = np.take_along_axis(probas, k_indices, axis=1)
                probas /= probas.sum(axis=1, keepdims=True)
            if topp is not None:
                p_indices = probas.argsort(axis=1)[:, ::-1]
                probas = np.take_along_axis(probas, p_indices, axis=1)
                # keep tokens up to and including the first reaching topp
                beyond = np.roll(np.cumsum(probas, axis=1) >= topp, 1, axis=1)
                beyond[:, 0] = False
                probas[beyond] = 0
                probas /= probas.sum(axis=1, keepdims=True)
            sample_ids = np.array([np.random.choice(len(p), p=p) for p in probas]).reshape(-1, 1)
            if topp is not None:
                sample_ids = np.take_along_axis(p_indices, sample_ids, axis=1)
            if topk is not None:
                sample_ids = np.take_along_axis(k_indices, sample_ids, axis=1)
            output_ids = np.concatenate([output_ids, sample_ids], 1)
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                finished = is_end & (end_counts >= min_ends)
                if finished.any():
                    results.extend(output_ids[finished])
                    inputs = [i[~finished] for i in inputs]
                    output_ids = output_ids[~finished]
                    if len(output_ids) == 0:
                        break
        results.extend(output_ids)
        return results

    # ------------------------------------------------------ the compiled path

    def _decode_loop(self, inputs, states, min_ends):
        """The shared decode loop when `predict` is proven to be the standard
        last-token call of a kerasformer transformer, else None (run eagerly)."""
        if states is not None or getattr(self.predict, "use_states", True):
            return None
        first = self.first_output_ids
        probes = [first, np.concatenate([first, [[self.end_id]]], 1)]
        transformer = None
        for output_ids in probes:
            self._probe = _Probe()
            try:
                self.predict(inputs, output_ids, None)
            finally:
                probe, self._probe = self._probe, None
            found = probe.standard_call(inputs, output_ids, self.predict.default_rtype)
            if found is None or transformer not in (None, found):
                return None
            transformer = found
        if transformer.application == "unilm" and self.start_id is not None:
            return None  # the loop's prefix is all segment 0
        key = (id(transformer), int(self.end_id), int(min_ends))
        if key not in self._loops:
            self._loops[key] = (transformer, DecodeLoop(transformer, self.end_id, min_ends))
        return self._loops[key][1]

    def _prefix(self, inputs):
        return [int(i) for i in inputs[0][0]] + [int(i) for i in self.first_output_ids[0]]

    def _loop_minlen(self):
        # bert4keras counts the start id in minlen, the loop counts generated ids
        return max(1, self.minlen - self.first_output_ids.shape[1])


class _LastToken:
    """What `last_token(model)` returns: the model's outputs at the last position,
    called like a Keras model (`predict` prints no progress bar per step)."""

    def __init__(self, model, decoder):
        self.model = model
        self.decoder = decoder

    @property
    def inputs(self):
        return self.model.inputs

    def predict(self, inputs, **kwargs):
        # one compiled call per input shape: eager op-by-op dispatch compiles every
        # operation anew for each sequence length on JAX, which is far slower
        outputs = self.model.predict_on_batch(inputs)
        if isinstance(outputs, (list, tuple)):
            last = [ops.convert_to_numpy(o)[:, -1] for o in outputs]
        else:
            last = ops.convert_to_numpy(outputs)[:, -1]
        if self.decoder._probe is not None:
            self.decoder._probe.calls.append((self.model, inputs, last))
        return last

    __call__ = predict


class _Probe:
    """The `last_token` calls of one `predict` call and what it returned."""

    def __init__(self):
        self.calls = []
        self.returned = []

    def standard_call(self, inputs, output_ids, default_rtype):
        """The transformer if this was one standard call, else None."""
        if len(self.calls) != 1 or len(self.returned) != 1:
            return None
        model, called_with, last = self.calls[0]
        transformer = _transformer_returned_by(model)
        if transformer is None or transformer.can_decode() is not None \
                or isinstance(last, list):
            return None
        if not np.array_equal(np.asarray(last, np.float64), self.returned[0]):
            return None  # predict changed the model's output
        probabilities = np.asarray(last)
        if (default_rtype == "probas") != bool(
                np.all(probabilities >= 0) and np.allclose(probabilities.sum(-1), 1, atol=1e-3)):
            return None  # the model's output is not what predict says it returns
        called_with = list(called_with) if isinstance(called_with, (list, tuple)) else [called_with]
        token_ids = np.concatenate([inputs[0], output_ids], 1)
        expected = [token_ids]
        if transformer.uses_segments:
            if len(inputs) < 2 or np.any(inputs[1]):
                return None
            segment = 1 if transformer.application == "unilm" else 0
            expected.append(np.concatenate(
                [inputs[1], np.full_like(output_ids, segment)], 1))
        if len(called_with) != len(expected) or not all(
                np.array_equal(np.asarray(a), b) for a, b in zip(called_with, expected)):
            return None
        return transformer


def _transformer_returned_by(model):
    """The `Transformer` whose last output is `model`'s one output — directly, or
    through `Loss` layers that each return it unchanged — else None."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    output = outputs[0]
    while getattr(output, OWNER, None) is None:
        output = _loss_input_returned_as(output)
        if output is None:
            return None
    # transformer_of also checks that the model's inputs are the transformer's
    transformer = transformer_of(_Graph(model.inputs, [output]))
    if transformer is None or output is not transformer.outputs[-1]:
        return None
    return transformer


class _Graph:
    """The inputs and outputs of a functional model, for `transformer_of`."""

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = inputs, outputs


def _loss_input_returned_as(tensor):
    """The symbolic input that a `Loss` layer returned as `tensor` (its one output,
    selected by an int `output_axis` or the single input), or None when `tensor` is
    not exactly that: another layer, a subclass with its own `call` or `_select`, or
    an input cast on the way in (a mixed-precision dtype policy)."""
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None)
    if not isinstance(layer, Loss) or type(layer).call is not Loss.call \
            or type(layer)._select is not Loss._select \
            or isinstance(layer.output_axis, (list, tuple)):
        return None
    node = layer._inbound_nodes[history.node_index]
    if len(node.arguments.args) != 1 or node.arguments.kwargs \
            or len(node.outputs) != 1 or node.outputs[0] is not tensor:
        return None
    selected = layer._select(node.arguments.args[0])
    if not hasattr(selected, "_keras_history"):
        return None  # not one symbolic tensor
    return selected
