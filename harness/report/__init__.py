"""Proof reports: report.json (schema-versioned), report.html (self-contained), report.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.results import Report


def write_report(report: Report, out_dir: str | Path) -> Path:
    """Write the three files atomically into `out_dir`; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n",
        "report.html": render_html(report),
        "report.md": render_markdown(report),
    }
    for name, text in files.items():
        tmp = out / (name + ".tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, out / name)
    return out


__all__ = ["write_report"]
