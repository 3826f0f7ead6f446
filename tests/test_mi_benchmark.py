"""`mi-benchmark` end to end on a tiny trained model: report, verify, tamper, mixed reports, and
re-scoring an older report with the score definitions it was made with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from harness.audit import AuditContext, audit_digest, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.cli import main
from harness.mi.shift import NO_BOUND
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.results import ItemScores, Report
from harness.train import stdlib_docstrings


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


@pytest.fixture(scope="module")
def bench(tiny_world, tmp_path_factory):
    """Members: documents the target trained on; non-members: later stdlib documents."""
    root = tmp_path_factory.mktemp("mi-bench")
    seen = {" ".join(t.split()[:10]) for t in tiny_world.docs}
    later = [t for t in stdlib_docstrings(200_000)[len(tiny_world.docs):]
             if " ".join(t.split()[:10]) not in seen][:40]
    m = _write(root / "members.jsonl", tiny_world.docs[:40])
    n = _write(root / "nonmembers.jsonl", later)
    out = root / "report"
    args = ["audit", "--model", f"hf:{tiny_world.target}", "--task", "mi-benchmark",
            "--reference", f"hf:{tiny_world.reference}", "--out", str(out), "--no-progress",
            "--option", f"members={m}", "--option", f"nonmembers={n}", "--option", "max_words=10",
            "--option", "n_bootstrap=200", "--option", "name=tiny"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return root, out, res.output


def test_report_holds_a_benchmark_without_canaries(bench):
    _, out, output = bench
    assert "estimates, not bounds" in output and "report:" in output
    report = Report.from_dict(json.loads((out / "report.json").read_text()))
    (a,) = report.audits
    assert a.canary_set is None and a.role == "benchmark" and report.holm_adjusted is None
    assert a.dataset.n_members == 40 and a.dataset.n_nonmembers == 40
    scores = {t.score for t in a.tests}
    assert {"loss", "zlib", "min_k", "min_k_pp", "ref_ratio"} <= scores
    assert {"blind:bag-of-words", "blind:year-rule"} <= scores
    assert all(t.result.kind == "estimate" and t.result.pvalue != t.result.pvalue for t in a.tests)
    assert NO_BOUND in a.notes and {i.role for i in a.items} == {"member", "non-member"}
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "ROC curves, log-log axes" in html and "No false-positive bound" in html
    assert "| blind:bag-of-words | blind baseline (no model) |" in md


def test_verify_recomputes_everything_and_names_what_it_cannot(bench):
    _, out, _ = bench
    res = CliRunner().invoke(main, ["verify", str(out), "--rescore", "20", "--rescore-seed", "1"])
    assert res.exit_code == 0, res.output
    for name in ("items", "data source", "audit seed", "statistics", "blind baselines", "rescore"):
        assert f":: {name}:" in res.output
    assert "[open]" in res.output
    assert "labels: membership labels are the data provider" in res.output
    assert "FAIL" not in res.output


def test_verify_catches_an_edited_score(bench, tmp_path):
    _, out, _ = bench
    d = json.loads((out / "report.json").read_text())
    d["audits"][0]["items"][0]["scores"]["loss"] += 0.5
    r = Report.from_dict(d)
    d["extra"]["audit_digest"] = audit_digest(r.audits, r.holm_adjusted)  # a forger reseals
    (tmp_path / "report.json").write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["verify", str(tmp_path), "--no-rescore"])
    assert res.exit_code == 1 and "[FAIL]" in res.output and ":: statistics:" in res.output


def test_a_report_mixing_a_claim_and_a_benchmark(bench, tiny_world):
    from canaries.canary_set import load_canary_set

    _, out, _ = bench
    bench_audit = Report.from_dict(json.loads((out / "report.json").read_text())).audits[0]
    cs = load_canary_set(tiny_world.canary_file)
    ctx = AuditContext(cs, str(tiny_world.canary_file), HFBackend(str(tiny_world.target)),
                       f"hf:{tiny_world.target}", progress=False)
    claims = [run_audit("canary-rank", ctx, {"secondary": ("loss",)}) for _ in range(2)]
    report = make_report("mixed", [*claims, bench_audit])
    assert report.holm_adjusted[2] != report.holm_adjusted[2]  # NaN: the benchmark is no claim
    assert all(h == h for h in report.holm_adjusted[:2])
    again = Report.from_dict(report.to_dict())
    assert again.audits[2].dataset == bench_audit.dataset
    assert "benchmark (estimates, no claim)" in render_html(again)
    assert "AUC on `loss`" in render_markdown(again)


def test_an_older_report_is_rescored_with_its_own_score_definitions(tiny_world):
    """A v1 report (total log-prob zlib, ceil Min-K%) re-scores ok as v1 and fails as v2."""
    from canaries.canary_set import load_canary_set
    from harness.backends import load_backend
    from harness.scoring import ScoringRequest, score_texts
    from harness.verify.rescore import RescorePlan, check_rescore

    cs = load_canary_set(tiny_world.canary_file)
    backend = HFBackend(str(tiny_world.target))
    ctx = AuditContext(cs, str(tiny_world.canary_file), backend, f"hf:{tiny_world.target}",
                       progress=False)
    a = run_audit("canary-rank", ctx, {"secondary": ("zlib", "min_k"), "min_k": 0.3})
    texts = [i.text for i in a.items]
    v1 = score_texts(texts, backend, ScoringRequest(("zlib_sum", "min_k_ceil"),
                                                    {"min_k_ceil": {"k": 0.3}}),
                     bytes.fromhex(a.audit_seed))
    old = replace(a, items=tuple(
        ItemScores(i.id, i.role, i.text, {**i.scores, "zlib": r["zlib_sum"],
                                          "min_k": r["min_k_ceil"]})
        for i, r in zip(a.items, v1, strict=True)))
    plan = RescorePlan(counterfactuals=20, seed=0)
    assert check_rescore(old, cs, replace(plan, score_definitions=1), load_backend)[0] == "ok"
    verdict, detail = check_rescore(old, cs, plan, load_backend)
    assert verdict == "FAIL" and "zlib" in detail or "min_k" in detail


def test_shadow_attacks_run_as_benchmark_rows_and_verify(bench, tiny_world, tmp_path):
    """Issue 10: the attacks are scores of the mi-benchmark task, so a leaderboard row (a task
    with options) runs them; their metrics verify, and verify says it cannot re-score them."""
    from harness.mi.shadow_train import ShadowRequest, train_shadow_set
    from harness.results import load_report
    from harness.train import TrainConfig

    root, _, _ = bench
    members = [json.loads(line)["text"] for line in (root / "members.jsonl").open()]
    nonmembers = [json.loads(line)["text"] for line in (root / "nonmembers.jsonl").open()]
    micro = TrainConfig(n_layer=1, n_embd=16, n_head=2, block_size=64, epochs=1, batch_size=8,
                        lr=3e-3, warmup_steps=2)
    pool = tuple(" ".join(t.split()[:10]) for t in members + nonmembers)
    population = tuple(" ".join(t.split()[10:20]) for t in nonmembers[:8])
    shadow = tmp_path / "shadow"
    train_shadow_set(shadow, ShadowRequest(pool, 2, micro, b"bench-shadow-seed-01",
                                           population, vocab_size=300), progress=False)
    out = tmp_path / "report"
    args = ["audit", "--model", f"hf:{tiny_world.target}", "--task", "mi-benchmark",
            "--out", str(out), "--no-progress", "--option", f"members={root / 'members.jsonl'}",
            "--option", f"nonmembers={root / 'nonmembers.jsonl'}", "--option", "max_words=10",
            "--option", "n_bootstrap=100", "--option", f"shadow={shadow}",
            "--option", "scores=loss", "--option", "attacks=lira_offline+ref_calibration"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    a = load_report(out).audits[0]
    rows = {t.score: t.result for t in a.tests}
    assert {"attack:lira_offline", "attack:ref_calibration"} <= set(rows)
    assert all(r.kind == "estimate" for r in rows.values())
    res = CliRunner().invoke(main, ["verify", str(out), "--rescore", "5"])
    assert res.exit_code == 0 and "[FAIL]" not in res.output, res.output
