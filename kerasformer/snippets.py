"""bert4keras' `bert4keras.snippets` on Keras 3: the helpers its training scripts import.

A script written for bert4keras 0.11.5 keeps working after `from bert4keras.snippets
import X` becomes `from kerasformer.snippets import X`: every name here has bert4keras'
signature and returns what bert4keras returns (tests/test_snippets.py checks this
against outputs of the original, written by tools/make_snippets_fixtures.py).

- batches: `sequence_padding`, `truncate_sequences`, `to_array`, and `DataGenerator`,
  the template whose subclasses turn samples into batches for `model.fit`;
- text: `text_segmentate`, `lowercase_and_normalize`, `strQ2B`, `string_matching`,
  `convert_to_unicode`, `convert_to_str`, `is_string`;
- files and processes: `open` (a file readable by line number), `parallel_apply` and
  `parallel_apply_generator` (a function mapped over an iterable by workers);
- decoding and search: `AutoRegressiveDecoder` (subclassed by generation scripts;
  `kerasformer.generation.subclassed`), `ViterbiDecoder` (CRF decoding), `softmax`,
  `longest_common_substring`, `longest_common_subsequence`;
- weights and classes: `orthogonally_resize`, `insert_arguments`, `delete_arguments`,
  `is_one_of`.

Where Keras 3 needs something else than tf.keras 2, the behaviour changes as little as
possible, and the docstring says so: `DataGenerator.forfit` turns lists into tuples
(TensorFlow's Keras 3 refuses lists from a generator) and float arrays into `floatx`
(as Keras 2's placeholders did), `fortest` yields `(inputs,)`
(Keras 3 reads a tuple as `(inputs, targets)`), and `to_dataset` returns a
`keras.utils.PyDataset`, or a `tf.data.Dataset` on the TensorFlow backend. Where
bert4keras fails on Python 3 (`strQ2B`) or hangs (a worker of `parallel_apply` that
raises), the function here works or raises.

Not provided: `WebServing` (bert4keras' bottle server bound to a TensorFlow 1 session);
importing it raises an ImportError that says what to use instead. `uniout` exists only
so that `from bert4keras.snippets import uniout`, a Python 2 printing fix that does
nothing on Python 3, keeps working.

Importing this module does not import Keras: only `DataGenerator.forfit` (and
`fortest`), `to_dataset` and `AutoRegressiveDecoder` need it.
"""
import builtins
import functools
import json
import multiprocessing
import os
import pickle
import queue
import re
import threading
import traceback

import numpy as np

from kerasformer.data.text import text_segmentate, truncate_sequences
from kerasformer.tokenizers.wordpiece import _lowercase_and_normalize as lowercase_and_normalize

__all__ = [
    "AutoRegressiveDecoder", "DataGenerator", "ViterbiDecoder", "convert_to_str", "convert_to_unicode",
    "delete_arguments", "insert_arguments", "is_one_of", "is_string",
    "longest_common_subsequence", "longest_common_substring", "lowercase_and_normalize",
    "open", "orthogonally_resize", "parallel_apply", "parallel_apply_generator",
    "sequence_padding", "softmax", "strQ2B", "string_matching", "text_segmentate",
    "to_array", "truncate_sequences",
]

# bert4keras' Python 2 module hook: on Python 3 `from bert4keras.snippets import uniout`
# binds None, and so does this.
uniout = None

# Names of bert4keras.snippets that this module does not provide, and what to use instead.
_NOT_PROVIDED = {
    "WebServing": (
        "bert4keras' WebServing is a bottle server tied to a TensorFlow 1 graph and session. "
        "Serve a kerasformer model from any web framework (bottle, flask, FastAPI) by calling "
        "your function in the request handler: Keras 3 models need no graph or session."
    ),
}


def __getattr__(name):
    if name == "AutoRegressiveDecoder":  # imported on first use: it needs Keras
        from kerasformer.generation.subclassed import AutoRegressiveDecoder

        return AutoRegressiveDecoder
    # An ImportError, not an AttributeError: `from kerasformer.snippets import WebServing`,
    # the line a ported script has, replaces an AttributeError's message by a bare
    # "cannot import name", and the explanation would be lost.
    if name in _NOT_PROVIDED:
        raise ImportError(
            f"kerasformer.snippets does not provide {name}. {_NOT_PROVIDED[name]}",
            name=__name__,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ small helpers

def to_array(*args):
    """`np.array` of each argument: the array for one argument, else a list of arrays.

    bert4keras scripts write `token_ids, segment_ids = to_array([token_ids],
    [segment_ids])` to make a batch of one for `model.predict`.
    """
    arrays = [np.array(arg) for arg in args]
    return arrays[0] if len(args) == 1 else arrays


def is_string(s):
    """Whether `s` is a str (bert4keras' Python 2/3 string test; bytes are not)."""
    return isinstance(s, str)


def is_one_of(x, ys):
    """Whether `x` is one of `ys` by identity.

    Like `x in ys`, but never calls `==`, which fails for arrays and tensors (bert4keras
    uses it to find a layer or tensor in a list).
    """
    return any(x is y for y in ys)


# Full-width forms U+FF01-U+FF5E are their ASCII counterparts shifted by 0xFEE0; the
# ideographic space U+3000 is the space.
_FULL_TO_HALF_WIDTH = {0x3000: 0x20, **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}}


