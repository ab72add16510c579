"""Model families and the bert4keras-compatible builder."""
from kerasformer.models.base import Transformer
from kerasformer.models.bert import BERT
from kerasformer.models.builder import build_transformer_model
from kerasformer.models.roformer import RoFormer
from kerasformer.models.gau_alpha import GAUAlpha
from kerasformer.models.roformer_v2 import RoFormerV2
