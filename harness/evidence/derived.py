"""Members computed from other members (scores tables, model identities, protocol records):
pure functions, so that `tdp evidence verify` recomputes each and compares bytes."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import Any

from canaries.canary_set import CanarySet
from harness.results import AuditResult, Report


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:limit].rstrip("-") or "audit"


def scores_name(run: str, index: int, audit: AuditResult) -> str:
    return f"runs/{run}/scores/{index + 1}-{slug(audit.title)}.csv"


def scores_csv(audit: AuditResult) -> bytes:
    """Every scored item of one audit: id, role, each score, text (one row per item)."""
    names = sorted({k for i in audit.items for k in i.scores})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "role", *names, "text"])
    for i in audit.items:
        w.writerow([i.id, i.role, *(repr(float(i.scores[k])) if k in i.scores else ""
                                    for k in names), i.text])
    return buf.getvalue().encode()


def identity_digest(fp: dict[str, Any]) -> str | None:
    """The model identity digest of a stored fingerprint (None when it cannot be computed)."""
    from harness.backends.base import Fingerprint

    try:
        return Fingerprint.from_dict(fp).identity_digest()
    except (KeyError, TypeError, ValueError):
        return None


def models_json(reports: dict[str, Report]) -> bytes:
    """The model (and reference) identity of every audit: spec, identity digest, fingerprint."""
    rows = []
    for run, report in reports.items():
        for a in report.audits:
            for which, info in (("model", a.model), ("reference", a.reference)):
                if info is not None:
                    rows.append({"run": run, "audit": a.title, "role": a.role, "which": which,
                                 "spec": info.spec,
                                 "identity_digest": identity_digest(info.fingerprint),
                                 "fingerprint": info.fingerprint})
    return (json.dumps(rows, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def canary_dir(cs: CanarySet) -> str:
    return f"canaries/{cs.commitment[:16]}"


def protocol_members(cs: CanarySet) -> dict[str, bytes]:
    """Copies of the protocol records a v2 canary file holds: each RFC 3161 record as JSON and
    as the raw DER token (for `openssl ts -verify`), its TSA chain, and the beacon round."""
    out: dict[str, bytes] = {}
    base = canary_dir(cs)
    for n, t in enumerate(cs.timestamps, 1):
        out[f"{base}/timestamp-{n}.json"] = (json.dumps(t, indent=1, sort_keys=True)
                                             + "\n").encode()
        out[f"{base}/timestamp-{n}.tsr"] = base64.b64decode(t["token"])
        out[f"{base}/timestamp-{n}-chain.pem"] = t["chain_pem"].encode()
    if cs.version == 2:
        beacon = {"pinned": cs.beacon, "assignment": cs.assignment}
        out[f"{base}/beacon-round.json"] = (json.dumps(beacon, indent=1, sort_keys=True)
                                            + "\n").encode()
    return out
