"""Model families, the bert4keras-compatible builder, tasks and `load`."""
from kerasformer.models.base import Transformer
from kerasformer.models.bert import BERT
from kerasformer.models.builder import build_transformer_model
from kerasformer.models.gau_alpha import GAUAlpha
from kerasformer.models.masked_lm import MaskedLanguageModel
from kerasformer.models.registry import load
from kerasformer.models.roformer import RoFormer
from kerasformer.models.roformer_v2 import RoFormerV2
from kerasformer.models.similarity import SimilarityModel
