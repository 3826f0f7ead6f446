"""The CLI side of custody: every `tdp` command appends what it read and wrote to custody logs.

`instrument(group)` wraps each command's callback once, at registration. Before the command
runs, every file under its path parameters (click.Path) is hashed; afterwards again, and one
record goes to `custody.jsonl` in each folder the command wrote into, and to the log of each
input folder that already has one. A run folder (one holding report.json) keeps its log inside,
where `tdp evidence pack` finds it; any other output, a file or a folder of documents or pages
(which may be published), gets its log in the folder that contains it, never inside. Secrets
never enter a log: parameters named like a seed, key, token or password are redacted, and so
are `key=value` pairs of that kind inside model specs; files are recorded by hash only. A log
that cannot be written gives a warning, never a failed command.
"""

from __future__ import annotations

import fcntl
import functools
import getpass
import hashlib
import os
import re
import socket
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from canaries.files import TMP_PREFIX, refuse_link
from harness.evidence.custody import LOG_NAME, MAX_HASH_BYTES, CustodyRecord, line_bytes

#: beside a file parameter, these companions are hashed too (secret seed, inject manifest)
COMPANIONS = (".secret", ".manifest.json")
#: path parameters that are not evidence and may be huge (score caches)
NOT_EVIDENCE = frozenset({"cache_dir"})
SECRET_NAME = re.compile(r"seed|secret|password|passphrase|token|api_?key", re.I)
SECRET_KV = re.compile(r"(?i)\b((?:api_?key|token|password|passphrase|secret)\s*=)([^,\s]+)")
REDACTED = "<redacted>"
_STACK = "tdp.custody.stack"
OFF = "tdp.custody.off"


class CustodyWarning(UserWarning):
    """A custody log could not be written (the command itself went on)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """Hashes of every regular file under some roots; files too large are kept by size."""

    hashes: dict[str, str] = field(default_factory=dict)
    unhashed: dict[str, int] = field(default_factory=dict)


def _files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root, *(root.with_name(root.name + s) for s in COMPANIONS)]
    out = []
    for folder, dirs, files in os.walk(root):  # links to folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith(TMP_PREFIX) and d != "__pycache__")
        out += [Path(folder, f) for f in sorted(files)
                if f != LOG_NAME and not f.startswith(TMP_PREFIX)]
    return out


def snapshot(roots: list[Path]) -> Snapshot:
    """Hash every regular file at or under `roots` (absolute paths as keys)."""
    snap = Snapshot()
    for root in roots:
        for p in _files_under(root):
            if p.is_symlink() or not p.is_file():
                continue
            try:
                size = p.stat().st_size
                key = str(p.absolute())
                if size > MAX_HASH_BYTES:
                    snap.unhashed[key] = size
                else:
                    snap.hashes[key] = sha256_file(p)
            except OSError:  # unreadable: nothing to record
                continue
    return snap


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float)):
        return v
    return SECRET_KV.sub(rf"\1{REDACTED}", str(v))


def _secret(p: click.Parameter) -> bool:
    is_flag = isinstance(p, click.Option) and p.is_flag
    return bool(p.name and SECRET_NAME.search(p.name)) and not is_flag and not isinstance(
        p.type, click.Path)


def redact_params(cmd: click.Command, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON, with secret values replaced by "<redacted>"."""
    secret = {p.name for p in cmd.params if _secret(p)}
    return {k: (REDACTED if k in secret and v is not None else _jsonable(v))
            for k, v in sorted(params.items())}


def redact_argv(cmd: click.Command, argv: list[str]) -> list[str]:
    """The command line with the values of secret options (and secret key=value) replaced."""
    opts = {o for p in cmd.params if _secret(p) for o in p.opts if o.startswith("-")}
    out, hide = [], False
    for tok in argv:
        if hide:
            out.append(REDACTED)
            hide = False
        elif tok in opts:
            out.append(tok)
            hide = True
        elif tok.split("=", 1)[0] in opts and "=" in tok:
            out.append(tok.split("=", 1)[0] + "=" + REDACTED)
        else:
            out.append(SECRET_KV.sub(rf"\1{REDACTED}", tok))
    return out


def path_roots(cmd: click.Command, params: dict[str, Any]) -> list[Path]:
    """The absolute paths given to the command's path parameters."""
    roots = []
    for p in cmd.params:
        if not isinstance(p.type, click.Path) or p.name in NOT_EVIDENCE:
            continue
        value = params.get(p.name)
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if v is not None and str(v) not in ("", "-"):
                roots.append(Path(os.path.abspath(v)))
    return roots


