"""WordPiece tokenizer that produces the same tokens and ids as bert4keras 0.11.5.

`Tokenizer`, `load_vocab` and `save_vocab` accept the same arguments as their
bert4keras counterparts and give identical results on valid input, so code
written for `bert4keras.tokenizers` works after changing the import. Where
bert4keras would fail deep inside a call, or silently produce [UNK] ids for
input of the wrong type, this module raises a short, explicit error instead.

Pipeline of `Tokenizer.tokenize`:

1. optional lowercasing: `str.lower`, NFD decomposition, removal of every
   non-spacing mark (category Mn), which strips accents;
2. optional user pre-tokenization (`pre_tokenize`);
3. every punctuation or CJK character becomes a word of its own, whitespace
   separates words, and control and format characters and U+FFFD are deleted;
4. greedy longest-match-first WordPiece on each word; a word that cannot be
   covered by vocabulary pieces, or is longer than `word_maxlen`, is kept whole
   (and becomes [UNK] when converted to an id);
5. optional `token_translate` replacement, then the start/end tokens.

The module uses the standard library only and never imports keras.
"""
import functools
import os
import re
import types
import unicodedata
from collections.abc import Mapping

# _check_text and _truncate_sequences live in base (shared with SpTokenizer) and
# stay importable from here.
from kerasformer.tokenizers.base import (  # noqa: F401
    TokenizerBase,
    _check_text,
    _truncate_sequences,
)

__all__ = ["Tokenizer", "load_vocab", "save_vocab"]

# Upper bounds on the memoised word -> pieces splits per tokenizer, in entries and in
# characters of the words kept; the cache is emptied when either fills, which keeps
# memory flat on unbounded streams. Words longer than _CACHED_WORD_LENGTH are split
# every time: they are rare and would dominate the character budget.
_WORD_CACHE_SIZE = 200_000
_WORD_CACHE_CHARACTERS = 4_000_000
_CACHED_WORD_LENGTH = 100

# CJK ideograph blocks treated as one-character words (bert4keras' list;
# extensions C, D and E are adjacent, so they form one range here).
_CJK_RANGES = (
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # Unified Ideographs
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2CEAF),  # Extensions C, D and E
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
)

# Every printable ASCII character that is neither a letter, a digit nor a
# space counts as punctuation, including symbols such as $ + < = > ^ ` | ~.
_ASCII_PUNCTUATION = frozenset('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')

# Whitespace recognised besides the Unicode category Zs. Other ASCII controls
# that str.split() treats as whitespace (\x0b, \x0c, \x1c-\x1f, \x85) are not
# in this set: they are deleted as control characters, joining their neighbours.
_EXTRA_SPACES = frozenset(" \t\n\r")

# Full-width and CJK punctuation, as listed by bert4keras.
_CJK_PUNCTUATION = (
    "\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d"
    "\uff0f\uff1a\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f"
    "\uff40\uff5b\uff5c\uff5d\uff5e\uff5f\uff60\uff62\uff63\uff64\u3000\u3001"
    "\u3003\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f\u3010\u3011\u3014"
    "\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c\u301d\u301e\u301f\u3030"
    "\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e\u201f\u2026"
    "\u2027\ufe4f\ufe51\ufe54\u00b7\uff01\uff1f\uff61\u3002"
)

# `decode` removes the space after these characters (CJK punctuation, closing
# marks included, and the ASCII characters that usually precede a word).
_NO_SPACE_AFTER = _CJK_PUNCTUATION + "+-/={(<["

# Post-processing rules of `decode`, applied in this order.
_RUN_OF_SPACES = re.compile(" +")
_SPLIT_CONTRACTION = re.compile(r"' (re|m|s|t|ve|d|ll) ")
_UNWANTED_SPACE = re.compile(f"([{re.escape(_NO_SPACE_AFTER)}]) ")
_SPLIT_DECIMAL = re.compile(r"(\d\.) (\d)")


def _is_space(char):
    """Whether `char` separates words: space, tab, newline, CR or category Zs."""
    return char in _EXTRA_SPACES or unicodedata.category(char) == "Zs"


def _is_punctuation(char):
    """Whether `char` is punctuation: ASCII symbols or any category P*."""
    return (
        char in _ASCII_PUNCTUATION
        or unicodedata.category(char).startswith("P")
    )


