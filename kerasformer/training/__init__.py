"""Training machinery that is not an optimizer: the SimBERT / RoFormer-Sim objectives
(`SimilarityTraining`) and masked-LM pre-training with their batches, micro-batching
with the big batch's gradient (`MicroBatched`), also for losses over the whole batch,
LoRA (`enable_lora`, `merge_lora`), BERT-of-Theseus compression of a classifier (`Theseus`)
and `TrainingLog` (step lines, metrics.jsonl, curves.png)."""
from kerasformer.training.log import TrainingLog
from kerasformer.training.lora import enable_lora, lora_layers, merge_lora
from kerasformer.training.losses import (
    cosent,
    in_batch_contrastive,
    pair_classification,
    seq2seq_cross_entropy,
    similarity_distillation,
)
from kerasformer.training.micro_batches import MicroBatched
from kerasformer.training.pretraining import masked_lm_cross_entropy, mlm_batches
from kerasformer.training.replay import replayable, seed_generators
from kerasformer.training.similarity import OBJECTIVES, SimilarityTraining, similarity_batches
from kerasformer.training.theseus import (
    ConstantReplacement,
    LinearReplacement,
    ReplacementSchedule,
    Theseus,
)

__all__ = ["ConstantReplacement", "LinearReplacement", "MicroBatched", "OBJECTIVES",
           "ReplacementSchedule", "SimilarityTraining", "Theseus", "TrainingLog", "cosent",
           "enable_lora", "in_batch_contrastive", "lora_layers", "masked_lm_cross_entropy",
           "merge_lora", "mlm_batches",
           "pair_classification", "replayable", "seed_generators", "seq2seq_cross_entropy",
           "similarity_batches", "similarity_distillation"]
