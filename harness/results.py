"""Typed, versioned results: one Report per run, holding one AuditResult per model audited."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.stats import TestResult

SCHEMA = "tdp-report"
SCHEMA_VERSION = 2
#: report schemas this harness reads (1: before log10 p-values and the v2 protocol chain)
READABLE_SCHEMAS = (1, 2)

#: canary audits score canaries and counterfactuals; benchmarks score members and non-members
Role = Literal["canary", "counterfactual", "member", "non-member"]


class ReportError(ValueError):
    """A report file is malformed or of an unsupported schema version."""


@dataclass(frozen=True)
class ItemScores:
    """One scored item; every statistic in the report is recomputable from these."""

    id: str
    role: Role
    text: str
    scores: dict[str, float]


@dataclass(frozen=True)
class NamedTest:
    """A test applied to one score function; exactly one per audit is primary."""

    score: str
    primary: bool
    result: TestResult

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "primary": self.primary, "result": self.result.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NamedTest:
        return cls(score=d["score"], primary=d["primary"], result=TestResult.from_dict(d["result"]))


@dataclass(frozen=True)
class ModelInfo:
    spec: str
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class CanarySetInfo:
    path: str
    commitment: str
    created: str
    count: int
    spec: dict[str, Any]
    plan: dict[str, Any]
    format_version: int = 1
    #: the protocol chain as checked at audit time (harness.protocol.pool.Step dicts)
    protocol: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """Where a benchmark's labelled items came from. Nothing here proves membership: the
    labels are the data provider's assertion."""

    name: str
    #: how to load it again: local files or a hub id with revision, fields, split
    source: dict[str, Any]
    #: sha256 of the canonical JSON of [[text, label], ...] in report order
    sha256: str
    n_members: int
    n_nonmembers: int


@dataclass(frozen=True)
class AuditResult:
    """The audit of one model against one canary set by one task; a benchmark (role
    'benchmark') has no canary set but a dataset, and makes no claim (estimates only)."""

    title: str
    role: Literal["audit", "null-control", "additional", "benchmark"]
    task: str
    task_config: dict[str, Any]
    model: ModelInfo
    reference: ModelInfo | None
    canary_set: CanarySetInfo | None
    audit_seed: str
    seed_derivation: str
    tests: tuple[NamedTest, ...]
    items: tuple[ItemScores, ...]
    started: str
    finished: str
    notes: tuple[str, ...] = ()
    dataset: DatasetInfo | None = None

    @property
    def primary(self) -> NamedTest:
        prim = [t for t in self.tests if t.primary]
        if len(prim) != 1:
            raise ReportError(f"audit {self.title!r} has {len(prim)} primary tests, expected 1")
        return prim[0]

    @property
    def alpha(self) -> float:
        """The plan's level; NaN for a benchmark (no canary set, no test at a level)."""
        return float(self.canary_set.plan["alpha"]) if self.canary_set is not None else math.nan

    def to_dict(self, schema_version: int = SCHEMA_VERSION) -> dict[str, Any]:
        """As written in report.json; `schema_version=1` gives the fields schema 1 had (what an
        old report's digest was computed over)."""
        d = asdict(self)
        d["tests"] = [t.to_dict() for t in self.tests]
        d["items"] = [asdict(i) for i in self.items]
        d["notes"] = list(self.notes)
        if d["dataset"] is None:  # absent, not null: older audits' digests stay as they were
            del d["dataset"]
        if d["canary_set"] is None:
            return d
        d["canary_set"]["protocol"] = list(d["canary_set"]["protocol"])
        if schema_version == 1:
            for t in d["tests"]:
                t["result"].pop("log10_pvalue", None)
                t["result"].pop("log10_min_attainable_p", None)
            d["canary_set"].pop("format_version", None)
            d["canary_set"].pop("protocol", None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditResult:
        d = dict(d)
        d["model"] = ModelInfo(**d["model"])
        d["reference"] = ModelInfo(**d["reference"]) if d.get("reference") else None
        if d.get("canary_set") is not None:
            cinfo = dict(d["canary_set"])
            cinfo["protocol"] = tuple(cinfo.get("protocol", ()))
            d["canary_set"] = CanarySetInfo(**cinfo)
        if d.get("dataset") is not None:
            d["dataset"] = DatasetInfo(**d["dataset"])
        d["tests"] = tuple(NamedTest.from_dict(t) for t in d["tests"])
        d["items"] = tuple(ItemScores(**i) for i in d["items"])
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)


@dataclass(frozen=True)
class Report:
    """Everything one run found, with provenance; round-trips through report.json."""

    title: str
    created: str
    provenance: dict[str, Any]
    audits: tuple[AuditResult, ...]
    holm_adjusted: tuple[float, ...] | None = None  # over primary tests of role 'audit'
    notes: tuple[str, ...] = ()
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "schema_version": self.schema_version,
            "title": self.title,
            "created": self.created,
            "provenance": self.provenance,
            "audits": [a.to_dict() for a in self.audits],
            "holm_adjusted": list(self.holm_adjusted) if self.holm_adjusted is not None else None,
            "notes": list(self.notes),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        if d.get("schema") != SCHEMA:
            raise ReportError("not a tdp report (missing 'schema': 'tdp-report')")
        if d.get("schema_version") not in READABLE_SCHEMAS:
            raise ReportError(
                f"report schema_version {d.get('schema_version')!r} unsupported "
                f"(this harness reads {', '.join(map(str, READABLE_SCHEMAS))})"
            )
        holm = d.get("holm_adjusted")
        return cls(
            title=d["title"],
            created=d["created"],
            provenance=d["provenance"],
            audits=tuple(AuditResult.from_dict(a) for a in d["audits"]),
            holm_adjusted=tuple(holm) if holm is not None else None,
            notes=tuple(d.get("notes", ())),
            extra=d.get("extra", {}),
            schema_version=d["schema_version"],
        )


def load_report(path: str | Path) -> Report:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        return Report.from_dict(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        raise ReportError(f"report not found: {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReportError(f"{path}: malformed report ({e})") from e
