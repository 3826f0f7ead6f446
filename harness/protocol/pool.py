"""Protocol v2 on a canary file: commit a pool, timestamp it, derive it from the pinned beacon
round, and check every link of that chain.

Why the pool is derived, not drawn at commitment time (a departure from STATISTICS.md's
"commit a digest of the pool"): a pool fixed at commitment is fixed by the owner's choice of
seed, and an owner can try many seeds before committing (harmless for rank tests, which are
exact given the pool, but not for extraction's binomial bound, which needs uniform secret
suffixes). Here the commitment binds sha256 of the secret seed and a beacon round in the
future; the items are draws seeded by sha256(label | seed | round randomness), so once
the round is public the pool is fixed, and before it nobody, the owner included, could know
any item. The round is pinned in the commitment: a round named at assignment time would let
the owner try every published round and keep the luckiest.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from canaries.canary_set import (
    Canary,
    CanarySet,
    CanarySetError,
    Plan,
    new_pool_set,
    seed_digest,
)
from canaries.drbg import HashDRBG, derive_seed
from canaries.generators import GeneratorSpec, draw_canaries
from harness.protocol.beacon import (
    BeaconChain,
    BeaconError,
    BeaconRound,
    first_round_after,
    round_time,
    verify_round,
)
from harness.protocol.timestamp import TimestampError, TimestampInfo, TimestampRecord, verify_record
from harness.stats.plan import counterfactuals_needed

POOL_LABEL = "tdp-pool-v2"
SCORING_ORDER_LABEL = "tdp-scoring-order-v2"
#: default time between the commitment and the pinned round: room to get a timestamp first
DEFAULT_BEACON_DELAY_S = 600.0

Verdict = Literal["ok", "FAIL", "open"]


class ProtocolError(ValueError):
    """A protocol step was refused: late timestamp, wrong round, bad signature, wrong seed."""


def pool_size_for(plan: Plan, k: int) -> int:
    """K canaries plus the counterfactual items the plan's statistic needs."""
    return k + counterfactuals_needed(plan.statistic, k, plan.counterfactuals)


def commit(
    spec: GeneratorSpec,
    k: int,
    plan: Plan,
    chain: BeaconChain,
    delay_s: float = DEFAULT_BEACON_DELAY_S,
    seed: bytes | None = None,
    now: float | None = None,
) -> tuple[CanarySet, bytes]:
    """A v2 commitment pinning the first round of `chain` published `delay_s` after now."""
    if delay_s < 0:
        raise ProtocolError(f"beacon delay must be >= 0 seconds, got {delay_s}")
    now = time.time() if now is None else now
    created = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
    pinned = first_round_after(chain, now + delay_s)
    beacon = {"chain": chain.to_dict(), "round": pinned}
    return new_pool_set(spec, k, pool_size_for(plan, k), plan, beacon, seed, created)


def pinned_chain(cs: CanarySet) -> BeaconChain:
    """The committed beacon chain (its key is part of the commitment)."""
    try:
        return BeaconChain.from_dict(cs.beacon["chain"])
    except (KeyError, TypeError, BeaconError) as e:
        raise ProtocolError(f"committed beacon chain is unusable: {e}") from e


def pinned_round_time(cs: CanarySet) -> int:
    return round_time(pinned_chain(cs), int(cs.beacon["round"]))


def check_timestamp(cs: CanarySet, record: TimestampRecord) -> TimestampInfo:
    """Verify one timestamp over the commitment and that it predates the pinned round."""
    try:
        info = verify_record(record, cs.commitment)
    except TimestampError as e:
        raise ProtocolError(f"timestamp: {e}") from e
    deadline = pinned_round_time(cs)
    if info.latest.timestamp() >= deadline:
        raise ProtocolError(
            f"timestamp {info.gen_time.isoformat()} (latest {info.latest.isoformat()}) is not "
            f"before beacon round {cs.beacon['round']} ({iso_time(deadline)}): the commitment could "
            "have been made knowing the round's randomness; draw a new canary set"
        )
    return info


