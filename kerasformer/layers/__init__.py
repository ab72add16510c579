"""Keras layers shared by the model families (all registered for `.keras` saving)."""
# bert4keras redefined GlobalAveragePooling1D to take the masked mean; Keras 3's does.
from keras.layers import GlobalAveragePooling1D

from kerasformer.layers.activations import gelu_tanh, get_activation
from kerasformer.layers.attention import MultiHeadAttention, attention_normalize
from kerasformer.layers.crf import ConditionalRandomField
from kerasformer.layers.embeddings import PositionEmbedding, TokenEmbedding
from kerasformer.layers.feedforward import FeedForward
from kerasformer.layers.gau import GatedAttentionUnit
from kerasformer.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
from kerasformer.layers.loss import Loss
from kerasformer.layers.masks import (
    MaskedAdd,
    AttentionMask,
    UniAEMask,
    attention_mask,
    causal_mask,
    padding_mask,
    uniae_attention_mask,
    uniae_mask,
    unilm_mask,
)
from kerasformer.layers.normalization import LayerNormalization, ScaleOffset
from kerasformer.layers.pooling import FirstToken, GlobalMaxPooling1D
from kerasformer.layers.rotary import (
    SinusoidalPositionEmbedding,
    apply_rotary_position_embeddings,
    sinusoidal_embeddings,
)
from kerasformer.layers.sequence import Concatenate1D, align, sequence_masking
from kerasformer.layers.vmf import VonMisesFisherSampling, sample_vmf
