"""Canary generators, canary-set files with commitments, and corpus injection."""

from canaries.canary_set import Canary, CanarySet, CanarySetError, Plan, load_canary_set
from canaries.generators import GeneratorSpec, draw_canaries

__all__ = [
    "Canary",
    "CanarySet",
    "CanarySetError",
    "GeneratorSpec",
    "Plan",
    "draw_canaries",
    "load_canary_set",
]
