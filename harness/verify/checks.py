"""Pure checks of one audit against its canary file: plan, file, seed, items, reference rule and
every statistic recomputed from the stored per-item data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from canaries.canary_set import CanarySet
from harness.audit import SEED_DERIVATION, V2_SEED_DERIVATION, audit_seed, counterfactual_items
from harness.backends.base import Fingerprint
from harness.results import AuditResult
from harness.stats import PlanViolation, check_primary, counterfactuals_needed, run_statistic
from harness.stats.plan import label_reference_tests, reference_problem

#: ok: holds; FAIL: does not hold; open: a protocol step is missing, so the claim is weaker
#: (named in the detail); skip: not applicable to this audit
Verdict = Literal["ok", "FAIL", "open", "skip"]
#: agreement required between a stored and a recomputed p-value/statistic (relative)
RECOMPUTE_RTOL = 1e-9
#: tasks whose items and statistics this verifier recomputes
SCORED_TASKS = ("canary-rank", "set-inference")


@dataclass(frozen=True)
class Check:
    audit: str
    name: str
    verdict: Verdict
    detail: str


def _close(a: float | None, b: float | None, rtol: float = RECOMPUTE_RTOL) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)


def check_plan(a: AuditResult) -> tuple[Verdict, str]:
    try:
        governed = check_primary(a.canary_set.plan, a.task, a.tests)
    except (PlanViolation, KeyError) as e:
        return "FAIL", str(e)
    plan = a.canary_set.plan
    if not governed:
        if a.role != "additional":
            return "FAIL", f"task {a.task!r} is not the plan's, yet the audit is not labelled additional"
        return "ok", f"additional analysis (task {a.task!r}; the plan pre-registers {plan.get('task')!r})"
    return "ok", f"primary = {plan['statistic']} on {plan['score']} (the plan's)"


def check_canary_file(a: AuditResult, cs: CanarySet, found: str) -> tuple[Verdict, str]:
    """The file's commitment, spec, plan and items are the report's."""
    problems = []
    if cs.commitment != a.canary_set.commitment:
        problems.append(f"commitment {cs.commitment} differs from the report's {a.canary_set.commitment}")
    if cs.spec.to_dict() != a.canary_set.spec:
        problems.append("generator spec differs")
    if cs.plan.to_dict() != a.canary_set.plan:
        problems.append("plan differs")
    report_canaries = [(i.id, i.text) for i in a.items if i.role == "canary"]
    if report_canaries != [(c.id, c.text) for c in cs.canaries]:
        problems.append("the report's canaries are not the file's")
    if a.canary_set.count != len(cs.canaries) or a.canary_set.format_version != cs.version:
        problems.append("canary count or format version differs")
    if problems:
        return "FAIL", f"{found}: " + "; ".join(problems)
    return "ok", f"{found}: commitment {cs.commitment} recomputes; spec, plan and canaries match"


def check_published(a: AuditResult, published: tuple[str, ...]) -> tuple[Verdict, str]:
    """The audit's commitment is one the owner published (`--commitment`), in full."""
    if not published:
        return "skip", "no published commitment given (--commitment HEX)"
    if a.canary_set.commitment in published:
        return "ok", f"commitment {a.canary_set.commitment} is the published one"
    if a.role != "audit":
        return "skip", f"{a.role}: not the published canary set"
    return "FAIL", f"commitment {a.canary_set.commitment} is not among the published ones"


def check_model_name(a: AuditResult) -> tuple[Verdict, str]:
    """The model spec names the model the fingerprint describes (any backend)."""
    from harness.backends import BACKENDS
    from harness.backends.spec import ModelSpecError, parse_model_spec

    try:
        spec = parse_model_spec(a.model.spec, tuple(BACKENDS))
    except ModelSpecError as e:
        return "FAIL", str(e)
    fp = a.model.fingerprint
    fp_model = str(fp.get("model"))
    try:
        name = _spec_model_name(spec.backend, spec.model, fp_model)
    except Exception as e:  # a malformed URL in an openai spec: a failed check
        return "FAIL", f"model spec {a.model.spec!r}: {e}"
    if name != fp_model or spec.backend != fp.get("backend") or spec.revision not in (
        None,
        fp.get("revision"),
    ):
        return "FAIL", f"model spec {a.model.spec!r} does not name the fingerprinted model {fp_model!r}"
    return "ok", f"spec names the fingerprinted model ({fp.get('backend')}:{fp_model})"


