"""The one scoring path: texts -> backend log-probs (shuffled together) -> named scores.

Log-probs, and Min-K%++'s vocabulary statistics, are computed in chunks of the shuffled order.
With a :class:`~harness.cache.ScoreCache` each chunk is stored as soon as it is scored, so a
killed run loses at most the chunks in flight; the rerun reads what is stored and scores only
the rest. Chunk boundaries are a function of the shuffled order and the chunk size alone, so a
resumed (or Ray-sharded) run hands the backend the very same batches as an uninterrupted one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from canaries.drbg import HashDRBG
from harness.backends.base import Backend, VocabStats, supports_vocab_stats
from harness.cache import (
    DEFAULT_CHUNK_TEXTS,
    LOGPROBS,
    VOCAB_STATS,
    CacheError,
    CacheStats,
    ScoreCache,
    text_key,
)
from harness.stats.scores import ScoreError, ScoreInputs, compute_score, get_score


@dataclass(frozen=True)
class ScoringRequest:
    """Which scores to compute, with options per score (e.g. {"min_k": {"k": 0.2}})."""

    scores: tuple[str, ...]
    options: dict[str, dict[str, float]]


def scoring_order(n: int, seed: bytes) -> list[int]:
    """The seeded random order in which texts are scored (blind to which is a canary)."""
    order = list(range(n))
    HashDRBG(seed, "scoring-order").shuffle(order)
    return order


def shuffled_chunks(texts: Sequence[str], seed: bytes, chunk_texts: int) -> list[list[int]]:
    """Indices of the distinct texts in seeded random order, cut into chunks of `chunk_texts`.

    The order depends only on the seed and the number of texts, never on which text is a
    canary, so batch composition is blind to identity. A repeated text is scored once.
    """
    order = scoring_order(len(texts), seed)
    seen: set[str] = set()
    unique = []
    for i in order:
        if texts[i] not in seen:
            seen.add(texts[i])
            unique.append(i)
    return [unique[k : k + chunk_texts] for k in range(0, len(unique), chunk_texts)]


#: computes one kind of per-text array for a list of texts (one backend call per chunk)
ChunkFn = Callable[[list[str]], list[np.ndarray]]


def _score_chunks(
    backend: Backend, texts: Sequence[str], chunks: list[list[int]], compute: ChunkFn | None
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(chunk number, arrays) as chunks complete: in parallel where the backend can shard.

    `compute` None means log-probs, the one kind a sharding backend (`map_chunks`) serves.
    """
    jobs = [(n, [texts[i] for i in chunk]) for n, chunk in enumerate(chunks)]
    map_chunks = getattr(backend, "map_chunks", None)
    if compute is None and callable(map_chunks):
        yield from map_chunks(jobs)
        return
    for n, chunk_texts in jobs:
        yield n, (compute or backend.token_logprobs)(chunk_texts)


def _cached_shuffled(
    backend: Backend,
    texts: Sequence[str],
    seed: bytes,
    cache: ScoreCache | None,
    label: str,
    kind: str = LOGPROBS,
    compute: ChunkFn | None = None,
) -> list[np.ndarray]:
    """One array of `kind` per text, scored chunk by chunk in the seeded order; each chunk is
    stored as soon as it is scored and read back instead of scored on the next run."""
    chunk_texts = cache.chunk_texts if cache is not None else DEFAULT_CHUNK_TEXTS
    chunks = shuffled_chunks(texts, seed, chunk_texts)
    keys = [text_key(t) for t in texts]
    got: dict[str, np.ndarray] = {}
    stats = None
    if cache is not None:
        fingerprint = backend.fingerprint()
        stats = CacheStats(label, fingerprint.digest(), sum(len(c) for c in chunks), kind)
        got, stats.corrupt_files = cache.load(fingerprint, keys, kind)
        stats.hits = sum(1 for chunk in chunks for i in chunk if keys[i] in got)
        cache.stats.append(stats)
    todo = [[i for i in chunk if keys[i] not in got] for chunk in chunks]
    todo = [chunk for chunk in todo if chunk]
    for n, scored in _score_chunks(backend, texts, todo, compute):
        if len(scored) != len(todo[n]):
            raise RuntimeError(f"backend returned {len(scored)} results for {len(todo[n])} texts")
        fresh = {keys[i]: np.asarray(a) for i, a in zip(todo[n], scored, strict=True)}
        if cache is not None and stats is not None:
            cache.store(fingerprint, fresh, kind)
            stats.scored += len(fresh)
            stats.chunks_written += 1
        got.update(fresh)
    if stats is not None:
        print(f"score cache {cache.root}: {stats.line()}", file=sys.stderr, flush=True)
    return [got[k] for k in keys]


def logprobs_shuffled(
    backend: Backend,
    texts: Sequence[str],
    seed: bytes,
    cache: ScoreCache | None = None,
    label: str = "target",
) -> list[np.ndarray]:
    """Per-token log-probs of every text, scored chunk by chunk in a seeded random order.

    Args:
        backend: the model. If it has ``map_chunks`` (e.g. the Ray backend), chunks are
            scored in parallel and arrive in completion order.
        texts: texts to score; duplicates are scored once.
        seed: fixes the scoring order (the audit seed).
        cache: where to read finished chunks from and write new ones to, as they complete.
        label: names this pass in the cache statistics ("target", "reference").
    """
    return _cached_shuffled(backend, texts, seed, cache, label)


def pack_vocab_stats(v: VocabStats) -> np.ndarray:
    """One cacheable array per text: the means, then the variances."""
    return np.concatenate([np.asarray(v.mean_logp), np.asarray(v.var_logp)])


def unpack_vocab_stats(a: np.ndarray) -> VocabStats:
    """Inverse of `pack_vocab_stats`."""
    if a.ndim != 1 or a.size % 2:
        raise CacheError(f"a cached vocab-stats entry has {a.size} values; expected an even count")
    half = a.size // 2
    return VocabStats(a[:half], a[half:])


def vocab_stats_shuffled(
    backend: Backend,
    texts: Sequence[str],
    seed: bytes,
    cache: ScoreCache | None = None,
    label: str = "target",
) -> list[VocabStats]:
    """Vocabulary statistics (Min-K%++), chunked, ordered and cached exactly like log-probs."""

    def compute(chunk: list[str]) -> list[np.ndarray]:
        return [pack_vocab_stats(v) for v in backend.vocab_stats(chunk)]  # type: ignore[attr-defined]

    packed = _cached_shuffled(backend, texts, seed, cache, label, VOCAB_STATS, compute)
    return [unpack_vocab_stats(a) for a in packed]


def score_texts(
    texts: Sequence[str],
    backend: Backend,
    request: ScoringRequest,
    seed: bytes,
    reference: Backend | None = None,
    cache: ScoreCache | None = None,
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
    target_lp = logprobs_shuffled(backend, texts, seed, cache, "target")
    ref_lp = (
        logprobs_shuffled(reference, texts, seed, cache, "reference")
        if reference is not None
        else None
    )
    vstats = None
    if any("vocab_stats" in get_score(n).needs for n in request.scores):
        vstats = vocab_stats_shuffled(backend, texts, seed, cache, "target")
    rows = []
    for i, text in enumerate(texts):
        x = ScoreInputs(
            text=text,
            logprobs=target_lp[i],
            ref_logprobs=ref_lp[i] if ref_lp is not None else None,
            vocab_mean=vstats[i].mean_logp if vstats is not None else None,
            vocab_var=vstats[i].var_logp if vstats is not None else None,
        )
        opts = request.options
        rows.append({name: compute_score(name, x, **opts.get(name, {})) for name in request.scores})
    return rows