def strQ2B(ustring):
    """Full-width characters to half-width: "ＡＢＣ１２３，！　" becomes "ABC123,! ".

    Chinese text often has full-width letters, digits and punctuation where a tokenizer
    vocabulary has the ASCII ones. (bert4keras' version calls Python 2's `unichr` and
    raises NameError on Python 3 for any non-empty text.)
    """
    return ustring.translate(_FULL_TO_HALF_WIDTH)


def string_matching(s, keywords):
    """Whether at least one of `keywords`, as a regular expression, is found in `s`."""
    return any(re.search(keyword, s) for keyword in keywords)


def convert_to_unicode(text, encoding="utf-8", errors="ignore"):
    """`text` as a str: bytes are decoded (dropping undecodable bytes by default)."""
    if isinstance(text, bytes):
        return text.decode(encoding, errors=errors)
    return text


def convert_to_str(text, encoding="utf-8", errors="ignore"):
    """`text` as a str; on Python 3 the same as `convert_to_unicode` (as in bert4keras)."""
    return convert_to_unicode(text, encoding, errors)


def softmax(x, axis=-1):
    """Softmax of a numpy array along `axis`, shifted by the maximum so it cannot overflow."""
    x = np.asarray(x)
    exponentials = np.exp(x - x.max(axis=axis, keepdims=True))
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def insert_arguments(**arguments):
    """Decorator for `__init__`: adds keyword arguments, stored as attributes.

    Each of `arguments` (name=default) is taken out of the keyword arguments of the call,
    or its default is used, and set on `self` before the method runs; bert4keras' model
    classes add options to a parent's constructor this way.
    """
    def decorator(method):
        @functools.wraps(method)
        def method_with_arguments(self, *args, **kwargs):
            for name, default in arguments.items():
                setattr(self, name, kwargs.pop(name, default))
            return method(self, *args, **kwargs)

        return method_with_arguments

    return decorator


def delete_arguments(*arguments):
    """Decorator for `__init__`: refuses keyword arguments a parent class accepts.

    Passing one of `arguments` raises the TypeError Python raises for an unexpected
    keyword argument; bert4keras' model classes remove options that make no sense for
    them this way.
    """
    def decorator(method):
        @functools.wraps(method)
        def method_without_arguments(self, *args, **kwargs):
            for name in arguments:
                if name in kwargs:
                    raise TypeError(
                        f"{type(self).__name__} got an unexpected keyword argument '{name}'"
                    )
            return method(self, *args, **kwargs)

        return method_without_arguments

    return decorator


# ------------------------------------------------------------------ batches

