"""`tdp evidence pack`: run folders -> one signed bundle (reports, canary files, protocol
records, model identities, per-item scores, environment, custody logs, PDF, manifest)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaries.canary_set import CanarySet, CanarySetError, load_canary_set, secret_path
from canaries.files import atomic_write_bytes, check_new_output
from harness.evidence import derived
from harness.evidence.bundle import (
    SIGNATURE,
    TIMESTAMP,
    BundleError,
    Manifest,
    Member,
    sha256,
    write_bundle,
)
from harness.evidence.custody import LOG_NAME, merge, parse_log
from harness.evidence.signing import Signer, sign, signer_info
from harness.protocol.timestamp import TimestampRecord
from harness.results import Report, load_report

REPORT_MEMBERS = ("report.json", "report.html", "report.md")
#: digest hex -> a verified RFC 3161 record over it (a TSA, or the local test TSA)
Stamper = Callable[[str], TimestampRecord]


@dataclass(frozen=True)
class PackOptions:
    """Choices of whoever packs: what to reveal, what to add, how to seal."""

    canaries: tuple[Path, ...] = ()  # canary files (default: the paths recorded in the reports)
    reveal_secret: bool = False  # include FILE.secret: lets anyone re-derive the canaries
    pdf: bool = True
    title: str | None = None
    author: str = ""
    stamp: Stamper | None = None
    pack_info: dict[str, Any] = field(default_factory=dict)  # command line, from the CLI


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: Manifest
    size: int
    seconds: float
    pdf: bytes | None


@dataclass
class _Items:
    """Members in the order they will be listed and archived."""

    data: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, Member] = field(default_factory=dict)

    def add(self, name: str, data: bytes, kind: str, source: Path | None = None,
            derived_from: tuple[str, ...] = (), note: str = "") -> None:
        if name in self.data:
            raise BundleError(f"two members would be named {name!r}")
        self.data[name] = data
        self.meta[name] = Member(name, sha256(data), len(data), kind,
                                 str(source.absolute()) if source else None, derived_from, note)


def _run_names(run_dirs: tuple[Path, ...]) -> list[str]:
    names: list[str] = []
    for d in run_dirs:
        base = derived.slug(d.absolute().name or "run")
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _resolve_canaries(runs: dict[str, tuple[Path, Report]], given: tuple[Path, ...]
                      ) -> dict[str, tuple[Path, CanarySet]]:
    """commitment -> (file, set) for every audit; the given files first, then recorded paths."""
    found = {}
    for p in given:
        cs = load_canary_set(p)
        found[cs.commitment] = (p, cs)
    for run_dir, report in runs.values():
        for a in report.audits:
            c = a.canary_set.commitment
            if c in found:
                continue
            recorded = Path(a.canary_set.path)
            for p in dict.fromkeys([recorded, run_dir / recorded, run_dir / recorded.name]):
                try:
                    cs = load_canary_set(p)
                except (CanarySetError, OSError):
                    continue
                if cs.commitment == c:
                    found[c] = (p, cs)
                    break
            else:
                raise BundleError(f"the canary file of audit {a.title!r} (commitment {c[:16]}…) "
                                  f"is not at its recorded path {recorded}; pass --canaries FILE")
    return found


def _add_runs(items: _Items, runs: dict[str, tuple[Path, Report]]) -> None:
    for name, (run_dir, report) in runs.items():
        for f in REPORT_MEMBERS:
            if (run_dir / f).is_file():
                items.add(f"runs/{name}/{f}", (run_dir / f).read_bytes(), "report", run_dir / f)
        if (run_dir / LOG_NAME).is_file():
            items.add(f"runs/{name}/{LOG_NAME}", (run_dir / LOG_NAME).read_bytes(),
                      "custody-log", run_dir / LOG_NAME)
        src = (f"runs/{name}/report.json",)
        for i, a in enumerate(report.audits):
            items.add(derived.scores_name(name, i, a), derived.scores_csv(a), "scores",
                      derived_from=src, note=f"per-item scores of audit {a.title!r}")


def _add_canaries(items: _Items, files: dict[str, tuple[Path, CanarySet]], reveal: bool,
                  logs_seen: set[Path]) -> None:
    for path, cs in files.values():
        base = derived.canary_dir(cs)
        items.add(f"{base}/{path.name}", path.read_bytes(), "canary-file", path)
        if reveal:
            sp = secret_path(path)
            if not sp.is_file():
                raise BundleError(f"--reveal-secret: {sp} not found")
            items.add(f"{base}/{sp.name}", sp.read_bytes(), "secret", sp,
                      note="the secret seed: with it anyone re-derives the canaries")
        for name, data in derived.protocol_members(cs).items():
            items.add(name, data, "timestamp" if "/timestamp-" in name else "beacon",
                      derived_from=(f"{base}/{path.name}",),
                      note="a copy of the record held in the canary file")
        log = path.parent / LOG_NAME
        if log.is_file() and log.resolve() not in logs_seen:
            logs_seen.add(log.resolve())
            items.add(f"{base}/{LOG_NAME}", log.read_bytes(), "custody-log", log)


def _readme(fingerprint: str) -> bytes:
    return (
        "tdp evidence bundle\n===================\n\n"
        "manifest.json lists every file of this archive with its sha256; manifest.sig.json is an\n"
        f"Ed25519 signature over manifest.json by the key with fingerprint\n  {fingerprint}\n"
        "(sha256 of the raw public key). report.pdf is the expert report.\n\n"
        "Check everything (offline):\n"
        f"  tdp evidence verify THIS.tdp.zip --signer {fingerprint}\n"
        "Re-score with the model as well:\n"
        "  tdp evidence verify THIS.tdp.zip --signer FINGERPRINT --model hf:/path/to/model\n"
        "By hand: unzip, `sha256sum` each file against manifest.json; timestamp tokens (*.tsr)\n"
        "verify with `openssl ts -verify`.\n"
    ).encode()


def _protocol(files: dict[str, tuple[Path, CanarySet]], reveal: bool
              ) -> tuple[tuple[str, tuple[dict, ...]], ...]:
    """Each canary set's protocol steps as checked now (with its secret when revealed)."""
    from canaries.canary_set import read_secret
    from harness.protocol.pool import check_protocol

    out = []
    for c, (path, cs) in files.items():
        seed = read_secret(secret_path(path)) if reveal else None
        out.append((c, tuple(s.to_dict() for s in check_protocol(cs, seed))))
    return tuple(out)


