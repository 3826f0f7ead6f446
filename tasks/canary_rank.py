"""`canary-rank`: rank the committed canaries against fresh counterfactuals from the same generator.

The primary test is the plan's (score, statistic); other scores are reported as secondary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.audit import AuditContext
from harness.backends.base import supports_vocab_stats
from harness.provenance import now
from harness.registry import Task
from harness.results import AuditResult, ItemScores, NamedTest
from harness.scoring import ScoringRequest, score_texts
from harness.stats import counterfactuals_needed, run_statistic
from harness.stats.plan import label_reference_tests
from harness.stats.scores import SCORES

DEFAULT_SECONDARY = ("loss", "zlib", "min_k", "min_k_pp", "ref_ratio")


@dataclass(frozen=True)
class CanaryRankConfig:
    """Options of the canary-rank task; M and the primary test come from the committed plan."""

    secondary: tuple[str, ...] = DEFAULT_SECONDARY
    min_k: float = 0.2
    repudiation: str = ""  # a stress.json of `--task repudiation`: its line joins the notes


def counterfactuals_for(ctx: AuditContext) -> list[tuple[str, str]]:
    """(id, text) of the plan's counterfactuals, distinct from each other and the canaries.

    Statistics with one pool (or set) per canary use K*M items; pool i is the i-th block of M.
    """
    cs = ctx.canary_set
    n = counterfactuals_needed(cs.plan.statistic, len(cs.canaries), cs.plan.counterfactuals)
    return ctx.counterfactual_items("counterfactuals", n, "cf-")


def run(ctx: AuditContext, config: CanaryRankConfig) -> AuditResult:
    started = now()
    cs, plan = ctx.canary_set, ctx.canary_set.plan
    seed = ctx.seed()
    items = [(c.id, "canary", c.text) for c in cs.canaries]
    items += [(i, "counterfactual", t) for i, t in counterfactuals_for(ctx)]
    names = [plan.score] + [
        s
        for s in config.secondary
        if s != plan.score
        and s in SCORES
        and ("reference" not in SCORES[s].needs or ctx.reference is not None)
        and ("vocab_stats" not in SCORES[s].needs or supports_vocab_stats(ctx.backend))
    ]
    options = {
        "min_k": {"k": config.min_k},
        "min_k_pp": {"k": config.min_k},
        **({plan.score: plan.score_options} if plan.score_options else {}),
    }
    rows = score_texts(
        [t for _, _, t in items],
        ctx.backend,
        ScoringRequest(scores=tuple(names), options=options),
        seed,
        reference=ctx.reference,
        cache=ctx.cache,
    )
    is_canary = np.array([role == "canary" for _, role, _ in items])
    tests = []
    for name in names:
        s = np.array([r[name] for r in rows])
        tests.append(
            NamedTest(
                score=name,
                primary=name == plan.score,
                result=run_statistic(plan.statistic, s[is_canary], s[~is_canary]),
            )
        )
    tests = list(label_reference_tests(tests, ctx.reference_problem()))
    notes = []
    skipped = [s for s in config.secondary if s not in names and s != plan.score]
    if skipped:
        notes.append(
            "secondary scores not computed (need a reference model, vocab stats, or unknown): "
            f"{skipped}"
        )
    if config.repudiation:
        from harness.repudiation.stress_report import stress_note

        notes.append(stress_note(config.repudiation))
    return AuditResult(
        title=f"canary-rank: {ctx.model_spec}",
        role="audit",
        task="canary-rank",
        task_config={"secondary": list(config.secondary), "min_k": config.min_k},
        model=ctx.model_info(),
        reference=ctx.reference_info(),
        canary_set=ctx.canary_info(),
        audit_seed=seed.hex(),
        seed_derivation=ctx.seed_derivation(),
        tests=tuple(tests),
        items=tuple(ItemScores(i, role, t, r) for (i, role, t), r in zip(items, rows, strict=True)),
        started=started,
        finished=now(),
        notes=tuple(notes),
    )


TASK = Task(
    name="canary-rank",
    description="rank committed random canaries against fresh counterfactuals (exact p-values)",
    config_type=CanaryRankConfig,
    run=run,
)