def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Pads (or cuts) sequences to one length and stacks them into a numpy array.

    The first `seq_dims` dimensions of every input are sequence dimensions: each is cut
    to `length` by keeping its first elements (also with mode "pre"), then padded with
    `value` to `length`, at the end ("post") or at the start ("pre"). Other
    dimensions are kept and must agree between inputs.

    The dtype is numpy's for the inputs (int64 for lists of Python ints); `value` is
    cast to it. As in bert4keras, an empty list (or one cut to length 0) is a float64
    array, so a batch with one makes the whole result float64.

    Args:
        inputs: Sequences: lists or numpy arrays.
        length: Target length; None for the longest input. An int applies to every
            sequence dimension (bert4keras accepts it only for `seq_dims=1`); a list or
            tuple gives one length per sequence dimension.
        value: The padding value.
        seq_dims: Number of leading sequence dimensions (2 for e.g. token-pair labels).
        mode: "post" or "pre".

    Returns:
        A numpy array of shape `(len(inputs), *length, *other dimensions)`.

    Raises:
        ValueError: For another mode, no inputs, or fewer lengths than `seq_dims`.
    """
    if mode not in ("post", "pre"):
        raise ValueError(f'"mode" argument must be "post" or "pre", got {mode!r}')
    if len(inputs) == 0:
        raise ValueError("sequence_padding needs at least one sequence")
    if length is None:
        lengths = np.max([np.shape(x)[:seq_dims] for x in inputs], axis=0)
    elif np.ndim(length) == 0:
        lengths = [length] * seq_dims
    else:
        lengths = list(length)
        if len(lengths) < seq_dims:
            raise ValueError(f"length gives {len(lengths)} lengths for seq_dims={seq_dims}")

    cut = tuple(slice(0, n) for n in lengths[:seq_dims])
    outputs = []
    for x in inputs:
        # A list is cut before it becomes an array, as in bert4keras, where a list cut
        # to nothing is float64.
        array = np.asarray(x[cut[0]]) if seq_dims == 1 else np.asarray(x)[cut]
        missing = [n - size for n, size in zip(lengths, array.shape[:seq_dims])]
        pad_width = [(0, m) if mode == "post" else (m, 0) for m in missing]
        pad_width += [(0, 0)] * (array.ndim - seq_dims)
        outputs.append(np.pad(array, pad_width, constant_values=value))
    return np.array(outputs)


class DataGenerator:
    """bert4keras' batch generator template: subclass it and write `__iter__`.

    `__iter__(self, random=False)` turns the samples that `self.sample(random)` yields
    into batches and yields them, typically

        class data_generator(DataGenerator):
            def __iter__(self, random=False):
                batch_token_ids, batch_segment_ids, batch_labels = [], [], []
                for is_end, (text, label) in self.sample(random):
                    ...append one sample...
                    if len(batch_token_ids) == self.batch_size or is_end:
                        yield [sequence_padding(batch_token_ids),
                               sequence_padding(batch_segment_ids)], sequence_padding(batch_labels)
                        batch_token_ids, batch_segment_ids, batch_labels = [], [], []

        model.fit(train_generator.forfit(), steps_per_epoch=len(train_generator), epochs=10)

    A batch is `(inputs, targets)`, or `(inputs, None)` when the model computes its own
    loss (`kerasformer.layers.Loss`, `add_loss`): Keras 3's `fit` takes both on every
    backend. Iterating the generator itself (`for x, y in valid_generator`) goes through
    the data once, in order.

    Attributes:
        data: The samples: a sequence (list, indexable `open`) or any iterable.
        batch_size: Samples per batch.
        steps: Batches per pass, `ceil(len(data) / batch_size)`; None for data without a
            length, which is then shuffled through a buffer.
        buffer_size: Samples held for shuffling data without a length
            (default `batch_size * 1000`).
    """

    def __init__(self, data, batch_size=32, buffer_size=None):
        self.data = data
        self.batch_size = batch_size
        try:
            self.steps = -(-len(data) // batch_size)
        except TypeError:  # no length: an iterator, or an `open` without indexable=True
            self.steps = None
        self.buffer_size = buffer_size or batch_size * 1000

    def __len__(self):
        if self.steps is None:
            raise TypeError(
                f"{type(self).__name__} has no length: its data has none, so the number of "
                "batches per pass is not known; give fit an explicit steps_per_epoch"
            )
        return self.steps

    def sample(self, random=False):
        """Yields `(is_end, sample)` for every sample; `is_end` is True for the last one.

        With `random`, data with a length is read in the order of
        `np.random.permutation(len(data))`, other data through a buffer of `buffer_size`
        samples from which a random one is taken each time one is added. Both draw from
        numpy's global generator exactly as bert4keras does, so a seeded script sees the
        samples in the same order.

        Raises:
            ValueError: If the data is empty (bert4keras raises RuntimeError).
        """
        if not random:
            samples = iter(self.data)
        elif self.steps is None:
            samples = self._buffer_shuffled()
        else:
            samples = (self.data[i] for i in np.random.permutation(len(self.data)))
        try:
            current = next(samples)
        except StopIteration:
            raise ValueError(f"{type(self).__name__} has no data to sample") from None
        for following in samples:
            yield False, current
            current = following
        yield True, current

    def _buffer_shuffled(self):
        """The samples of `data` in an order randomised within `buffer_size` samples."""
        buffer = []
        for sample in self.data:
            buffer.append(sample)
            if len(buffer) > self.buffer_size:
                yield buffer.pop(np.random.randint(len(buffer)))
        while buffer:
            yield buffer.pop(np.random.randint(len(buffer)))

    def __iter__(self, random=False):
        raise NotImplementedError(
            f"{type(self).__name__} must define __iter__(self, random=False), "
            "yielding batches built from self.sample(random)"
        )

    def forfit(self, random=True):
        """The batches of `__iter__(random)`, pass after pass without end, for `model.fit`.

        Give `fit` `steps_per_epoch=len(generator)`. Lists in a batch are yielded as
        tuples: Keras 3 reads a generator's tuples and lists alike, except on TensorFlow,
        which refuses lists. Float arrays of another precision than `floatx` (float64
        labels from `np.zeros` and `sequence_padding`) are yielded as `floatx`, as Keras 3
        casts arrays given to `fit` directly and Keras 2 fed them into float32
        placeholders: from a generator Keras 3 passes them on uncast, and on TensorFlow
        a metric such as `K.sum(y_true * y_pred)` then fails on float64 × float32.

        On the TensorFlow backend Keras 3 fixes every dimension but the batch one from the
        first two batches: if those have equal sequence lengths, a later batch of another
        length fails. Declare variable lengths with `to_dataset(..., padded_batch=True)`,
        or pad every batch to one length (`sequence_padding(..., length=maxlen)`). On JAX
        every new batch shape compiles the training step once more.

        Raises:
            ValueError: If a pass yields no batch (the loop would never end).
        """
        import keras

        floatx = keras.config.floatx()
        for batch in self._endless(random):
            yield _floats_as(batch, floatx)

    def _endless(self, random):
        """The batches of `__iter__(random)` without end, every list made a tuple."""
        while True:
            empty = True
            for batch in self.__iter__(random):
                empty = False
                yield _lists_to_tuples(batch)
            if empty:
                raise ValueError(f"{type(self).__name__}.__iter__ yielded no batch")

    def fortest(self, random=False):
        """The inputs of the batches of `__iter__(random)`, without end, for `model.predict`.

        Each is yielded as `(inputs,)`, lists as tuples: Keras 3 reads a tuple from a
        generator as `(inputs, targets)`, so bert4keras' bare `inputs` would lose all but
        its first array. Give `predict` `steps=len(generator)`.
        """
        for batch in self.forfit(random):
            yield (batch[0],)

    def to_dataset(self, types, shapes, names=None, padded_batch=False):
        """Batches of `batch_size` samples for `model.fit`, declared by dtype and shape.

        Here `__iter__` yields single samples, not batches: each a nest (lists, tuples)
        of arrays or lists, matched by `types` (a dtype such as "float32" at every leaf)
        and `shapes` (the shape of one sample at every leaf, None for a length that
        varies). Samples come in random order and without end, as `forfit()` yields them
        (but each leaf cast to its declared type, not to floatx), so batches run across
        passes; give `fit` `steps_per_epoch=len(generator)`.

        Without `padded_batch` the samples of a batch must have one shape; with it, every
        leaf is padded with 0 at the end, each None dimension to the batch's longest
        sample and each int dimension to that size.

        `names` turns the samples into dicts keyed by the model's input (and output)
        layer names: a str names a sample of one leaf, a list of str the leaves of a
        sample, a list of lists of str the parts of `(inputs, targets)`. A targets part
        of one name is not made a dict: Keras 3 matches named targets to outputs only for
        a model with several outputs, and one with a single output takes it bare.

        Args:
            types: dtypes, nested like a sample.
            shapes: Shapes, nested like a sample.
            names: Layer names as above, or None for samples as they are.
            padded_batch: Whether to pad the samples of a batch to one shape.

        Returns:
            On the TensorFlow backend a `tf.data.Dataset` (as in bert4keras), whose
            declared shapes let batches vary in length; on JAX and PyTorch a
            `keras.utils.PyDataset`. Both yield the same numpy batches, from the start
            each time they are read from the start.
        """
        import keras

        # Samples as they come (lists made tuples): each leaf is cast to its declared type.
        if names is None:
            def samples():
                return self._endless(True)
        else:
            with_names = _name_wrapper(names)
            types, shapes = with_names(types), with_names(shapes)

            def samples():
                return (with_names(sample) for sample in self._endless(True))

        dtypes = [np.dtype(keras.backend.standardize_dtype(t)) for t in _leaves(types, types)]
        sample_shapes = [tuple(shape) for shape in _leaves(types, shapes)]

        def batches():
            stream = samples()
            while True:
                group = [_leaves(types, next(stream)) for _ in range(self.batch_size)]
                columns = [
                    _batch_leaf([sample[k] for sample in group], dtypes[k], sample_shapes[k],
                                padded_batch)
                    for k in range(len(dtypes))
                ]
                yield _pack(types, iter(columns))

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            signature = _pack(types, iter([
                tf.TensorSpec((None, *shape), dtype.name)
                for dtype, shape in zip(dtypes, sample_shapes)
            ]))
            return tf.data.Dataset.from_generator(batches, output_signature=signature)
        return _batch_stream_class()(batches)


def _lists_to_tuples(batch):
    """`batch` with every list, at any depth, made a tuple."""
    if isinstance(batch, (list, tuple)):
        return tuple(_lists_to_tuples(part) for part in batch)
    if isinstance(batch, dict):
        return {key: _lists_to_tuples(value) for key, value in batch.items()}
    return batch


def _floats_as(batch, floatx):
    """`batch` (tuples and dicts of arrays) with every numpy float array made `floatx`."""
    if isinstance(batch, tuple):
        return tuple(_floats_as(part, floatx) for part in batch)
    if isinstance(batch, dict):
        return {key: _floats_as(value, floatx) for key, value in batch.items()}
    if isinstance(batch, np.ndarray) and np.issubdtype(batch.dtype, np.floating):
        return batch.astype(floatx, copy=False)
    return batch


def _name_wrapper(names):
    """The function that turns a sample (or its types, or shapes) into dicts by `names`."""
    if is_string(names):
        return lambda values: {names: values}
    if is_string(names[0]):
        return lambda values: dict(zip(names, values))

    def with_names(values):
        parts = [dict(zip(group, part)) for group, part in zip(names, values)]
        if len(parts) > 1 and len(parts[1]) == 1:  # the targets of a single-output model
            parts[1] = next(iter(parts[1].values()))
        return tuple(parts)

    return with_names


def _leaves(spec, value):
    """The parts of `value` at the leaves of `spec`, a nest of dicts, lists and tuples."""
    if isinstance(spec, dict):
        return [leaf for key in spec for leaf in _leaves(spec[key], value[key])]
    if isinstance(spec, (list, tuple)):
        if len(value) != len(spec):
            raise ValueError(f"a sample part has {len(value)} items where types has {len(spec)}")
        return [leaf for part_spec, part in zip(spec, value) for leaf in _leaves(part_spec, part)]
    return [value]


def _pack(spec, leaves):
    """The nest of `spec`'s structure (lists as tuples) holding the iterator `leaves`."""
    if isinstance(spec, dict):
        return {key: _pack(spec[key], leaves) for key in spec}
    if isinstance(spec, (list, tuple)):
        return tuple(_pack(part_spec, leaves) for part_spec in spec)
    return next(leaves)


