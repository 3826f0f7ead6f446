"""PoL logging in `train_causal_lm`, and `tdp pol verify`: honest logs verify, tampered ones not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.repudiation.replay import run_from_log
from harness.repudiation.verify import calibrate, integrity_problems, verify_log, verify_run
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer
from harness.train.pol import PoLError, PoLOptions, load_log, scheduled_lr

TINY = TrainConfig(n_layer=1, n_embd=16, n_head=2, block_size=16, epochs=2, batch_size=8,
                   lr=5e-3, warmup_steps=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """One tiny model trained with PoL logging (k=4) and the same training without it."""
    root = tmp_path_factory.mktemp("pol")
    docs = stdlib_docstrings(max_bytes=8_000)
    tok = train_tokenizer(docs, 300)
    train_causal_lm(docs, tok, TINY, root / "plain", progress=False)
    train_causal_lm(docs, tok, TINY, root / "logged", progress=False,
                    pol=PoLOptions(root / "logged" / "pol", checkpoint_every=4))
    return root / "plain", root / "logged", root / "logged" / "pol"


def test_logging_changes_nothing_about_the_training(trained):
    from safetensors.torch import load_file

    plain, logged, _ = trained
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(logged / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (plain / "pol").exists()


def test_log_records_what_a_replay_needs(trained):
    _, _, pol = trained
    log = load_log(pol)
    steps = [c.step for c in log.checkpoints]
    assert steps[0] == 0 and steps[-1] == len(log.steps) and steps[1] == 4
    assert all(s.lr == scheduled_lr(log.schedule, t) for t, s in enumerate(log.steps))
    assert log.optimizer["kind"] == "adamw" and log.model["config"]["n_embd"] == 16
    assert len(log.data.documents) == len(log.data.document_sha256) > 0
    assert sum(len(s.batch) for s in log.steps) == TINY.epochs * log.data.blocks
    assert integrity_problems(log) == []


def test_honest_log_replays_bit_exactly_and_verifies(trained):
    log = load_log(trained[2])
    run = run_from_log(log)
    cal = calibrate(run, segments=2, factor=10.0)
    assert 0 < cal.tolerance < 1e-3  # summation order matters, a little
    result = verify_log(log, cal.tolerance)
    assert result.valid and result.max_error == 0.0
    assert len(result.checks) == len(run.segments())


def _copy(pol: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "pol"
    shutil.copytree(pol, dst)
    return dst


def test_a_swapped_minibatch_is_caught_at_its_segment(trained, tmp_path):
    pol = _copy(trained[2], tmp_path)
    d = json.loads((pol / "log.json").read_text())
    n = d["data"]["blocks"]
    d["steps"][9]["batch"][0] = (d["steps"][9]["batch"][0] + n // 2) % n  # step 9: in [8, 12)
    (pol / "log.json").write_text(json.dumps(d))
    result = verify_log(load_log(pol), tolerance=1e-4)
    assert not result.valid
    assert [(c.start, c.end) for c in result.failed] == [(8, 12)]
    assert verify_run(run_from_log(load_log(pol)), 1e-4, top_q=2).checks  # top-q runs too


def test_an_edited_checkpoint_or_schedule_is_an_integrity_problem(trained, tmp_path):
    pol = _copy(trained[2], tmp_path)
    ckpt = sorted((pol / "checkpoints").iterdir())[2]
    raw = bytearray(ckpt.read_bytes())
    raw[-5] ^= 0xFF  # one bit pattern in the last tensor's bytes
    ckpt.write_bytes(bytes(raw))
    d = json.loads((pol / "log.json").read_text())
    d["steps"][3]["lr"] *= 1.5
    (pol / "log.json").write_text(json.dumps(d))
    problems = integrity_problems(load_log(pol))
    assert any("content digest" in p for p in problems)
    assert any(p.startswith("step 3: lr") for p in problems)
    assert not verify_log(load_log(pol), 1.0).valid


def test_malformed_logs_are_pol_errors(tmp_path):
    with pytest.raises(PoLError, match="no PoL log"):
        load_log(tmp_path)
    (tmp_path / "log.json").write_text('{"format": "something-else"}')
    with pytest.raises(PoLError, match="not a PoL log"):
        load_log(tmp_path)


def test_cli_verify_exit_codes(trained, tmp_path):
    from harness.cli import main

    ok = CliRunner().invoke(main, ["pol", "verify", str(trained[2]), "--sample", "2",
                                   "--calibrate", "1", "--json", str(tmp_path / "v.json")])
    assert ok.exit_code == 0, ok.output
    assert "PoL log valid: 2/2" in ok.output
    assert json.loads((tmp_path / "v.json").read_text())["valid"] is True
    pol = _copy(trained[2], tmp_path)
    d = json.loads((pol / "log.json").read_text())
    d["steps"][1]["batch"] = d["steps"][2]["batch"]
    (pol / "log.json").write_text(json.dumps(d))
    bad = CliRunner().invoke(main, ["pol", "verify", str(pol), "--tolerance", "1e-6"])
    assert bad.exit_code == 1 and "PoL log INVALID: 1 of" in bad.output
    assert "[FAIL] steps 0-4" in bad.output
