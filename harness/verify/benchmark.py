"""Checks of a benchmark audit (mi-benchmark: labelled data, no canary set): the items against
their digest and their source, the seed, every metric and blind baseline recomputed, and the
model re-scored. What no check can reach, the membership labels, is said (open)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from harness.backends.base import Backend, Fingerprint
from harness.results import AuditResult
from harness.verify.checks import Check, Verdict, check_model_name, compare_results
from harness.verify.rescore import RescorePlan, escape_note, same_model

#: blind-baseline scores may differ by solver round-off across machines (absolute)
BLIND_ATOL = 1e-6
LABELS_OPEN = (
    "membership labels are the data provider's assertion: no check can confirm that a "
    "'member' was trained on or a 'non-member' was not, so these metrics are estimates on the "
    "labels as given, and never a proof (use canaries for one)"
)


def benchmark_checks(
    a: AuditResult, options: object, load: Callable[[str], Backend]
) -> list[Check]:
    """Every check of one benchmark audit; `options` is a VerifyOptions."""
    title = a.title
    out = [Check(title, "model name", *check_model_name(a))]
    out.append(Check(title, "items", *check_items(a)))
    out.append(Check(title, "data source", *check_source(a)))
    out.append(Check(title, "audit seed", *check_seed(a)))
    out.append(Check(title, "statistics", *check_metrics(a)))
    out.append(Check(title, "blind baselines", *check_blind(a)))
    out.append(Check(title, "labels", "open", LABELS_OPEN))
    plan: RescorePlan = options.rescore_plan  # type: ignore[attr-defined]
    if not options.rescore:  # type: ignore[attr-defined]
        out.append(Check(title, "rescore", "open", "not re-scored (--no-rescore): the stored "
                         "scores are not evidence by themselves"))
    else:
        out.append(Check(title, "rescore", *_rescore_or_fail(a, plan, load)))
    return out


def _items_of(a: AuditResult) -> list:
    from harness.mi.data import MIItem

    return [MIItem(i.id, i.text, i.role == "member") for i in a.items]


def check_items(a: AuditResult) -> tuple[Verdict, str]:
    from harness.mi.data import dataset_digest

    if a.dataset is None:
        return "FAIL", "a benchmark without a dataset record"
    roles = {i.role for i in a.items}
    if not roles <= {"member", "non-member"}:
        return "FAIL", f"item roles {sorted(roles)} are not member/non-member"
    if dataset_digest(_items_of(a)) != a.dataset.sha256:
        return "FAIL", "the stored items do not hash to the recorded dataset digest"
    return "ok", f"{len(a.items)} items hash to the recorded digest {a.dataset.sha256[:16]}..."


def check_source(a: AuditResult) -> tuple[Verdict, str]:
    """Reload the data as recorded; the items must be the same (open when it cannot be read)."""
    from harness.mi.data import MIDataError, MIDataSpec, load_mi_items

    if a.dataset is None:
        return "FAIL", "a benchmark without a dataset record"
    try:
        _, info = load_mi_items(MIDataSpec(**a.dataset.source), a.dataset.name)
    except (MIDataError, TypeError, OSError) as e:
        return "open", f"cannot reload the data as recorded ({e}); the items are checked only " \
            "against their own digest"
    if info.sha256 != a.dataset.sha256:
        return "FAIL", "the data reloaded as recorded are not the report's items (changed since, " \
            "or the report was edited)"
    return "ok", f"reloaded from {a.dataset.source}: the same {len(a.items)} items"


def check_seed(a: AuditResult) -> tuple[Verdict, str]:
    from canaries.drbg import derive_seed
    from tasks.mi_benchmark import SEED_DERIVATION, SEED_LABEL

    if a.seed_derivation != SEED_DERIVATION or a.dataset is None:
        return "FAIL", "seed not derived by the benchmark's rule"
    try:
        ident = Fingerprint.from_dict(a.model.fingerprint).identity_digest()
    except Exception as e:  # a malformed fingerprint: a failed check, not a crash
        return "FAIL", f"cannot re-derive the seed: {e}"
    if derive_seed(SEED_LABEL, a.dataset.sha256, ident).hex() != a.audit_seed:
        return "FAIL", "the seed does not re-derive from the items and the model identity"
    return "ok", "re-derived from the items' digest and the model identity"


def _seed_int(a: AuditResult) -> int:
    from harness.mi.benchmark import benchmark_seed_int

    return benchmark_seed_int(bytes.fromhex(a.audit_seed))


def check_metrics(a: AuditResult) -> tuple[Verdict, str]:
    """Every AUC, TPR, FPR and interval recomputed from the stored per-item scores."""
    from harness.mi.benchmark import compute_tests

    cfg = a.task_config
    primary = next((t.score for t in a.tests if t.primary), "")
    try:
        again = compute_tests(a.items, [t.score for t in a.tests], primary,
                              int(cfg["n_bootstrap"]), _seed_int(a))
    except Exception as e:
        return "FAIL", f"cannot recompute the metrics: {e}"
    problems = []
    for stored, fresh in zip(a.tests, again, strict=True):
        problems += compare_results(stored.score, stored.result, fresh.result)
        if not _same_details(stored.result.details, fresh.result.details):
            problems.append(f"{stored.score}: stored metrics or intervals differ")
    if problems:
        return "FAIL", "; ".join(problems)
    return "ok", f"{len(a.tests)} metric sets (AUC, TPRs, FPR, bootstrap intervals) recomputed"


def _same_details(x: object, y: object) -> bool:
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same_details(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same_details(p, q) for p, q in zip(x, y, strict=True))
    if isinstance(x, float) or isinstance(y, float):
        return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12) or (x != x and y != y)
    return x == y


def check_blind(a: AuditResult) -> tuple[Verdict, str]:
    """The blind baselines re-run on the stored texts and labels (they never saw the model)."""
    from harness.mi.benchmark import labelled_texts, summarize
    from harness.mi.blind import BLIND_PREFIX, blind_baselines

    texts, labels = labelled_texts(a.items)
    cfg = a.task_config
    try:
        fresh = blind_baselines(
            texts, labels, int(cfg["folds"]), _seed_int(a), cfg.get("year_cutoff")
        )
    except Exception as e:
        return "FAIL", f"cannot re-run the blind baselines: {e}"
    worst = 0.0
    for b in fresh:
        stored = np.array([i.scores.get(BLIND_PREFIX + b.name, np.nan) for i in a.items])
        worst = max(worst, float(np.nanmax(np.abs(stored - b.scores))) if stored.size else 0.0)
        if np.isnan(stored).any():
            return "FAIL", f"items lack the {b.name} scores"
    if not worst <= BLIND_ATOL:
        return "FAIL", f"re-run blind baselines differ from the stored scores by up to {worst:.3g}"
    verdict = summarize(a.tests).verdict.sentence()
    if verdict not in a.notes:
        return "FAIL", "the report's shift verdict is not the one its metrics give"
    return "ok", f"{len(fresh)} blind baselines re-run (max |difference| {worst:.2g}); the shift " \
        "verdict follows from the metrics"


def _rescore_or_fail(a: AuditResult, plan: RescorePlan, load: Callable[[str], Backend]
                     ) -> tuple[Verdict, str]:
    from harness.backends import BackendError, ModelSpecError

    try:
        return rescore_benchmark(a, plan, load)
    except (BackendError, ModelSpecError, OSError) as e:
        return "FAIL", f"cannot re-score with the model: {e} (pass --no-rescore to verify " \
            "without it; the scores then stay unchecked)"


def rescore_benchmark(a: AuditResult, plan: RescorePlan, load: Callable[[str], Backend]
                      ) -> tuple[Verdict, str]:
    """Re-score a uniform random sample of 2 x `plan.counterfactuals` items with the model."""
    from harness.mi.attacks import ATTACK_PREFIX
    from harness.mi.blind import BLIND_PREFIX
    from harness.scoring import ScoringRequest, score_texts
    from harness.stats.scores import legacy_name

    backend = load(plan.model or a.model.spec)
    ok, how = same_model(Fingerprint.from_dict(a.model.fingerprint), backend)
    if not ok:
        return "FAIL", f"the model loaded for rescoring is not the fingerprinted one ({how})"
    names = sorted({k for i in a.items for k in i.scores
                    if not k.startswith((BLIND_PREFIX, ATTACK_PREFIX))})
    reference = None
    if a.reference is not None and "ref_ratio" in names:
        reference = load(plan.reference or a.reference.spec)
        if not same_model(Fingerprint.from_dict(a.reference.fingerprint), reference)[0]:
            return "FAIL", "the reference loaded for rescoring is not the fingerprinted one"
    chosen = random.Random(plan.seed).sample(list(a.items), min(2 * plan.counterfactuals,
                                                                 len(a.items)))
    as_made = {k: legacy_name(k, plan.score_definitions) for k in names}
    k = float(a.task_config.get("min_k", 0.2))
    options = {as_made.get(n, n): {"k": k} for n in ("min_k", "min_k_pp")}
    rows = score_texts([i.text for i in chosen], backend,
                       ScoringRequest(tuple(as_made[n] for n in names), options),
                       bytes.fromhex(a.audit_seed), reference=reference)
    worst, where = 0.0, ""
    for item, row in zip(chosen, rows, strict=True):
        for n in names:
            d = abs(row[as_made[n]] - item.scores[n])
            if not d <= worst:
                worst, where = d, f"{item.id}/{n}"
    summary = escape_note(len(a.items), len(chosen)).replace("counterfactual", "item")
    if not worst <= plan.atol:
        return "FAIL", f"re-scored: {summary}; largest |difference| {worst:.3g} at {where}"
    return "ok", f"re-scored {len(chosen)} items; {summary}; largest |difference| {worst:.2g}"