def _batch_leaf(values, dtype, shape, padded):
    """One leaf of a batch: `values` stacked, or padded with 0 to `shape` and stacked."""
    arrays = [np.asarray(value, dtype) for value in values]
    for array in arrays:
        fits = array.ndim == len(shape) and all(
            size is None or (n <= size if padded else n == size)
            for n, size in zip(array.shape, shape)
        )
        if not fits:
            raise ValueError(f"a sample of shape {array.shape} does not fit the declared {shape}")
    if not padded:
        if len({array.shape for array in arrays}) > 1:
            raise ValueError(
                f"samples of shapes {sorted({array.shape for array in arrays})} in one batch: "
                "use padded_batch=True"
            )
        return np.stack(arrays)
    target = [
        size if size is not None else max(array.shape[axis] for array in arrays)
        for axis, size in enumerate(shape)
    ]
    batch = np.zeros((len(arrays), *target), dtype)
    for row, array in zip(batch, arrays):
        row[tuple(slice(0, n) for n in array.shape)] = array
    return batch


@functools.cache
def _batch_stream_class():
    """The `keras.utils.PyDataset` of `to_dataset` (made on first use: Keras loads late)."""
    import keras

    class BatchStream(keras.utils.PyDataset):
        """An endless stream of batches as a PyDataset; reading batch 0 restarts it."""

        def __init__(self, make_batches):
            super().__init__()
            self._make_batches = make_batches
            self._batches = None

        @property
        def num_batches(self):
            return None  # endless, like bert4keras' dataset: fit needs steps_per_epoch

        def __getitem__(self, index):
            # Keras reads batches 0, 1, 2, ... in order, and starts at 0 on a new pass.
            if index == 0 or self._batches is None:
                self._batches = self._make_batches()
            return next(self._batches)

    return BatchStream


