"""Reports: JSON round trip into the typed result, HTML/Markdown content, recomputable stats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.audit import audit_from_paths, make_report
from harness.report import write_report
from harness.results import Report, ReportError, load_report
from harness.stats import run_statistic


@pytest.fixture(scope="module")
def report(tiny_world):
    a = audit_from_paths(f"hf:{tiny_world.target}", tiny_world.canary_file, progress=False)
    b = audit_from_paths(f"hf:{tiny_world.reference}", tiny_world.canary_file, progress=False)
    return make_report("test report", [a, b])


def test_json_round_trip(report, tmp_path):
    write_report(report, tmp_path)
    loaded = load_report(tmp_path / "report.json")
    assert isinstance(loaded, Report)
    assert loaded.to_dict() == json.loads(json.dumps(report.to_dict()))
    assert loaded.audits[0].primary.result == report.audits[0].primary.result


def test_statistics_are_recomputable_from_stored_scores(report):
    for a in report.audits:
        prim = a.primary
        s = np.array([i.scores[prim.score] for i in a.items])
        is_c = np.array([i.role == "canary" for i in a.items])
        again = run_statistic(prim.result.name, s[is_c], s[~is_c])
        assert again.pvalue == prim.result.pvalue


def test_holm_over_several_audits(report):
    p = [a.primary.result.pvalue for a in report.audits]
    assert report.holm_adjusted is not None
    assert report.holm_adjusted[0] == pytest.approx(min(1, 2 * min(p))) or report.holm_adjusted[0] >= p[0]
    assert all(h >= q for h, q in zip(report.holm_adjusted, p))


def test_html_is_self_contained_and_says_what_it_claims(report, tmp_path):
    write_report(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    for needle in ("H0:", "exact bound", "smallest attainable p", "commitment", "audit seed",
                   "fingerprint", "primary", report.audits[0].canary_set.commitment):
        assert needle in html, needle
    md = (tmp_path / "report.md").read_text()
    assert "| audit |" in md and "exact" not in md.split("\n")[0]


def test_seed_is_derived_not_chosen(report):
    from harness.audit import audit_seed
    from harness.backends.base import Fingerprint

    a = report.audits[0]
    fp = Fingerprint.from_dict(a.model.fingerprint)
    assert audit_seed(a.canary_set.commitment, fp).hex() == a.audit_seed
    assert "not chosen by the auditor" in a.seed_derivation


def test_bad_report_files(tmp_path):
    with pytest.raises(ReportError, match="not found"):
        load_report(tmp_path / "nope.json")
    (tmp_path / "r.json").write_text(json.dumps({"schema": "tdp-report", "schema_version": 99}))
    with pytest.raises(ReportError, match="schema_version"):
        load_report(tmp_path / "r.json")
