"""What bert4keras' tokenizers share (its `TokenizerBase`): start and end tokens,
`token_translate`, truncation to `maxlen`, and `encode` of one text or a text pair
into token ids and segment ids.

Subclasses provide `_tokenize`, `token_to_id`, `id_to_token` and `decode`:
`Tokenizer` (WordPiece, kerasformer.tokenizers.wordpiece) and `SpTokenizer`
(SentencePiece, kerasformer.tokenizers.sp). The module uses the standard library
only and never imports keras.
"""
import numbers

__all__ = ["TokenizerBase"]


def _check_text(text):
    """Raises TypeError unless `text` is a str."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def _truncate_sequences(maxlen, index, *sequences):
    """Shortens lists in place until their total length is at most `maxlen`.

    The result equals that of bert4keras' `truncate_sequences`: one element
    at a time is popped at `index` from the currently longest list (the
    first one on ties). The pops are counted first and then applied as one
    slice deletion per list, which avoids quadratic time for long inputs.

    Args:
        maxlen: Maximum total length, at least 0.
        index: Position of every pop (negative counts from the end), or a
            list or tuple with one position per list that is not None.
        *sequences: Lists to shorten; None entries are ignored.

    Raises:
        ValueError: If `maxlen` is negative or a list becomes too short to
            pop at `index` before the total fits.
    """
    if maxlen < 0:
        raise ValueError(f"maxlen must be >= 0, got {maxlen!r}")
    sequences = [sequence for sequence in sequences if sequence is not None]
    indices = index if isinstance(index, (list, tuple)) else [index] * len(sequences)
    lengths = [len(sequence) for sequence in sequences]
    removals = [0] * len(sequences)
    for _ in range(sum(lengths) - maxlen):
        longest = lengths.index(max(lengths))
        lengths[longest] -= 1
        removals[longest] += 1

    for sequence, count, index in zip(sequences, removals, indices):
        if not count:
            continue
        length = len(sequence)
        # Repeated pops at index >= 0 remove a block starting there; pops at
        # -k remove the block that ends just before the last k - 1 elements.
        start = index if index >= 0 else length + index - count + 1
        if start < 0 or start + count > length:
            raise ValueError(
                f"cannot truncate to maxlen={maxlen}: {count} tokens would have "
                f"to be removed at index {index} from a sequence of {length} tokens"
            )
        del sequence[start:start + count]


class TokenizerBase:
    """Base class of the tokenizers, as bert4keras' `TokenizerBase`.

    Sets the attributes bert4keras code reads: `_token_pad`, `_token_unk` and
    `_token_mask` ('[PAD]', '[UNK]', '[MASK]' unless a subclass replaces them),
    `_token_start`, `_token_end`, `_pre_tokenize`, `_token_translate` and its
    inverse `_token_translate_inv`. Subclasses set `_vocab_size` and, for the
    special tokens they can map to ids, `_token_<role>_id` (role: pad, unk, mask,
    start, end), which the `*_id` properties read.

    Args:
        token_start: Token put before every text (None for none).
        token_end: Token put after every text (None for none).
        pre_tokenize: Optional function text -> iterable of str that runs before
            the subclass' own tokenization (see the subclass).
        token_translate: Optional mapping token -> replacement applied to the
            tokens of `tokenize` (a falsy replacement is ignored).
    """

    def __init__(
        self,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        self._token_pad = "[PAD]"
        self._token_unk = "[UNK]"
        self._token_mask = "[MASK]"
        self._token_start = token_start
        self._token_end = token_end
        self._pre_tokenize = pre_tokenize
        self._token_translate = dict(token_translate or {})
        # With equal replacements, the token that comes last wins, as in bert4keras.
        self._token_translate_inv = {v: k for k, v in self._token_translate.items()}

    # ----------------------------------------------------------------- views

    @property
    def vocab_size(self):
        """Number of distinct tokens in the vocabulary."""
        return self._vocab_size

    @property
    def start_id(self):
        """Id of the start token, or None if it has none (see the subclass)."""
        return getattr(self, "_token_start_id", None)

    @property
    def end_id(self):
        """Id of the end token, or None if it has none (see the subclass)."""
        return getattr(self, "_token_end_id", None)

    @property
    def pad_id(self):
        """Id of the padding token, or None if it has none (see the subclass)."""
        return getattr(self, "_token_pad_id", None)

    @property
    def unk_id(self):
        """Id of the unknown token, or None if it has none (see the subclass)."""
        return getattr(self, "_token_unk_id", None)

    @property
    def mask_id(self):
        """Id of the mask token, or None if it has none (see the subclass)."""
        return getattr(self, "_token_mask_id", None)

    # ------------------------------------------------------------ tokenizing

    def tokenize(self, text, maxlen=None):
        """Splits `text` into tokens, framed by the start and end tokens.

        Args:
            text: The text, a str; '' gives just the start and end tokens.
            maxlen: If given, tokens just before the end token are removed
                until at most `maxlen` remain.

        Returns:
            A list of str tokens. A token need not be in the vocabulary (a
            WordPiece word that cannot be split is kept whole); `encode` maps
            unknown tokens to the unknown token's id.

        Raises:
            TypeError: If `text` is not a str.
        """
        tokens = self._tokenize(text)
        if self._token_translate:
            translate = self._token_translate.get
            tokens = [translate(token) or token for token in tokens]
        if self._token_start is not None:
            tokens.insert(0, self._token_start)
        if self._token_end is not None:
            tokens.append(self._token_end)
        if maxlen is not None:
            # Keep the end token: remove from just before it.
            index = -2 if self._token_end is not None else -1
            _truncate_sequences(maxlen, index, tokens)
        return tokens

    def _tokenize(self, text):
        """Tokenizes `text` without start/end tokens or translation."""
        raise NotImplementedError

    # ------------------------------------------------------------- encoding

    def _as_tokens(self, text, name):
        """Tokenizes a str, or copies an already tokenized sequence."""
        if isinstance(text, str):
            return self.tokenize(text)
        if isinstance(text, (bytes, bytearray)):
            raise TypeError(
                f"{name} must be a str or a list of str tokens, got "
                f"{type(text).__name__}; decode bytes first"
            )
        try:
            tokens = list(text)
        except TypeError:
            raise TypeError(
                f"{name} must be a str or a list of str tokens, got "
                f"{type(text).__name__}"
            ) from None
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(
                    f"{name} must contain str tokens, found {type(token).__name__}"
                )
        return tokens

    def encode(
        self,
        first_text,
        second_text=None,
        maxlen=None,
        pattern="S*E*E",
        truncate_from="right",
    ):
        """Converts one text or a text pair to token ids and segment ids.

        Args:
            first_text: A str, or a list of tokens taken as they are (they
                should already contain the start and end tokens).
            second_text: Optional second str or token list (segment 1).
            maxlen: If given, tokens are removed, one at a time from the
                longer sequence (the first on ties), until the result has at
                most `maxlen` ids.
            pattern: 'S*E*E' ([CLS] a [SEP] b [SEP]) drops the first token
                of the second sequence; any other value keeps it.
            truncate_from: 'right' removes tokens before the end token,
                'left' those after the start token; an int gives the index.

        Returns:
            A tuple (token_ids, segment_ids) of two equally long int lists.

        Raises:
            TypeError: If a text is neither a str nor a list of str.
            KeyError: If a token is unknown and the vocabulary has no [UNK]
                (WordPiece only: SentencePiece models always have one).
            ValueError: If `maxlen` is too small to truncate to.
        """
        first_tokens = self._as_tokens(first_text, "first_text")
        second_tokens = None
        if second_text is not None:
            second_tokens = self._as_tokens(second_text, "second_text")

        if maxlen is not None:
            if truncate_from == "right":
                index = -2 if self._token_end is not None else -1
            elif truncate_from == "left":
                index = 1 if self._token_start is not None else 0
            elif isinstance(truncate_from, numbers.Integral):
                index = truncate_from
            else:
                raise ValueError(
                    "truncate_from must be 'left', 'right' or an int, got "
                    f"{truncate_from!r}"
                )
            if second_tokens is not None and pattern == "S*E*E":
                # The second start token is dropped below, so it must not
                # count towards maxlen.
                maxlen += 1
            _truncate_sequences(maxlen, index, first_tokens, second_tokens)

        token_ids = self.tokens_to_ids(first_tokens)
        segment_ids = [0] * len(token_ids)
        if second_tokens is not None:
            if pattern == "S*E*E" and self._token_start:
                second_tokens = second_tokens[1:]
            second_ids = self.tokens_to_ids(second_tokens)
            token_ids.extend(second_ids)
            segment_ids.extend([1] * len(second_ids))
        return token_ids, segment_ids

    def token_to_id(self, token):
        """Id of `token`."""
        raise NotImplementedError

    def tokens_to_ids(self, tokens):
        """Ids of `tokens` (see `token_to_id`)."""
        return [self.token_to_id(token) for token in tokens]

    def id_to_token(self, i):
        """Token of id `i`."""
        raise NotImplementedError

    def ids_to_tokens(self, ids):
        """Tokens of `ids` (see `id_to_token`)."""
        return [self.id_to_token(i) for i in ids]

    # ------------------------------------------------------------- decoding

    def decode(self, ids):
        """Joins ids back into readable text."""
        raise NotImplementedError
