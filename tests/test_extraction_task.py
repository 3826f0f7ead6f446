"""The extraction task end to end on a tiny model trained here, plus document-overlap metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import CanarySetError, Plan, new_canary_set, save_canary_set
from canaries.corpus import Corpus, CorpusError, write_corpus
from canaries.drbg import derive_seed
from canaries.generators import tokens_spec, words_spec
from canaries.inject import inject_texts
from harness.audit import AuditContext, make_report, run_audit
from harness.results import load_report
from harness.stats.extraction import count_matches, extraction_test
from harness.stats.overlap import bleu, exact_prefix_length, longest_common_substring, overlap
from tasks.extraction import (
    ExtractionConfig,
    document_prompts,
    extract_documents,
    words_after_prefix,
)

PLAN = Plan(task="extraction", statistic="extraction-greedy", counterfactuals=1, alpha=0.01)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny GPT-2 trained on stdlib docstrings with word and token canaries repeated 40 times."""
    from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

    root = tmp_path_factory.mktemp("extraction")
    docs = stdlib_docstrings(5000)
    tok = train_tokenizer(docs, 1024)  # trained on clean text: no canary merges
    tok.save_pretrained(root / "tok")
    words = words_spec(8, prefix_length=3)
    planted, s1 = new_canary_set(words, 3, PLAN, derive_seed("test-planted", "0"))
    fresh, s2 = new_canary_set(words, 3, PLAN, derive_seed("test-fresh", "0"))
    toks, s3 = new_canary_set(
        tokens_spec(12, str(root / "tok"), prefix_length=4),
        2,
        PLAN,
        derive_seed("test-tokens", "0"),
    )
    zero, s4 = new_canary_set(words_spec(8), 2, PLAN, derive_seed("test-zero", "0"))
    paths = {}
    for name, cs, seed in [
        ("planted", planted, s1),
        ("fresh", fresh, s2),
        ("tokens", toks, s3),
        ("zero", zero, s4),
    ]:
        paths[name] = save_canary_set(cs, root / f"{name}.json", seed)
    texts, _ = inject_texts(docs, planted, 40, derive_seed("test-inject", "0"))
    texts, _ = inject_texts(texts, toks, 40, derive_seed("test-inject-tokens", "0"))
    cfg = TrainConfig(n_layer=2, n_embd=64, n_head=4, block_size=64, epochs=12, lr=6e-3)
    train_causal_lm(texts, tok, cfg, root / "model", progress=False)
    write_corpus(
        Corpus(texts=docs, names=[str(i) for i in range(len(docs))], records=[{} for _ in docs]),
        root / "docs.jsonl",
    )
    return {**paths, "model": root / "model", "docs": root / "docs.jsonl", "root": root}


@pytest.fixture(scope="module")
def backend(trained: dict[str, Path]):
    from harness.backends.hf import HFBackend

    return HFBackend(str(trained["model"]))


def _audit(trained: dict[str, Path], backend, name: str, **options):
    from canaries.canary_set import load_canary_set

    cs = load_canary_set(trained[name])
    ctx = AuditContext(cs, str(trained[name]), backend, f"hf:{trained['model']}", progress=False)
    return run_audit("extraction", ctx, options)


def test_planted_word_canaries_are_extracted_with_a_tiny_bound(trained, backend) -> None:
    a = _audit(trained, backend, "planted", samples=2)
    prim = a.primary.result
    assert a.primary.score == "greedy-matches" and prim.kind == "bound"
    assert prim.statistic >= 10  # of 3 x 5 secret words
    assert prim.pvalue < 1e-30
    assert prim.details["log10_p"] < -30
    # the stored extractions recompute every match count and the p-value
    ex = prim.details["extractions"]
    recount = [count_matches(e["greedy_units"], e["truth_units"]) for e in ex]
    assert recount == [int(i.scores["greedy-matches"]) for i in a.items] == prim.details["matches"]
    again = extraction_test(recount, 5, 7776, 8, name=prim.name)
    assert again.pvalue == prim.pvalue
    best = next(t for t in a.tests if t.score == "best-of-n-matches").result
    assert best.kind == "bound" and best.details["attempts"] == 3
    assert best.statistic >= prim.statistic and all(len(e["samples"]) == 2 for e in ex)
    assert best.pvalue >= prim.pvalue * 0.999 or best.statistic > prim.statistic


def test_a_set_the_model_never_saw_is_not_extracted(trained, backend) -> None:
    a = _audit(trained, backend, "fresh", samples=2)
    assert a.primary.result.kind == "bound"
    assert a.primary.result.pvalue > 0.01


def test_token_canaries_are_matched_as_ids_and_labelled_estimates(trained, backend) -> None:
    a = _audit(trained, backend, "tokens", samples=0)
    r = a.primary.result
    assert r.details["units"].startswith("token ids: prompt ids cut")
    assert r.kind == "estimate" and "NOT a bound" in r.method  # round-trip rejection: not i.i.d.
    assert r.statistic >= 8  # of 2 x 8 secret tokens
    assert all(isinstance(u, int) for e in r.details["extractions"] for u in e["greedy_units"])
    assert len(a.tests) == 1  # no samples, no best-of-n test


