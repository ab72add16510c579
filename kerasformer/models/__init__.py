"""The bert4keras-compatible builder, the tasks and `load` (bert4keras' `models` path).

Architectures live in `kerasformer.architectures` and are re-exported here under
their bert4keras class names.
"""
from kerasformer.architectures.base import Transformer, TransformerModel
from kerasformer.architectures.bert import BERT
from kerasformer.architectures.gau_alpha import GAUAlpha
from kerasformer.architectures.gpt2 import GPT2
from kerasformer.architectures.roformer import RoFormer
from kerasformer.architectures.roformer_v2 import RoFormerV2
from kerasformer.architectures.univae import UniVAE
from kerasformer.loading import load
from kerasformer.models.builder import build_transformer_model
from kerasformer.models.causal_lm import CausalLanguageModel
from kerasformer.models.classifier import ClassifierHead, TextClassifier
from kerasformer.models.masked_lm import MaskedLanguageModel
from kerasformer.models.similarity import SimilarityModel
from kerasformer.models.univae import UniVAEModel

GAU_alpha = GAUAlpha  # the class name in ZhuiyiTechnology/GAU-alpha's models.py

# The task classes by the names families and presets use.
TASK_CLASSES = {task.task: task for task in (SimilarityModel, MaskedLanguageModel,
                                             CausalLanguageModel, TextClassifier, UniVAEModel)}
