"""End to end on a tiny model: a surviving carrier is detected, a dropped carrier is not (slow)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.embed import embed_pages, load_manifest, manifest_path_for
from canaries.generators import words_spec


@pytest.mark.slow
def test_visible_carrier_is_detected_and_comment_carrier_is_not(tmp_path: Path) -> None:
    pytest.importorskip("resiliparse")
    from harness.audit import audit_from_paths
    from harness.survival.pipeline import EXTRACTORS
    from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

    docs = stdlib_docstrings(40_000)
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    per = len(docs) // 32
    for i in range(32):
        body = "\n".join(
            f"<p>{html.escape(' '.join(d.split()))}</p>" for d in docs[i * per : (i + 1) * per]
        )
        (hosts / f"p{i:02d}.html").write_text(
            f"<html><head><title>{i}</title></head><body>{body}</body></html>"
        )
    pages = hosts
    files = {}
    for g in ("paragraph", "comment"):
        cs, seed = new_canary_set(
            words_spec(10), 4, Plan(counterfactuals=100), seed=g.encode() * 16
        )
        files[g] = save_canary_set(cs, tmp_path / f"{g}.json", seed)
        embed_pages(
            pages, load_canary_set(files[g]), files[g], [g], tmp_path / g, repeat=8, seed=b"x" * 16
        )
        pages = tmp_path / g
    extracted = EXTRACTORS["resiliparse-main"].run(
        [(p.name, p.read_text()) for p in sorted(pages.glob("*.html"))], 30
    )
    for g in files:
        texts = {c.id: c.text for c in load_canary_set(files[g]).canaries}
        placed = load_manifest(manifest_path_for(files[g])).placements
        found = sum(texts[p.canary_id] in extracted[p.page] for p in placed)
        assert found == (len(placed) if g == "paragraph" else 0)
    tok = train_tokenizer(docs, 1024)
    model = train_causal_lm(
        list(extracted.values()), tok, TrainConfig(epochs=3), tmp_path / "m", progress=False
    )
    p = {
        g: audit_from_paths(f"hf:{model.path}", files[g], progress=False).primary.result.pvalue
        for g in files
    }
    assert p["paragraph"] < 0.01
    assert p["comment"] > 0.01
