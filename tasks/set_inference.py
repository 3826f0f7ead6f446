"""`set-inference`: MembershipTracker for text, a user's marked set against out-world users.

A user marks each of their K documents with one secret canary (a draw from the committed
generator, inserted at a random position): the committed canary set *is* the user's marks.
At audit time N out-world users are simulated by drawing N x K marks from the same
generator with the derived audit seed, exactly like counterfactuals; they were never
published, so under H0 the user's set and theirs are exchangeable. The primary test is
the rank of the user's mean score among the out-world users' means (exact,
p = rank/(N+1)); the plan's `counterfactuals` field is N, the number of out-world users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canaries.canary_set import CanarySet
from harness.audit import AuditContext, counterfactual_items
from harness.provenance import now
from harness.registry import Task, TaskError
from harness.results import AuditResult, ItemScores, NamedTest
from harness.scoring import ScoringRequest, score_texts
from harness.stats import set_mean_test
from harness.stats.plan import label_reference_tests
from harness.stats.scores import SCORES

DEFAULT_SECONDARY = ("zlib", "min_k", "ref_ratio")
OUT_WORLD_PURPOSE = "out-world-users"


@dataclass(frozen=True)
class SetInferenceConfig:
    """Options; K (marks per user), N (out-world users) and the primary test come from the plan."""

    secondary: tuple[str, ...] = DEFAULT_SECONDARY
    min_k: float = 0.2
    permutation_resamples: int = (
        10_000  # secondary item-level permutation test on the primary score
    )


def out_world_marks(
    cs: CanarySet, seed: bytes, users: int, progress: bool = False
) -> list[list[tuple[str, str]]]:
    """(id, text) of `users` out-world users' K marks each, distinct from all other draws."""
    k = len(cs.canaries)
    flat = out_world_items(cs, seed, users, progress)
    return [flat[u * k : (u + 1) * k] for u in range(users)]


def out_world_items(
    cs: CanarySet, seed: bytes, users: int, progress: bool = False
) -> list[tuple[str, str]]:
    """The out-world users' marks as one flat list, K consecutive per user (report order): the
    committed pool's counterfactuals (v2) or fresh draws from the audit seed (v1)."""
    k = len(cs.canaries)
    items = counterfactual_items(cs, seed, OUT_WORLD_PURPOSE, users * k, "", progress)
    return [(f"ow-{u:05d}-{j:03d}", items[u * k + j][1]) for u in range(users) for j in range(k)]


def _score_names(ctx: AuditContext, config: SetInferenceConfig) -> list[str]:
    primary = ctx.canary_set.plan.score
    return [primary] + [
        s
        for s in config.secondary
        if s != primary
        and s in SCORES
        and ("reference" not in SCORES[s].needs or ctx.reference is not None)
    ]


def run(ctx: AuditContext, config: SetInferenceConfig) -> AuditResult:
    started = now()
    cs, plan = ctx.canary_set, ctx.canary_set.plan
    if plan.statistic != "set-mean":
        raise TaskError(
            f"set-inference needs a plan with statistic 'set-mean' (this canary set pre-registered "
            f"{plan.statistic!r}); create one with `tdp canaries new --statistic set-mean`"
        )
    k, users = len(cs.canaries), plan.counterfactuals
    seed = ctx.seed()
    items = [(c.id, "canary", c.text) for c in cs.canaries]
    for user in out_world_marks(cs, seed, users, ctx.progress):
        items += [(i, "counterfactual", t) for i, t in user]
    names = _score_names(ctx, config)
    options = {
        "min_k": {"k": config.min_k},
        **({plan.score: plan.score_options} if plan.score_options else {}),
    }
    rows = score_texts(
        [t for _, _, t in items],
        ctx.backend,
        ScoringRequest(tuple(names), options),
        seed,
        ctx.reference,
    )
    tests = []
    for name in names:
        s = np.array([r[name] for r in rows])
        tests.append(
            NamedTest(name, name == plan.score, set_mean_test(s[:k], s[k:].reshape(users, k)))
        )
    tests = list(label_reference_tests(tests, ctx.reference_problem()))
    s = np.array([r[plan.score] for r in rows])
    tests.append(
        NamedTest(
            plan.score,
            False,
            set_mean_test(
                s[:k],
                s[k:].reshape(users, k),
                method="permutation",
                n_resamples=config.permutation_resamples,
                seed=int.from_bytes(seed[:8], "big"),
            ),
        )
    )
    return AuditResult(
        title=f"set-inference: {ctx.model_spec}",
        role="audit",
        task="set-inference",
        task_config={
            "secondary": list(config.secondary),
            "min_k": config.min_k,
            "permutation_resamples": config.permutation_resamples,
        },
        model=ctx.model_info(),
        reference=ctx.reference_info(),
        canary_set=ctx.canary_info(),
        audit_seed=seed.hex(),
        seed_derivation=ctx.seed_derivation(),
        tests=tuple(tests),
        items=tuple(ItemScores(i, role, t, r) for (i, role, t), r in zip(items, rows, strict=True)),
        started=started,
        finished=now(),
        notes=(
            f"The user's {k} marks (the committed canaries, one per marked document) are compared with "
            f"{users} out-world users, each with {k} marks drawn from the same generator with the audit "
            "seed and never published; counterfactual items are listed user by user, K consecutive "
            "items per out-world user (ids ow-<user>-<mark>).",
        ),
    )


TASK = Task(
    name="set-inference",
    description="MembershipTracker for text: mean score of a user's K marks vs out-world users (exact)",
    config_type=SetInferenceConfig,
    run=run,
)
