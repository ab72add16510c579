"""Training machinery that is not an optimizer: micro-batching with the big batch's
gradient (`MicroBatched`), also for losses over the whole batch."""
from kerasformer.training.losses import in_batch_contrastive, seq2seq_cross_entropy
from kerasformer.training.micro_batches import MicroBatched
from kerasformer.training.replay import replayable, seed_generators

__all__ = ["MicroBatched", "in_batch_contrastive", "replayable", "seed_generators",
           "seq2seq_cross_entropy"]
