"""`tdp demo` at reduced size: the whole pipeline writes a report with the expected verdicts."""

from __future__ import annotations

import json

from harness.demo import DemoConfig, run_demo
from harness.train import TrainConfig


def test_demo_pipeline_small(tmp_path):
    cfg = DemoConfig(
        corpus_bytes=40_000, vocab_size=512, canaries=8, canary_length=6, repeat=16, counterfactuals=200,
        train=TrainConfig(n_layer=1, n_embd=64, n_head=2, block_size=32, epochs=5, lr=5e-3, warmup_steps=5),
    )
    report = run_demo(tmp_path, cfg)
    target, ref_null, fresh_null = report.audits
    assert target.role == "audit" and ref_null.role == fresh_null.role == "null-control"
    assert target.primary.result.pvalue <= 1e-6
    assert ref_null.primary.result.pvalue > 0.01 and fresh_null.primary.result.pvalue > 0.01
    assert report.holm_adjusted is None  # one claim, two controls
    saved = json.loads((tmp_path / "report.json").read_text())
    assert len(saved["audits"]) == 3
    assert (tmp_path / "work" / "canaries.json.secret").exists()
    html = (tmp_path / "report.html").read_text()
    assert "null control" in html and "H0 rejected" in html
