"""bert4keras' text snippets: `text_segmentate` and `truncate_sequences`.

Both return what `bert4keras.snippets` 0.11.5 returns for the same arguments
(tests/data/test_text.py checks this against fixtures written by the original),
so data pipelines ported from bert4keras, such as RoFormer-Sim's, cut their
texts in the same places. `truncate_sequences` shares its implementation with
the WordPiece tokenizer, which truncates text pairs the same way.
"""
import math
import numbers

from kerasformer.tokenizers.wordpiece import _truncate_sequences

__all__ = ["text_segmentate", "truncate_sequences"]


def text_segmentate(text, maxlen, seps="\n", strips=None):
    """Splits a text into pieces of about `maxlen` characters at separators.

    The text, once stripped (of whitespace, then of the `strips` characters),
    is returned whole if it is no longer than `maxlen` or no separator is
    left. Otherwise it is split at `seps[0]`, each piece keeping its
    separator, and consecutive pieces are merged greedily: a piece joins the
    merged text while both together (without the piece's own separator) are
    at most `maxlen - 1` characters long. Every merged text is then segmented
    again with the remaining separators `seps[1:]`. A single piece longer
    than `maxlen` is therefore only cut where a finer separator occurs, and
    the result may contain empty strings (a piece made only of characters in
    `strips`), exactly as in bert4keras.

    Args:
        text: The text to split.
        maxlen: Target length in characters; may be a float (RoFormer-Sim
            uses 64 * 1.2).
        seps: Separators from coarsest to finest: a string of single
            characters, or a list of strings.
        strips: Characters stripped from both ends of every piece, or None
            for whitespace only.

    Returns:
        A list of strings.
    """
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]

    separator, finer_seps = seps[0], seps[1:]
    pieces = text.split(separator)
    segments = []
    merged = ""
    for position, piece in enumerate(pieces):
        # An empty piece never closes the merged text: runs of separators stay
        # attached to the text before them.
        if merged and piece and len(merged) + len(piece) > maxlen - 1:
            segments.extend(text_segmentate(merged, maxlen, finer_seps, strips))
            merged = ""
        merged += piece
        if position + 1 < len(pieces):
            merged += separator
    if merged:
        segments.extend(text_segmentate(merged, maxlen, finer_seps, strips))
    return segments


def truncate_sequences(maxlen, indices, *sequences):
    """Shortens lists in place until their total length is at most `maxlen`.

    One element at a time is removed from the currently longest list (the
    first one on ties), at that list's index. As in bert4keras, empty lists
    and None are set aside first, so a list of `indices` pairs with the
    lists that are not empty, in order.

    Args:
        maxlen: Maximum total length, at least 0; a float allows
            `floor(maxlen)` elements.
        indices: Position of every removal (e.g. -2 to keep a trailing
            [SEP], 1 to keep a leading [CLS]), or a list or tuple of
            positions, one per non-empty list.
        *sequences: Lists to shorten in place; None entries are ignored.

    Returns:
        The non-empty lists among `sequences` (the same objects), shortened.

    Raises:
        ValueError: If `maxlen` is negative, `indices` has fewer positions
            than there are non-empty lists, or a list becomes too short to
            remove an element at its index before the total fits (bert4keras
            raises IndexError there).
    """
    sequences = [sequence for sequence in sequences if sequence]
    if isinstance(indices, (list, tuple)) and len(indices) < len(sequences):
        raise ValueError(
            f"indices must give one position per non-empty sequence: "
            f"{len(indices)} positions for {len(sequences)} sequences"
        )
    if not isinstance(maxlen, numbers.Integral):
        # A total length n fits a float maxlen exactly when n <= floor(maxlen).
        maxlen = math.floor(maxlen)
    _truncate_sequences(maxlen, indices, *sequences)
    return sequences
