"""Tokenizers from recipes: the `tokenizer` entry of a family or manifest."""
import re

from kerasformer.tokenizers.wordpiece import Tokenizer, load_vocab

# A vocabulary is word-level (WoBERT, word RoFormer) when this share of its tokens are
# whole words of two or more CJK characters; character vocabularies have almost none.
WORD_VOCABULARY_SHARE = 0.1
_CJK_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}$")


def is_word_vocabulary(vocab):
    """Whether a vocabulary (path or token list/dict) holds Chinese words."""
    tokens = list(load_vocab(vocab) if isinstance(vocab, str) or hasattr(vocab, "__fspath__") else vocab)
    if not tokens:
        return False
    words = sum(1 for token in tokens if _CJK_WORD.match(token))
    return words >= WORD_VOCABULARY_SHARE * len(tokens)


# The recipes' tokenizer types and the name of the file each reads (`vocab` in a
# recipe), as presets store it.
TYPES = ("wordpiece", "cpm")
FILE_NAMES = {"wordpiece": "vocab.txt", "cpm": "spiece.model"}


def tokenizer_type(recipe):
    """The recipe's tokenizer type, checked."""
    kind = recipe.get("type", "wordpiece")
    if kind not in TYPES:
        raise ValueError(f"kerasformer has no {kind!r} tokenizer: the types are {TYPES}")
    return kind


def make_tokenizer(recipe):
    """The tokenizer of a recipe: `{"type": ..., "vocab": path, ...}`.

    "wordpiece" (the default): bert4keras' `Tokenizer` of the vocabulary file
    `vocab`, with `do_lower_case` and `pre_tokenize` — None, "jieba" (segment words
    with jieba first, as bert4keras' word-level models were trained), or "auto"
    (jieba when the vocabulary is word-level).
    "cpm": `CpmTokenizer` of the SentencePiece model `vocab` (CPM-LM's
    `chinese_vocab.model`, `spiece.model` on the Hub).
    """
    if tokenizer_type(recipe) == "cpm":
        from kerasformer.tokenizers.sp import CpmTokenizer

        return CpmTokenizer(recipe["vocab"])
    segment = None
    if resolve_pre_tokenize(recipe) == "jieba":
        import_jieba("this checkpoint's tokenizer pre-segments words")
        segment = _jieba_words
    return Tokenizer(recipe["vocab"], do_lower_case=recipe.get("do_lower_case", True),
                     pre_tokenize=segment)


def import_jieba(why):
    """The jieba module, its start-up messages silenced, or an ImportError that says
    `why` it is needed ("... with jieba") and how to install it."""
    try:
        import jieba
    except ImportError:
        raise ImportError(f"{why} with jieba: pip install jieba") from None
    jieba.setLogLevel(60)
    return jieba


def _jieba_words(text):
    import jieba  # imported (and checked) by make_tokenizer

    return jieba.cut(text, HMM=False)


def resolve_pre_tokenize(recipe):
    """The recipe's `pre_tokenize` with "auto" decided by its vocabulary."""
    pre_tokenize = recipe.get("pre_tokenize")
    if pre_tokenize == "auto":
        return "jieba" if is_word_vocabulary(recipe["vocab"]) else None
    if pre_tokenize not in (None, "jieba"):
        raise ValueError(f"unknown pre_tokenize {pre_tokenize!r}: use 'jieba', 'auto' or none")
    return pre_tokenize
