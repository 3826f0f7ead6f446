"""`set-inference`: MembershipTracker for text. A user marks each of their K documents with a
secret random phrase (one per document, or one per user) at a random position; the audit
compares the mean score of the user's marks with out-world users marked the same way but never
published, by the exact set-level test (plan statistic `set-mean-sets`, or `set-mean`).

The marks, not the documents, are scored: marks are draws from a committed generator, so the
user's set and the out-world users' sets are exchangeable under H0 and the p-value is exact.
Scoring whole documents would compare the user's documents with other people's, which is
natural data with no such null (reported as evidence elsewhere, never as a bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from canaries.canary_set import CanarySet
from canaries.drbg import HashDRBG
from harness.audit import AuditContext
from harness.registry import Task
from harness.results import AuditResult
from tasks import canary_rank

SET_STATISTICS = ("set-mean-sets", "set-mean")


@dataclass(frozen=True)
class SetInferenceConfig:
    """Options; K, M (out-world users) and the test come from the committed plan."""

    mode: Literal["per-document", "per-user"] = "per-document"
    secondary: tuple[str, ...] = ("zlib", "min_k")
    min_k: float = 0.2


def mark_documents(
    docs: list[str], cs: CanarySet, seed: bytes, mode: str = "per-document"
) -> tuple[list[str], list[int]]:
    """Insert the user's mark(s) into their K documents at random word boundaries.

    per-document: canary i goes into document i (needs len(docs) == K canaries);
    per-user: the set's single canary goes into every document. Returns (marked docs, offsets).
    """
    if mode == "per-document" and len(cs.canaries) != len(docs):
        raise ValueError(
            f"per-document marking needs one canary per document: {len(cs.canaries)} "
            f"canaries for {len(docs)} documents"
        )
    if mode == "per-user" and len(cs.canaries) != 1:
        raise ValueError(
            f"per-user marking needs a canary set of exactly 1 phrase, got {len(cs.canaries)}"
        )
    if mode not in ("per-document", "per-user"):
        raise ValueError(f"mode must be 'per-document' or 'per-user', got {mode!r}")
    rng = HashDRBG(seed, "set-inference-marks")
    out, offsets = [], []
    for i, doc in enumerate(docs):
        mark = cs.canaries[i if mode == "per-document" else 0].text
        cuts = [0] + [j + 1 for j, ch in enumerate(doc) if ch.isspace()] + [len(doc)]
        at = cuts[rng.randbelow(len(cuts))]
        if at < len(doc):
            out.append(f"{doc[:at]}{mark} {doc[at:]}")
        else:  # at the end: keep the mark a separate word
            out.append(doc + (" " if doc and not doc[-1].isspace() else "") + mark)
        offsets.append(at)
    return out, offsets


def run(ctx: AuditContext, config: SetInferenceConfig) -> AuditResult:
    plan = ctx.canary_set.plan
    if plan.statistic not in SET_STATISTICS:
        raise ValueError(
            f"set-inference needs a set-level plan statistic {SET_STATISTICS}, "
            f"the committed plan names {plan.statistic!r}"
        )
    res = canary_rank.run(
        ctx, canary_rank.CanaryRankConfig(secondary=config.secondary, min_k=config.min_k)
    )
    return AuditResult(
        **{
            **res.__dict__,
            "title": f"set-inference ({config.mode}): {ctx.model_spec}",
            "task": "set-inference",
            "task_config": {**res.task_config, "mode": config.mode},
            "notes": (
                *res.notes,
                f"{plan.counterfactuals} out-world users, each a fresh set of "
                f"{len(ctx.canary_set.canaries)} marks from the committed generator (never published)",
            ),
        }
    )


TASK = Task(
    name="set-inference",
    description="MembershipTracker-style set test: a user's K marks vs out-world users' marks (exact)",
    config_type=SetInferenceConfig,
    run=run,
)
