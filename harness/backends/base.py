"""The Backend seam: token log-probs, optional vocabulary statistics, generation, fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class BackendError(RuntimeError):
    """A model cannot be loaded or scored; the message names the model and the problem."""


@dataclass(frozen=True)
class Fingerprint:
    """What makes two scorings comparable: it keys the cache and goes into reports."""

    backend: str
    model: str
    revision: str | None
    weights_sha256: str | None
    dtype: str
    tokenizer_sha256: str | None
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        return cls(**d)

    def digest(self) -> str:
        """sha256 of the canonical JSON of every field."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def identity_digest(self) -> str:
        """sha256 over what identifies the model itself (not library versions or batch size).

        Used to derive the audit seed, so that the same model gets the same counterfactuals
        whatever machine scores it.
        """
        ident = {
            "model": self.model if self.weights_sha256 is None else None,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "tokenizer_sha256": self.tokenizer_sha256,
        }
        blob = json.dumps(ident, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class VocabStats:
    """Per scored position t: mean and variance of log p(z | x_<t) for z ~ p(. | x_<t).

    The expectation is under the model's own next-token distribution (Min-K%++'s mu_t and
    sigma_t^2, Zhang et al. 2024), not a uniform average over the vocabulary:
    mean_logp = sum_z p(z) log p(z) (minus the entropy), var_logp = sum_z p(z) (log p(z) - mean)^2.
    """

    mean_logp: np.ndarray
    var_logp: np.ndarray


@runtime_checkable
class Backend(Protocol):
    """A scoring/generation engine for one model. Implementations live beside this file."""

    name: str
    tokenizer: Any

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """log p(t_i | t_<i) for every token of each text (first token scored after BOS)."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """n continuations per prompt (greedy when temperature == 0)."""
        ...

    def fingerprint(self) -> Fingerprint:
        ...


def supports_vocab_stats(backend: Backend) -> bool:
    """True if the backend can give per-position vocabulary statistics (for Min-K%++)."""
    return callable(getattr(backend, "vocab_stats", None))
