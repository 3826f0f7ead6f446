"""The second half of `tdp evidence verify`: members recomputed from the members they derive
from, then each report verified (harness/verify) against the canary files in the bundle."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.evidence import derived
from harness.evidence.bundle import Manifest, Member, sha256
from harness.evidence.checks import EvidenceCheck, EvidenceOptions
from harness.results import Report, ReportError


def _report(entries: dict[str, bytes], name: str) -> Report | None:
    try:
        return Report.from_dict(json.loads(entries[name]))
    except (KeyError, ValueError, TypeError, ReportError):
        return None


def _expected(m: Member, entries: dict[str, bytes], manifest: Manifest) -> bytes | None:
    """The bytes member `m` must have, recomputed from its sources (None: not recomputable)."""
    from canaries.canary_set import canary_set_from_dict

    src = m.derived_from
    if m.kind == "scores":
        report = _report(entries, src[0])
        run = src[0].split("/")[1]
        for i, a in enumerate(report.audits if report else ()):
            if derived.scores_name(run, i, a) == m.name:
                return derived.scores_csv(a)
        return b""
    if m.kind == "model-identity":
        reports = {n.split("/")[1]: _report(entries, n) for n in src}
        if any(r is None for r in reports.values()):
            return b""
        return derived.models_json(reports)  # type: ignore[arg-type]
    if m.kind in ("timestamp", "beacon"):
        try:
            cs = canary_set_from_dict(json.loads(entries[src[0]]))
        except (KeyError, ValueError, TypeError):
            return b""
        return derived.protocol_members(cs).get(m.name, b"")
    return None


def _pdf_check(m: Member, entries: dict[str, bytes]) -> EvidenceCheck:
    from harness.evidence.pdf import PdfError, read_pdf

    try:
        facts = read_pdf(entries[m.name])
    except PdfError as e:
        return EvidenceCheck(m.name, "rendered from", "FAIL" if "readable" in str(e) else "open",
                             str(e))
    want = {n: sha256(entries[n]) for n in m.derived_from if n in entries}
    if facts.sources != want:
        return EvidenceCheck(m.name, "rendered from", "FAIL", "the PDF was not rendered from this "
                             "bundle's reports (its metadata names other report.json digests)")
    return EvidenceCheck(m.name, "rendered from", "ok", f"{facts.pages} pages, rendered from "
                         f"{', '.join(want)} (digests in its metadata)")


def derived_checks(entries: dict[str, bytes], manifest: Manifest) -> list[EvidenceCheck]:
    """Each derived member equals what its sources give now."""
    out, ok = [], 0
    for m in manifest.members:
        if not m.derived_from or m.name not in entries:
            continue
        if m.kind == "pdf":
            out.append(_pdf_check(m, entries))
            continue
        want = _expected(m, entries, manifest)
        if want is None:
            continue
        if want != entries[m.name]:
            out.append(EvidenceCheck(m.name, "derived", "FAIL", "does not match what "
                                     f"{', '.join(m.derived_from)} give"))
        else:
            ok += 1
    out.append(EvidenceCheck("(derived)", "derived", "ok", f"{ok} members (scores tables, model "
                             "identities, protocol records) recomputed identically"))
    return out


def _extract_canaries(entries: dict[str, bytes], manifest: Manifest, root: Path) -> list[Path]:
    paths = []
    for m in manifest.members:
        if m.kind in ("canary-file", "secret") and m.name in entries:
            p = root / m.name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(entries[m.name])
            p.chmod(0o600)
            if m.kind == "canary-file":
                paths.append(p)
    return paths


def report_checks(entries: dict[str, bytes], manifest: Manifest,
                  options: EvidenceOptions) -> list[EvidenceCheck]:
    """`tdp verify` on every report, with the bundle's canary files; re-scoring with --model."""
    from harness.verify import VerifyOptions, verify_report

    out: list[EvidenceCheck] = []
    loader = _Loader(options.models)
    with tempfile.TemporaryDirectory(prefix="tdp-evidence-") as tmp:
        files = tuple(_extract_canaries(entries, manifest, Path(tmp)))
        for m in manifest.members:
            if not m.name.endswith("/report.json") or m.name not in entries:
                continue
            report = _report(entries, m.name)
            if report is None:
                out.append(EvidenceCheck(m.name, "report", "FAIL", "not a readable tdp report"))
                continue
            vopts = VerifyOptions(files, options.commitments, rescore=False)
            for c in verify_report(report, vopts):
                if c.name == "rescore":
                    c = replace(c, **dict(zip(("verdict", "detail"),
                                              _rescore(report, c.audit, files, options, loader),
                                              strict=True)))
                verdict = c.verdict
                if (verdict == "FAIL" and c.name == "secret" and not manifest.secret_revealed
                        and "not revealed" in c.detail):
                    verdict = "open"  # the owner chose not to reveal it; the bundle says so
                out.append(EvidenceCheck(m.name, f"{c.audit} :: {c.name}", verdict, c.detail))
    return out


class _Loader:
    """Loads each --model once; finds the one whose identity is an audit's model."""

    def __init__(self, specs: tuple[str, ...]) -> None:
        self.specs, self.loaded = specs, {}

    def __call__(self, spec: str):  # noqa: ANN204 - a Backend
        from harness.backends import load_backend

        if spec not in self.loaded:
            self.loaded[spec] = load_backend(spec)
        return self.loaded[spec]

    def matching(self, fingerprint: dict) -> str | None:
        from harness.backends.base import Fingerprint
        from harness.verify.rescore import same_model

        for spec in self.specs:
            if same_model(Fingerprint.from_dict(fingerprint), self(spec))[0]:
                return spec
        return None


def _rescore(report: Report, title: str, files: tuple[Path, ...], options: EvidenceOptions,
             loader: Callable) -> tuple[str, str]:
    from harness.backends import BackendError, ModelSpecError
    from harness.verify.report import load_canary_file
    from harness.verify.rescore import check_rescore

    if not options.models:
        return "open", "not re-scored: pass --model SPEC (the stored scores are not evidence alone)"
    a = next(a for a in report.audits if a.title == title)
    try:
        spec = loader.matching(a.model.fingerprint)
        if spec is None:
            return "open", f"not re-scored: no --model given has this audit's model identity " \
                           f"({a.model.spec})"
        ref = loader.matching(a.reference.fingerprint) if a.reference else None
        cs = next(f.cs for f in map(load_canary_file, files)
                  if f.cs.commitment == a.canary_set.commitment)
        plan = replace(options.rescore_plan, model=spec,
                       reference=ref or options.rescore_plan.reference)
        return check_rescore(a, cs, plan, loader)
    except (BackendError, ModelSpecError, OSError, StopIteration) as e:
        return "FAIL", f"cannot re-score: {e or 'no canary file with this commitment'}"