# ------------------------------------------------------------------ files

class open:
    """bert4keras' file object: Python's `open`, plus reading a line by its number.

    With `indexable`, the position of every line is collected when the file is opened;
    then `f[i]` is line i (with its line ending) and `len(f)` the number of lines, so a
    corpus larger than memory can be given to `DataGenerator`, which shuffles it by line
    number. `indexable` may also be the path of a JSON file: the positions are read from
    it if it exists, else collected and written to it, so they are collected once per
    corpus. The positions are those `tell()` returns, as in bert4keras, whose index files
    are therefore interchangeable with these.

    Otherwise the object is the file: iteration, `next`, `read`, `readline`,
    `readlines`, `write`, `flush`, `tell`, `seek`, `close`, and `with`.

    Args:
        name: The path.
        mode: As for Python's `open`; in a binary mode lines are bytes.
        encoding: The text encoding (None: the locale's).
        errors: How text decoding errors are handled.
        indexable: False, True, or the path of the JSON file of line positions.
    """

    def __init__(self, name, mode="r", encoding=None, errors="strict", indexable=False):
        self.name = name
        self.encoding = encoding
        self.errors = errors
        if "b" in mode:  # bert4keras passes these in binary mode too, which Python refuses
            self.file = builtins.open(name, mode)
        else:
            self.file = builtins.open(name, mode, encoding=encoding, errors=errors)
        if indexable:
            if is_string(indexable) and os.path.exists(indexable):
                with builtins.open(indexable) as index_file:
                    self.offsets = json.load(index_file)
            else:
                self.create_indexes()
                if is_string(indexable):
                    with builtins.open(indexable, "w") as index_file:
                        json.dump(self.offsets, index_file)

    def create_indexes(self):
        """Collects the position of every line from the start, then returns to the start."""
        self.file.seek(0)
        self.offsets, offset = [], 0
        while self.file.readline():
            self.offsets.append(offset)
            offset = self.file.tell()
        self.file.seek(0)

    def _require_index(self):
        if not hasattr(self, "offsets"):
            raise TypeError(f"{self.name} was opened without indexable: it has no line numbers")

    def __getitem__(self, key):
        self._require_index()
        self.file.seek(self.offsets[key])
        return self.file.readline()

    def __len__(self):
        self._require_index()
        return len(self.offsets)

    def __iter__(self):
        return iter(self.file)

    def next(self):
        return next(self.file)

    __next__ = next

    def read(self):
        return self.file.read()

    def readline(self):
        return self.file.readline()

    def readlines(self):
        return self.file.readlines()

    def write(self, text):
        # bert4keras decodes bytes written to a file opened with an encoding.
        if self.encoding:
            text = convert_to_str(text, self.encoding, self.errors)
        self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()

    def tell(self):
        return self.file.tell()

    def seek(self, offset=0):
        return self.file.seek(offset)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        self.close()


