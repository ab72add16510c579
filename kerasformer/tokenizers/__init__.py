"""Tokenizers compatible with bert4keras.

`from kerasformer.tokenizers import Tokenizer, load_vocab, save_vocab` replaces
`from bert4keras.tokenizers import Tokenizer, load_vocab, save_vocab`.
"""
from kerasformer.tokenizers.wordpiece import Tokenizer, load_vocab, save_vocab

__all__ = ["Tokenizer", "load_vocab", "save_vocab"]
