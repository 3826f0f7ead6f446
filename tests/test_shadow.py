"""Shadow sets on disk: the manifest, resuming, refusing edits, and `tdp shadow` end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.backends import load_backend
from harness.mi import shadow_train
from harness.mi.attacks import attack_scores
from harness.mi.design import keep_matrix
from harness.mi.observe import observe
from harness.mi.shadow import ShadowError, load_shadow_set
from harness.mi.shadow_train import ShadowRequest, train_shadow_set
from harness.train import TrainConfig, stdlib_docstrings

MICRO = TrainConfig(n_layer=1, n_embd=16, n_head=2, block_size=128, epochs=1, batch_size=8,
                    lr=3e-3, warmup_steps=2)
SEED = b"shadow-test-seed-0001"


def _texts(n: int, offset: int = 0) -> tuple[str, ...]:
    paras = [" ".join(p.split()) for d in stdlib_docstrings(60_000)
             for p in re.split(r"\n\s*\n", d)]
    paras = [p for p in dict.fromkeys(paras) if 80 < len(p) < 300]
    return tuple(paras[offset: offset + n])


def _request(n_models: int = 2, seed: bytes = SEED) -> ShadowRequest:
    return ShadowRequest(_texts(24), n_models, MICRO, seed, _texts(6, 24), vocab_size=300)


@pytest.fixture(scope="module")
def shadow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shadow") / "set"
    train_shadow_set(root, _request(2), progress=False)
    return root


def test_manifest_records_each_half_and_identity(shadow_dir: Path):
    s = load_shadow_set(shadow_dir)
    assert len(s.trained) == 2 and len(s.pool) == 24 and len(s.population) == 6
    assert np.array_equal(s.keep(), keep_matrix(24, 2, SEED))
    assert [m.n_members for m in s.models] == [12, 12]
    for m in s.models:
        ident = load_backend(f"hf:{s.model_dir(m)}").fingerprint().identity_digest()
        assert ident == m.identity
    assert re.fullmatch(r"[0-9a-f]{64}", s.digest())
    assert s.plan.train["epochs"] == 1 and s.plan.vocab_size == 300


def test_a_killed_run_resumes_at_the_first_unfinished_model(tmp_path, monkeypatch):
    calls = []
    real = shadow_train.train_causal_lm

    def dies_on_second(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed while training model-001
        return real(*args, **kwargs)

    monkeypatch.setattr(shadow_train, "train_causal_lm", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        train_shadow_set(tmp_path / "s", _request(2), progress=False)
    s = load_shadow_set(tmp_path / "s")
    assert [m.done for m in s.models] == [True, False]
    first = (s.model_dir(s.models[0]) / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(shadow_train, "train_causal_lm", real)
    calls.clear()
    counted = []
    monkeypatch.setattr(shadow_train, "train_causal_lm",
                        lambda *a, **k: counted.append(k["desc"]) or real(*a, **k))
    s = train_shadow_set(tmp_path / "s", _request(3), progress=False)  # resume and extend
    assert counted == ["shadow model-001", "shadow model-002"]
    assert all(m.done for m in s.models)
    assert (s.model_dir(s.models[0]) / "model.safetensors").stat().st_mtime_ns == first
    assert not [p for p in (tmp_path / "s" / "models").iterdir() if p.name.startswith(".")]


def test_another_plan_in_the_folder_is_refused(shadow_dir: Path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shadow_dir, copy)
    with pytest.raises(ShadowError, match="differs in seed"):
        shadow_train.open_shadow_set(copy, _request(2, b"another-seed-000001"))
    with pytest.raises(ShadowError, match="plans 2 models"):
        shadow_train.open_shadow_set(copy, _request(1))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("mine")
    with pytest.raises(ShadowError, match="not a shadow set"):
        shadow_train.open_shadow_set(tmp_path / "junk", _request(2))


def test_an_edited_pool_or_a_swapped_model_is_refused(shadow_dir: Path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shadow_dir, copy)
    pool = copy / "pool.jsonl"
    pool.write_text(pool.read_text().replace("the", "teh", 1))
    with pytest.raises(ShadowError, match="edited after training"):
        load_shadow_set(copy)
    shutil.copytree(shadow_dir, tmp_path / "swap")
    models = tmp_path / "swap" / "models"
    shutil.copy(models / "model-001" / "model.safetensors", models / "model-000")
    s = load_shadow_set(tmp_path / "swap")
    target = load_backend(f"hf:{s.model_dir(s.models[1])}")
    with pytest.raises(ShadowError, match="model-000 .* has identity"):
        observe(list(s.pool[:3]), target, s, b"x" * 16)


def test_observations_and_attack_scores_on_pool_texts(shadow_dir: Path):
    s = load_shadow_set(shadow_dir)
    target = load_backend(f"hf:{s.model_dir(s.models[0])}")
    texts = list(s.pool[:10]) + ["a text outside the pool, so OUT for every shadow model"]
    obs = observe(texts, target, s, b"s" * 16)
    assert obs.keep.shape == (2, 11) and not obs.keep[:, 10].any()
    assert np.array_equal(obs.keep[:, :10], s.keep()[:, :10])
    assert len(obs.population_target) == 6
    # the "target" is shadow model 0 itself: its log-probs equal that shadow's, text by text
    assert all(np.allclose(a, b) for a, b in zip(obs.target, obs.shadows[0], strict=True))
    out = attack_scores(texts, target, s, ["lira_offline", "rmia_online"], b"s" * 16)
    assert {k: v.scores.shape for k, v in out.items()} == {"lira_offline": (11,),
                                                          "rmia_online": (11,)}
    with pytest.raises(ShadowError, match="unknown attack"):
        attack_scores(texts, target, s, ["lira"], b"s" * 16)


def test_cli_train_show_attack(tmp_path, shadow_dir: Path):
    from harness.cli import main

    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts(16)))
    out = tmp_path / "cli-set"
    args = ["shadow", "train", "--pool", str(pool), "-n", "2", "-o", str(out), "--epochs", "1",
            "--n-embd", "16", "--vocab-size", "300", "--block-size", "128", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "2 of 2" not in r.output and "digest" in r.output
    again = CliRunner().invoke(main, args)
    assert "2 of 2 models trained; training 0" in again.output
    shown = CliRunner().invoke(main, ["shadow", "show", str(out)])
    assert shown.exit_code == 0 and "model-001: 8 texts, identity" in shown.output
    s = load_shadow_set(shadow_dir)
    mem, non = tmp_path / "mem.jsonl", tmp_path / "non.jsonl"
    keep0 = s.keep()[0]
    for path, want in ((mem, True), (non, False)):
        path.write_text("".join(json.dumps({"text": t}) + "\n"
                                for t, k in zip(s.pool, keep0, strict=True) if k == want))
    att = tmp_path / "att"
    r = CliRunner().invoke(main, ["shadow", "attack", str(shadow_dir), "--model",
                                  f"hf:{s.model_dir(s.models[0])}", "--members", str(mem),
                                  "--nonmembers", str(non), "-o", str(att), "--bootstrap", "20",
                                  "--population-offset"])
    assert r.exit_code == 0, r.output
    doc = json.loads((att / "attack.json").read_text())
    assert doc["kind"] == "estimate" and doc["members"] == 12
    assert doc["options"]["lira_online"] == {"offset": "population"}
    assert doc["scores"]["lira_online"]["details"]["offset"] == "population"
    assert set(doc["scores"]) == {"loss", "lira_online", "lira_offline", "rmia", "rmia_online",
                                  "ref_calibration"}
    assert (att / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "TPR @ FPR<=0.1%" in (att / "table.md").read_text()


def test_fine_tuning_a_checkpoint_records_it(shadow_dir: Path, tmp_path):
    s = load_shadow_set(shadow_dir)
    init = str(s.model_dir(s.models[0]))
    req = ShadowRequest(_texts(24), 1, MICRO, SEED, init_from=init)
    tuned = train_shadow_set(tmp_path / "ft", req, progress=False)
    assert tuned.plan.init_from == init and tuned.plan.vocab_size is None
    assert tuned.plan.init_identity == s.models[0].identity
    assert tuned.plan.tokenizer == s.plan.tokenizer  # the checkpoint's own tokenizer
    assert tuned.models[0].identity not in (None, s.models[0].identity)