# ------------------------------------------------------------------ parallel map

class _WorkerError:
    """An exception raised by `func` in a worker, with its traceback as text."""

    def __init__(self, error, traceback_text):
        try:
            pickle.loads(pickle.dumps(error))  # a worker process sends it through a pipe
        except Exception:
            error = RuntimeError(repr(error))
        self.error = error
        self.traceback_text = traceback_text


class _RemoteTraceback(Exception):
    """Shows a worker's traceback as the cause of the exception it raised."""

    def __str__(self):
        return self.args[0]


def _apply_in_worker(func, in_queue, out_queue, seed):
    """A worker: applies `func` to every `(index, item)` until it gets None.

    `seed` is a tuple: `(value,)` seeds numpy's global generator with `value` (None:
    from the operating system) before the first item; `()` leaves it alone.
    """
    if seed:
        np.random.seed(seed[0])
    while True:
        task = in_queue.get()
        if task is None:
            return
        index, item = task
        try:
            result = func(item)
        except Exception as error:
            result = _WorkerError(error, traceback.format_exc())
        out_queue.put((index, result))


def _next_result(out_queue, workers):
    """The next `(index, result)` from the workers, waiting for it."""
    while True:
        try:
            return out_queue.get(timeout=1.0)
        except queue.Empty:
            # A killed worker process (out of memory, a crash) never sends its result.
            dead = [worker for worker in workers if not worker.is_alive()]
            if dead:
                raise RuntimeError(
                    f"a parallel_apply worker stopped (exit code {dead[0].exitcode})"
                ) from None


def _checked(pair):
    """`pair`, an `(index, result)`, unless the result is an exception: that is raised."""
    result = pair[1]
    if isinstance(result, _WorkerError):
        raise result.error from _RemoteTraceback(result.traceback_text)
    return pair


