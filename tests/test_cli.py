"""The `tdp` command end to end: canaries new/verify/inject, audit, tasks, clear errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from harness.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_canaries_new_verify_and_tamper(tmp_path):
    f = tmp_path / "c.json"
    r = run("canaries", "new", "--count", "3", "--length", "5", "--counterfactuals", "50", "--out", str(f))
    assert r.exit_code == 0, r.output
    assert "commitment:" in r.output and (tmp_path / "c.json.secret").exists()
    assert run("canaries", "verify", str(f)).exit_code == 0
    r = run("canaries", "new", "--count", "3", "--length", "5", "--out", str(f))
    assert r.exit_code != 0 and "refusing to overwrite" in r.output
    d = json.loads(f.read_text())
    d["committed"]["plan"]["alpha"] = 0.5
    f.write_text(json.dumps(d))
    r = run("canaries", "verify", str(f))
    assert r.exit_code == 1 and "commitment mismatch" in r.output and "Traceback" not in r.output


def test_inject_and_audit_end_to_end(tiny_world, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in tiny_world.docs[:20]))
    r = run("canaries", "inject", "--canaries", str(tiny_world.canary_file), "--corpus", str(corpus),
            "--repeat", "2", "--out", str(tmp_path / "marked.jsonl"))
    assert r.exit_code == 0, r.output
    assert "16 insertions" in r.output

    out = tmp_path / "run"
    r = run("audit", "--model", f"hf:{tiny_world.target}", "--reference", f"hf:{tiny_world.reference}",
            "--canaries", str(tiny_world.canary_file), "--out", str(out), "--no-progress")
    assert r.exit_code == 0, r.output
    assert "exact bound" in r.output and "H0 rejected" in r.output
    for name in ("report.json", "report.html", "report.md"):
        assert (out / name).exists()
    rep = json.loads((out / "report.json").read_text())
    assert rep["audits"][0]["tests"][0]["primary"] is True


def test_tasks_and_unknowns(tiny_world, tmp_path):
    r = run("tasks")
    assert r.exit_code == 0 and "canary-rank" in r.output
    r = run("audit", "--model", f"hf:{tiny_world.target}", "--canaries", str(tiny_world.canary_file),
            "--task", "canary-rnak", "--out", str(tmp_path / "x"))
    assert r.exit_code == 1 and "did you mean 'canary-rank'" in r.output.lower()
    r = run("audit", "--model", f"hf:{tmp_path / 'nope'}", "--canaries", str(tiny_world.canary_file),
            "--out", str(tmp_path / "x"))
    assert r.exit_code == 1 and "model directory not found" in r.output
    r = run("audit", "--model", f"hf:{tiny_world.target}", "--canaries", str(tiny_world.canary_file),
            "--option", "colour=red", "--out", str(tmp_path / "x"))
    assert r.exit_code == 1 and "unknown task options ['colour']" in r.output
