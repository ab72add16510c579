"""SentencePiece tokenizer that produces the same pieces and ids as bert4keras 0.11.5.

`SpTokenizer(sp_model_path, token_start=..., token_end=..., pre_tokenize=...,
token_translate=...)` takes the arguments of bert4keras' `SpTokenizer` and gives the
same results, so code written for `bert4keras.tokenizers.SpTokenizer` (CPM, mT5, T5)
works after changing the import. The tokenization itself is sentencepiece's; this
class adds what bert4keras adds around it: start and end tokens, `token_translate`,
`maxlen` truncation, `encode` of text pairs into token and segment ids, and decoding
that tolerates ids past the vocabulary.

sentencepiece is an optional dependency (`pip install "kerasformer[sentencepiece]"`),
imported only when an `SpTokenizer` is made; importing this module needs the
standard library only and never imports keras.
"""
import operator
import os

from kerasformer.tokenizers.base import TokenizerBase, _check_text

__all__ = ["SpTokenizer", "CpmTokenizer"]

_INSTALL_HINT = 'pip install "kerasformer[sentencepiece]"'


def _import_sentencepiece():
    """The sentencepiece module, or an ImportError that says how to install it."""
    try:
        import sentencepiece
    except ImportError as error:
        raise ImportError(
            f"SpTokenizer needs the sentencepiece package, which is not installed "
            f"({error}): {_INSTALL_HINT}"
        ) from None
    return sentencepiece


class SpTokenizer(TokenizerBase):
    """SentencePiece tokenizer, id-compatible with bert4keras' `SpTokenizer`.

    Tokens are the model's pieces ('▁' marks a word start) and ids are the model's
    ids. The loaded `sentencepiece.SentencePieceProcessor` is `sp_model`.

    Special tokens follow bert4keras: the padding and unknown tokens are the model's
    own pieces (e.g. '<pad>', '<unk>'); the mask token stays '[MASK]'. For each of
    pad, unk, mask, start and end whose token is a str, `_token_<role>_id` (and the
    `*_id` property) is the model's id for it -- which, as sentencepiece maps every
    unknown piece to the unknown id, is the unknown id for a token the model lacks:
    with the default `token_start='[CLS]'` and `token_end='[SEP]'` both ids are the
    unknown id. Models of the T5 family are used with `token_start=None,
    token_end='</s>'`, CPM with `token_start=None, token_end=None`.

    Attributes read by bert4keras code are kept: `sp_model`, `_vocab_size`,
    `_token_pad`, `_token_unk`, `_token_mask`, `_token_start`, `_token_end`, the
    `_token_<role>_id` above, `_token_translate` and `_token_translate_inv`. Treat
    them as read-only.

    Args:
        sp_model_path: Path of a SentencePiece model file (`*.model`).
        token_start: Token put before every text (None for none).
        token_end: Token put after every text (None for none).
        pre_tokenize: Optional function text -> iterable of str; its pieces are
            joined with spaces and the result is tokenized instead of the text
            (CPM segments words with jieba this way).
        token_translate: Optional mapping token -> replacement applied to the
            tokens of `tokenize` (a falsy replacement is ignored); `decode` maps
            the replacements back first.

    Raises:
        ImportError: If sentencepiece is not installed.
        FileNotFoundError: If `sp_model_path` does not exist.
        TypeError: If `sp_model_path` is not a path.
    """

    def __init__(
        self,
        sp_model_path,
        *,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        super().__init__(
            token_start=token_start,
            token_end=token_end,
            pre_tokenize=pre_tokenize,
            token_translate=token_translate,
        )
        sentencepiece = _import_sentencepiece()
        if not isinstance(sp_model_path, (str, os.PathLike)):
            raise TypeError(
                "sp_model_path must be the path of a SentencePiece model, got "
                f"{type(sp_model_path).__name__}"
            )
        sp_model_path = os.fspath(sp_model_path)
        if not os.path.isfile(sp_model_path):
            raise FileNotFoundError(f"no SentencePiece model at {sp_model_path}")
        self.sp_model = sentencepiece.SentencePieceProcessor()
        self.sp_model.Load(sp_model_path)
        self._vocab_size = self.sp_model.get_piece_size()

        # A model trained without a pad piece has pad_id -1: bert4keras fails on it,
        # here the tokenizer has no padding token (pad_id None).
        pad_id = self.sp_model.pad_id()
        self._token_pad = self.sp_model.id_to_piece(pad_id) if pad_id >= 0 else None
        self._token_unk = self.sp_model.id_to_piece(self.sp_model.unk_id())
        for role in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, f"_token_{role}")
            if isinstance(token, str):
                setattr(self, f"_token_{role}_id", self.sp_model.piece_to_id(token))

    # ------------------------------------------------------------ tokenizing

    def _tokenize(self, text):
        """The model's pieces of `text` (after `pre_tokenize`, if given).

        Raises:
            TypeError: If `text` is not a str.
        """
        _check_text(text)
        if self._pre_tokenize is not None:
            text = " ".join(self._pre_tokenize(text))
        return self.sp_model.encode_as_pieces(text)

    # ------------------------------------------------------------- encoding

    def token_to_id(self, token):
        """Id of `token`; the unknown id for a token that is not a piece.

        Raises:
            TypeError: If `token` is not a str.
        """
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, got {type(token).__name__}")
        return self.sp_model.piece_to_id(token)

    def id_to_token(self, i):
        """Piece of id `i`; '' for ids at or past the vocabulary size.

        Raises:
            TypeError: If `i` is not an integer.
            IndexError: If `i` is negative.
        """
        i = operator.index(i)
        if i >= self._vocab_size:
            return ""
        if i < 0:
            raise IndexError(f"token id {i} is negative")
        return self.sp_model.id_to_piece(i)

    # ------------------------------------------------------------- decoding

    def decode(self, ids):
        """Text of `ids`, as sentencepiece decodes their pieces.

        Replacements made by `token_translate` are mapped back first. Control
        pieces (such as '<pad>' and '</s>') and ids past the vocabulary decode
        to nothing, the unknown piece to ' ⁇ '.

        Raises:
            TypeError: If an id is not an integer.
            IndexError: If an id is negative.
        """
        inverse = self._token_translate_inv
        tokens = [inverse.get(token) or token for token in self.ids_to_tokens(ids)]
        return self.sp_model.decode_pieces(tokens)

    def _is_special(self, i):
        """Whether id `i` is a control, unknown or unused piece.

        Raises:
            IndexError: If `i` is not an id of the model.
        """
        sp_model = self.sp_model
        return sp_model.is_control(i) or sp_model.is_unknown(i) or sp_model.is_unused(i)

    def _is_decodable(self, i):
        """Whether id `i` should be shown when decoding: an id of the model that
        is not special (see `_is_special`)."""
        return i < self._vocab_size and not self._is_special(i)