def parallel_apply_generator(func, iterable, workers, max_queue_size, dummy=False,
                             random_seeds=True):
    """Applies `func` to every item of `iterable` in `workers` processes or threads.

    Yields `(index, func(item))` as results come, which is not the order of the items.
    The iterable is read as the workers need items: at most `max_queue_size` items wait
    for a worker (no limit if it is 0).

    Worker processes start the way Python's multiprocessing does by default (fork on
    Linux, where `func` may be any function; elsewhere it must be picklable) and must not
    use the deep learning backend. An exception raised by `func` is raised here, with
    the worker's traceback as its cause (bert4keras waits for that result for ever).

    Args:
        func: The function of one item.
        iterable: The items.
        workers: Number of processes or threads.
        max_queue_size: How many items may wait for a worker (0: no limit).
        dummy: Threads instead of processes.
        random_seeds: Seeds numpy's global generator in each worker process, so that
            processes forked from one state do not draw the same numbers: True for a seed
            from the operating system in each, a list for one seed per process (processes
            beyond the list are not seeded), False or None for no seeding. Threads share
            the generator, and it is never seeded from one (bert4keras re-seeds it, the
            caller's too).

    Yields:
        `(index, result)` pairs, `index` counting the items of `iterable` from 0.

    Raises:
        ValueError: If `workers` is less than 1.
    """
    if workers < 1:
        raise ValueError(f"parallel_apply needs at least one worker, got workers={workers}")
    if random_seeds is True:
        seeds = [(None,)] * workers
    elif random_seeds is None or random_seeds is False:
        seeds = []
    else:
        seeds = [(seed,) for seed in random_seeds]
    if dummy:
        in_queue, out_queue = queue.Queue(), queue.Queue()
        pool = [
            threading.Thread(target=_apply_in_worker, args=(func, in_queue, out_queue, ()),
                             daemon=True)
            for _ in range(workers)
        ]
    else:
        context = multiprocessing.get_context()
        in_queue, out_queue = context.Queue(), context.Queue()
        pool = [
            context.Process(
                target=_apply_in_worker,
                args=(func, in_queue, out_queue, seeds[i] if i < len(seeds) else ()),
                daemon=True,
            )
            for i in range(workers)
        ]
    for worker in pool:
        worker.start()

    # The queues are unbounded; instead, items handed out but not returned are counted,
    # so stopping never waits for room in a full queue.
    most_pending = workers + max_queue_size if max_queue_size > 0 else None
    submitted = returned = 0
    try:
        for index, item in enumerate(iterable):
            while most_pending is not None and submitted - returned >= most_pending:
                yield _checked(_next_result(out_queue, pool))
                returned += 1
            in_queue.put((index, item))
            submitted += 1
            while returned < submitted:  # whatever is ready, without waiting
                try:
                    ready = out_queue.get_nowait()
                except queue.Empty:
                    break
                yield _checked(ready)
                returned += 1
        while returned < submitted:
            yield _checked(_next_result(out_queue, pool))
            returned += 1
    finally:
        _stop(pool, in_queue, dummy)


def _stop(pool, in_queue, dummy):
    """Ends the workers, also when the consumer stopped early or `func` raised."""
    if dummy:
        # Threads cannot be killed: drop the waiting items and send each a stop signal;
        # a thread busy with an item ends after it.
        while True:
            try:
                in_queue.get_nowait()
            except queue.Empty:
                break
        for _ in pool:
            in_queue.put(None)
    else:
        for worker in pool:
            worker.terminate()
        for worker in pool:
            worker.join()
        # Items never read must not keep this process waiting at exit.
        in_queue.cancel_join_thread()


def parallel_apply(func, iterable, workers, max_queue_size, callback=None, dummy=False,
                   random_seeds=True, unordered=True):
    """Applies `func` to every item of `iterable` in parallel (see `parallel_apply_generator`).

    Args:
        func, iterable, workers, max_queue_size, dummy, random_seeds: As for
            `parallel_apply_generator`.
        callback: If given, called with each result as it comes, and nothing is
            returned (`unordered` does not apply).
        unordered: Return the results as they came; False for the order of the items.

    Returns:
        The list of results, or None with a `callback`.
    """
    results = parallel_apply_generator(func, iterable, workers, max_queue_size, dummy,
                                       random_seeds)
    if callback is not None:
        for _, result in results:
            callback(result)
        return None
    if unordered:
        return [result for _, result in results]
    return [result for _, result in sorted(results, key=lambda pair: pair[0])]


# ------------------------------------------------------------------ decoding and search