def _is_cjk_character(char):
    """Whether `char` lies in one of the CJK ideograph blocks."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_control(char):
    """Whether `char` is a control (Cc) or format (Cf) character."""
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_dropped(char):
    """Whether tokenization deletes `char`: controls, formats and U+FFFD."""
    return char == "\ufffd" or _is_control(char)


def _is_special(token):
    """Whether `token` is a bracketed marker such as [CLS] or [unused1]."""
    return token[:1] == "[" and token[-1:] == "]"


def _stem(token):
    """Returns `token` without its '##' continuation prefix, if it has one."""
    return token[2:] if token.startswith("##") else token


def _is_redundant(token):
    """Whether basic tokenization can never produce `token`.

    Punctuation and CJK characters always become one-character words, so a
    longer token whose stem contains one of them is unreachable.
    """
    return len(token) > 1 and any(
        _is_cjk_character(char) or _is_punctuation(char)
        for char in _stem(token)
    )


class _MarkRemovalTable(dict):
    """`str.translate` table that deletes non-spacing marks (category Mn).

    Filled lazily, one entry per distinct code point ever seen, so the
    category lookup runs once per character instead of once per occurrence.
    """

    def __missing__(self, code):
        mapped = None if unicodedata.category(chr(code)) == "Mn" else code
        self[code] = mapped
        return mapped


class _WordSplitTable(dict):
    """`str.translate` table that prepares text for a whitespace split.

    Punctuation and CJK characters are padded with spaces so that each
    becomes a word, whitespace maps to a plain space, and dropped characters
    map to nothing. Filled lazily like `_MarkRemovalTable`.
    """

    def __missing__(self, code):
        char = chr(code)
        if _is_punctuation(char) or _is_cjk_character(char):
            mapped = f" {char} "
        elif _is_space(char):
            mapped = " "
        elif _is_dropped(char):
            mapped = ""
        else:
            mapped = char
        self[code] = mapped
        return mapped


_MARK_REMOVAL = _MarkRemovalTable()
_WORD_SPLIT = _WordSplitTable()


def _lowercase_and_normalize(text):
    """Lowercases `text`, decomposes it (NFD) and strips non-spacing marks."""
    text = text.lower()
    if text.isascii():
        # NFD leaves ASCII unchanged and ASCII contains no marks.
        return text
    return unicodedata.normalize("NFD", text).translate(_MARK_REMOVAL)


@functools.lru_cache(maxsize=1 << 16)
def _rematch_char(char, lowercase):
    """What one character of the input contributes to `rematch`'s text."""
    if lowercase:
        char = _lowercase_and_normalize(char)
    return "".join(c for c in char if not _is_dropped(c))


def load_vocab(dict_path, encoding="utf-8", simplified=False, startswith=None):
    """Reads a BERT vocabulary file (one token per line).

    A line's token is its first whitespace-separated field, or '' for a blank
    line. Ids follow bert4keras exactly: a token gets the number of distinct
    tokens seen before it, so a repeated line moves that token to a new id,
    which the next new token then shares (its old id is left unused).

    Args:
        dict_path: Path of the vocabulary file.
        encoding: Text encoding of the file.
        simplified: If True, also drop the tokens `Tokenizer` can never
            produce (see `Tokenizer._is_redundant`) and renumber the rest.
        startswith: Tokens to put first in the simplified vocabulary, in
            this order, e.g. ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].

    Returns:
        A dict token -> id; with `simplified`, a tuple (token_dict,
        keep_tokens) where keep_tokens[new_id] is the token's original id,
        ready for slicing an embedding matrix.

    Raises:
        FileNotFoundError: If `dict_path` does not exist.
        KeyError: If a `startswith` token is not in the vocabulary.
    """
    token_dict = {}
    with open(dict_path, encoding=encoding) as reader:
        for line in reader:
            fields = line.split()
            token = fields[0] if fields else ""
            token_dict[token] = len(token_dict)

    if not simplified:
        return token_dict

    simplified_dict, keep_tokens = {}, []

    def keep(token):
        simplified_dict[token] = len(simplified_dict)
        keep_tokens.append(token_dict[token])

    for token in startswith or ():
        if token not in token_dict:
            raise KeyError(
                f"startswith token {token!r} is not in the vocabulary {dict_path}"
            )
        keep(token)
    # sorted() is stable, so tokens sharing an id keep their file order.
    for token, _ in sorted(token_dict.items(), key=lambda item: item[1]):
        if token not in simplified_dict and not _is_redundant(token):
            keep(token)
    return simplified_dict, keep_tokens


def save_vocab(dict_path, token_dict, encoding="utf-8"):
    """Writes `token_dict` as a vocabulary file, one token per line by id.

    Args:
        dict_path: Path of the file to write.
        token_dict: Mapping token -> id, e.g. from `load_vocab(...,
            simplified=True)`.
        encoding: Text encoding of the file.
    """
    with open(dict_path, "w", encoding=encoding) as writer:
        for token, _ in sorted(token_dict.items(), key=lambda item: item[1]):
            writer.write(token + "\n")


