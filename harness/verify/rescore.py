"""Scores checked against the model itself: stored (or cached) scores are not evidence alone.

Every canary is re-scored (an inflated canary score is always caught) and a uniformly random
sample of counterfactuals, drawn with randomness the report's author cannot know; the check
states the chance that a forger who altered f counterfactual scores escapes that sample.
Extraction audits regenerate every greedy continuation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from canaries.canary_set import CanarySet
from harness.backends.base import Backend, Fingerprint
from harness.results import AuditResult
from harness.stats.scores import SCORE_DEFINITIONS, legacy_name
from harness.verify.checks import Verdict

#: default agreement required between a stored and a re-scored score (absolute)
RESCORE_ATOL = 1e-3
DEFAULT_COUNTERFACTUAL_SAMPLE = 100


@dataclass(frozen=True)
class RescorePlan:
    """Which items to re-score and how."""

    counterfactuals: int = DEFAULT_COUNTERFACTUAL_SAMPLE
    seed: int = 0
    atol: float = RESCORE_ATOL
    model: str | None = None  # spec override (default: the report's)
    reference: str | None = None  # spec override for the reference model
    #: score definitions the report was made with (its provenance; absent = 1)
    score_definitions: int = SCORE_DEFINITIONS


def escape_probability(m: int, s: int, forged: int) -> float:
    """P(a uniform sample of s of m items misses all `forged` ones) = C(m-f, s) / C(m, s)."""
    if forged <= 0:
        return 1.0
    if s + forged > m:
        return 0.0
    return math.exp(
        math.lgamma(m - forged + 1) - math.lgamma(m - forged - s + 1)
        - math.lgamma(m + 1) + math.lgamma(m - s + 1)
    )


def escape_note(m: int, s: int) -> str:
    """What a sample of s of m counterfactuals leaves to chance, in one sentence."""
    if m == 0:
        return ""
    if s >= m:
        return "every counterfactual re-scored: no forged score escapes"
    parts = []
    for f in sorted({1, max(1, m // 100), max(1, m // 10)}):
        parts.append(f"f={f}: {escape_probability(m, s, f):.3g}")
    return (
        f"{s} of {m} counterfactuals re-scored at random; a forger who altered f of them escapes "
        f"with probability C(M-f,s)/C(M,s): " + ", ".join(parts)
    )


def same_model(stored: Fingerprint, backend: Backend) -> tuple[bool, str]:
    """Is the loaded model the fingerprinted one? Old reports carry the pre-tensors identity."""
    fresh = backend.fingerprint()
    if stored.identity_scheme is not None:
        return fresh.identity_digest() == stored.identity_digest(), "identity digest"
    from canaries.tokenizer_identity import legacy_digests
    from harness.backends.tensor_digest import legacy_weights_sha256

    weights = legacy_weights_sha256(Path(fresh.model)) if stored.weights_sha256 else None
    ok = weights == stored.weights_sha256 and stored.tokenizer_sha256 in legacy_digests(
        backend.tokenizer
    )
    return ok, "legacy (pre-tensors) weights and tokenizer hashes"


Loader = Callable[[str], Backend]


def check_rescore(
    a: AuditResult, cs: CanarySet, plan: RescorePlan, load: Loader
) -> tuple[Verdict, str]:
    """Load the model, confirm its identity, and re-score (or regenerate) the chosen items."""
    backend = load(plan.model or a.model.spec)
    ok, how = same_model(Fingerprint.from_dict(a.model.fingerprint), backend)
    if not ok:
        return "FAIL", f"the model loaded for rescoring is not the fingerprinted one ({how} differs)"
    if a.task == "extraction":
        return _regenerate(a, cs, backend)
    return _rescore_scores(a, backend, plan, load)


def _rescore_scores(
    a: AuditResult, backend: Backend, plan: RescorePlan, load: Loader
) -> tuple[Verdict, str]:
    from harness.scoring import ScoringRequest, score_texts

    names = sorted({k for i in a.items for k in i.scores})
    reference = None
    if a.reference is not None and "ref_ratio" in names:
        reference = load(plan.reference or a.reference.spec)
        ok, how = same_model(Fingerprint.from_dict(a.reference.fingerprint), reference)
        if not ok:
            return "FAIL", f"the reference loaded for rescoring is not the fingerprinted one ({how})"
    canaries = [i for i in a.items if i.role == "canary"]
    others = [i for i in a.items if i.role == "counterfactual"]
    s = min(plan.counterfactuals, len(others))
    items = canaries + random.Random(plan.seed).sample(others, s)
    options: dict[str, dict[str, float]] = {}
    if "min_k" in a.task_config:
        options["min_k"] = {"k": float(a.task_config["min_k"])}
        options["min_k_pp"] = {"k": float(a.task_config["min_k"])}
    plan_opts = a.canary_set.plan.get("score_options") or {}
    if plan_opts:
        options[a.canary_set.plan["score"]] = plan_opts
    # a report made under older score definitions is re-scored with those definitions
    as_made = {k: legacy_name(k, plan.score_definitions) for k in names}
    options = {as_made.get(k, k): v for k, v in options.items()}
    rows = score_texts(
        [i.text for i in items],
        backend,
        ScoringRequest(tuple(as_made[k] for k in names), options),
        bytes.fromhex(a.audit_seed),
        reference=reference,
    )
    worst, where = 0.0, ""
    for item, row in zip(items, rows, strict=True):
        for k in names:
            d = abs(row[as_made[k]] - item.scores[k])
            if not d <= worst:  # NaN counts as a mismatch
                worst, where = d, f"{item.id}/{k}"
    summary = f"{len(canaries)} canaries; " + escape_note(len(others), s)
    if plan.score_definitions != SCORE_DEFINITIONS:
        summary += f" (with score definitions v{plan.score_definitions}, as the report was made)"
    if not worst <= plan.atol:
        return "FAIL", f"re-scored {summary}; largest |difference| {worst:.3g} at {where} > {plan.atol}"
    return "ok", f"re-scored {summary}; largest |difference| {worst:.2g} <= {plan.atol}"


def _regenerate(a: AuditResult, cs: CanarySet, backend: Backend) -> tuple[Verdict, str]:
    """Greedy continuations are a function of the model and the prefix: regenerate them all."""
    from tasks.extraction import ExtractionConfig, _generate_units

    prim = next(t for t in a.tests if t.primary)
    stored = prim.result.details.get("extractions") or []
    cfg = {k: v for k, v in a.task_config.items() if k in ExtractionConfig.__dataclass_fields__}
    config = ExtractionConfig(**{**cfg, "samples": 0, "documents": None})
    ctx = _ExtractionContext(cs, backend)
    _, units, _ = _generate_units(ctx, config, [e["prefix"] for e in stored], 1, 0.0, 0)
    bad = [e["id"] for e, u in zip(stored, units, strict=True) if list(u[0]) != e["greedy_units"]]
    if bad:
        return "FAIL", f"regenerated greedy continuations differ for {len(bad)} canaries: {bad[:5]}"
    return "ok", (
        f"all {len(stored)} greedy continuations regenerated identically (sampled ones are not "
        "regenerated; their matches only enter the secondary best-of-n test)"
    )


@dataclass(frozen=True)
class _ExtractionContext:
    """The slice of an AuditContext that extraction's generation helper reads."""

    canary_set: CanarySet
    backend: Backend
