"""Model sizes for training from scratch: the shapes of the published checkpoints.

`tiny` is SimBERT tiny (4 layers, 312 wide), `small` RoFormer(-Sim) small (6 × 384),
`base` the BERT-base shape (12 × 768). GAU-α stacks two gated attention units per
Transformer layer (its base checkpoint has 24 of 768 width) with an expansion of twice
the width and a shared query/key of 128 dimensions.
"""

# size: (layers, hidden size, attention heads, feed-forward size)
SIZES = {
    "tiny": (4, 312, 12, 1248),
    "small": (6, 384, 6, 1536),
    "base": (12, 768, 12, 3072),
}

# Each architecture's activation, as in its published checkpoints.
ACTIVATIONS = {"bert": "gelu", "roformer": "gelu", "roformer_v2": "relu", "gau_alpha": "swish"}


def size_config(size, architecture, vocab_size, max_position=512):
    """A `bert_config.json`-style dict of a model of `size` for `architecture`.

    Args:
        size: "tiny", "small" or "base".
        architecture: "bert", "roformer", "roformer_v2" or "gau_alpha".
        vocab_size: int, the tokenizer's vocabulary size.
        max_position: int, the longest sequence (BERT's absolute positions; kept
            in the config of the rotary architectures for `max_positions()`).

    Returns:
        dict, for `build_transformer_model(config_path=...)` once written as JSON,
        or for `kerasformer.models.builder.make_transformer(model, config)`.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: use one of {', '.join(SIZES)}")
    if architecture not in ACTIVATIONS:
        raise ValueError(
            f"no sizes for architecture {architecture!r}: use one of {', '.join(ACTIVATIONS)}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 6:
        raise ValueError(f"vocab_size must be an integer of at least 6, got {vocab_size!r}")
    layers, hidden, heads, intermediate = SIZES[size]
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": ACTIVATIONS[architecture],
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_position,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }
    if architecture == "gau_alpha":
        config.update(num_hidden_layers=2 * layers, num_attention_heads=1,
                      intermediate_size=2 * hidden, attention_key_size=min(128, hidden // 2))
    return config
