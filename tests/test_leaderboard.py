"""`tdp leaderboard`: config checks, a grid killed and resumed, the files, and `tdp verify`."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.leaderboard.config import LeaderboardError, load_config, parse_config
from harness.leaderboard.grid import grid_cells
from harness.leaderboard.table import cells_digest
from tests.leaderboard_world import small_leaderboard


@pytest.fixture(scope="module")
def lb(tmp_path_factory, tiny_world):
    return small_leaderboard(tmp_path_factory, tiny_world)


MINIMAL = """
[[models]]
name = "m"
spec = "hf:x"
[[tasks]]
task = "canary-rank"
canaries = "c"
[canaries]
c = "c.json"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = [", "not valid TOML"),
        ("colour = 1\n" + MINIMAL, "unknown keys \\['colour'\\]"),
        (MINIMAL.replace('canaries = "c"\n', 'canaries = "d"\n'), "canaries 'd' is not in"),
        (MINIMAL.replace('spec = "hf:x"', ""), "needs a spec"),
        (MINIMAL.replace('name = "m"', 'name = "a b"'), "use 1-64 letters"),
        (MINIMAL + "[[models]]\nname = \"m\"\nspec = \"hf:y\"\n", "must be unique"),
        (MINIMAL.replace('spec = "hf:x"', 'spec = "hf:x"\nseries = { steps = 1 }'),
         "series 'steps' is not declared"),
        ("config_version = 9\n" + MINIMAL, "config_version 9 unsupported"),
        ('[[models]]\nname = "m"\nspec = "hf:x"\n', "at least one"),
    ],
)
def test_bad_configs_are_one_line_errors(text, message):
    with pytest.raises(LeaderboardError, match=message):
        parse_config(text, "t.toml")


def test_grid_and_options_from_a_config():
    cfg = parse_config(MINIMAL.replace('task = "canary-rank"', 'task = "canary-rank"\n'
                                       'options = { min_k = 0.3 }'), "t.toml")
    (cell,) = grid_cells(cfg)
    assert cell.id == "m__canary-rank" and cell.canary_path == "c.json"
    assert cell.options == {"min_k": 0.3}
    assert cfg.sha256 == hashlib.sha256(cfg.text.encode()).hexdigest()


def test_a_killed_run_resumes_without_redoing_finished_cells(lb):
    cells = {c.id for c in grid_cells(load_config(lb.config))}
    assert len(cells) == 6
    done = set(lb.finished_before_kill)
    assert 1 <= len(done) < len(cells), "the kill came after the first finished cell"
    assert lb.resumed.reused == len(done)
    assert {r.id for r in lb.resumed.records} == cells - done  # the rest, each once
    for cid, (inode, mtime, blob) in lb.finished_before_kill.items():
        report = lb.out / "cells" / cid / "report.json"
        st = report.stat()
        assert (st.st_ino, st.st_mtime_ns, report.read_bytes()) == (inode, mtime, blob), cid


def test_files_hold_every_cell_with_holm_across_the_grid(lb):
    d = json.loads((lb.out / "leaderboard.json").read_text())
    assert (d["schema"], d["schema_version"]) == ("tdp-leaderboard", 1)
    cells = {c["id"]: c for c in d["cells"]}
    assert all(c["status"] == "done" for c in cells.values()) and len(cells) == 6
    assert d["cells_sha256"] == cells_digest(d["cells"])
    for c in cells.values():
        blob = (lb.out / c["report"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == c["report_sha256"]
    bound = [c for c in cells.values() if c["kind"] == "bound"]
    assert len(bound) == 4 and all(c["holm_log10"] >= c["log10_pvalue"] for c in bound)
    assert cells["planted__canary-rank"]["pvalue"] < 1e-3  # planted x24
    mi = cells["planted__mi"]
    assert mi["kind"] == "estimate" and mi["pvalue"] is None and mi["holm_log10"] is None
    assert mi["auc_ci"][0] <= mi["auc"] <= mi["auc_ci"][1] and mi["blind"].startswith("blind:")
    rows = list(csv.DictReader((lb.out / "leaderboard.csv").open()))
    assert len(rows) == 6 and {r["model"] for r in rows} == {"planted", "clean"}
    page = (lb.out / "index.html").read_text()
    assert "cells/planted__canary-rank/report.html" in page and "Series: repetitions" in page


def test_a_rerun_keeps_every_cell(lb):
    res = CliRunner().invoke(main, ["leaderboard", "run", str(lb.config), "--out", str(lb.out),
                                    "--cache-dir", str(lb.cache), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "6 cells: 6 kept from an earlier run, 0 run now" in res.output


def test_verify_checks_every_cell_and_the_shown_numbers(lb, tmp_path):
    res = CliRunner().invoke(main, ["verify", str(lb.out), "--no-rescore"])
    assert res.exit_code == 0, res.output
    assert "leaderboard :: numbers: 6 cells'" in res.output
    assert res.output.count(":: statistics:") == 6  # every cell verified as a report
    assert "[  ok] planted__canary-rank | canary-rank: planted :: canary file:" in res.output

    given = CliRunner().invoke(main, ["verify", str(lb.out), "--no-rescore", "--canaries",
                                      str(load_config(lb.config).canaries["planted"])])
    assert given.exit_code == 0, given.output
    assert given.output.count("(given)") == 2  # both models' canary-rank cells, nobody else's
    # an edited number, resealed as a forger would, is caught by recomputation
    import shutil

    copy = tmp_path / "lb"
    shutil.copytree(lb.out, copy)
    d = json.loads((copy / "leaderboard.json").read_text())
    cell = next(c for c in d["cells"] if c["id"] == "clean__canary-rank")
    cell["log10_pvalue"] -= 3
    d["cells_sha256"] = cells_digest(d["cells"])
    (copy / "leaderboard.json").write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["verify", str(copy), "--no-rescore"])
    assert res.exit_code == 1 and "[FAIL] leaderboard :: numbers: clean__canary-rank" in res.output
    (copy / "cells/planted__mi/report.json").write_text("{}")
    res = CliRunner().invoke(main, ["verify", str(copy), "--no-rescore"])
    assert "planted__mi :: report file" in res.output and res.exit_code == 1