class Recorder:
    """One command's record: inputs hashed at start, outputs at `finish`, then appended."""

    def __init__(self, name: str, cmd: click.Command, params: dict[str, Any]) -> None:
        self.name, self.roots = name, path_roots(cmd, params)
        self.params = redact_params(cmd, params)
        self.argv = redact_argv(cmd, sys.argv[1:])
        self.started = now()
        self.before = snapshot(self.roots)
        self.done = False

    def finish(self, status: str) -> CustodyRecord | None:
        """Hash the outputs and append the record (once); never raises."""
        if self.done:
            return None
        self.done = True
        try:
            return self._finish(status)
        except Exception as e:  # noqa: BLE001 - custody must never break the command
            warnings.warn(f"custody log not written: {e}", CustodyWarning, stacklevel=2)
            return None

    def _finish(self, status: str) -> CustodyRecord:
        after = snapshot(self.roots)
        outputs = {p: h for p, h in after.hashes.items() if self.before.hashes.get(p) != h}
        removed = sorted(set(self.before.hashes) - set(after.hashes))
        record = CustodyRecord(
            id=uuid.uuid4().hex, command=self.name, params=self.params, argv=tuple(self.argv),
            started=self.started, finished=now(), status=status, host=socket.gethostname(),
            user=current_user(), pid=os.getpid(), cwd=os.getcwd(), harness_version=_version(),
            inputs=dict(self.before.hashes), outputs=outputs, removed=tuple(removed),
            unhashed={**self.before.unhashed, **after.unhashed},
        )
        for folder in self._log_folders(set(outputs) | set(removed)):
            append_record(folder, record)
        return record

    def _log_folders(self, written: set[str]) -> list[Path]:
        folders = []
        for root in self.roots:
            folder = root if (root / "report.json").is_file() else root.parent
            touched = any(p == str(root) or p.startswith(str(folder) + os.sep) for p in written)
            if (touched or (folder / LOG_NAME).is_file()) and folder not in folders:
                folders.append(folder)
        return folders


def append_record(folder: Path, record: CustodyRecord) -> Path:
    """Append `record` to `folder/custody.jsonl`, linked to the last line, under a file lock."""
    path = folder / LOG_NAME
    refuse_link(path, "custody log")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        data = f.read()
        if data and not data.endswith(b"\n"):  # a torn last line stays visible as such
            data += b"\n"
            f.write(b"\n")
        last = data[:-1].rsplit(b"\n", 1)[-1] if data else None
        prev = hashlib.sha256(last).hexdigest() if last is not None else None
        f.write(line_bytes(record, prev) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


def _version() -> str:
    from harness import __version__

    return __version__


def _status(e: BaseException | None) -> str:
    if e is None:
        return "ok"
    if isinstance(e, SystemExit):
        return "ok" if e.code in (0, None) else f"exit {e.code}"
    if isinstance(e, click.exceptions.Exit):
        return "ok" if e.exit_code == 0 else f"exit {e.exit_code}"
    if isinstance(e, click.ClickException):
        return f"error: {e.format_message()}"
    return f"error: {type(e).__name__}"


def _wrap(cmd: click.Command, name: str) -> None:
    callback = cmd.callback
    if callback is None or getattr(callback, "_tdp_custody", False):
        return

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if ctx.meta.get(OFF):
            return callback(*args, **kwargs)
        try:
            rec = Recorder(name, cmd, kwargs)
        except Exception as e:  # noqa: BLE001 - custody must never break the command
            warnings.warn(f"custody not recorded: {e}", CustodyWarning, stacklevel=2)
            return callback(*args, **kwargs)
        ctx.meta.setdefault(_STACK, []).append(rec)
        err: BaseException | None = None
        try:
            return callback(*args, **kwargs)
        except BaseException as e:
            err = e
            raise
        finally:
            ctx.meta[_STACK].pop()
            rec.finish(_status(err))

    run._tdp_custody = True  # type: ignore[attr-defined]
    cmd.callback = run


def instrument(group: click.Group, prefix: str = "tdp") -> None:
    """Wrap every command under `group` so that it records its custody."""
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            instrument(cmd, f"{prefix} {name}")
        else:
            _wrap(cmd, f"{prefix} {name}")


def finish_current(status: str = "ok") -> CustodyRecord | None:
    """Close the running command's record now (e.g. before packing its outputs into a bundle)."""
    stack = click.get_current_context().meta.get(_STACK) or []
    return stack[-1].finish(status) if stack else None
