"""Safe writes for results and secrets: never through a link, never over an old result unasked,
never a half-written file or folder left where a complete one is expected.

A file is written to a temporary name in its own directory (O_EXCL, the final mode from the
start), fsynced, renamed into place and the directory fsynced, so a kill leaves the old file or
the new one. A folder is built under a hidden temporary sibling and swapped in only when
complete; the old folder is removed only after the new one is in place. Temporary names share
one prefix, so the next run can find and remove what a killed run left.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

#: every temporary name starts with this, followed by the final name
TMP_PREFIX = ".tdp-tmp-"


class OutputError(OSError):
    """An output path cannot be written safely (exists, is a link, not writable, ...)."""

    def __str__(self) -> str:  # one line for the CLI, without errno decoration
        return str(self.args[0]) if self.args else "output error"


def error_line(e: Exception) -> str:
    """One line naming the problem; an OS error names its path without errno decoration."""
    if type(e).__str__ is OSError.__str__ and isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename is not None else ""
        return f"{where}{e.strerror.lower()}"
    return " ".join(str(e).split()) or type(e).__name__


def _tmp_name(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:12]}")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refuse_link(path: Path, what: str = "output") -> None:
    """A symbolic link where we write could send our bytes (or a chmod) anywhere: refuse it."""
    if path.is_symlink():
        raise OutputError(f"{what} {path} is a symbolic link; refusing to write through it")


def check_new_output(path: Path, force: bool, what: str = "output") -> None:
    """Refuse an existing output unless `force`; refuse a link always."""
    refuse_link(path, what)
    if path.exists() and not force:
        raise OutputError(f"{what} {path} exists; refusing to overwrite it (use --force)")


def check_writable_dir(directory: Path, what: str = "output folder") -> None:
    """Fail before any expensive work if `directory` (or its nearest existing parent) is not
    writable: a run must not score for an hour and then fail to write its result."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{what} {directory}: {probe} is a file, not a folder")
    try:  # create a file rather than ask os.access: root, ACLs and read-only mounts differ
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", dir=probe)
    except OSError as e:
        raise OutputError(f"{what} {directory} is not writable ({probe}: {e.strerror})") from None
    os.close(fd)
    os.unlink(name)


def atomic_write_bytes(
    path: str | Path, data: bytes, mode: int = 0o644, force: bool = True, what: str = "file"
) -> Path:
    """Write `data` to `path` atomically with `mode` (set at creation, never widened later)."""
    path = Path(path)
    check_new_output(path, force, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it further; never wider than asked
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(
    path: str | Path, text: str, mode: int = 0o644, force: bool = True, what: str = "file"
) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode, force, what)


def new_tmp_dir(final: Path) -> Path:
    """A fresh hidden sibling folder to build `final` in (removed by `clean_leftovers`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    tmp.mkdir(mode=0o700)
    return tmp


def swap_in_dir(tmp: Path, final: Path, force: bool, what: str = "output folder") -> Path:
    """Move the complete folder `tmp` to `final`; an old `final` is removed only afterwards."""
    refuse_link(final, what)
    old = None
    if final.exists():
        if not force:
            raise OutputError(f"{what} {final} exists; refusing to overwrite it (use --force)")
        old = _tmp_name(final)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        remove_path(old)
    return final


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def build_dir(
    out: Path,
    fill: Callable[[Path], None],
    force: bool,
    what: str = "output folder",
    mode: int | None = None,
) -> Path:
    """Build a folder with `fill(tmp)` in a hidden sibling, give it `mode` (default: what the
    umask allows), and swap it in whole; a failure leaves the old `out` untouched."""
    tmp = new_tmp_dir(out)
    try:
        fill(tmp)
        os.chmod(tmp, 0o777 & ~current_umask() if mode is None else mode)
        return swap_in_dir(tmp, out, force, what)
    except BaseException:
        remove_path(tmp)
        raise


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree without following links out of it."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(final: Path) -> list[Path]:
    """Remove temporaries a killed run left beside `final`; returns what was removed."""
    parent = final.parent
    if not parent.is_dir():
        return []
    gone = []
    for p in parent.iterdir():
        if p.name.startswith(f"{TMP_PREFIX}{final.name}."):
            remove_path(p)
            gone.append(p)
    return gone


def is_regular_file(path: Path) -> bool:
    """True for a regular file that is not a symbolic link (no devices, fifos or sockets)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


__all__ = [
    "TMP_PREFIX",
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_dir",
    "check_new_output",
    "check_writable_dir",
    "clean_leftovers",
    "current_umask",
    "error_line",
    "fsync_dir",
    "is_regular_file",
    "new_tmp_dir",
    "refuse_link",
    "remove_path",
    "swap_in_dir",
]