# CPM writes a space inside a word as ▂ and a newline as ▃ (both pieces of its model).
_CPM_SPACES = str.maketrans(" \n", "\u2582\u2583")
_CPM_TEXT = str.maketrans({" ": "", "\u2582": " ", "\u2583": "\n"})


class CpmTokenizer(SpTokenizer):
    """CPM-LM's tokenizer, as TsinghuaAI's CPM-Generate tokenizes (its
    `GPT2Tokenizer`): the text is cut into words with jieba, a space or newline inside a
    word becomes ▂ or ▃, the words are joined with spaces and cut into the model's
    SentencePiece pieces; decoding drops the spaces between pieces and turns ▂ and ▃
    back into spaces and newlines. No start or end token is added: a prompt is
    continued as it is.

    Args:
        sp_model_path: CPM's `chinese_vocab.model` (`spiece.model` in the Hugging Face
            repository).

    Attributes:
        eod_id: id of `<eod>`, the end of a document (None if the model lacks it).
        newline_id: id of `▃`, CPM's newline, which also ends a generated line (None
            if the model lacks it).

    Raises:
        ImportError: without jieba or sentencepiece.
    """

    def __init__(self, sp_model_path):
        from kerasformer.tokenizers.recipes import import_jieba

        jieba = import_jieba("CPM's tokenizer cuts words")

        def words(text):
            return [word.translate(_CPM_SPACES) for word in jieba.cut(text, cut_all=False)]

        super().__init__(sp_model_path, token_start=None, token_end=None, pre_tokenize=words)
        self.eod_id = self._piece_id("<eod>")
        self.newline_id = self._piece_id("\u2583")

    def _piece_id(self, piece):
        """The id of `piece`, or None where the model lacks it (sentencepiece would
        give the unknown id, which would end every generation at an unknown word)."""
        i = self.sp_model.piece_to_id(piece)
        return None if i == self.sp_model.unk_id() else i

    def decode(self, ids):
        """The text of `ids`, spaces and newlines restored (see the class)."""
        return super().decode(ids).translate(_CPM_TEXT)