def _spec_model_name(backend: str, model: str, fp_model: str) -> str:
    """What the fingerprint records as `model` for this spec's model part."""
    if backend == "openai":  # the served name after /v1/ (the only served model when omitted)
        from harness.backends.openai_compat import split_endpoint

        served = split_endpoint(model)[1]
        return fp_model if served is None else served
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    if not path.is_absolute() and fp_model.endswith("/" + str(Path(model))):
        return fp_model  # a relative local path recorded elsewhere: the fingerprint holds its resolution
    return model


def expected_seed(a: AuditResult, cs: CanarySet) -> bytes:
    """The seed the audit had to use: v2 from the beacon round, v1 from the model identity."""
    if cs.version == 2:
        from harness.protocol.pool import scoring_seed

        return scoring_seed(cs)
    return audit_seed(cs.commitment, Fingerprint.from_dict(a.model.fingerprint))


def check_seed(a: AuditResult, cs: CanarySet) -> tuple[Verdict, str]:
    rule = V2_SEED_DERIVATION if cs.version == 2 else SEED_DERIVATION
    if not a.seed_derivation.startswith(rule):  # extraction appends why it draws nothing
        return "FAIL", f"seed not derived by the standard rule ({a.seed_derivation}); nobody can check it"
    try:
        derived = expected_seed(a, cs).hex()
    except Exception as e:  # malformed fingerprint or round: a failed check, not a crash
        return "FAIL", f"cannot re-derive the seed: {e}"
    if derived != a.audit_seed:
        return "FAIL", "the audit seed does not re-derive from the commitment and " + (
            "the beacon round" if cs.version == 2 else "the model fingerprint"
        )
    return "ok", rule.split(":")[0] + ": re-derived"


def expected_counterfactuals(a: AuditResult, cs: CanarySet) -> list[tuple[str, str]]:
    """(id, text) of the counterfactual items the task had to score, in report order."""
    plan, k = cs.plan, len(cs.canaries)
    seed = bytes.fromhex(a.audit_seed)
    if a.task == "set-inference":
        from tasks.set_inference import out_world_items

        return out_world_items(cs, seed, int(plan.counterfactuals))
    if a.task == "canary-rank":
        n = counterfactuals_needed(plan.statistic, k, plan.counterfactuals)
        return counterfactual_items(cs, seed, "counterfactuals", n, "cf-")
    return []


def check_counterfactuals(a: AuditResult, cs: CanarySet) -> tuple[Verdict, str]:
    try:
        expected = expected_counterfactuals(a, cs)
    except Exception as e:  # malformed spec/seed: a failed check, not a crash
        return "FAIL", f"cannot rebuild the counterfactuals: {e}"
    stored = [(i.id, i.text) for i in a.items if i.role == "counterfactual"]
    if stored != expected:
        bad = sum(x != y for x, y in zip(stored, expected, strict=False))
        return "FAIL", (
            f"{len(stored)} stored counterfactuals vs {len(expected)} expected; {bad} differ"
        )
    where = "the committed pool's" if cs.version == 2 else "redrawn from the committed spec and seed"
    return "ok", f"{len(expected)} counterfactuals are {where}, in order"


def check_reference(a: AuditResult) -> tuple[Verdict, str]:
    """Reference-based scores are bounds only with the committed reference model."""
    ref_fp = a.reference.fingerprint if a.reference is not None else None
    problem = reference_problem(a.canary_set.plan, ref_fp)
    if a.reference is None:
        return "skip", "no reference model in this audit"
    if problem is None:
        return "ok", "the reference model is the committed one (identity digest matches)"
    return "ok", f"reference-based scores are labelled estimates: {problem}"


