"""`tdp evidence verify`: seal, members, custody, derived members, then every report's claims.

Order: the archive reads cleanly; the signature over manifest.json (and the signer pinned by
the verifier); the RFC 3161 timestamp over the manifest; every member against the manifest
(present, same sha256 and size, nothing added, same order); the custody logs (line links, then
each file's hash carried from command to command and to its bundled copy); the members derived
from others (recomputed); then `tdp verify` on each report with the bundled canary files.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from harness.evidence.bundle import (
    MANIFEST,
    SEAL,
    SIGNATURE,
    TIMESTAMP,
    BundleError,
    Manifest,
    read_bundle,
    sha256,
)
from harness.evidence.checks import EvidenceCheck, EvidenceOptions
from harness.evidence.custody import LOG_NAME, check_chain, merge, parse_log
from harness.evidence.signing import SigningError, check_certificate, verify_signature

#: members whose source files the chain of custody must account for
CUSTODY_KINDS = ("report", "canary-file", "secret")


def _signature(entries: dict[str, bytes], manifest: Manifest | None,
               options: EvidenceOptions) -> list[EvidenceCheck]:
    if SIGNATURE not in entries:
        return [EvidenceCheck(SIGNATURE, "signature", "FAIL", "the bundle is not signed")]
    try:
        info = verify_signature(entries[MANIFEST], entries[SIGNATURE])
    except SigningError as e:
        return [EvidenceCheck(SIGNATURE, "signature", "FAIL", str(e))]
    out = [EvidenceCheck(SIGNATURE, "signature", "ok",
                         "Ed25519 signature over manifest.json verifies under key "
                         f"{info.fingerprint}")]
    if manifest is not None and manifest.signer.get("public_key_sha256") != info.fingerprint:
        named = manifest.signer.get("public_key_sha256")
        out.append(EvidenceCheck(SIGNATURE, "signer", "FAIL", f"signed by key {info.fingerprint}, "
                                 f"but the manifest names {named}"))
    elif options.signers:
        ok = info.fingerprint in options.signers
        out.append(EvidenceCheck(SIGNATURE, "signer", "ok" if ok else "FAIL",
                   f"key {info.fingerprint} is the pinned signer" if ok else
                   f"signed by key {info.fingerprint}, which is not the --signer given (re-signed "
                   "by someone else?)"))
    elif options.trusted_roots_pem is None:
        out.append(EvidenceCheck(SIGNATURE, "signer", "open", f"signed by key {info.fingerprint}; "
                   "nobody checked that this key is the owner's (pass --signer FINGERPRINT)"))
    if options.trusted_roots_pem is not None and manifest is not None:
        try:
            at = dt.datetime.fromisoformat(manifest.created)
            detail = check_certificate(entries[SIGNATURE], options.trusted_roots_pem, at)
            out.append(EvidenceCheck(SIGNATURE, "certificate", "ok", detail))
        except (SigningError, ValueError) as e:
            out.append(EvidenceCheck(SIGNATURE, "certificate", "FAIL", str(e)))
    return out


def _timestamp(entries: dict[str, bytes], manifest: Manifest,
               options: EvidenceOptions) -> list[EvidenceCheck]:
    from harness.protocol.timestamp import TimestampError, TimestampRecord, verify_record

    if TIMESTAMP not in entries and manifest.extra.get("timestamp"):
        return [EvidenceCheck(TIMESTAMP, "timestamp", "FAIL", "the signed manifest announces an "
                              "RFC 3161 timestamp, but the bundle has none (removed)")]
    if TIMESTAMP not in entries:
        return [EvidenceCheck(TIMESTAMP, "timestamp", "open",
                              "no RFC 3161 timestamp over the manifest: its time is the "
                              "signer's word")]
    try:
        record = TimestampRecord.from_dict(json.loads(entries[TIMESTAMP]))
        info = verify_record(record, sha256(entries[MANIFEST]), options.tsa_roots_pem)
    except (TimestampError, ValueError) as e:
        return [EvidenceCheck(TIMESTAMP, "timestamp", "FAIL", str(e))]
    local = "local test" in info.tsa_subject.lower()
    return [EvidenceCheck(TIMESTAMP, "timestamp", "open" if local else "ok",
                          f"manifest existed by {info.latest.isoformat()} per {info.tsa_subject!r} "
                          f"(root sha256 {info.root_sha256})"
                          + (": a LOCAL TEST TSA, proves no time" if local else ""))]


def _members(entries: dict[str, bytes], manifest: Manifest) -> list[EvidenceCheck]:
    out = []
    listed = [m.name for m in manifest.members]
    archived = [n for n in entries if n not in SEAL]
    for name in sorted(set(archived) - set(listed)):
        out.append(EvidenceCheck(name, "listed", "FAIL", "in the archive but not in the manifest "
                                 "(added after signing)"))
    for m in manifest.members:
        if m.name not in entries:
            out.append(EvidenceCheck(m.name, "present", "FAIL", "listed in the manifest but "
                                     "missing from the archive (removed)"))
        elif sha256(entries[m.name]) != m.sha256 or len(entries[m.name]) != m.size:
            out.append(EvidenceCheck(m.name, "sha256", "FAIL", f"content differs from the manifest "
                                     f"(sha256 {sha256(entries[m.name])[:16]}…, manifest "
                                     f"{m.sha256[:16]}…): edited after signing"))
    common = [n for n in archived if n in set(listed)]
    expect = [n for n in listed if n in set(archived)]
    seal_first = list(entries)[:1] == [MANIFEST]
    if common != expect or not seal_first:
        at = next((i for i, (a, b) in enumerate(zip(common, expect, strict=True)) if a != b), 0)
        where = (f"position {at + 1}: {common[at]!r} where the manifest lists {expect[at]!r}"
                 if common != expect else "manifest.json is not the first entry")
        out.append(EvidenceCheck(common[at] if common != expect else MANIFEST, "order", "FAIL",
                                 f"archive order differs from the manifest at {where}"))
    if not out:
        out.append(EvidenceCheck("(all members)", "sha256", "ok", f"all {len(listed)} members "
                                 "present, in order, with the manifest's sha256; nothing added"))
    return out


def _custody(entries: dict[str, bytes], manifest: Manifest) -> list[EvidenceCheck]:
    logs, out = [], []
    for m in manifest.members:
        if m.kind != "custody-log" or m.name not in entries:
            continue
        records, problems = parse_log(entries[m.name])
        logs.append(records)
        out += [EvidenceCheck(m.name, f"custody line {p.line}", "FAIL", p.problem)
                for p in problems]
    if not logs:
        return [EvidenceCheck("(custody)", "chain of custody", "open",
                              "no custody log in the bundle: who ran what is not recorded")]
    records, clashes = merge(logs)
    out += [EvidenceCheck("(custody)", "records", "FAIL", c) for c in clashes]
    by_source = {m.source: m for m in manifest.members if m.source and m.kind in CUSTODY_KINDS}
    final = {src: m.sha256 for src, m in by_source.items()}
    links = check_chain(records, final)
    for link in links:
        member = by_source[link.path].name if link.path in by_source else link.path
        if link.verdict != "ok":
            out.append(EvidenceCheck(member, "chain of custody", link.verdict, link.detail))
    ok = sum(link.verdict == "ok" for link in links)
    out.append(EvidenceCheck("(custody)", "chain of custody", "ok", f"{len(records)} commands "
                             f"recorded; {ok} of {len(final)} bundled files traced unchanged "
                             "from the command that made them to the bundle"))
    return out


def verify_bundle(path: Path, options: EvidenceOptions | None = None) -> list[EvidenceCheck]:
    """Every check, in order; anything that cannot be checked is FAIL or open, never skipped."""
    from harness.evidence.verify_reports import derived_checks, report_checks

    options = options or EvidenceOptions()
    opened = read_bundle(path)
    out = [EvidenceCheck("(archive)", "read", "FAIL", p) for p in opened.problems]
    entries = opened.entries
    if MANIFEST not in entries:
        return [*out, EvidenceCheck(MANIFEST, "present", "FAIL", "the bundle has no manifest")]
    try:
        manifest = Manifest.from_bytes(entries[MANIFEST])
    except BundleError as e:
        return [*out, *_signature(entries, None, options),
                EvidenceCheck(MANIFEST, "parse", "FAIL", str(e))]
    out += _signature(entries, manifest, options)
    out += _timestamp(entries, manifest, options)
    out += _members(entries, manifest)
    out += _custody(entries, manifest)
    out += derived_checks(entries, manifest)
    out += report_checks(entries, manifest, options)
    return out


def bundle_digest(path: Path) -> str:
    return sha256(Path(path).read_bytes())


__all__ = ["CUSTODY_KINDS", "EvidenceCheck", "EvidenceOptions", "bundle_digest", "verify_bundle",
           "LOG_NAME"]