class ViterbiDecoder:
    """Viterbi decoding of a linear-chain CRF: the best label sequence for a sentence.

    Args:
        trans: The transition scores, `[num_labels, num_labels]` (`trans[i, j]`: label i
            followed by j), usually the CRF layer's weights. It is read at every
            `decode`, so scripts may assign a trained one later (`decoder.trans = ...`).
        starts: Labels a sequence may start with (None: any).
        ends: Labels a sequence may end with (None: any).
    """

    def __init__(self, trans, starts=None, ends=None):
        self.trans = trans
        self.num_labels = len(trans)
        self.non_starts = [] if starts is None else [
            label for label in range(self.num_labels) if label not in starts]
        self.non_ends = [] if ends is None else [
            label for label in range(self.num_labels) if label not in ends]

    def decode(self, nodes):
        """The best labels for the emission scores `nodes`, `[seq_len, num_labels]`.

        The score of a path is the sum of its emission and transition scores; ties go to
        the lowest label, as in bert4keras. Unlike bert4keras, `nodes` is not modified.

        Returns:
            An int array of `seq_len` labels.
        """
        nodes = np.array(nodes)
        if not np.issubdtype(nodes.dtype, np.floating):
            nodes = nodes.astype(np.float64)  # forbidden labels are scored -inf
        nodes[0, self.non_starts] -= np.inf
        nodes[-1, self.non_ends] -= np.inf

        scores = nodes[0]  # the best score of a path ending in each label
        best_previous = []  # for each step, the best previous label of each label
        for emissions in nodes[1:]:
            candidates = scores[:, None] + self.trans + emissions[None, :]
            best_previous.append(candidates.argmax(axis=0))
            scores = candidates.max(axis=0)

        labels = [scores.argmax()]
        for previous in reversed(best_previous):
            labels.append(previous[labels[-1]])
        return np.array(labels[::-1])


def longest_common_substring(source, target):
    """The longest run of consecutive items that `source` and `target` share.

    Returns:
        `(length, (source_start, source_end, target_start, target_end))`, ends exclusive;
        of several longest runs, the one ending first in `source` (then in `target`);
        `(0, (0, 0, 0, 0))` if nothing is shared.
    """
    length, span = 0, (0, 0, 0, 0)
    previous_row = [0] * (len(target) + 1)  # run lengths ending at the previous source item
    for i, source_item in enumerate(source, 1):
        row = [0] * (len(target) + 1)
        for j, target_item in enumerate(target, 1):
            if source_item == target_item:
                row[j] = previous_row[j - 1] + 1
                if row[j] > length:
                    length = row[j]
                    span = (i - length, i, j - length, j)
        previous_row = row
    return length, span


def longest_common_subsequence(source, target):
    """The longest sequence of items found in order (not necessarily adjacent) in both.

    Returns:
        `(length, mapping)`: `mapping` lists the `(source_index, target_index)` pairs of
        one longest common subsequence, in order. Of several, the one bert4keras picks:
        traced back from the ends, an equal pair is always taken, else the step goes back
        in `target` if that keeps more of the subsequence, otherwise in `source`.
    """
    # table[i][j]: the length for source[:i] and target[:j].
    table = [[0] * (len(target) + 1) for _ in range(len(source) + 1)]
    for i, source_item in enumerate(source, 1):
        for j, target_item in enumerate(target, 1):
            if source_item == target_item:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i][j - 1], table[i - 1][j])

    length = table[len(source)][len(target)]
    mapping = []
    i, j = len(source) - 1, len(target) - 1
    while len(mapping) < length:
        if source[i] == target[j]:
            mapping.append((i, j))
            i, j = i - 1, j - 1
        elif table[i + 1][j] > table[i][j + 1]:
            j -= 1
        else:
            i -= 1
    return length, mapping[::-1]


def orthogonally_resize(a, new_shape, window=2):
    """Resizes a weight array to `new_shape`, keeping its norm; for growing a model.

    Every dimension to enlarge is cut into blocks of `window` entries, each block is
    repeated (k times in a row, k = ceil(new / old)), and the result cut to the new size;
    a dimension to shrink is cut. The result is scaled to the Frobenius norm of `a`.
    Repeating blocks of an orthogonal matrix keeps its columns orthogonal within a copy,
    so a larger model can start from a smaller one's weights (bert4keras' use).

    Raises:
        ValueError: If `new_shape` has another rank, or a dimension to enlarge is not a
            multiple of `window` (bert4keras asserts both).
    """
    a = np.asarray(a)
    if a.ndim != len(new_shape):
        raise ValueError(f"new_shape {tuple(new_shape)} has another rank than {a.shape}")
    norm = np.linalg.norm(a)
    for axis, (old, new) in enumerate(zip(a.shape, new_shape)):
        repeats = -(-new // old)
        if repeats > 1:
            if old % window:
                raise ValueError(f"dimension {axis} ({old}) is not a multiple of window={window}")
            blocks = a.reshape(a.shape[:axis] + (old // window, window) + a.shape[axis + 1:])
            a = np.repeat(blocks, repeats, axis=axis).reshape(
                a.shape[:axis] + (old * repeats,) + a.shape[axis + 1:])
    a = a[tuple(slice(0, n) for n in new_shape)]
    return a / np.linalg.norm(a) * norm
