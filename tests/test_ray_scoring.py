"""Scoring sharded over Ray actors (local instance, CPU, hf backend) equals the local run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from harness.backends.hf import HFBackend
from harness.cache import ScoreCache
from harness.cli import main
from harness.scoring import logprobs_shuffled
from tests.tiny_lm import TEXTS, tiny_lm_dir

ray = pytest.importorskip("ray")

SEED = derive_seed("test-ray", "1")


@pytest.fixture(autouse=True)
def _one_torch_thread():  # noqa: ANN202
    """One intra-op thread: on a shared, oversubscribed CPU this is ~30x faster for tiny models."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_session():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _items(out) -> tuple[dict, list[str]]:  # noqa: ANN001
    audit = json.loads((out / "report.json").read_text())["audits"][0]
    return {it["id"]: it["scores"] for it in audit["items"]}, audit["notes"]


def test_ray_scoring_identical_to_local_and_cached(ray_session, tmp_path_factory, tmp_path) -> None:
    from harness.backends.ray_pool import RayPool

    tiny = tiny_lm_dir(tmp_path_factory)
    spec = f"hf:{tiny},dtype=float32,device=cpu,batch_size=8"
    texts = [f"{t} {i}" for i in range(12) for t in TEXTS]  # 72 texts, 5 chunks of 16
    local = HFBackend(str(tiny), dtype="float32", device="cpu", batch_size=8)
    expected = logprobs_shuffled(local, texts, SEED, ScoreCache(tmp_path / "local", 16))

    pool = RayPool([spec], workers=2)
    try:
        remote = pool.backend(0)
        assert remote.fingerprint().digest() == local.fingerprint().digest()
        cache = ScoreCache(tmp_path / "ray", 16)
        got = logprobs_shuffled(remote, texts, SEED, cache)
        for a, b in zip(expected, got, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)  # bit-identical, not just close
        s = cache.stats[-1]
        assert (s.scored, s.chunks_written) == (72, 5)
        again = logprobs_shuffled(remote, texts, SEED, cache)
        assert cache.stats[-1].hits == 72
        assert all(np.array_equal(a, b) for a, b in zip(got, again, strict=True))
        assert remote.tokenizer.encode(TEXTS[0]) == local.tokenizer.encode(TEXTS[0])
        assert remote.generate(TEXTS[:2], 5) == local.generate(TEXTS[:2], 5)
    finally:
        pool.close()


@pytest.mark.slow
def test_ray_audit_cli_matches_local(ray_session, tmp_path_factory, tmp_path) -> None:
    """`tdp audit --ray-workers 2` with a reference model held by each actor."""
    tiny = tiny_lm_dir(tmp_path_factory)
    spec = f"hf:{tiny},dtype=float32,device=cpu,batch_size=8"
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=60, alpha=0.01)
    cs, seed = new_canary_set(words_spec(6, prefix_length=2), 4, plan, seed=derive_seed("ray", "1"))
    canaries = save_canary_set(cs, tmp_path / "c.json", seed)
    args = ["audit", "--model", spec, "--reference", f"hf:{tiny},dtype=bfloat16,device=cpu",
            "--canaries", str(canaries), "--no-progress", "--cache-chunk", "16"]
    runner = CliRunner()
    r = runner.invoke(
        main, [*args, "--cache-dir", str(tmp_path / "a"), "-o", str(tmp_path / "local-run")]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [*args, "--ray-workers", "2", "--cache-dir", str(tmp_path / "b"),
                             "-o", str(tmp_path / "ray-run")])
    assert r.exit_code == 0, r.output
    local_items, _ = _items(tmp_path / "local-run")
    ray_items, notes = _items(tmp_path / "ray-run")
    assert ray_items == local_items and "ref_ratio" in next(iter(ray_items.values()))
    assert any("reference log-probs" in n and "64 scored" in n for n in notes)


def test_ray_workers_without_ray_address_conflict() -> None:
    r = CliRunner().invoke(main, ["audit", "--model", "hf:x", "--canaries", "c.json", "-o", "o",
                                  "--ray-address", "auto"])
    assert r.exit_code != 0 and "--ray-address needs --ray-workers" in r.output
