"""Put an output (a folder or a file) and its manifest in place together: all or nothing.

Two renames in two folders cannot be one atomic step, so the manifest's rename is the commit
point and a pending record makes every earlier state recoverable:

1. the output is built complete under a temporary sibling name (`.tdp-tmp-OUT.*`, mode 0700);
2. the manifest is written complete under a temporary sibling name of the manifest;
3. a pending record `.tdp-pending-OUT.json` is written beside the output: both temporary names,
   the sha256 of the manifest, the identity (device, inode) of the new output, and where an old
   output will be kept until the end;
4. an old output is renamed aside, the new one renamed into place;
5. the manifest is renamed into place: COMMITTED;
6. the old output and the pending record are removed.

`recover` (run first by every embed into the same output) reads a pending record: if the
manifest in place has the recorded sha256 the run committed and only step 6 is finished;
otherwise the new output is removed, the old one put back and the temporaries removed. So
after a kill at any point, once the next run has started, there is either the old output and
manifest or the new output and manifest, and no temporary left.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from canaries.files import (
    TMP_PREFIX,
    OutputError,
    clean_leftovers,
    fsync_dir,
    is_regular_file,
    refuse_link,
    remove_path,
)


@dataclass(frozen=True)
class Pending:
    """What an uncommitted run has put where (see the module docstring)."""

    output: str
    manifest: str
    manifest_sha256: str
    tmp_output: str
    tmp_manifest: str
    output_id: tuple[int, int]  # (st_dev, st_ino) of the new output: renames keep it
    backup: str | None  # where the old output waits until the commit


def pending_path(output: Path) -> Path:
    """The pending record of a run into `output`."""
    return output.with_name(f".tdp-pending-{output.name}.json")


def _tmp(final: Path, tag: str = "") -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name}.{tag}{uuid.uuid4().hex[:12]}")


def _sha256(path: Path) -> str | None:
    if not is_regular_file(path):
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _discard(path: Path) -> None:
    """Remove a folder so that it vanishes at once: rename it to a temporary name first."""
    if not os.path.lexists(path):
        return
    gone = _tmp(path, "gone-")
    os.replace(path, gone)
    fsync_dir(path.parent)
    remove_path(gone)


def recover(output: Path) -> list[str]:
    """Finish or roll back a run into `output` that was killed; returns what was done."""
    record = pending_path(output)
    done: list[str] = []
    if os.path.lexists(record):
        try:
            p = Pending(**json.loads(record.read_text("utf-8")))
            p = Pending(**{**asdict(p), "output_id": tuple(p.output_id)})
        except (OSError, ValueError, TypeError) as e:
            raise OutputError(
                f"{record}: unreadable record of an interrupted run ({e}); check {output} and "
                "remove the record by hand"
            ) from None
        if _sha256(Path(p.manifest)) == p.manifest_sha256:
            done.append(f"finished an interrupted run that had committed {p.manifest}")
        else:
            if _identity(output) == p.output_id:
                _discard(output)
                done.append(f"removed {output}: an interrupted run never wrote its manifest")
            if p.backup and os.path.lexists(p.backup) and not os.path.lexists(output):
                os.replace(p.backup, output)
                done.append(f"put the earlier {output} back")
        for leftover in (p.backup, p.tmp_output, p.tmp_manifest):
            if leftover and os.path.lexists(leftover):
                remove_path(Path(leftover))
        record.unlink()
        fsync_dir(record.parent)
    return done


def clean_beside(output: Path, manifest: Path) -> int:
    """Remove temporaries of killed runs beside the output and the manifest (after `recover`)."""
    return len(clean_leftovers(output)) + len(clean_leftovers(manifest))


def check_writable(final: Path, what: str) -> None:
    """Fail before any work when `final` cannot be created: a probe named like this run's own
    temporaries, so a kill between creating and removing it leaves nothing `clean_beside` misses."""
    final.parent.mkdir(parents=True, exist_ok=True)
    probe = _tmp(final, "probe-")
    try:
        _write_new(probe, b"")
    except OSError as e:
        raise OutputError(f"{what} {final.parent} is not writable ({e.strerror})") from None
    os.unlink(probe)


def new_tmp_output(output: Path) -> Path:
    """A temporary name beside `output` to build it under (a folder or a file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return _tmp(output)


def publish(tmp_output: Path, output: Path, manifest: Path, data: bytes, force: bool) -> None:
    """Put the complete `tmp_output` at `output` and `data` at `manifest`, committing with the
    manifest's rename; an old output is removed only after the commit."""
    for path, what in ((output, "output"), (manifest, "manifest")):
        refuse_link(path, what)
        if path.exists() and not force and not _empty_dir(path):
            raise OutputError(f"{what} {path} exists; refusing to overwrite it (use --force)")
    tmp_manifest = _tmp(manifest)
    _write_new(tmp_manifest, data)
    backup = _tmp(output, "old-") if os.path.lexists(output) else None
    st = tmp_output.lstat()
    absolute = os.path.abspath  # the next run may start from another folder
    pending = Pending(
        output=absolute(output),
        manifest=absolute(manifest),
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        tmp_output=absolute(tmp_output),
        tmp_manifest=absolute(tmp_manifest),
        output_id=(st.st_dev, st.st_ino),
        backup=absolute(backup) if backup else None,
    )
    record = pending_path(output)
    tmp_record = _tmp(output, "pending-")  # a temporary `clean_beside` knows
    _write_new(tmp_record, json.dumps(asdict(pending)).encode())
    os.replace(tmp_record, record)
    if backup is not None:
        os.replace(output, backup)
    os.replace(tmp_output, output)
    fsync_dir(output.parent)
    os.replace(tmp_manifest, manifest)  # the commit point
    fsync_dir(manifest.parent)
    if backup is not None:
        remove_path(backup)
    record.unlink()
    fsync_dir(record.parent)


def _write_new(path: Path, data: bytes) -> None:
    """A new private file with `data`, on disk before it is renamed anywhere."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


class OutputLock:
    """An advisory lock on the output's folder: one run at a time may recover or publish there
    (a second run would otherwise roll back the first one's pending record). Waits up to `wait`
    seconds: a worker process of a run just killed may hold it a moment longer."""

    def __init__(self, output: Path, wait: float = 10.0) -> None:
        self.folder, self.wait = output.parent, wait

    def __enter__(self) -> OutputLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    raise OutputError(
                        f"another run is writing into {self.folder}; wait for it to finish"
                    ) from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing releases the lock


__all__ = [
    "OutputLock",
    "check_writable",
    "Pending",
    "clean_beside",
    "new_tmp_output",
    "pending_path",
    "publish",
    "recover",
]
