"""Corpus injection: every canary r times, seeded, both corpus formats."""

from __future__ import annotations

import json

import pytest

from canaries.canary_set import Plan, new_canary_set
from canaries.corpus import CorpusError, read_corpus
from canaries.generators import words_spec
from canaries.inject import inject_corpus, inject_texts, manifest_path


@pytest.fixture()
def cs():
    return new_canary_set(words_spec(5), 4, Plan(), seed=bytes(32))[0]


def test_each_canary_inserted_r_times(cs):
    texts = [f"line one of doc {i}\nline two\nline three" for i in range(10)]
    out, placed = inject_texts(texts, cs, repeat=3, seed=bytes(16))
    joined = "\n".join(out)
    for c in cs.canaries:
        assert joined.count(c.text) == 3
    assert len(placed) == 12
    again, _ = inject_texts(texts, cs, repeat=3, seed=bytes(16))
    assert again == out
    # canaries sit on their own lines; the original lines are all still there
    for t, o in zip(texts, out):
        kept = [ln for ln in o.split("\n") if ln and ln not in cs.texts()]
        assert kept == t.split("\n")


def test_jsonl_and_directory_corpora(cs, tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(json.dumps({"text": f"doc {i}\nmore", "id": i}) for i in range(5)) + "\n")
    m = inject_corpus(src, cs, 2, tmp_path / "out.jsonl", seed=bytes(16))
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(5))
    assert sum(r["text"].count(cs.canaries[0].text) for r in rows) == 2
    man = json.loads(manifest_path(tmp_path / "out.jsonl").read_text())
    assert man["repeat"] == 2 and man["seed"] == bytes(16).hex() and len(man["insertions"]) == 8
    assert m.canary_commitment == cs.commitment

    d = tmp_path / "docs"
    d.mkdir()
    for i in range(3):
        (d / f"{i}.txt").write_text(f"text {i}\n")
    inject_corpus(d, cs, 1, tmp_path / "docs-out")
    assert sum(p.read_text().count(cs.canaries[1].text) for p in (tmp_path / "docs-out").glob("*.txt")) == 1


def test_bad_corpora(cs, tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        read_corpus(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    with pytest.raises(CorpusError, match="'text'"):
        read_corpus(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .txt"):
        read_corpus(tmp_path / "empty")
    with pytest.raises(ValueError):
        inject_texts(["a"], cs, repeat=0, seed=bytes(16))
