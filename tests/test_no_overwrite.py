"""Results are never overwritten unasked, and an old result survives until the new one is whole:
audit reports, injected corpora and their manifests, canary files and their secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, new_canary_set, save_canary_set, secret_path
from canaries.drbg import derive_seed
from canaries.files import TMP_PREFIX, OutputError
from canaries.generators import words_spec
from canaries.inject import inject_corpus, manifest_path
from harness.cli import main


def run(*args: str):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_error_line(result) -> str:  # noqa: ANN001
    assert result.exit_code != 0 and result.exception is None or isinstance(
        result.exception, SystemExit
    ), result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture
def canaries(tmp_path: Path) -> Path:
    cs, seed = new_canary_set(words_spec(5), 3, Plan(counterfactuals=20), derive_seed("ow", "1"))
    return save_canary_set(cs, tmp_path / "c.json", seed)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.jsonl"
    p.write_text("".join(json.dumps({"text": f"doc {i}\nline"}) + "\n" for i in range(4)))
    return p


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(TMP_PREFIX)]


def test_audit_refuses_an_earlier_report_before_loading_the_model(tiny_world, tmp_path):
    out = tmp_path / "report"
    model = f"hf:{tiny_world.target}"
    base = ["audit", "--model", model, "--canaries", tiny_world.canary_file, "--no-progress",
            "--no-cache", "-o", out]
    assert run(*base).exit_code == 0
    first = (out / "report.json").read_bytes()
    # a model that cannot load shows the refusal comes first: nothing was scored
    r = run(*[a if a != model else "hf:./no-such-model" for a in base])
    assert "already holds a report" in _one_error_line(r)
    assert (out / "report.json").read_bytes() == first
    (out / "report.md").write_text("stale")
    r = run(*base, "--force")
    assert r.exit_code == 0, r.output
    assert (out / "report.md").read_text() != "stale" and not _leftovers(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [  # custody.jsonl: harness/evidence
        "custody.jsonl", "report.html", "report.json", "report.md"]


def test_report_swap_keeps_the_old_report_when_rendering_fails(tiny_world, tmp_path, monkeypatch):
    from harness import report as report_mod
    from harness.audit import audit_from_paths, make_report

    rep = make_report("t", [audit_from_paths(f"hf:{tiny_world.target}", tiny_world.canary_file,
                                             progress=False)])
    out = report_mod.write_report(rep, tmp_path / "r")
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="already holds a report"):
        report_mod.write_report(rep, out)

    def broken(_):  # noqa: ANN001, ANN202
        raise RuntimeError("renderer died")

    monkeypatch.setattr(report_mod, "render_markdown", broken)
    with pytest.raises(RuntimeError):
        report_mod.write_report(rep, out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert not _leftovers(tmp_path)
    # a folder with other files in it: the report files are replaced, the rest is kept
    monkeypatch.undo()
    (out / "notes.txt").write_text("mine")
    report_mod.write_report(rep, out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and not _leftovers(tmp_path)


def test_inject_refuses_existing_corpus_manifest_and_nonempty_folder(canaries, corpus, tmp_path):
    out = tmp_path / "marked.jsonl"
    args = ["canaries", "inject", "--canaries", canaries, "--corpus", corpus, "--seed", "00" * 16]
    assert run(*args, "-o", out).exit_code == 0
    before = (out.read_bytes(), manifest_path(out).read_bytes())
    assert "refusing to overwrite" in _one_error_line(run(*args, "-o", out))
    out.unlink()  # the manifest alone is a result too
    assert "manifest" in _one_error_line(run(*args, "-o", out))
    out.write_bytes(before[0])
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"text {i}\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("an earlier result")
    folder_args = ["canaries", "inject", "--canaries", canaries, "--corpus", folder, "-o", busy]
    assert "non-empty folder" in _one_error_line(run(*folder_args))
    assert (busy / "keep.txt").read_text() == "an earlier result"
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder holds nothing to lose
    assert run("canaries", "inject", "--canaries", canaries, "--corpus", folder,
               "-o", empty).exit_code == 0
    assert sorted(p.name for p in empty.iterdir()) == ["0.txt", "1.txt", "2.txt"]
    r = run(*folder_args, "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in busy.iterdir()) == ["0.txt", "1.txt", "2.txt"]
    r = run(*args, "--seed", "11" * 16, "-o", out, "--force")
    assert r.exit_code == 0 and out.read_bytes() != before[0]
    assert json.loads(manifest_path(out).read_text())["seed"] == "11" * 16
    assert stat.S_IMODE(manifest_path(out).stat().st_mode) == 0o600
    assert not _leftovers(tmp_path)


def test_inject_keeps_the_old_corpus_until_the_new_one_is_complete(
    canaries, tmp_path, monkeypatch
):
    from canaries import corpus as corpus_mod
    from canaries.canary_set import load_canary_set

    cs = load_canary_set(canaries)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.txt").write_text(f"text {i}\n")
    out = tmp_path / "out"
    inject_corpus(folder, cs, 1, out, bytes(16))
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    written = []
    real_write = Path.write_text

    def dies_on_third(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        written.append(self)
        if len(written) == 3:
            raise KeyboardInterrupt  # a kill in the middle of writing the new copy
        return real_write(self, *a, **k)

    monkeypatch.setattr(corpus_mod.Path, "write_text", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        inject_corpus(folder, cs, 1, out, bytes.fromhex("22" * 16), force=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert json.loads(manifest_path(out).read_text())["seed"] == "00" * 16
    assert not _leftovers(tmp_path)


def test_new_refuses_an_orphaned_secret_and_never_writes_through_a_link(tmp_path):
    new = ["canaries", "new", "--count", "2", "--length", "4", "-m", "10"]
    orphan = tmp_path / "orphan.json"
    secret_path(orphan).write_text('{"seed": "' + "ab" * 32 + '"}')
    assert "refusing to overwrite" in _one_error_line(run(*new, "-o", orphan))
    assert "ab" * 32 in secret_path(orphan).read_text() and not orphan.exists()
    assert run(*new, "-o", orphan, "--force").exit_code == 0
    assert "ab" * 32 not in secret_path(orphan).read_text()

    target = tmp_path / "target.txt"
    target.write_text("precious")
    target.chmod(0o644)
    linked = tmp_path / "linked.json"
    secret_path(linked).symlink_to(target)
    for extra in ([], ["--force"]):
        line = _one_error_line(run(*new, "-o", linked, *extra))
        assert "symbolic link" in line or "refusing to overwrite" in line
    assert target.read_text() == "precious" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not linked.exists()


def test_canary_file_and_secret_are_private(tmp_path):
    out = tmp_path / "c.json"
    old = os.umask(0o002)
    try:
        r = run("canaries", "new", "--count", "2", "--length", "4", "-m", "10", "-o", out)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    for p in (out, secret_path(out)):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
