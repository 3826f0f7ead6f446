"""A small leaderboard built once per test session, by a run killed with SIGKILL after its
first finished cell and then resumed (the kill-and-resume scenario the tests check)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = """
title = "test leaderboard"
[[series]]
name = "repetitions"
x_label = "times planted"
[[models]]
name = "planted"
spec = "hf:{target}"
series = {{ repetitions = 24 }}
[[models]]
name = "clean"
spec = "hf:{reference}"
series = {{ repetitions = 0 }}
[canaries]
planted = "{canaries}"
never = "{never}"
[datasets.tiny]
members = "{members}"
nonmembers = "{nonmembers}"
max_words = 10
[[tasks]]
name = "canary-rank"
task = "canary-rank"
canaries = "planted"
options = {{ secondary = ["loss", "zlib"] }}
[[tasks]]
name = "never-planted"
task = "canary-rank"
canaries = "never"
options = {{ secondary = ["loss"] }}
[[tasks]]
name = "mi"
task = "mi-benchmark"
dataset = "tiny"
options = {{ n_bootstrap = 100, scores = ["loss", "zlib", "min_k"] }}
"""


@dataclass(frozen=True)
class SmallLeaderboard:
    config: Path
    out: Path
    cache: Path
    finished_before_kill: dict[str, tuple[int, int, bytes]]  # id -> (inode, mtime_ns, bytes)
    resumed: object  # the GridRun of the resumed run


_BUILT: dict[str, SmallLeaderboard] = {}


def _write(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def write_config(root: Path, tiny_world) -> Path:  # noqa: ANN001 - the conftest fixture
    from harness.train import stdlib_docstrings

    seen = {" ".join(t.split()[:10]) for t in tiny_world.docs}
    later = [t for t in stdlib_docstrings(200_000)[len(tiny_world.docs):]
             if " ".join(t.split()[:10]) not in seen][:30]
    text = CONFIG.format(
        target=tiny_world.target, reference=tiny_world.reference,
        canaries=tiny_world.canary_file, never=tiny_world.never_planted_file,
        members=_write(root / "members.jsonl", tiny_world.docs[:30]),
        nonmembers=_write(root / "nonmembers.jsonl", later))
    (root / "lb.toml").write_text(text)
    return root / "lb.toml"


def _finished(out: Path) -> dict[str, tuple[int, int, bytes]]:
    done = {}
    for rec in out.glob("cells/*/cell.json"):
        try:
            if json.loads(rec.read_text())["status"] != "done":
                continue
        except (ValueError, KeyError):
            continue
        report = rec.parent / "report.json"
        st = report.stat()
        done[rec.parent.name] = (st.st_ino, st.st_mtime_ns, report.read_bytes())
    return done


def killed_run(config: Path, out: Path, cache: Path, timeout: float = 240) -> None:
    """`tdp leaderboard run` in its own process group (2 workers), SIGKILLed as soon as one
    cell is finished."""
    tdp = Path(sys.executable).with_name("tdp")
    proc = subprocess.Popen(
        [str(tdp), "leaderboard", "run", str(config), "--out", str(out), "--workers", "2",
         "--cache-dir", str(cache), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not _finished(out):
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def small_leaderboard(tmp_path_factory, tiny_world) -> SmallLeaderboard:  # noqa: ANN001
    if "lb" in _BUILT:
        return _BUILT["lb"]
    from harness.leaderboard.config import load_config
    from harness.leaderboard.runner import run_leaderboard
    from harness.leaderboard.workers import plan_workers

    root = tmp_path_factory.mktemp("leaderboard")
    config, out, cache = write_config(root, tiny_world), root / "lb", root / "cache"
    killed_run(config, out, cache)
    before = _finished(out)
    run, _ = run_leaderboard(load_config(config), out, plan_workers(1, cpus=1, gpus=0),
                             str(cache), 4096, progress=False)
    _BUILT["lb"] = SmallLeaderboard(config, out, cache, before, run)
    return _BUILT["lb"]
