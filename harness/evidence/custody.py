"""Chain-of-custody logs: one JSON Lines file per run folder, one line per `tdp` command.

Format (`custody.jsonl`, UTF-8, one canonical JSON object per line, keys sorted):

- ``schema`` "tdp-custody", ``version`` 1, ``id`` (random hex, the same in every log the
  record was appended to), ``prev`` (sha256 hex of the previous line's bytes without its newline;
  null on the first line: deleting or editing a line breaks the link after it);
- ``command`` ("tdp audit"), ``params`` (the parsed parameters, secrets replaced by
  "<redacted>"), ``argv`` (the process's command line, redacted alike);
- ``started``/``finished`` (UTC, ISO 8601), ``status`` ("ok", "exit N", "error: ...");
- ``host``, ``user``, ``pid``, ``cwd``, ``harness_version``;
- ``inputs`` {absolute path: sha256} of every file under the command's path parameters before it
  ran, ``outputs`` {path: sha256} of the files it created or changed, ``removed`` [paths],
  ``unhashed`` {path: size} of files too large to hash (over `MAX_HASH_BYTES`).

A chain of custody holds when every command's input hash of a file equals the hash the file had
after the previous command that touched it, and the bundle's copy equals the last one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "tdp-custody"
VERSION = 1
LOG_NAME = "custody.jsonl"
#: files larger than this are recorded by size only: hashing them would dominate a command
MAX_HASH_BYTES = 1 << 30


class CustodyError(ValueError):
    """A custody log is malformed; the message names the line and the problem."""


@dataclass(frozen=True)
class CustodyRecord:
    """One `tdp` command as the CLI saw it: what it was given, read and wrote, when and where."""

    id: str
    command: str
    params: dict[str, Any]
    argv: tuple[str, ...]
    started: str
    finished: str
    status: str
    host: str
    user: str
    pid: int
    cwd: str
    harness_version: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    unhashed: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["argv"], d["removed"] = list(self.argv), list(self.removed)
        return {"schema": SCHEMA, "version": VERSION, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CustodyRecord:
        if d.get("schema") != SCHEMA or d.get("version") != VERSION:
            raise CustodyError(f"not a {SCHEMA} v{VERSION} record")
        body = {k: v for k, v in d.items() if k not in ("schema", "version", "prev")}
        try:
            rec = cls(**{**body, "argv": tuple(body["argv"]), "removed": tuple(body["removed"])})
        except (KeyError, TypeError) as e:
            raise CustodyError(f"malformed custody record ({e})") from None
        for name in ("inputs", "outputs"):
            hashes = getattr(rec, name)
            if not isinstance(hashes, dict) or not all(
                isinstance(v, str) and len(v) == 64 for v in hashes.values()
            ):
                raise CustodyError(f"custody record {rec.id}: {name} must map paths to sha256")
        return rec


def line_bytes(record: CustodyRecord, prev: str | None) -> bytes:
    """The canonical line (without newline) that a log stores for `record`."""
    d = {**record.to_dict(), "prev": prev}
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class LogProblem:
    """Where a log is broken: 1-based line number (0: the whole log) and what is wrong."""

    line: int
    problem: str


def parse_log(data: bytes) -> tuple[list[CustodyRecord], list[LogProblem]]:
    """Records of one log, in order, and every broken line or `prev` link."""
    records, problems = [], []
    prev = None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(LogProblem(len(lines), "last line is incomplete (no newline)"))
    for n, raw in enumerate(lines, 1):
        try:
            d = json.loads(raw)
            rec = CustodyRecord.from_dict(d)
        except (json.JSONDecodeError, UnicodeDecodeError, CustodyError, AttributeError) as e:
            problems.append(LogProblem(n, f"not a custody record ({e})"))
            prev = hashlib.sha256(raw).hexdigest()
            continue
        if d.get("prev") != prev:
            problems.append(LogProblem(n, "its 'prev' is not the sha256 of the line before: a line "
                                          "was removed, inserted or edited"))
        if raw != line_bytes(rec, d.get("prev")):
            problems.append(LogProblem(n, "not in canonical form (edited by hand?)"))
        records.append(rec)
        prev = hashlib.sha256(raw).hexdigest()
    return records, problems


@dataclass(frozen=True)
class Link:
    """A finding of the chain check about one file path."""

    path: str
    verdict: str  # "ok" | "open" | "FAIL"
    detail: str


def merge(logs: Iterable[list[CustodyRecord]]) -> tuple[list[CustodyRecord], list[str]]:
    """All records of several logs once each, in time order; ids that disagree are problems."""
    seen: dict[str, CustodyRecord] = {}
    problems = []
    for records in logs:
        for r in records:
            if r.id in seen and seen[r.id] != r:
                problems.append(f"record {r.id} ({r.command}) differs between logs")
            seen.setdefault(r.id, r)
    return sorted(seen.values(), key=lambda r: (r.started, r.finished, r.id)), problems


def _label(r: CustodyRecord) -> str:
    return f"`{r.command}` ({r.started}, {r.user}@{r.host})"


def check_chain(records: list[CustodyRecord], final: Mapping[str, str]) -> list[Link]:
    """Each file's hash must carry over from one command to the next, and end at `final`.

    `final` maps a source path to the sha256 of its copy in the bundle; a path that no record
    covers is open (made outside `tdp`, or before custody logs existed).
    """
    state: dict[str, tuple[str | None, CustodyRecord]] = {}
    out = []
    for r in records:
        for path, digest in r.inputs.items():
            if path in state and state[path][0] != digest:
                before, who = state[path]
                was = "removed" if before is None else f"sha256 {before[:16]}…"
                out.append(Link(path, "FAIL", f"changed between {_label(who)} ({was}) and "
                                f"{_label(r)} (read sha256 {digest[:16]}…)"))
            state[path] = (digest, r)
        for path, digest in r.outputs.items():
            state[path] = (digest, r)
        for path in r.removed:
            state[path] = (None, r)
    for path, digest in final.items():
        if path not in state:
            out.append(Link(path, "open", "no custody record covers this file"))
        elif state[path][0] != digest:
            out.append(Link(path, "FAIL", f"the bundled copy (sha256 {digest[:16]}…) is not the "
                            f"file as {_label(state[path][1])} left it"))
        else:
            out.append(Link(path, "ok", f"unchanged since {_label(state[path][1])}"))
    return out
