"""The one scoring path: texts -> backend log-probs (shuffled together) -> named scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from canaries.drbg import HashDRBG
from harness.backends.base import Backend, VocabStats, supports_vocab_stats
from harness.scores import ScoreError, ScoreInputs, compute_score, get_score


@dataclass(frozen=True)
class ScoringRequest:
    """Which scores to compute, with options per score (e.g. {"min_k": {"k": 0.2}})."""

    scores: tuple[str, ...]
    options: dict[str, dict[str, float]]


def logprobs_shuffled(backend: Backend, texts: Sequence[str], seed: bytes) -> list[np.ndarray]:
    """Score texts in a seeded random order, so batch composition is blind to identity."""
    order = list(range(len(texts)))
    HashDRBG(seed, "scoring-order").shuffle(order)
    scored = backend.token_logprobs([texts[i] for i in order])
    if len(scored) != len(texts):
        raise RuntimeError(f"backend returned {len(scored)} results for {len(texts)} texts")
    out: list[np.ndarray] = [np.empty(0)] * len(texts)
    for pos, i in enumerate(order):
        out[i] = scored[pos]
    return out


def _vocab_stats_shuffled(backend: Backend, texts: Sequence[str], seed: bytes) -> list[VocabStats]:
    """Vocabulary statistics (Min-K%++) in the same seeded order as the log-probs."""
    order = list(range(len(texts)))
    HashDRBG(seed, "scoring-order").shuffle(order)
    got = backend.vocab_stats([texts[i] for i in order])  # type: ignore[attr-defined]
    if len(got) != len(texts):
        raise RuntimeError(f"backend returned {len(got)} vocab stats for {len(texts)} texts")
    out: list[VocabStats | None] = [None] * len(texts)
    for pos, i in enumerate(order):
        out[i] = got[pos]
    return [v for v in out if v is not None]


def score_texts(
    texts: Sequence[str],
    backend: Backend,
    request: ScoringRequest,
    seed: bytes,
    reference: Backend | None = None,
) -> list[dict[str, float]]:
    """Compute every requested score for every text through one identical call path."""
    for name in request.scores:
        if "reference" in get_score(name).needs and reference is None:
            raise ScoreError(f"score {name!r} needs a reference model (--reference)")
        if "vocab_stats" in get_score(name).needs and not supports_vocab_stats(backend):
            raise ScoreError(
                f"score {name!r} needs per-position vocabulary statistics, which the "
                f"{backend.name} backend does not provide (use the hf backend)"
            )
    target_lp = logprobs_shuffled(backend, texts, seed)
    ref_lp = logprobs_shuffled(reference, texts, seed) if reference is not None else None
    vstats = None
    if any("vocab_stats" in get_score(n).needs for n in request.scores):
        vstats = _vocab_stats_shuffled(backend, texts, seed)
    rows = []
    for i, text in enumerate(texts):
        x = ScoreInputs(
            text=text,
            logprobs=target_lp[i],
            ref_logprobs=ref_lp[i] if ref_lp is not None else None,
            vocab_mean=vstats[i].mean_logp if vstats is not None else None,
            vocab_var=vstats[i].var_logp if vstats is not None else None,
        )
        rows.append(
            {name: compute_score(name, x, **request.options.get(name, {})) for name in request.scores}
        )
    return rows
