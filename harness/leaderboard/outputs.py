"""Write a leaderboard's three derived files from its cells: leaderboard.json, leaderboard.csv
and index.html (each atomically; the cells' reports are the record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.leaderboard.config import LeaderboardConfig
from harness.leaderboard.page import render_page
from harness.leaderboard.table import (
    CellSummary,
    grid_summaries,
    leaderboard_csv,
    leaderboard_dict,
)

OUTPUT_FILES = ("leaderboard.json", "leaderboard.csv", "index.html")


def write_outputs(config: LeaderboardConfig, out: Path, run: dict[str, Any]) -> list[CellSummary]:
    """Summarize every cell from its report, Holm across the grid, and write the files."""
    from canaries.files import atomic_write_text

    cells = grid_summaries(config, out)
    d = leaderboard_dict(config, cells, run)
    atomic_write_text(out / "leaderboard.csv", leaderboard_csv(cells), 0o644, True, "leaderboard")
    atomic_write_text(out / "index.html", render_page(config, cells, run, d["provenance"]), 0o644,
                      True, "leaderboard page")
    text = json.dumps(d, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(out / "leaderboard.json", text, 0o644, True, "leaderboard")
    return cells
