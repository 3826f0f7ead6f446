"""tdp-harness: training-data proofs for language models with exact false-positive bounds."""

__version__ = "0.1.0"
