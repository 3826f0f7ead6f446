"""Shadow models as a canary score, only where that keeps the rank test exact.

A rank test of K canaries against M counterfactuals is exact for any score function that is
fixed independently of which pool items are canaries (STATISTICS.md, Lemma 1 of Zhang et al.).
A score calibrated by shadow models is such a function only if the shadow models were fixed
before the canaries were assigned and their training data was not chosen using the pool. Under
protocol v2 the pool is derived from the pinned beacon round, so both hold when the shadow set
(its manifest digest, which fixes every model's identity and training half) carries an RFC 3161
timestamp earlier than that round, and no canary-set pool item is among the shadow set's texts.
`check_shadow_fixed` enforces exactly that, and `shadow_canary_test` refuses to run without it.

Allowed scores are the attacks that need no IN sample (no shadow model ever saw a canary):
`ref_calibration` (target mean log-prob minus its mean over the shadow models) and
`lira_offline` (its logit-scaled, variance-normalised form).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np

from canaries.canary_set import CanarySet
from harness.backends import Backend
from harness.cache import ScoreCache
from harness.mi.attacks import run_attacks
from harness.mi.observe import observe
from harness.mi.shadow import ShadowError, ShadowSet, save_manifest
from harness.protocol.timestamp import TimestampError, TimestampInfo, TimestampRecord, verify_record
from harness.stats.plan import run_statistic
from harness.stats.result import TestResult

CANARY_SCORES = ("ref_calibration", "lira_offline")


def add_shadow_timestamp(s: ShadowSet, record: TimestampRecord) -> tuple[ShadowSet, TimestampInfo]:
    """Verify a timestamp over the (complete) set's digest and store it in the manifest."""
    info = verify_record(record, s.digest())
    if record.to_dict() not in s.timestamps:
        s = replace(s, timestamps=(*s.timestamps, record.to_dict()))
        save_manifest(s)
    return s, info


def fixed_by(s: ShadowSet, trusted_roots_pem: bytes | None = None) -> TimestampInfo | None:
    """The verified timestamp proving the earliest time the set existed (None: no valid one)."""
    digest, best = s.digest(), None
    for d in s.timestamps:
        try:
            info = verify_record(TimestampRecord.from_dict(d), digest, trusted_roots_pem)
        except TimestampError:
            continue
        if best is None or info.latest < best.latest:
            best = info
    return best


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")


def check_shadow_fixed(cs: CanarySet, s: ShadowSet, trusted_roots_pem: bytes | None = None) -> str:
    """Refuse (ShadowError) unless `s` was provably fixed before `cs`'s canaries were assigned
    and shares no text with its pool; returns what was established, in one line."""
    from harness.protocol.pool import pinned_round_time

    if cs.version != 2 or cs.assignment is None:
        raise ShadowError("shadow-calibrated canary scores need an assigned protocol-v2 canary "
                          "set: only a beacon round shows when the canaries were chosen")
    deadline = pinned_round_time(cs)
    info = fixed_by(s, trusted_roots_pem)
    if info is None:
        raise ShadowError(f"shadow set {s.root} carries no valid timestamp over its digest "
                          f"{s.digest()[:16]}...; without one nothing shows it was fixed before "
                          f"beacon round {cs.beacon['round']} ({_iso(deadline)})")
    if info.latest.timestamp() >= deadline:
        raise ShadowError(f"shadow set {s.root} is timestamped {info.latest.isoformat()}, not "
                          f"before beacon round {cs.beacon['round']} ({_iso(deadline)}): its "
                          "models could depend on which items are canaries")
    pool = {hashlib.sha256(c.text.encode()).digest() for c in (*cs.canaries, *cs.counterfactuals)}
    mine = {hashlib.sha256(t.encode()).digest() for t in (*s.pool, *s.population)}
    if pool & mine:
        raise ShadowError(f"{len(pool & mine)} items of the canary set's pool are among the "
                          f"shadow set's texts: its training data was chosen using the pool")
    local = "local test" in info.tsa_subject.lower()
    return (f"shadow set {s.digest()[:16]}... existed by {info.latest.isoformat()} "
            f"(RFC 3161, {info.tsa_subject!r}{', a LOCAL TEST TSA' if local else ''}), before "
            f"beacon round {cs.beacon['round']} ({_iso(deadline)}); it shares no text with "
            "the pool")


def shadow_canary_test(
    cs: CanarySet,
    target: Backend,
    s: ShadowSet,
    seed: bytes,
    score: str = "ref_calibration",
    cache: ScoreCache | None = None,
    trusted_roots_pem: bytes | None = None,
) -> TestResult:
    """The plan's rank statistic on a shadow-calibrated score: exact, once the check passes."""
    if score not in CANARY_SCORES:
        raise ShadowError(f"canary score {score!r} is not one of {CANARY_SCORES} (scores that "
                          "need an IN sample cannot be computed for canaries)")
    established = check_shadow_fixed(cs, s, trusted_roots_pem)
    texts = [c.text for c in cs.canaries] + [c.text for c in cs.counterfactuals]
    obs = observe(texts, target, s, seed, cache, population=False)
    values = run_attacks(obs, [score])[score].scores
    k = len(cs.canaries)
    result = run_statistic(cs.plan.statistic, values[:k], values[k:])
    assumptions = (*result.assumptions, established,
                   f"score {score} over {len(obs.names)} shadow models (secondary unless "
                   "pre-registered)")
    return replace(result, assumptions=assumptions,
                   details={**result.details, "shadow_score": score,
                            "shadow_models": len(obs.names), "shadow_digest": s.digest(),
                            "score_mean": float(np.mean(values))})
