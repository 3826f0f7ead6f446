"""Proof reports: report.json (schema-versioned), report.html (self-contained), report.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

from canaries.files import (
    OutputError,
    atomic_write_text,
    build_dir,
    check_writable_dir,
    clean_leftovers,
    fsync_dir,
    new_tmp_dir,
    refuse_link,
    remove_path,
)
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.results import Report

#: what a report folder holds; report.json last: it is the record `tdp verify` reads
REPORT_FILES = ("report.html", "report.md", "report.json")


def check_report_dir(out_dir: str | Path, force: bool = False) -> None:
    """Fail before any scoring if `out_dir` is a link or a file, holds a report (unless
    `force`), or cannot be written."""
    out = Path(out_dir)
    refuse_link(out, "report folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"report folder {out} is a file, not a folder")
    old = [n for n in REPORT_FILES if (out / n).exists() or (out / n).is_symlink()]
    if old and not force:
        raise OutputError(
            f"{out} already holds a report ({', '.join(old)}); refusing to overwrite it "
            "(use --force)"
        )
    check_writable_dir(out, "report folder")


def write_report(report: Report, out_dir: str | Path, force: bool = False) -> Path:
    """Write report.{json,html,md} into `out_dir`; returns the directory.

    An old report is refused unless `force`, and replaced only once the new one is complete:
    a folder holding nothing but a report is swapped whole; in a folder with other files (or
    whose parent is read-only) the three files are staged inside it and renamed back to back.
    """
    out = Path(out_dir)
    check_report_dir(out, force)
    texts = {
        "report.html": render_html(report),
        "report.md": render_markdown(report),
        "report.json": json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n",
    }
    for name in REPORT_FILES:
        clean_leftovers(out / name)
    clean_leftovers(out)
    if not out.exists() or (
        {p.name for p in out.iterdir()} <= set(REPORT_FILES) and os.access(out.parent, os.W_OK)
    ):
        return _swap_in_report(texts, out)
    staging = new_tmp_dir(out / "report.json")  # inside `out`: the renames stay on one disk
    try:
        for name, text in texts.items():
            atomic_write_text(staging / name, text)
        for name in texts:
            refuse_link(out / name, "report file")
            os.replace(staging / name, out / name)
    finally:
        remove_path(staging)
    fsync_dir(out)
    return out


def _swap_in_report(texts: dict[str, str], out: Path) -> Path:
    """Build the report in a hidden sibling folder and swap it in whole."""
    mode = (out.stat().st_mode & 0o7777) if out.is_dir() else None

    def fill(tmp: Path) -> None:
        for name, text in texts.items():
            atomic_write_text(tmp / name, text)

    return build_dir(out, fill, True, "report folder", mode)


__all__ = ["REPORT_FILES", "check_report_dir", "write_report"]
