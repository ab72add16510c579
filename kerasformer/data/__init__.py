"""Data for SimBERT-style training and evaluation: readers for the sentence-pair
and corpus files in circulation, and bert4keras' text snippets.

`read_pairs` reads tab-separated, JSON-lines, SimBERT and CSV pair files into
`Pair` / `Group` records; `read_texts` reads plain-sentence corpora;
`text_segmentate` and `truncate_sequences` behave as in `bert4keras.snippets`.
The package uses the standard library only and never imports keras.
"""
from kerasformer.data.readers import DataFormatError, Group, Pair, read_pairs, read_texts
from kerasformer.data.text import text_segmentate, truncate_sequences

__all__ = [
    "DataFormatError", "Group", "Pair", "read_pairs", "read_texts",
    "text_segmentate", "truncate_sequences",
]