class Tokenizer(TokenizerBase):
    """BERT WordPiece tokenizer, id-compatible with bert4keras' `Tokenizer`.

    Attributes read by bert4keras code are kept: `_token_dict`,
    `_token_dict_inv`, `_vocab_size`, `_do_lower_case`, `_word_maxlen`,
    `_token_start`, `_token_end`, `_token_pad`, `_token_unk`, `_token_mask`
    and, for those of these special tokens the vocabulary contains,
    `_token_start_id`, `_token_end_id`, `_token_pad_id`, `_token_unk_id`
    and `_token_mask_id`. Treat them as read-only.

    Args:
        token_dict: Path of a vocabulary file, or a mapping token -> id.
        do_lower_case: Lowercase the text and strip accents first.
        word_maxlen: Words longer than this are kept whole instead of being
            split into pieces.
        token_start: Token put before every text (None for none).
        token_end: Token put after every text (None for none).
        pre_tokenize: Optional function text -> iterable of str applied to
            the (lowercased) text first; pieces found in the vocabulary are
            kept as they are, the others are tokenized normally.
        token_translate: Optional mapping token -> replacement applied to
            the tokens of `tokenize` (a falsy replacement is ignored).

    Raises:
        FileNotFoundError: If `token_dict` is a path that does not exist.
        TypeError: If `token_dict` is neither a path nor a mapping.
        ValueError: If the vocabulary is empty.
    """

    def __init__(
        self,
        token_dict,
        do_lower_case=False,
        word_maxlen=200,
        *,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        if isinstance(token_dict, (str, os.PathLike)):
            source = f"vocabulary file {os.fspath(token_dict)}"
            token_dict = load_vocab(token_dict)
        elif isinstance(token_dict, Mapping):
            source = "token_dict"
        else:
            raise TypeError(
                "token_dict must be a vocabulary path or a mapping token -> id, "
                f"got {type(token_dict).__name__}"
            )
        if not token_dict:
            raise ValueError(f"the vocabulary is empty ({source})")

        # A private copy: the caches below would go stale if the caller
        # changed the mapping later.
        self._token_dict = dict(token_dict)
        # With duplicate ids, the token that comes last wins, as in bert4keras.
        self._token_dict_inv = {i: t for t, i in self._token_dict.items()}
        super().__init__(
            token_start=token_start,
            token_end=token_end,
            pre_tokenize=pre_tokenize,
            token_translate=token_translate,
        )
        self._vocab_size = len(self._token_dict)
        self._do_lower_case = do_lower_case
        self._word_maxlen = word_maxlen
        for role in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, f"_token_{role}")
            if token in self._token_dict:
                setattr(self, f"_token_{role}_id", self._token_dict[token])

        # No piece can be longer than the longest token, which bounds the
        # longest-match search in long words.
        self._longest_token = max(map(len, self._token_dict))
        self._word_cache = {}
        self._word_cache_characters = 0

    # ----------------------------------------------------------------- views

    @property
    def token_dict(self):
        """Read-only view of the vocabulary, token -> id."""
        return types.MappingProxyType(self._token_dict)

    # ------------------------------------------------------------ tokenizing

    def _tokenize(self, text, pre_tokenize=True):
        """Tokenizes `text` without start/end tokens or translation.

        Args:
            text: The text, a str.
            pre_tokenize: Whether to apply the `pre_tokenize` function.

        Returns:
            A list of str tokens.
        """
        _check_text(text)
        if self._do_lower_case:
            text = _lowercase_and_normalize(text)

        if pre_tokenize and self._pre_tokenize is not None:
            tokens = []
            for piece in self._pre_tokenize(text):
                if piece in self._token_dict:
                    tokens.append(piece)
                else:
                    tokens.extend(self._tokenize(piece, pre_tokenize=False))
            return tokens

        # Words recur constantly (each CJK character is a word of its own),
        # so their splits are memoised.
        cache = self._word_cache
        tokens = []
        for word in text.translate(_WORD_SPLIT).split():
            pieces = cache.get(word)
            if pieces is None:
                pieces = self._cache_word_pieces(word)
            tokens.extend(pieces)
        return tokens

    def _cache_word_pieces(self, word):
        """Computes the WordPiece split of `word` and memoises it."""
        pieces = self._word_pieces(word)
        if len(word) > _CACHED_WORD_LENGTH:
            return pieces
        if (len(self._word_cache) >= _WORD_CACHE_SIZE
                or self._word_cache_characters >= _WORD_CACHE_CHARACTERS):
            self._word_cache.clear()
            self._word_cache_characters = 0
        self._word_cache[word] = pieces
        self._word_cache_characters += len(word)
        return pieces

    def _word_pieces(self, word):
        """Greedy longest-match-first WordPiece split of one word.

        Args:
            word: A word without whitespace, punctuation or CJK characters.

        Returns:
            A tuple of pieces, continuation pieces prefixed with '##'; the
            1-tuple (word,) if the word is longer than `word_maxlen` or some
            part of it matches no vocabulary piece.
        """
        if len(word) > self._word_maxlen:
            return (word,)
        pieces, start = [], 0
        while start < len(word):
            prefix = "##" if start else ""
            longest_end = min(len(word), start + self._longest_token)
            for end in range(longest_end, start, -1):
                piece = prefix + word[start:end]
                if piece in self._token_dict:
                    break
            else:
                return (word,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    # ------------------------------------------------------------- encoding

    def token_to_id(self, token):
        """Id of `token`; the [UNK] id for unknown tokens.

        Raises:
            KeyError: If `token` is unknown and the vocabulary has no [UNK].
        """
        token_id = self._token_dict.get(token, self.unk_id)
        if token_id is None:
            raise KeyError(
                f"token {token!r} is not in the vocabulary, which has no "
                f"{self._token_unk} token to fall back on"
            )
        return token_id

    def tokens_to_ids(self, tokens):
        """Ids of `tokens` (see `token_to_id`)."""
        unk_id = self.unk_id
        if unk_id is None:
            return [self.token_to_id(token) for token in tokens]
        lookup = self._token_dict.get
        return [lookup(token, unk_id) for token in tokens]

    def id_to_token(self, i):
        """Token of id `i`.

        Raises:
            KeyError: If no token has id `i`.
        """
        try:
            return self._token_dict_inv[i]
        except KeyError:
            raise KeyError(
                f"token id {i!r} is not in the vocabulary "
                f"(vocab_size={self._vocab_size})"
            ) from None

    # ------------------------------------------------------------- decoding

    def decode(self, ids, tokens=None):
        """Joins ids (or tokens) back into readable text.

        Special [..] tokens are skipped, '##' pieces are glued to the word
        before, CJK characters are not separated by spaces, and a few
        regular expressions tidy spaces around punctuation, contractions
        (don ' t -> don't) and decimals (3. 14 -> 3.14).

        Args:
            ids: Token ids; ignored when `tokens` is non-empty.
            tokens: Optional tokens to decode instead of `ids`.

        Returns:
            The text, stripped of surrounding spaces.
        """
        tokens = tokens or self.ids_to_tokens(ids)
        parts, last_char = [], ""
        for token in tokens:
            if _is_special(token):
                continue
            if token.startswith("##"):
                part = token[2:]
            elif len(token) == 1 and _is_cjk_character(token):
                part = token
            elif len(token) == 1 and _is_punctuation(token):
                part = token + " "
            elif last_char and _is_cjk_character(last_char):
                part = token
            else:
                part = " " + token
            if part:
                parts.append(part)
                last_char = part[-1]

        text = _RUN_OF_SPACES.sub(" ", "".join(parts))
        text = _SPLIT_CONTRACTION.sub(r"'\1 ", text)
        text = _UNWANTED_SPACE.sub(r"\1", text)
        text = _SPLIT_DECIMAL.sub(r"\1\2", text)
        return text.strip()

    def rematch(self, text, tokens):
        """Maps each token back to the characters of `text` it came from.

        With `do_lower_case`, positions refer to `text.lower()`, which is
        `text` itself unless lowercasing changed its length (as for 'İ').

        Args:
            text: The original text.
            tokens: Its tokens, as returned by `tokenize`.

        Returns:
            One list of character positions per token; [] for special
            [..] tokens.

        Raises:
            TypeError: If `text` is not a str.
            ValueError: If a token does not occur in the text.
        """
        _check_text(text)
        lowercase = bool(self._do_lower_case)
        if lowercase:
            text = text.lower()

        normalized_parts, char_positions = [], []
        for position, char in enumerate(text):
            normalized = _rematch_char(char, lowercase)
            normalized_parts.append(normalized)
            char_positions.extend([position] * len(normalized))
        normalized_text = "".join(normalized_parts)

        mapping, offset = [], 0
        for token in tokens:
            if _is_special(token):
                mapping.append([])
                continue
            stem = _stem(token)
            start = normalized_text.find(stem, offset)
            if start < 0:
                raise ValueError(
                    f"token {token!r} does not occur in the text after "
                    f"position {offset}"
                )
            end = start + len(stem)
            mapping.append(char_positions[start:end])
            offset = end
        return mapping

    # ---------------------------------------------- bert4keras static helpers

    stem = staticmethod(_stem)
    _is_space = staticmethod(_is_space)
    _is_punctuation = staticmethod(_is_punctuation)
    _is_cjk_character = staticmethod(_is_cjk_character)
    _is_control = staticmethod(_is_control)
    _is_special = staticmethod(_is_special)
    _is_redundant = staticmethod(_is_redundant)

    @staticmethod
    def _cjk_punctuation():
        """The characters after which `decode` removes a space."""
        return _CJK_PUNCTUATION
