"""Score cache: exact round trip, resumable scoring (with a real SIGKILL), corruption rebuilds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from harness.backends.hf import HFBackend
from harness.cache import CacheCorruptionWarning, ScoreCache, decode_chunk, encode_chunk
from harness.cli import main
from harness.scoring import logprobs_shuffled, vocab_stats_shuffled
from tests.tiny_lm import tiny_lm_dir

SEED = derive_seed("test-cache", "1")
NOTE = re.compile(r"target log-probs \(\w+\): (\d+) of (\d+) texts from cache, (\d+) scored")
VOCAB_NOTE = re.compile(
    r"target Min-K%\+\+ vocab stats \(\w+\): (\d+) of (\d+) texts from cache, (\d+) scored"
)
#: what each kind of cached array is called in the report notes
NOTES = {"token_logprobs": NOTE, "vocab_stats": VOCAB_NOTE}


@pytest.fixture(autouse=True)
def _one_torch_thread():  # noqa: ANN202
    """One intra-op thread: on a shared, oversubscribed CPU this is ~30x faster for tiny models."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class CountingHF(HFBackend):
    """The real hf backend, counting the texts it is asked to score."""

    scored = 0
    stats_scored = 0

    def token_logprobs(self, texts):  # noqa: ANN001, ANN201
        self.scored += len(texts)
        return super().token_logprobs(texts)

    def vocab_stats(self, texts):  # noqa: ANN001, ANN201
        self.stats_scored += len(texts)
        return super().vocab_stats(texts)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:  # noqa: ANN001
    return tiny_lm_dir(tmp_path_factory)


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta orbit cello ladder pine river stone".split()
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 12)))) + f" {i}" for i in range(n)]


def test_chunk_round_trip_is_exact_and_checked() -> None:
    arrays = {"a" * 64: np.array([-1.5, -0.25], np.float32), "b" * 64: np.array([-3.0], np.float64)}
    data = encode_chunk("fp", "token_logprobs", arrays)
    back = decode_chunk(data, "fp", "token_logprobs")
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(data[:-3], "fp", "token_logprobs")
    flipped = bytearray(data)
    flipped[-2] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(bytes(flipped), "fp", "token_logprobs")
    with pytest.raises(ValueError, match="another fingerprint"):
        decode_chunk(data, "other", "token_logprobs")
    with pytest.raises(ValueError, match="magic"):
        decode_chunk(data[:5], "fp", "token_logprobs")


def test_cached_scoring_reads_what_it_wrote(tiny, tmp_path) -> None:
    texts = _texts(50) + ["alpha beta 0x", "alpha beta 0x"]  # one repeated text
    backend = CountingHF(str(tiny), dtype="float32", device="cpu", batch_size=8)
    plain = logprobs_shuffled(backend, texts, SEED)
    cache = ScoreCache(tmp_path / "c", chunk_texts=16)
    backend.scored = 0
    first = logprobs_shuffled(backend, texts, SEED, cache)
    assert backend.scored == 51  # the repeated text is scored once
    assert len(list((tmp_path / "c").rglob("*.chunk"))) == 4  # 51 distinct texts / 16 per chunk
    backend.scored = 0
    second = logprobs_shuffled(backend, texts, SEED, cache)
    assert backend.scored == 0
    s = cache.stats[-1]
    assert (s.texts, s.hits, s.scored) == (51, 51, 0)  # distinct texts
    for a, b, c in zip(plain, first, second, strict=True):
        assert np.array_equal(b, c)  # read back bit for bit
        # another chunk size = other batches: equal up to the backend's batch-composition noise
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # a new text is a miss; the rest still hit
    backend.scored = 0
    logprobs_shuffled(backend, [*texts, "gamma delta new"], SEED, cache)
    assert backend.scored == 1


