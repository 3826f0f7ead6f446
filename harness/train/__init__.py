"""Controlled training: tiny causal LMs from scratch (CPU) or fine-tuning (GPU) with accelerate;
proof-of-learning logging on request."""

from harness.train.corpus import stdlib_docstrings
from harness.train.pol import PoLOptions
from harness.train.tokenizer import train_tokenizer
from harness.train.trainer import TrainConfig, TrainResult, train_causal_lm

__all__ = [
    "PoLOptions", "TrainConfig", "TrainResult", "stdlib_docstrings", "train_causal_lm",
    "train_tokenizer",
]
