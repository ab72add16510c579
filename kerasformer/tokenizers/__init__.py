"""Tokenizers compatible with bert4keras.

`from kerasformer.tokenizers import Tokenizer, SpTokenizer, load_vocab, save_vocab`
replaces `from bert4keras.tokenizers import Tokenizer, SpTokenizer, load_vocab,
save_vocab`. `SpTokenizer` needs the optional sentencepiece package
(`pip install "kerasformer[sentencepiece]"`), imported only when one is made.
"""
from kerasformer.tokenizers.base import TokenizerBase
from kerasformer.tokenizers.sp import CpmTokenizer, SpTokenizer
from kerasformer.tokenizers.wordpiece import Tokenizer, load_vocab, save_vocab

__all__ = ["Tokenizer", "SpTokenizer", "CpmTokenizer", "TokenizerBase", "load_vocab", "save_vocab"]
