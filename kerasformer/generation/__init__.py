"""Cached, compiled autoregressive decoding shared by every generative model."""
from kerasformer.generation.decoder import AutoRegressiveDecoder
