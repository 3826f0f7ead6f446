"""`tdp verify`: recompute a report's claims from its own data and say, check by check, what holds.

Checks, per audit:
- plan: exactly one primary test, and it is the committed plan's (score, statistic);
- canary file: the commitment recomputes, and the report's canaries, spec and plan are the file's;
- seed: the audit seed re-derives from the commitment and the model fingerprint in the report;
- model: the model spec names the model in the fingerprint;
- counterfactuals: redrawn from the committed spec with the recorded seed, text for text;
- statistics: every test (primary and secondary) recomputed from the stored per-item scores;
- rescore (optional): N random items re-scored with the model, within an absolute tolerance;
and per report: Holm-adjusted p-values recomputed, and the audit digest (an integrity seal that
catches careless edits; a forger can recompute it, which is why the checks above exist).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from canaries.canary_set import CanarySet, CanarySetError, load_canary_set
from canaries.drbg import HashDRBG
from canaries.generators import GeneratorSpec, draw_canaries
from harness.audit import SEED_DERIVATION, audit_digest, audit_seed
from harness.backends.base import Fingerprint
from harness.results import AuditResult, Report
from harness.stats import PlanViolation, check_primary, counterfactuals_needed, holm, run_statistic

Verdict = Literal["ok", "FAIL", "skip"]
#: tasks whose counterfactual draw and statistics this verifier knows how to redo
RECOMPUTABLE_TASKS = ("canary-rank", "set-inference")
#: agreement required between a stored and a recomputed p-value/statistic (relative)
RECOMPUTE_RTOL = 1e-9
#: default agreement required between a stored and a re-scored score (absolute, in nats/token)
RESCORE_ATOL = 1e-3


@dataclass(frozen=True)
class Check:
    audit: str
    name: str
    verdict: Verdict
    detail: str


def _close(a: float, b: float, rtol: float = RECOMPUTE_RTOL) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)


def check_plan(a: AuditResult) -> tuple[Verdict, str]:
    try:
        governed = check_primary(a.canary_set.plan, a.task, a.tests)
    except (PlanViolation, KeyError) as e:
        return "FAIL", str(e)
    if not governed:
        if a.role != "additional":
            return "FAIL", f"task {a.task!r} is not the plan's, yet the audit is not labelled additional"
        return "ok", f"additional analysis (task {a.task!r}; the plan pre-registers {a.canary_set.plan.get('task')!r})"
    return (
        "ok",
        f"primary = {a.canary_set.plan['statistic']} on {a.canary_set.plan['score']} (the plan's)",
    )


def check_canary_file(a: AuditResult, cs: CanarySet | None, why_none: str) -> tuple[Verdict, str]:
    if cs is None:
        return "FAIL", f"canary file not checked: {why_none}"
    problems = []
    if cs.commitment != a.canary_set.commitment:
        problems.append("commitment differs from the canary file's")
    if cs.spec.to_dict() != a.canary_set.spec:
        problems.append("generator spec differs")
    if cs.to_dict()["plan"] != a.canary_set.plan:
        problems.append("plan differs")
    report_canaries = [(i.id, i.text) for i in a.items if i.role == "canary"]
    if report_canaries != [(c.id, c.text) for c in cs.canaries]:
        problems.append("canary ids/texts differ from the committed canaries")
    if a.canary_set.count != len(cs.canaries):
        problems.append("canary count differs")
    if problems:
        return "FAIL", "; ".join(problems)
    return "ok", f"commitment {cs.commitment[:16]}... recomputes; canaries, spec and plan match"


def check_seed(a: AuditResult) -> tuple[Verdict, str]:
    if a.seed_derivation != SEED_DERIVATION:
        return (
            "FAIL",
            f"seed not derived by the standard rule ({a.seed_derivation}); nobody can check it",
        )
    try:
        fp = Fingerprint.from_dict(a.model.fingerprint)
    except TypeError as e:
        return "FAIL", f"malformed model fingerprint: {e}"
    derived = audit_seed(a.canary_set.commitment, fp).hex()
    if derived != a.audit_seed:
        return "FAIL", "audit seed does not re-derive from the commitment and model fingerprint"
    return "ok", "audit seed = sha256(label | commitment | model identity digest)"


def check_model_name(a: AuditResult) -> tuple[Verdict, str]:
    from harness.backends.spec import ModelSpecError, parse_model_spec

    try:
        spec = parse_model_spec(a.model.spec)
    except ModelSpecError as e:
        return "FAIL", str(e)
    fp = a.model.fingerprint
    name, fp_model = spec.model, str(fp.get("model"))
    if Path(name).expanduser().exists():
        name = str(Path(name).expanduser().resolve())
    elif not Path(name).expanduser().is_absolute() and fp_model.endswith("/" + str(Path(name))):
        name = fp_model  # a relative local path recorded elsewhere: the fingerprint holds its resolution
    if (
        name != fp_model
        or spec.backend != fp.get("backend")
        or spec.revision not in (None, fp.get("revision"))
    ):
        return (
            "FAIL",
            f"model spec {a.model.spec!r} does not name the fingerprinted model {fp.get('model')!r}",
        )
    return "ok", f"spec names the fingerprinted model ({fp.get('backend')}:{fp.get('model')})"


def check_counterfactuals(a: AuditResult) -> tuple[Verdict, str]:
    try:
        spec = GeneratorSpec.from_dict(a.canary_set.spec)
        plan = a.canary_set.plan
        canaries = [i.text for i in a.items if i.role == "canary"]
        seed = bytes.fromhex(a.audit_seed)
        if a.task == "set-inference":  # out-world users' marks, drawn like counterfactuals
            from tasks.set_inference import out_world_items

            redrawn = out_world_items(spec, canaries, seed, int(plan["counterfactuals"]))
        else:
            n = counterfactuals_needed(plan["statistic"], len(canaries), int(plan["counterfactuals"]))
            drawn = draw_canaries(
                spec, HashDRBG(seed, "counterfactuals"), n, exclude=canaries, id_prefix="cf-"
            )
            redrawn = [(c.id, c.text) for c in drawn]
    except Exception as e:  # malformed spec/seed: a failed check, not a crash
        return "FAIL", f"cannot redraw counterfactuals: {e}"
    stored = [(i.id, i.text) for i in a.items if i.role == "counterfactual"]
    if stored != redrawn:
        bad = sum(x != y for x, y in zip(stored, redrawn, strict=False))
        return "FAIL", (
            f"{len(stored)} stored counterfactuals vs {len(redrawn)} redrawn from the spec and "
            f"seed; {bad} differ"
        )
    return (
        "ok",
        f"{len(redrawn)} counterfactuals redrawn from the committed spec and recorded seed, identical",
    )


def check_statistics(a: AuditResult) -> tuple[Verdict, str]:
    statistic = a.canary_set.plan.get("statistic")
    problems = []
    for t in a.tests:
        try:
            c = np.array([i.scores[t.score] for i in a.items if i.role == "canary"])
            z = np.array([i.scores[t.score] for i in a.items if i.role == "counterfactual"])
            r = run_statistic(t.result.name if not t.primary else statistic, c, z)
        except Exception as e:
            problems.append(f"{t.score}: cannot recompute ({e})")
            continue
        for field in ("pvalue", "statistic", "min_attainable_p"):
            if not _close(getattr(r, field), getattr(t.result, field)):
                problems.append(
                    f"{t.score}/{t.result.name}: {field} stored {getattr(t.result, field)!r}, "
                    f"recomputed {getattr(r, field)!r}"
                )
        if (r.name, r.kind, r.k, r.m) != (t.result.name, t.result.kind, t.result.k, t.result.m):
            problems.append(
                f"{t.score}: name/kind/K/M stored {(t.result.name, t.result.kind, t.result.k, t.result.m)}"
                f" recomputed {(r.name, r.kind, r.k, r.m)}"
            )
    if problems:
        return "FAIL", "; ".join(problems)
    return "ok", f"{len(a.tests)} tests recomputed from the stored per-item scores"


def check_rescore(
    a: AuditResult, n: int, model_spec: str | None, seed: int, atol: float
) -> tuple[Verdict, str]:
    from harness.backends import load_backend
    from harness.scoring import ScoringRequest, score_texts

    backend = load_backend(model_spec or a.model.spec)
    fp = backend.fingerprint()
    stored_fp = Fingerprint.from_dict(a.model.fingerprint)
    if fp.identity_digest() != stored_fp.identity_digest():
        return (
            "FAIL",
            "the model loaded for rescoring is not the fingerprinted one (identity digest differs)",
        )
    names = sorted({k for i in a.items for k in i.scores})
    reference = None
    if a.reference is not None and any(n_ == "ref_ratio" for n_ in names):
        reference = load_backend(a.reference.spec)
    pick = random.Random(seed).sample(range(len(a.items)), min(n, len(a.items)))
    items = [a.items[i] for i in pick]
    options: dict[str, dict[str, float]] = {}
    if "min_k" in a.task_config:
        options["min_k"] = {"k": float(a.task_config["min_k"])}
    plan_opts = a.canary_set.plan.get("score_options") or {}
    if plan_opts:
        options[a.canary_set.plan["score"]] = plan_opts
    rows = score_texts(
        [i.text for i in items],
        backend,
        ScoringRequest(tuple(names), options),
        bytes.fromhex(a.audit_seed),
        reference=reference,
    )
    worst = 0.0
    for item, row in zip(items, rows, strict=True):
        for k in names:
            worst = max(worst, abs(row[k] - item.scores[k]))
    if worst > atol:
        return (
            "FAIL",
            f"re-scored {len(items)} items: largest |difference| {worst:.3g} > tolerance {atol}",
        )
    return (
        "ok",
        f"re-scored {len(items)} random items: largest |difference| {worst:.2g} <= tolerance {atol}",
    )


def _commitments(paths: list[Path]) -> tuple[dict[str, Path], list[Check]]:
    """Commitment -> file for the canary files given; a file that does not load is a FAIL."""
    out: dict[str, Path] = {}
    failed: list[Check] = []
    for p in paths:
        try:
            out[load_canary_set(p).commitment] = p
        except CanarySetError as e:
            failed.append(Check("report", "canary file", "FAIL", str(e)))
    return out, failed


def verify_report(
    report: Report,
    canaries: str | Path | list[str | Path] | None = None,
    rescore: int = 0,
    model: str | None = None,
    rescore_seed: int = 0,
    atol: float = RESCORE_ATOL,
) -> list[Check]:
    """Run every check; a check that cannot be run with the given inputs is a FAIL or a skip."""
    checks: list[Check] = []
    digest = report.extra.get("audit_digest")
    recomputed = audit_digest(report.audits, report.holm_adjusted)
    if digest is None:
        checks.append(Check("report", "digest", "FAIL", "report carries no audit digest"))
    elif digest != recomputed:
        checks.append(
            Check("report", "digest", "FAIL", "audit digest does not match the report's content")
        )
    else:
        checks.append(
            Check("report", "digest", "ok", "audit digest matches (catches careless edits only)")
        )
    claims = [a for a in report.audits if a.role == "audit"]
    if len(claims) > 1:
        adj = iter(holm([a.primary.result.pvalue if _has_primary(a) else 1.0 for a in claims]))
        expect = [next(adj) if a.role == "audit" else float("nan") for a in report.audits]
        ok = (
            report.holm_adjusted is not None
            and len(report.holm_adjusted) == len(expect)
            and all(
                _close(float(x), float(y))
                for x, y in zip(report.holm_adjusted, expect, strict=True)
            )
        )
        checks.append(
            Check(
                "report",
                "holm",
                "ok" if ok else "FAIL",
                "Holm-adjusted p-values recomputed" if ok else "Holm-adjusted p-values differ",
            )
        )
    elif report.holm_adjusted is not None:
        checks.append(Check("report", "holm", "FAIL", "Holm adjustment present for a single claim"))
    given = [Path(c) for c in ([canaries] if isinstance(canaries, str | Path) else canaries or [])]
    by_commitment, unreadable = _commitments(given)
    checks += unreadable
    several_sets = len({a.canary_set.commitment for a in report.audits}) > 1
    for a in report.audits:
        title = a.title
        cs, why = None, ""
        path = by_commitment.get(a.canary_set.commitment)
        if path is None:  # one set in the report: the file in hand must be its file
            path = given[0] if given and not several_sets else Path(a.canary_set.path)
        try:
            cs = load_canary_set(path)
        except CanarySetError as e:
            why = (
                str(e)
                if given or path.exists()
                else f"canary file {path} not found (pass --canaries)"
            )
        for name, fn in (
            ("plan", lambda a=a: check_plan(a)),
            ("canary file", lambda a=a, cs=cs, why=why: check_canary_file(a, cs, why)),
            ("model name", lambda a=a: check_model_name(a)),
            ("audit seed", lambda a=a: check_seed(a)),
            ("counterfactuals", lambda a=a: check_counterfactuals(a)),
            ("statistics", lambda a=a: check_statistics(a)),
        ):
            if name in ("counterfactuals", "statistics") and a.task not in RECOMPUTABLE_TASKS:
                v, d = "skip", f"task {a.task!r}: not recomputed by this verifier"
            else:
                v, d = fn()
            checks.append(Check(title, name, v, d))
        if rescore > 0:
            v, d = check_rescore(a, rescore, model, rescore_seed, atol)
            checks.append(Check(title, "rescore", v, d))
        else:
            checks.append(Check(title, "rescore", "skip", "not requested (--rescore N)"))
    return checks


def _has_primary(a: AuditResult) -> bool:
    return sum(t.primary for t in a.tests) == 1