def add_timestamp(cs: CanarySet, record: TimestampRecord) -> tuple[CanarySet, TimestampInfo]:
    """Store a verified timestamp (outside the commitment, which it covers)."""
    info = check_timestamp(cs, record)
    if record.to_dict() in cs.timestamps:
        return cs, info
    return replace(cs, timestamps=(*cs.timestamps, record.to_dict())), info


def derive_pool(cs: CanarySet, seed: bytes, randomness: bytes) -> tuple[list[Canary], list[Canary]]:
    """The K canaries and the counterfactuals: distinct draws seeded by the secret seed and the
    round's randomness; canaries are the first K in draw order. (The commitment binds both; it is
    left out of the derivation so that a seeded demo redraws the same pool on every run.)"""
    pool_seed = derive_seed(POOL_LABEL, seed, randomness)
    drawn = draw_canaries(cs.spec, HashDRBG(pool_seed, "pool"), cs.pool_size)
    canaries = [replace(c, id=f"canary-{i:06d}") for i, c in enumerate(drawn[: cs.k])]
    rest = [replace(c, id=f"cf-{i:06d}") for i, c in enumerate(drawn[cs.k :])]
    return canaries, rest


def check_seed(cs: CanarySet, seed: bytes) -> None:
    if seed_digest(seed) != cs.seed_digest:
        raise ProtocolError("the secret seed does not match the committed seed digest")


def check_round(cs: CanarySet, r: BeaconRound, now: float | None = None) -> None:
    """The pinned round of the committed chain, validly signed, and already published."""
    chain = pinned_chain(cs)
    if r.round != int(cs.beacon["round"]):
        raise ProtocolError(
            f"beacon round {r.round} is not the committed round {cs.beacon['round']}"
        )
    try:
        _verified_round(chain, r)
    except BeaconError as e:
        raise ProtocolError(f"beacon round {r.round}: {e}") from e
    now = time.time() if now is None else now
    if round_time(chain, r.round) > now + 1:
        raise ProtocolError(
            f"beacon round {r.round} is not published until {iso_time(round_time(chain, r.round))}"
        )


@functools.lru_cache(maxsize=256)
def _verified_round(chain: BeaconChain, r: BeaconRound) -> None:
    """verify_round, remembered: a pairing check costs ~0.4 s and is a pure function of its inputs
    (a failure raises, and exceptions are never cached)."""
    verify_round(chain, r)


def assign(cs: CanarySet, seed: bytes, r: BeaconRound, now: float | None = None) -> CanarySet:
    """Derive the pool from the pinned round (verified) and store canaries + counterfactuals."""
    if cs.version != 2:
        raise ProtocolError("only v2 canary sets are assigned by a beacon round")
    check_seed(cs, seed)
    check_round(cs, r, now)
    for t in cs.timestamps:
        check_timestamp(cs, TimestampRecord.from_dict(t))
    canaries, rest = derive_pool(cs, seed, r.randomness_bytes)
    assigned_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"round": r.to_dict(), "assigned_at": assigned_at}
    return replace(cs, canaries=tuple(canaries), counterfactuals=tuple(rest), assignment=record)


def assigned_round(cs: CanarySet) -> BeaconRound:
    if cs.assignment is None:
        raise CanarySetError("this v2 canary set is not assigned yet (`tdp canaries assign`)")
    try:
        return BeaconRound.from_dict(cs.assignment["round"])
    except (KeyError, TypeError, BeaconError) as e:
        raise ProtocolError(f"stored beacon round is malformed: {e}") from e


def scoring_seed(cs: CanarySet) -> bytes:
    """Seed of the scoring order of a v2 audit: public once the round is, chosen by nobody."""
    return derive_seed(SCORING_ORDER_LABEL, cs.commitment, assigned_round(cs).randomness_bytes)


@dataclass(frozen=True)
class Step:
    """One link of the protocol chain as found in a canary file."""

    name: str
    verdict: Verdict
    detail: str
    time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail, "time": self.time}