class TextOnly:
    """The trained model seen through the bare Backend protocol: `generate` only, no ids."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.tokenizer = inner, inner.name, inner.tokenizer

    def token_logprobs(self, texts):
        return self.inner.token_logprobs(texts)

    def generate(self, prompts, max_new_tokens, n=1, temperature=0.0, seed=0):
        return self.inner.generate(prompts, max_new_tokens, n, temperature, seed)

    def fingerprint(self):
        return self.inner.fingerprint()


def test_token_canaries_through_text_generate_only(trained, backend) -> None:
    a = _audit(trained, TextOnly(backend), "tokens", samples=0)
    r = a.primary.result
    assert "re-encoding the continuation text" in r.details["units"]
    assert r.statistic >= 4  # fewer than through ids is possible (BPE boundary), not zero
    assert all(isinstance(u, int) for e in r.details["extractions"] for u in e["greedy_units"])


def test_prefix_length_zero_is_refused(trained, backend) -> None:
    with pytest.raises(CanarySetError, match="prefix_length 0"):
        _audit(trained, backend, "zero")


def test_cli_audit_extraction_writes_a_report(trained) -> None:
    from harness.cli import main

    out = trained["root"] / "report"
    args = [
        "audit",
        "--task",
        "extraction",
        "--model",
        f"hf:{trained['model']}",
        "--canaries",
        str(trained["planted"]),
        "--out",
        str(out),
        "--no-progress",
        "--option",
        "samples=1",
        "--option",
        f"documents={trained['docs']}",
        "--option",
        "doc_prefix_words=12",
        "--option",
        "doc_continuation_words=12",
        "--option",
        "max_documents=4",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "H0 rejected" in res.output
    report = load_report(out)
    a = report.audits[0]
    doc = next(t for t in a.tests if t.score == "document-extraction").result
    assert doc.kind == "estimate" and math.isnan(doc.pvalue)
    assert "not a bound" in doc.method and doc.details["documents"]
    html = (out / "report.html").read_text()
    for e in a.primary.result.details["extractions"]:
        assert e["truth"] in html and e["prefix"] in html
    assert "Document extraction (evidence, no bound)" in html
    assert "<img" not in html  # no counterfactuals: no score plot
    json.loads((out / "report.json").read_text())
    res = CliRunner().invoke(main, ["verify", str(out), "--canaries", str(trained["planted"])])
    assert res.exit_code == 0 and "greedy continuations regenerated identically" in res.output, res.output
    assert "extraction tests recounted" in res.output
    zero = CliRunner().invoke(
        main,
        [
            *args[:5],
            "--canaries",
            str(trained["zero"]),
            "--out",
            str(trained["root"] / "zero-report"),
        ],
    )
    assert zero.exit_code == 1 and "prefix_length 0" in zero.output


def test_words_after_prefix_keeps_positions() -> None:
    assert words_after_prefix("a b c", " d e f g", 3, 3) == ["d", "e", "f"]
    # the model first finishes the prefix's last word: that fragment stays with the prefix
    assert words_after_prefix("a b c", "at d e", 3, 2) == ["d", "e"]
    assert words_after_prefix("a b c", "", 3, 2) == []


def test_overlap_metrics_on_known_strings() -> None:
    o = overlap("the cat sat on a mat today", "the cat sat on the mat")
    assert o.exact_prefix_words == 4 and not o.exact
    assert o.lcs == "the cat sat on " and o.lcs_chars == 15
    assert 0 < o.bleu < 1
    same = overlap("one two three four five", "one two three four five")
    assert same.exact and same.bleu == pytest.approx(1.0) and same.lcs_chars == 23
    assert overlap("", "a b").bleu == 0.0 and overlap("", "a b").exact_prefix_words == 0
    assert exact_prefix_length(["x", "b"], ["a", "b"]) == 0
    assert longest_common_substring("xxabcdyy", "zzabcdww") == "abcd"
    # more shared n-grams, higher BLEU
    truth = "alpha beta gamma delta epsilon zeta".split()
    assert bleu(truth[:4] + ["x", "y"], truth) > bleu(truth[:2] + ["x", "y", "z", "w"], truth)


def test_document_prompts_keep_original_characters() -> None:
    text = "Line one,\n  with  spaces.\tThen more words here and there."
    prompt, truth = document_prompts(text, 4, 3)
    assert prompt == "Line one,\n  with  spaces."
    assert truth == "Then more words"
    assert document_prompts("too short", 4, 3) is None


class ScriptedBackend:
    """Returns a fixed continuation per prompt: checks the metric plumbing, not a model."""

    name = "scripted"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def generate(self, prompts, max_new_tokens, n=1, temperature=0.0, seed=0):
        return [[self.replies[p]] * n for p in prompts]


def test_extract_documents_reports_overlap_per_document() -> None:
    docs = ["w1 w2 w3 w4 w5 w6", "v1 v2 v3 v4 v5 v6", "short"]
    backend = ScriptedBackend({"w1 w2 w3": " w4 w5 w6 w7", "v1 v2 v3": " v4 nope v6"})
    rows = extract_documents(
        backend, docs, ExtractionConfig(doc_prefix_words=3, doc_continuation_words=3)
    )
    assert [r["document"] for r in rows] == [0, 1]
    assert rows[0]["exact"] and rows[0]["extracted"] == "w4 w5 w6"
    assert rows[1]["exact_prefix_words"] == 1 and not rows[1]["exact"]
    with pytest.raises(CorpusError, match="no document has"):
        extract_documents(
            backend, ["short"], ExtractionConfig(doc_prefix_words=3, doc_continuation_words=3)
        )


def test_report_json_round_trip_keeps_extractions(trained, backend, tmp_path) -> None:
    from harness.report import write_report

    a = _audit(trained, backend, "planted", samples=0)
    write_report(make_report("t", [a]), tmp_path)
    back = load_report(tmp_path).audits[0]
    assert back.primary.result.details["extractions"] == a.primary.result.details["extractions"]
    assert back.primary.result.pvalue == a.primary.result.pvalue


def test_generate_ids_stays_inside_the_context(backend) -> None:
    out = backend.generate_ids([[5, 6, 7]], 10_000)
    assert 0 < len(out[0][0]) <= backend.max_length - 4  # BOS + 3 prompt ids