def test_fingerprint_change_misses(tiny, tmp_path) -> None:
    texts = _texts(10)
    cache = ScoreCache(tmp_path / "c", chunk_texts=4)
    a = CountingHF(str(tiny), dtype="float32", device="cpu", batch_size=8)
    logprobs_shuffled(a, texts, SEED, cache)
    b = CountingHF(str(tiny), dtype="bfloat16", device="cpu", batch_size=8)
    logprobs_shuffled(b, texts, SEED, cache)
    assert b.scored == 10 and a.fingerprint().digest() != b.fingerprint().digest()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_chunk_warns_and_is_rescored(tiny, tmp_path, damage) -> None:
    texts = _texts(30)
    backend = CountingHF(str(tiny), dtype="float32", device="cpu", batch_size=8)
    cache = ScoreCache(tmp_path / "c", chunk_texts=10)
    good = logprobs_shuffled(backend, texts, SEED, cache)
    victim = sorted((tmp_path / "c").rglob("*.chunk"))[0]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        b = bytearray(data)
        b[-1] ^= 0x01  # one bit of one float: a silently wrong score if unchecked
        victim.write_bytes(bytes(b))
    else:
        victim.write_bytes(b"not a cache file at all")
    backend.scored = 0
    with pytest.warns(CacheCorruptionWarning, match=re.escape(victim.name)):
        again = logprobs_shuffled(backend, texts, SEED, cache)
    assert backend.scored == 10  # exactly the damaged chunk's texts
    assert cache.stats[-1].corrupt_files == [str(victim)]
    assert "corrupt cache file" in cache.stats[-1].line()
    assert Path(str(victim) + ".corrupt").exists() and not victim.exists()
    for a, b in zip(good, again, strict=True):
        assert np.array_equal(a, b)
    backend.scored = 0
    logprobs_shuffled(backend, texts, SEED, cache)  # rebuilt: all hits, no warning
    assert backend.scored == 0 and cache.stats[-1].corrupt_files == []


def test_vocab_stats_are_cached_like_logprobs(tiny, tmp_path) -> None:
    """Min-K%++ statistics: stored chunk by chunk, read back bit for bit, never recomputed."""
    texts = _texts(40) + ["alpha beta 0x", "alpha beta 0x"]
    backend = CountingHF(str(tiny), dtype="float32", device="cpu", batch_size=8)
    cache = ScoreCache(tmp_path / "c", chunk_texts=16)
    first = vocab_stats_shuffled(backend, texts, SEED, cache)
    assert backend.stats_scored == 41 and backend.scored == 0
    assert len(list((tmp_path / "c").rglob("vocab_stats/*.chunk"))) == 3  # 41 texts / 16
    backend.stats_scored = 0
    second = vocab_stats_shuffled(backend, texts, SEED, cache)
    assert backend.stats_scored == 0
    assert (cache.stats[-1].hits, cache.stats[-1].scored) == (41, 0)
    assert "Min-K%++ vocab stats" in cache.stats[-1].line()
    direct = backend.vocab_stats(texts)
    for a, b, d in zip(first, second, direct, strict=True):
        assert np.array_equal(a.mean_logp, b.mean_logp) and np.array_equal(a.var_logp, b.var_logp)
        assert a.mean_logp.shape == d.mean_logp.shape == a.var_logp.shape
        np.testing.assert_allclose(a.var_logp, d.var_logp, rtol=0, atol=1e-5)
    # log-probs of the same texts are another kind: not served from the vocab-stats chunks
    logprobs_shuffled(backend, texts, SEED, cache)
    assert backend.scored == 41


