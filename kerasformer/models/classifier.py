"""The text-classification task: an encoder, a pooling of its sequence output and a
softmax layer over named labels — bert4keras' classification examples as a task.

    token ids, segment ids ─ encoder (application="encoder", no heads) ─ sequence output
    sequence output, token ids ─ Classifier-Head: pooling ─ Dropout ─ Dense ─ softmax

The pooling is bert4keras' `x[:, 0]` ("cls", its iflytek / sentiment examples) or the
mean over the non-padding tokens ("mean"); the Dense layer starts from the encoder's
initializer, as the examples' `kernel_initializer=bert.initializer`. `model` is the
whole Keras model, `[token_ids, segment_ids]` → probabilities `(batch, labels)`, to
compile and `fit` with `sparse_categorical_crossentropy` on `label_ids(...)`; a preset
saves it whole, head included.

A classifier is a fine-tuned model of one user's labels, not a published kind of
checkpoint: it belongs to no family (`families.json` describes checkpoints to load and
convert), so its `family` is None unless given. Its preset says the rest itself: the
architecture, the task "classification" and the labels.
"""
import keras
import numpy as np
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.models.task import Task, model_source, pad_rows, to_numpy

POOLINGS = ("cls", "mean")


@keras.saving.register_keras_serializable(package="kerasformer")
class ClassifierHead(keras.layers.Layer):
    """Pooling, dropout and a softmax Dense: `[sequence, token_ids]` → probabilities.

    Args:
        num_labels: int. Classes.
        pooling: "cls" (the first token's vector) or "mean" (the mean over the tokens
            whose id is not 0, the padding id every architecture masks).
        dropout_rate: float. Dropout on the pooled vector (bert4keras' examples: 0,
            LCQMC's 0.1).
        kernel_initializer: the Dense layer's initializer (the encoder's).
        **kwargs: base layer arguments (`name`, `dtype`).
    """

    def __init__(self, num_labels, pooling="cls", dropout_rate=0.0,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.num_labels = int(num_labels)
        self.pooling = pooling
        self.dropout_rate = float(dropout_rate or 0.0)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropout = None
        if self.dropout_rate:
            self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout",
                                                dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(self.num_labels, kernel_initializer=self.kernel_initializer,
                                        name="dense", dtype=self.dtype_policy)
        self.supports_masking = True  # the padding is read from the token ids

    def build(self, input_shape):
        sequence_shape = input_shape[0]
        self.dense.build((sequence_shape[0], sequence_shape[-1]))
        self.built = True

    def call(self, inputs, training=None):
        sequence, token_ids = inputs
        if self.pooling == "cls":
            pooled = sequence[:, 0]
        else:
            kept = ops.cast(ops.not_equal(token_ids, 0), "float32")[:, :, None]
            total = ops.sum(ops.cast(sequence, "float32") * kept, axis=1)
            pooled = ops.cast(total / ops.maximum(ops.sum(kept, axis=1), 1.0), sequence.dtype)
        if self.dropout is not None:
            pooled = self.dropout(pooled, training=training)
        return ops.softmax(ops.cast(self.dense(pooled), "float32"), axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per sequence: nothing left to mask

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "pooling": self.pooling,
                "dropout_rate": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


class TextClassifier(Task):
    """Texts (or text pairs) into labels with an encoder and a softmax head.

    Args:
        transformer: an encoder `Transformer` (bert, roformer, roformer_v2, gau_alpha)
            built with `application="encoder"` and no pooler or MLM head: its model
            outputs the sequence `(batch, seq, hidden)`. `from_encoder` makes one
            from any loaded task.
        tokenizer: its tokenizer.
        family: None (a classifier is no published family), or a name to record.
        tokenizer_config: the tokenizer's recipe (see `Task`; its `vocab` is needed to
            save a preset).
        labels: list of str, the classes in the order of the output columns.
        pooling: "cls" or "mean" (see `ClassifierHead`).
        text_maxlen: int. Tokens kept of each input, [CLS] and [SEP] included.
        dropout_rate: float. Dropout on the pooled vector.

    Attributes:
        model: the Keras model `[token_ids, segment_ids]` → probabilities
            `(batch, len(labels))`, to train with `fit`; presets save it whole.
        encoder: the transformer's own model (the sequence output).
        head: the `ClassifierHead` layer.
    """

    task = "classification"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None, labels=None,
                 pooling="cls", text_maxlen=128, dropout_rate=0.0):
        from kerasformer.architectures.bert import BERT

        if not isinstance(transformer, BERT) or transformer.application != "encoder":
            raise ValueError(
                "a text classifier needs an encoder: an architecture of the BERT layout "
                "(bert, roformer, roformer_v2, gau_alpha) built with application='encoder' "
                "(TextClassifier.from_encoder makes one from any loaded task)")
        if transformer.with_pool or transformer.with_mlm:
            raise ValueError("a text classifier's encoder has no pooler or MLM head (the "
                             "classifier head pools its sequence output): build it with "
                             "with_pool=False, with_mlm=False, or use TextClassifier.from_encoder")
        if transformer.custom_position_ids:
            raise ValueError("a text classifier feeds token and segment ids only, not "
                             "custom_position_ids")
        self.labels = _check_labels(labels)
        self.text_maxlen = _check_text_maxlen(text_maxlen, transformer)
        super().__init__(transformer, tokenizer, family, tokenizer_config)
        self.encoder = self.model
        self.head = ClassifierHead(len(self.labels), pooling, dropout_rate,
                                   kernel_initializer=transformer.initializer,
                                   name="Classifier-Head", dtype=transformer.dtype)
        inputs = [keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
                  for tensor in transformer.inputs]
        sequence = self.encoder(inputs[0] if len(inputs) == 1 else inputs)
        self.model = keras.Model(inputs, self.head([sequence, inputs[0]]),
                                 name="text_classifier")

    @property
    def pooling(self):
        return self.head.pooling

    @property
    def dropout_rate(self):
        return self.head.dropout_rate

    def task_options(self):
        return {"labels": list(self.labels), "pooling": self.pooling,
                "text_maxlen": self.text_maxlen, "dropout_rate": self.dropout_rate}

    # ------------------------------------------------------------ construction

    @classmethod
    def from_encoder(cls, source, labels, pooling="cls", text_maxlen=128, dropout_rate=0.0,
                     tokenizer=None, tokenizer_config=None, **load_kwargs):
        """A new classifier (head freshly initialised) on the encoder of `source`.

        The encoder is rebuilt from `source`'s config as a plain encoder
        (`application="encoder"`, no pooler, no MLM head; dropout as in the config)
        and gets every weight of the embeddings and blocks, copied by variable path.

        Args:
            source: a loaded task (`kerasformer.models.load("roformer-sim-mini")`, a
                masked LM, another classifier), a built `Transformer` (then pass
                `tokenizer` and `tokenizer_config`), or what `kerasformer.models.load`
                takes (a name, a preset or checkpoint directory, `hf://...`).
            labels, pooling, text_maxlen, dropout_rate: as the constructor's.
            tokenizer, tokenizer_config: for a bare `Transformer` source.
            **load_kwargs: `kerasformer.models.load` arguments for a source to load
                (`family=` of a release directory, `revision=`, `dtype=`).

        Returns:
            A `TextClassifier` of no family (see the module's docstring).
        """
        from kerasformer.architectures.bert import BERT
        from kerasformer.training.weights import copy_weights, rebuilt

        transformer, tokenizer, tokenizer_config = model_source(
            source, tokenizer, tokenizer_config, load_kwargs)
        if not isinstance(transformer, BERT):
            raise ValueError(f"a {transformer.architecture} model is no encoder: use bert, "
                             "roformer, roformer_v2 or gau_alpha")
        encoder = rebuilt(transformer, application="encoder", with_pool=False, with_nsp=False,
                          with_mlm=False, custom_position_ids=False)
        copy_weights(transformer.build(), encoder.model, strict=True)
        return cls(encoder, tokenizer, None, tokenizer_config, labels=labels, pooling=pooling,
                   text_maxlen=text_maxlen, dropout_rate=dropout_rate)

    # ------------------------------------------------------------------ inputs

    def encode_batch(self, texts):
        """Token and segment ids of `texts`, padded for training or prediction.

        Args:
            texts: a list of strings, or of `(text_a, text_b)` pairs (segment 1 holds
                the second text, as bert4keras' LCQMC example); each cut to
                `text_maxlen` tokens.

        Returns:
            `(token_ids, segment_ids)`: int32 arrays `(len(texts), width)`, the width
            the longest row rounded up to a multiple of 16 (few shapes, few
            compilations), padded with 0.
        """
        return pad_rows([self._encode(item, index)
                         for index, item in enumerate(_check_items(texts))])

    def _encode(self, item, index):
        if isinstance(item, str):
            return self.tokenizer.encode(item, maxlen=self.text_maxlen)
        first, second = item
        return self.tokenizer.encode(first, second, maxlen=self.text_maxlen)

    def label_ids(self, labels):
        """The output columns of label names: an int32 array for `fit`'s targets."""
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = [label for label in labels if label not in index]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}: the labels are {self.labels}")
        return np.array([index[label] for label in labels], np.int32)

    def training_model(self):
        """The Keras model to compile and `fit` (`self.model`): inputs
        `[token_ids, segment_ids]` from `encode_batch`, targets `label_ids(...)`."""
        return self.model

    # ------------------------------------------------------------- prediction

    def predict_proba(self, texts, batch_size=64):
        """Class probabilities of `texts` (strings or pairs; see `encode_batch`).

        Returns:
            float32 array `(len(texts), len(labels))` (1-D for a single string).
        """
        single = isinstance(texts, str)
        items = _check_items([texts] if single else texts)
        batch_size = check_integer(batch_size, "batch_size")
        encoded = [self._encode(item, index) for index, item in enumerate(items)]
        probabilities = np.zeros((len(items), len(self.labels)), np.float32)
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        classify = self.compiled("classify", lambda t, s: self._call(t, s))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            token_ids = self.pad([encoded[i][0] for i in rows])
            segment_ids = self.pad([encoded[i][1] for i in rows])
            probabilities[rows] = to_numpy(classify(token_ids, segment_ids))[:len(rows)]
        return probabilities[0] if single else probabilities

    def predict(self, texts, batch_size=64):
        """The most probable label of each text (a single label for one string)."""
        probabilities = self.predict_proba(texts, batch_size)
        if probabilities.ndim == 1:
            return self.labels[int(np.argmax(probabilities))]
        return [self.labels[int(i)] for i in np.argmax(probabilities, axis=1)]

    def _call(self, token_ids, segment_ids):
        if len(self.model.inputs) == 1:
            return self.model(token_ids)
        return self.model([token_ids, segment_ids])