def _pdf(items: _Items, runs: dict[str, tuple[Path, Report]], title: str, created: str,
         options: PackOptions, fingerprint: str,
         protocol: tuple[tuple[str, tuple[dict, ...]], ...]) -> bytes:
    from harness.evidence.pdf import PdfInput, render_pdf
    from harness.report.html import render_html

    logs = [parse_log(d)[0] for n, d in items.data.items() if n.endswith(LOG_NAME)]
    html = []
    for name, (_, report) in runs.items():
        key = f"runs/{name}/report.html"
        html.append((name, report, items.data[key].decode() if key in items.data
                     else render_html(report)))
    digests = tuple((n, m.sha256) for n, m in items.meta.items() if n.endswith("/report.json"))
    data = PdfInput(title, created, options.author, tuple(html), tuple(items.meta.values()),
                    tuple(merge(logs)[0]), fingerprint, digests, protocol)
    return render_pdf(data)


def pack(run_dirs: tuple[Path, ...], out: Path, signer: Signer,
         options: PackOptions | None = None, force: bool = False) -> PackResult:
    """Build, sign (and timestamp) the bundle, then write it atomically to `out`."""
    from harness.provenance import environment, git_hash

    options = options or PackOptions()
    t0 = time.perf_counter()
    check_new_output(out, force, "bundle")
    if not run_dirs:
        raise BundleError("give at least one run folder (holding report.json)")
    runs = {n: (d, load_report(d)) for n, d in zip(_run_names(run_dirs), run_dirs, strict=True)}
    files = _resolve_canaries(runs, options.canaries)
    created = dt.datetime.now(dt.timezone.utc)
    items = _Items()
    items.add("README.txt", _readme(signer.fingerprint), "readme")
    _add_runs(items, runs)
    _add_canaries(items, files, options.reveal_secret,
                  {(d / LOG_NAME).resolve() for d, _ in runs.values()})
    reports = {n: r for n, (_, r) in runs.items()}
    items.add("models.json", derived.models_json(reports), "model-identity",
              derived_from=tuple(f"runs/{n}/report.json" for n in runs))
    env = {"packed_on": environment(), "runs": {n: r.provenance for n, r in reports.items()}}
    items.add("environment.json", (json.dumps(env, indent=1, sort_keys=True) + "\n").encode(),
              "environment")
    title = options.title or next(iter(reports.values())).title
    pdf = None
    if options.pdf:
        pdf = _pdf(items, runs, title, created.isoformat(timespec="milliseconds"), options,
                   signer.fingerprint, _protocol(files, options.reveal_secret))
        items.add("report.pdf", pdf, "pdf",
                  derived_from=tuple(f"runs/{n}/report.json" for n in runs))
    info = {"command": "tdp evidence pack", "host": os.uname().nodename, "cwd": os.getcwd(),
            "harness_version": _version(), "git": git_hash(), **options.pack_info}
    notes = () if options.reveal_secret else (
        "The secret seeds are not in this bundle: that the canaries are the ones the committed "
        "seed and the beacon round derive stays unchecked until the owner reveals them.",)
    manifest = Manifest(created.isoformat(timespec="milliseconds"), title, info,
                        signer_info(signer), options.reveal_secret, tuple(items.meta.values()),
                        notes, {"timestamp": _stamp_note(options)})
    mbytes = manifest.to_bytes()
    seal = {SIGNATURE: sign(mbytes, signer)}
    if options.stamp is not None:
        record = options.stamp(sha256(mbytes))
        seal[TIMESTAMP] = (json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n").encode()
    buf = io.BytesIO()
    write_bundle(buf, mbytes, seal, items.data, created.timetuple()[:6])
    atomic_write_bytes(out, buf.getvalue(), force=force, what="bundle")
    return PackResult(out, manifest, len(buf.getvalue()), time.perf_counter() - t0, pdf)


def _stamp_note(options: PackOptions) -> str | None:
    """Announced inside the signed manifest, so that a stripped timestamp is seen."""
    return None if options.stamp is None else "RFC 3161 timestamp over this manifest's sha256 " \
        "in manifest.tsr.json"


def _version() -> str:
    from harness import __version__

    return __version__