def test_corrupt_vocab_stats_chunk_is_rescored(tiny, tmp_path) -> None:
    texts = _texts(30)
    backend = CountingHF(str(tiny), dtype="float32", device="cpu", batch_size=8)
    cache = ScoreCache(tmp_path / "c", chunk_texts=10)
    good = vocab_stats_shuffled(backend, texts, SEED, cache)
    victim = sorted((tmp_path / "c").rglob("vocab_stats/*.chunk"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    backend.stats_scored = 0
    with pytest.warns(CacheCorruptionWarning, match=re.escape(victim.name)):
        again = vocab_stats_shuffled(backend, texts, SEED, cache)
    assert backend.stats_scored == 10 and cache.stats[-1].corrupt_files == [str(victim)]
    for a, b in zip(good, again, strict=True):
        assert np.array_equal(a.var_logp, b.var_logp)


def _canary_file(tmp_path: Path, m: int) -> Path:
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=m, alpha=0.01)
    spec = words_spec(6, prefix_length=2)
    cs, seed = new_canary_set(spec, 8, plan, seed=derive_seed("kill", "1"))
    return save_canary_set(cs, tmp_path / "canaries.json", seed)


def _item_scores(out: Path) -> dict[str, dict[str, float]]:
    report = json.loads((out / "report.json").read_text())
    return {it["id"]: it["scores"] for it in report["audits"][0]["items"]}


def _notes(out: Path) -> list[str]:
    return json.loads((out / "report.json").read_text())["audits"][0]["notes"]


def _counts(out: Path, kind: str) -> tuple[int, int, int]:
    """(hits, texts, scored) of one kind of cached array, from the report's notes."""
    hits, texts, scored = NOTES[kind].search(" ".join(_notes(out))).groups()
    return int(hits), int(texts), int(scored)


@pytest.mark.parametrize("phase", ["token_logprobs", "vocab_stats"])
def test_audit_killed_mid_run_resumes_without_rescoring(tiny, tmp_path, phase) -> None:
    """SIGKILL while log-probs, or Min-K%++ statistics, are being scored; the rerun scores
    only what no chunk holds and reports bit-identical scores."""
    m, chunk = 3000, 100
    canaries = _canary_file(tmp_path, m)
    model = f"hf:{tiny},dtype=float32,device=cpu,batch_size=4"
    cache_dir = tmp_path / "cache"
    args = ["audit", "--model", model, "--canaries", str(canaries), "--no-progress",
            "--cache-dir", str(cache_dir), "--cache-chunk", str(chunk)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from harness.cli import main; main()", *args,
         "-o", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=Path(__file__).parents[1],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(cache_dir.rglob(f"{phase}/*.chunk"))) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    rc = proc.wait(timeout=60)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == -signal.SIGKILL, f"the audit was not killed mid-run (rc {rc}): {err[-2000:]}"
    stored = {k: len(list(cache_dir.rglob(f"{k}/*.chunk"))) for k in NOTES}
    total_chunks = -(-(m + 8) // chunk)
    assert 3 <= stored[phase] < total_chunks
    if phase == "vocab_stats":  # log-probs come first: all of them were stored
        assert stored["token_logprobs"] == total_chunks
    assert not (tmp_path / "killed" / "report.json").exists()

    runner = CliRunner()
    resumed = tmp_path / "resumed"
    r = runner.invoke(main, [*args, "-o", str(resumed)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for kind, n in stored.items():
        hits = min(n * chunk, m + 8)
        assert _counts(resumed, kind) == (hits, m + 8, m + 8 - hits), kind

    fresh = tmp_path / "uninterrupted"
    r = runner.invoke(main, [*args[:-4], "--cache-dir", str(tmp_path / "other"),
                             "--cache-chunk", str(chunk), "-o", str(fresh)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for kind in NOTES:
        assert _counts(fresh, kind) == (0, m + 8, m + 8)
    assert all("min_k_pp" in s for s in _item_scores(fresh).values())
    assert _item_scores(resumed) == _item_scores(fresh)  # bit-identical scores, Min-K%++ too

    r = runner.invoke(main, [*args, "-o", str(tmp_path / "third")], catch_exceptions=False)
    for kind in NOTES:  # a fully warm cache: nothing is scored again
        assert _counts(tmp_path / "third", kind) == (m + 8, m + 8, 0)


def test_no_cache_writes_nothing_and_flags_conflict(tiny, tmp_path) -> None:
    canaries = _canary_file(tmp_path, 20)
    base = ["audit", "--model", f"hf:{tiny},device=cpu", "--canaries", str(canaries),
            "--no-progress"]
    r = CliRunner().invoke(main, [*base, "--no-cache", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert not any("score cache" in n for n in _notes(tmp_path / "o"))
    r = CliRunner().invoke(
        main, [*base, "--no-cache", "--cache-dir", str(tmp_path), "-o", str(tmp_path / "p")]
    )
    assert r.exit_code != 0 and "contradict" in r.output