def _check_labels(labels):
    if isinstance(labels, str) or labels is None:
        raise ValueError("labels must be a list of label names (str), at least two")
    labels = list(labels)
    if len(labels) < 2 or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"labels must be at least two non-empty strings, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels!r}")
    return labels


def _check_text_maxlen(text_maxlen, transformer):
    if isinstance(text_maxlen, bool) or not isinstance(text_maxlen, (int, np.integer)):
        raise ValueError(f"text_maxlen must be an integer, got {text_maxlen!r}")
    limit = transformer.max_positions()
    if not 3 <= text_maxlen <= (limit or 1 << 16):
        raise ValueError(f"text_maxlen must be between 3 and {limit or 1 << 16} tokens, "
                         f"got {text_maxlen}")
    return int(text_maxlen)


def _check_items(texts):
    """A list of non-empty strings or pairs of them, or an error naming the bad one."""
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of strings or of string pairs, got "
                        f"{type(texts).__name__}")
    if not texts:
        raise ValueError("texts is empty")
    for index, item in enumerate(texts):
        parts = [item] if isinstance(item, str) else item
        if not isinstance(parts, (list, tuple)) or len(parts) not in (1, 2) \
                or not all(isinstance(part, str) for part in parts):
            raise TypeError(f"text {index} is neither a string nor a pair of strings: {item!r}")
        if not all(part.strip() for part in parts):
            raise ValueError(f"text {index} is empty")
    return [item if isinstance(item, str) else item[0] if len(item) == 1 else tuple(item)
            for item in texts]
