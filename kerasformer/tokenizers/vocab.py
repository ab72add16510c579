"""Character WordPiece vocabularies built from a corpus, for pre-training from scratch.

`build_vocab(texts)` counts what `Tokenizer` would make of the corpus and returns a
vocabulary in the layout of Zhuiyi's character vocabularies and of the package's
fixtures: `[PAD] [UNK] [CLS] [SEP] [MASK]` as ids 0–4 ([PAD] = 0 is what padding and
the masked-LM targets' "not predicted" rely on), then tokens by descending count.

Which tokens: the text goes through `Tokenizer`'s own normalisation and word split
(lowercasing, NFD and accent stripping when `do_lower_case`; every CJK character and
punctuation mark a word of its own; whitespace splits the rest). A CJK character or
punctuation mark is one token. In the other words (Latin letters, digits, other
scripts) a word's first character is a token `c` and each later one a continuation
piece `##c`, as in BERT's Chinese vocabulary (`##a`, `##1`): "iphone" tokenises as
`i ##p ##h ##o ##n ##e`, never [UNK], and decodes back to "iphone". No longer pieces
are made — this is a character vocabulary, whose point is that nothing in the corpus
is unknown — so no token is one that bert4keras' `load_vocab(simplified=True)`
calls redundant: with `startswith=SPECIAL_TOKENS` it keeps every token (without it,
bert4keras' rule drops any bracketed token, [MASK] included, as for every vocabulary).

Ties in the counts are broken by the token's text, so a corpus always gives the same
file. A character capped away by `max_size` (or under `min_count`) tokenises to [UNK]
— in a Latin word, the whole word does, as WordPiece makes a word that it cannot cover
one [UNK].
"""
import collections
import os
import tempfile

from kerasformer.tokenizers.wordpiece import _WORD_SPLIT, _lowercase_and_normalize

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def count_tokens(texts, do_lower_case=True):
    """How often each character token occurs in `texts`, read in one pass.

    Args:
        texts: iterable of str, read once and never kept (a generator over a large
            file is fine).
        do_lower_case: normalise as `Tokenizer(..., do_lower_case=True)` does.

    Returns:
        A `collections.Counter` token -> count, continuation pieces as `##c`.
    """
    initial, continuation = collections.Counter(), collections.Counter()
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is a {type(text).__name__}, not a str")
        if do_lower_case:
            text = _lowercase_and_normalize(text)
        words = text.translate(_WORD_SPLIT).split()
        initial.update(word[0] for word in words)
        # A word that is not one CJK character or punctuation mark has neither inside:
        # the split put spaces around them.
        continuation.update("".join(word[1:] for word in words))
    counts = collections.Counter(initial)
    counts.update({"##" + char: count for char, count in continuation.items()})
    return counts


def build_vocab(texts, max_size=None, min_count=1, do_lower_case=True):
    """A character WordPiece vocabulary of a corpus (see the module docstring).

    Args:
        texts: iterable of str, read once (a generator over a file is fine).
        max_size: optional int, the most tokens in all, the 5 special tokens included.
        min_count: int ≥ 1, tokens seen fewer times are left out.
        do_lower_case: the `do_lower_case` the vocabulary will be used with.

    Returns:
        A list of tokens, the id of each its index: `SPECIAL_TOKENS`, then the
        corpus's tokens by descending count (ties by text).
    """
    if max_size is not None and max_size < len(SPECIAL_TOKENS):
        raise ValueError(f"max_size must be at least {len(SPECIAL_TOKENS)} (the special "
                         f"tokens), got {max_size!r}")
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count!r}")
    counts = count_tokens(texts, do_lower_case=do_lower_case)
    ranked = sorted((token for token, count in counts.items()
                     if count >= min_count and token not in SPECIAL_TOKENS),
                    key=lambda token: (-counts[token], token))
    tokens = list(SPECIAL_TOKENS) + ranked
    return tokens[:max_size] if max_size is not None else tokens


def write_vocab(tokens, path):
    """Writes `tokens` one per line, atomically (a temporary file beside `path`
    renamed onto it), so a reader never sees half a vocabulary.

    Raises:
        ValueError: a token is empty, holds whitespace or repeats — it would not
            read back as one token with its id.

    Returns:
        `path`.
    """
    tokens = list(tokens)
    seen = set()
    for token in tokens:
        if not token or token != "".join(token.split()) or token in seen:
            raise ValueError(f"token {token!r} cannot be written: empty, with whitespace "
                             "or repeated")
        seen.add(token)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".vocab-", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.writelines(token + "\n" for token in tokens)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would make it private
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path