def check_protocol(cs: CanarySet, seed: bytes | None = None) -> list[Step]:
    """Every link that can be checked from the file (and the secret seed, when revealed)."""
    if cs.version == 1:
        return [Step("format", "open", V1_OPEN)]
    steps = [Step("committed", "ok", f"commitment {cs.commitment}", cs.created)]
    steps.append(_timestamp_step(cs))
    steps.append(_beacon_step(cs))
    steps.append(_assignment_step(cs, seed))
    return steps


V1_OPEN = (
    "format v1: the owner drew and committed the canaries themselves (nothing shows they were "
    "not selected, e.g. kept because a similar model scores them high), counterfactuals are "
    "drawn at audit time from a seed derived from the model's identity, and no timestamp or "
    "public beacon is involved"
)


def _timestamp_step(cs: CanarySet) -> Step:
    if not cs.timestamps:
        return Step(
            "timestamped",
            "open",
            "no RFC 3161 timestamp: nothing shows the commitment predates the beacon round "
            "(back-dating is not excluded)",
        )
    try:
        infos = [check_timestamp(cs, TimestampRecord.from_dict(t)) for t in cs.timestamps]
    except (ProtocolError, TimestampError) as e:
        return Step("timestamped", "FAIL", str(e))
    first = min(infos, key=lambda i: i.latest)
    local = "local test" in first.tsa_subject.lower()
    detail = (
        f"RFC 3161 token by {first.tsa_subject!r} (root {first.root_subject!r}, sha256 "
        f"{first.root_sha256}), {first.gen_time.isoformat()}"
        + (": a LOCAL TEST TSA, not a trusted third party" if local else "")
    )
    return Step("timestamped", "open" if local else "ok", detail, first.gen_time.isoformat())


def _beacon_step(cs: CanarySet) -> Step:
    try:
        chain = pinned_chain(cs)
        when = iso_time(pinned_round_time(cs))
        if cs.assignment is None:
            return Step("beacon", "open", f"round {cs.beacon['round']} of {chain.name} "
                        "not yet used (`tdp canaries assign`)", when)
        check_round(cs, assigned_round(cs))
    except (ProtocolError, CanarySetError) as e:
        return Step("beacon", "FAIL", str(e))
    what = (
        f"drand {chain.name} (public randomness) round {cs.beacon['round']}, BLS signature "
        f"verified against the chain key"
        if chain.public
        else f"LOCAL TEST beacon {chain.name!r} round {cs.beacon['round']}: NOT public randomness "
        "(its key holder could have chosen the round's value)"
    )
    return Step("beacon", "ok" if chain.public else "open", what, when)


def _assignment_step(cs: CanarySet, seed: bytes | None) -> Step:
    if cs.assignment is None:
        return Step("assigned", "open", "canaries not derived yet")
    when = cs.assignment.get("assigned_at")
    if seed is None:
        return Step(
            "assigned",
            "open",
            "secret seed not revealed: that the canaries are the ones the seed and the round "
            "derive is not checked",
            when,
        )
    try:
        check_seed(cs, seed)
        canaries, rest = derive_pool(cs, seed, assigned_round(cs).randomness_bytes)
    except (ProtocolError, CanarySetError) as e:
        return Step("assigned", "FAIL", str(e), when)
    if tuple(canaries) != cs.canaries or tuple(rest) != cs.counterfactuals:
        bad = sum(a != b for a, b in zip((*canaries, *rest), (*cs.canaries, *cs.counterfactuals),
                                          strict=False))
        return Step("assigned", "FAIL", f"{bad} of the file's {cs.pool_size} pool items are not "
                    "the ones the revealed seed and the beacon round derive", when)
    return Step("assigned", "ok", f"all {cs.pool_size} pool items ({cs.k} canaries) re-derived "
                "from the revealed seed and the beacon round", when)


def iso_time(unix: float) -> str:
    """A unix time as an ISO-8601 UTC string to the second."""
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "DEFAULT_BEACON_DELAY_S",
    "ProtocolError",
    "Step",
    "add_timestamp",
    "assign",
    "assigned_round",
    "check_protocol",
    "check_round",
    "check_seed",
    "check_timestamp",
    "commit",
    "derive_pool",
    "iso_time",
    "pinned_chain",
    "pinned_round_time",
    "pool_size_for",
    "scoring_seed",
]