def _recompute(a: AuditResult, t: Any) -> Any:
    c = np.array([i.scores[t.score] for i in a.items if i.role == "canary"])
    z = np.array([i.scores[t.score] for i in a.items if i.role == "counterfactual"])
    return run_statistic(t.result.name, c, z, t.result.details)


def check_statistics(a: AuditResult) -> tuple[Verdict, str]:
    """Every test recomputed from the stored per-item scores (or extraction matches)."""
    if a.task == "extraction":
        return check_extraction(a)
    if a.task not in SCORED_TASKS:
        return "skip", f"task {a.task!r}: its statistics are not recomputed by this verifier"
    ref_fp = a.reference.fingerprint if a.reference is not None else None
    problem = reference_problem(a.canary_set.plan, ref_fp)
    problems = []
    for t in a.tests:
        try:
            again = label_reference_tests([_as_named(t, _recompute(a, t))], problem)[0].result
        except Exception as e:
            problems.append(f"{t.score}/{t.result.name}: cannot recompute ({e})")
            continue
        problems += compare_results(f"{t.score}/{t.result.name}", t.result, again)
    if problems:
        return "FAIL", "; ".join(problems)
    return "ok", f"{len(a.tests)} tests recomputed from the stored per-item scores"


def _as_named(t: Any, result: Any) -> Any:
    from dataclasses import replace

    return replace(t, result=result)


def compare_results(where: str, stored: Any, again: Any) -> list[str]:
    """Differences between a stored TestResult and its recomputation, field by field."""
    out = []
    for field in ("pvalue", "statistic", "min_attainable_p", "log10_pvalue"):
        if not _close(getattr(stored, field), getattr(again, field)):
            out.append(f"{where}: {field} stored {getattr(stored, field)!r}, recomputed {getattr(again, field)!r}")
    key = (stored.name, stored.kind, stored.k, stored.m)
    if key != (again.name, again.kind, again.k, again.m):
        out.append(f"{where}: name/kind/K/M stored {key}, recomputed {(again.name, again.kind, again.k, again.m)}")
    return out


def check_extraction(a: AuditResult) -> tuple[Verdict, str]:
    """Matches recounted from the stored continuations against the committed suffixes, and the
    binomial tests recomputed from them."""
    from harness.stats.extraction import count_matches, extraction_test

    spec = a.canary_set.spec
    p = int(spec["prefix_length"])
    canaries = {i.id: i for i in a.items if i.role == "canary"}
    problems: list[str] = []
    for t in a.tests:
        d = t.result.details
        if t.result.kind == "estimate" and t.score == "document-extraction":
            continue  # evidence on natural text: no statistic to recompute
        extr = next((x.result.details.get("extractions") for x in a.tests if x.primary), None) or []
        greedy, best = [], []
        for e in extr:
            truth = list(e["truth_units"])
            item = canaries.get(e["id"])
            if item is None or (spec["kind"] == "words" and item.text.split()[p:] != truth):
                problems.append(f"{e['id']}: the stored truth is not the committed canary's suffix")
            g = count_matches(e["greedy_units"], truth)
            greedy.append(g)
            best.append(max([g] + [count_matches(u, truth) for u in e["samples_units"]]))
        matches = greedy if t.score == "greedy-matches" else best
        if list(d.get("matches", [])) != matches:
            problems.append(f"{t.score}: stored matches {d.get('matches')} != recounted {matches}")
        again = extraction_test(
            matches,
            length=int(d["length"]),
            alphabet_size=int(d["alphabet_size"]),
            canary_length=int(d["canary_length"]),
            attempts=int(d["attempts"]),
            name=t.result.name,
            iid_units=not (spec["kind"] == "tokens" and spec.get("rejection_rule")),
        )
        if (d["length"], d["alphabet_size"], d["canary_length"]) != (
            spec["length"] - p, spec["alphabet_size"], spec["length"]
        ):
            problems.append(f"{t.score}: test parameters differ from the committed spec")
        problems += compare_results(t.score, t.result, again)
    if problems:
        return "FAIL", "; ".join(problems)
    return "ok", f"{len(a.tests)} extraction tests recounted and recomputed from the continuations"
