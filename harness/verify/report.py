"""Verify a whole report: its seal and Holm adjustment, then each audit against the canary file
it is given (never silently another), the protocol chain, and the model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from canaries.canary_set import CanarySet, CanarySetError, load_canary_set, read_secret, secret_path
from harness.audit import audit_digest
from harness.backends.base import Backend
from harness.results import AuditResult, Report
from harness.stats import holm
from harness.verify import checks as C
from harness.verify.checks import Check, Verdict
from harness.verify.rescore import RescorePlan, check_rescore

NO_RESCORE = (
    "not re-scored (--no-rescore): the stored scores, and any score cache they came from, are "
    "not evidence by themselves; a forged score (even a cache chunk with a valid checksum) is "
    "caught only by re-scoring with the model"
)


@dataclass(frozen=True)
class VerifyOptions:
    """What the verifier is given besides the report."""

    canaries: tuple[Path, ...] = ()
    commitments: tuple[str, ...] = ()  # commitments the owner published, in full
    rescore: bool = True
    rescore_plan: RescorePlan = field(default_factory=RescorePlan)


@dataclass(frozen=True)
class CanaryFile:
    path: Path
    cs: CanarySet
    seed: bytes | None
    secret_problem: str  # why seed is None ("" when it is not)


def load_canary_file(path: Path) -> CanaryFile:
    """A canary file and, where revealed, its secret seed (FILE.secret)."""
    cs = load_canary_set(path)
    if not secret_path(path).exists():
        return CanaryFile(path, cs, None, f"secret not revealed ({secret_path(path).name} not found)")
    try:
        return CanaryFile(path, cs, read_secret(secret_path(path)), "")
    except CanarySetError as e:
        return CanaryFile(path, cs, None, str(e))


def verify_report(report: Report, options: VerifyOptions | None = None) -> list[Check]:
    """Run every check; a check that cannot be run with what was given is a FAIL or open."""
    options = options or VerifyOptions()
    # scores are re-computed with the definitions the report was made with (absent: version 1)
    defs = int(report.provenance.get("score_definitions", 1))
    options = replace(options, rescore_plan=replace(options.rescore_plan, score_definitions=defs))
    out = _report_checks(report)
    files, problems = _given_files(report, options)
    out += problems
    backends: dict[str, Backend] = {}

    def load(spec: str) -> Backend:
        from harness.backends import load_backend

        if spec not in backends:
            backends[spec] = load_backend(spec)
        return backends[spec]

    for a in report.audits:
        if a.canary_set is None:  # a benchmark on labelled data: its own checks
            from harness.verify.benchmark import benchmark_checks

            out += benchmark_checks(a, options, load)
            continue
        out += _audit_checks(a, files, options, load)
    return out


def _report_checks(report: Report) -> list[Check]:
    out = []
    digest = report.extra.get("audit_digest")
    recomputed = audit_digest(report.audits, report.holm_adjusted, report.schema_version)
    if digest is None:
        out.append(Check("report", "digest", "FAIL", "report carries no audit digest"))
    elif digest != recomputed:
        out.append(Check("report", "digest", "FAIL", "audit digest does not match the report's content"))
    else:
        out.append(Check("report", "digest", "ok", "audit digest matches (a seal against careless "
                         "edits; what a forger cannot recompute is checked below)"))
    claims = [a for a in report.audits if a.role == "audit"]
    if len(claims) > 1:
        adj = iter(holm([a.primary.result.pvalue if _one_primary(a) else 1.0 for a in claims]))
        expect = [next(adj) if a.role == "audit" else math.nan for a in report.audits]
        got = report.holm_adjusted or ()
        ok = len(got) == len(expect) and all(C._close(float(x), float(y)) for x, y in zip(got, expect, strict=True))
        out.append(Check("report", "holm", "ok" if ok else "FAIL",
                         "Holm-adjusted p-values recomputed" if ok else "Holm-adjusted p-values differ"))
    elif report.holm_adjusted is not None:
        out.append(Check("report", "holm", "FAIL", "Holm adjustment present for a single claim"))
    return out


def _given_files(report: Report, options: VerifyOptions) -> tuple[dict[str, CanaryFile], list[Check]]:
    """Commitment -> the canary file given for it; files and commitments that fit no audit fail."""
    files: dict[str, CanaryFile] = {}
    out = []
    in_report = {a.canary_set.commitment for a in report.audits if a.canary_set is not None}
    for path in options.canaries:
        try:
            f = load_canary_file(Path(path))
        except CanarySetError as e:
            out.append(Check("report", "canary file", "FAIL", str(e)))
            continue
        if f.cs.commitment not in in_report:
            out.append(Check("report", "canary file", "FAIL", f"{path}: commitment {f.cs.commitment} "
                             "belongs to no audit of this report"))
        files[f.cs.commitment] = f
    for c in options.commitments:
        if c.lower() not in in_report:
            out.append(Check("report", "published commitment", "FAIL",
                             f"published commitment {c} belongs to no audit of this report"))
    return files, out


def _audit_checks(
    a: AuditResult, files: dict[str, CanaryFile], options: VerifyOptions, load: Callable[[str], Backend]
) -> list[Check]:
    title = a.title
    out = [Check(title, "plan", *C.check_plan(a))]
    f, found, why = _file_for(a, files, options)
    if f is None:
        out.append(Check(title, "canary file", "FAIL", why))
    else:
        out.append(Check(title, "canary file", *C.check_canary_file(a, f.cs, found)))
    published = tuple(c.lower() for c in options.commitments)
    out.append(Check(title, "published commitment", *C.check_published(a, published)))
    out.append(Check(title, "model name", *C.check_model_name(a)))
    if f is not None and f.cs.commitment == a.canary_set.commitment:
        out += _file_checks(a, f)
    else:
        for name in ("protocol", "audit seed", "counterfactuals"):
            out.append(Check(title, name, "FAIL", "needs the audit's canary file"))
    out.append(Check(title, "reference", *C.check_reference(a)))
    out.append(Check(title, "statistics", *C.check_statistics(a)))
    out.append(_rescore_check(a, f, options, load))
    return out


def _file_for(
    a: AuditResult, files: dict[str, CanaryFile], options: VerifyOptions
) -> tuple[CanaryFile | None, str, str]:
    """The file given for this audit; without --canaries, the recorded path, said so."""
    if a.canary_set.commitment in files:
        f = files[a.canary_set.commitment]
        return f, f"{f.path} (given)", ""
    if options.canaries:
        return None, "", "none of the canary files given has this audit's commitment"
    path = Path(a.canary_set.path)
    try:
        f = load_canary_file(path)
    except CanarySetError as e:
        return None, "", f"no --canaries given, and the path recorded in the report fails: {e}"
    return f, f"{path} (no --canaries given: the path recorded in the report)", ""


def _file_checks(a: AuditResult, f: CanaryFile) -> list[Check]:
    from harness.protocol.pool import check_protocol

    title, cs = a.title, f.cs
    out = [Check(title, f"protocol: {s.name}", s.verdict, s.detail) for s in check_protocol(cs, f.seed)]
    out.append(Check(title, "timeline", *_timeline_verdict(a, cs)))
    out.append(Check(title, "secret", *_secret_verdict(f)))
    out.append(Check(title, "audit seed", *C.check_seed(a, cs)))
    if a.task in C.SCORED_TASKS:
        out.append(Check(title, "counterfactuals", *C.check_counterfactuals(a, cs)))
    return out


def _timeline_verdict(a: AuditResult, cs: CanarySet) -> tuple[Verdict, str]:
    """The timeline the report shows is the one the canary file supports."""
    from harness.protocol.pool import check_protocol

    if not a.canary_set.protocol and a.canary_set.format_version == 1:
        return "skip", "a report without a protocol record (schema 1)"
    expected = [s.to_dict() for s in check_protocol(cs)]
    if list(a.canary_set.protocol) != expected:
        return "FAIL", "the protocol timeline recorded in the report is not the canary file's"
    return "ok", "the report's protocol timeline is the canary file's"


def _secret_verdict(f: CanaryFile) -> tuple[Verdict, str]:
    if f.seed is None:
        if f.cs.version == 2:
            return "FAIL", f"{f.secret_problem}: without it nobody can check that the canaries are " \
                "the ones the committed seed and the beacon round derive"
        return "open", f"{f.secret_problem}: that the canaries are the seed's draw is not checked"
    if f.cs.version == 2:
        from harness.protocol.pool import ProtocolError, check_seed

        try:
            check_seed(f.cs, f.seed)
        except ProtocolError as e:
            return "FAIL", str(e)
        return "ok", "the revealed seed matches the committed seed digest"
    from canaries.canary_set import check_secret

    try:
        return "ok", check_secret(f.cs, f.path)
    except CanarySetError as e:
        return "FAIL", str(e)


def _rescore_check(
    a: AuditResult, f: CanaryFile | None, options: VerifyOptions, load: Callable[[str], Backend]
) -> Check:
    if not options.rescore:
        return Check(a.title, "rescore", "open", NO_RESCORE)
    if f is None:
        return Check(a.title, "rescore", "FAIL", "needs the audit's canary file")
    from harness.backends import BackendError, ModelSpecError

    try:
        return Check(a.title, "rescore", *check_rescore(a, f.cs, options.rescore_plan, load))
    except (BackendError, ModelSpecError, OSError) as e:
        return Check(a.title, "rescore", "FAIL", f"cannot re-score with the model: {e} (pass "
                     "--no-rescore to verify without it; the scores then stay unchecked)")


def _one_primary(a: AuditResult) -> bool:
    return sum(t.primary for t in a.tests) == 1
