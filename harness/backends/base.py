"""The Backend seam: token log-probs, optional vocabulary statistics, generation, fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: the identity scheme of `ModelIdentity`: digests of the stored tensors and canonical tokenizer
IDENTITY_SCHEME = "tensors-v1"


class BackendError(RuntimeError):
    """A model cannot be loaded or scored; the message names the model and the problem."""


@dataclass(frozen=True)
class ModelIdentity:
    """Digests of the stored weight tensors and of the tokenizer's canonical content."""

    weights: str | None
    tokenizer: str | None
    scheme: str = IDENTITY_SCHEME

    def digest(self) -> str:
        """sha256 of the canonical JSON of the fields (the scheme included)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> ModelIdentity:
        if not isinstance(d, dict) or not {"weights", "tokenizer"} <= set(d) <= {
            "weights", "tokenizer", "scheme"
        }:
            raise BackendError(f"malformed model identity {d!r}: needs weights, tokenizer, scheme")
        values = (d["weights"], d["tokenizer"], d.get("scheme", IDENTITY_SCHEME))
        if not all(v is None or isinstance(v, str) for v in values[:2]) or not isinstance(
            values[2], str
        ):
            raise BackendError(f"malformed model identity {d!r}: fields must be strings")
        return cls(*values)


@dataclass(frozen=True)
class Fingerprint:
    """What makes two scorings comparable: it keys the cache and goes into reports.

    `identity_scheme` names how `weights_sha256` and `tokenizer_sha256` were computed; when set
    (e.g. "tensors-v1": digests of the stored tensors and of the tokenizer's canonical content,
    see harness/backends/identity.py) the model identity is made of those two digests alone.
    Fingerprints written before it existed lack the field and keep their old identity rule.
    """

    backend: str
    model: str
    revision: str | None
    weights_sha256: str | None
    dtype: str
    tokenizer_sha256: str | None
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    identity_scheme: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["identity_scheme"] is None:  # old fingerprints round-trip to the same dict
            del d["identity_scheme"]
        return d

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
        whatever machine scores it. With an identity scheme: `ModelIdentity.digest()` of the
        weights and tokenizer digests. Without (old fingerprints, servers that publish no
        identity): the old rule, which also names the model (or its revision) when no weights
        digest is known.
        """
        ident = self.model_identity()
        if ident is not None:
            return ident.digest()
        legacy = {
            "model": self.model if self.weights_sha256 is None else None,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "tokenizer_sha256": self.tokenizer_sha256,
        }
        blob = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def model_identity(self) -> ModelIdentity | None:
        """The content identity (weights and tokenizer digests), None for old fingerprints."""
        if self.identity_scheme is None:
            return None
        return ModelIdentity(self.weights_sha256, self.tokenizer_sha256, self.identity_scheme)


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
