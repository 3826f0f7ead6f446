"""The hf fast path (trunk + chunked vocabulary pass), vocab_stats and Min-K%++.

References are computed here directly: one full forward pass of the model, log-softmax over
the whole vocabulary in float64. Tolerance: 1e-5 max abs difference per position (float32
arithmetic in the backend; the chunked and the full path differ only in summation order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_lm import TEXTS

from harness.backends.base import BackendError, supports_vocab_stats
from harness.backends.hf import HFBackend
from harness.scoring import ScoringRequest, score_texts
from harness.stats.scores import SCORES, ScoreError, ScoreInputs, compute_score

TOL = 1e-5
SEED = bytes(range(32))


@pytest.fixture(scope="module")
def fast(model_dir) -> HFBackend:
    # tiny batches and chunks so that padding, several batches and several chunks all occur
    return HFBackend(
        str(model_dir), dtype="float32", batch_size=4, max_batch_tokens=64, chunk_rows=7
    )


def direct(b: HFBackend, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target log-probs, E_p[log p], Var_p[log p]) from one full float64 softmax."""
    ids = b.encode(text)
    with torch.no_grad():
        logits = b.model(torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    var = (p * (logp - mu[:, None]) ** 2).sum(-1)
    lp = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return lp.numpy(), mu.numpy(), var.numpy()


def test_chunked_path_is_used_and_matches_full_softmax(fast):
    assert fast.fingerprint().settings["chunked_vocab"] is True
    for text, got in zip(TEXTS, fast.token_logprobs(list(TEXTS)), strict=True):
        want, _, _ = direct(fast, text)
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() <= TOL


def test_chunking_and_bucketing_do_not_change_results(model_dir, fast):
    plain = HFBackend(str(model_dir), dtype="float32", batch_size=1, chunk_rows=100_000)
    texts = list(TEXTS) * 3
    for a, b in zip(fast.token_logprobs(texts), plain.token_logprobs(texts), strict=True):
        assert np.abs(a - b).max() <= TOL


def test_batches_respect_row_and_token_limits(fast):
    encoded = [[1] * n for n in (3, 30, 9, 17, 2, 30, 5, 11, 8)]
    batches = fast._batches(encoded)
    assert sorted(i for b in batches for i in b) == list(range(len(encoded)))
    for b in batches:
        width = max(len(encoded[i]) for i in b)
        assert len(b) <= fast.batch_size
        assert len(b) == 1 or len(b) * width <= fast.max_batch_tokens
        assert len(encoded[b[0]]) == width  # longest first: the batch's width is its first row


def test_vocab_stats_are_expectations_under_the_model(fast):
    stats = fast.vocab_stats(list(TEXTS))
    assert len(stats) == len(TEXTS)
    for text, s in zip(TEXTS, stats, strict=True):
        _, mu, var = direct(fast, text)
        assert s.mean_logp.shape == s.var_logp.shape == mu.shape
        assert np.abs(s.mean_logp - mu).max() <= TOL
        assert np.abs(s.var_logp - var).max() <= TOL
        # not the uniform average over the vocabulary, which is far lower
        ids = fast.encode(text)
        with torch.no_grad():
            logp = torch.log_softmax(fast.model(torch.tensor([ids])).logits[0, :-1].double(), -1)
        assert np.all(s.mean_logp > logp.mean(-1).numpy() + 0.1)
    assert supports_vocab_stats(fast)


def test_min_k_pp_matches_a_direct_computation(fast):
    k = 0.3
    request = ScoringRequest(scores=("min_k_pp",), options={"min_k_pp": {"k": k}})
    rows = score_texts(list(TEXTS), fast, request, SEED)
    for text, row in zip(TEXTS, rows, strict=True):
        lp, mu, var = direct(fast, text)
        z = np.sort((lp - mu) / np.sqrt(var))
        want = z[: max(1, int(k * z.size))].mean()  # floor, as Min-K%++'s run.py
        assert row["min_k_pp"] == pytest.approx(want, abs=1e-4)


def test_min_k_pp_values_and_errors():
    lp = np.log([0.5, 0.1, 0.25, 0.05])
    mu = np.array([-1.0, -2.0, -1.5, -2.5])
    var = np.array([0.25, 1.0, 4.0, 0.16])
    z = (lp - mu) / np.sqrt(var)
    x = ScoreInputs("t", lp, vocab_mean=mu, vocab_var=var)
    assert compute_score("min_k_pp", x, k=0.25) == pytest.approx(z.min())
    assert compute_score("min_k_pp", x, k=1.0) == pytest.approx(z.mean())
    assert SCORES["min_k_pp"].needs == frozenset({"vocab_stats"})
    with pytest.raises(ScoreError, match="vocab_stats"):
        compute_score("min_k_pp", ScoreInputs("t", lp))
    with pytest.raises(ScoreError, match="shapes"):
        compute_score("min_k_pp", ScoreInputs("t", lp, vocab_mean=mu[:2], vocab_var=var[:2]))
    with pytest.raises(ScoreError, match="variance"):
        compute_score("min_k_pp", ScoreInputs("t", lp, vocab_mean=mu, vocab_var=np.zeros(4)))
    with pytest.raises(ScoreError, match="k must be"):
        compute_score("min_k_pp", x, k=0)


class LogprobsOnly:
    """A backend with log-probs but no vocab_stats (as vllm and openai are)."""

    name = "logprobs-only"

    def __init__(self, inner: HFBackend) -> None:
        self.inner, self.tokenizer = inner, inner.tokenizer

    def token_logprobs(self, texts):  # noqa: ANN001, ANN201
        return self.inner.token_logprobs(texts)

    def generate(self, *a, **kw):  # noqa: ANN002, ANN003, ANN201
        return self.inner.generate(*a, **kw)

    def fingerprint(self):  # noqa: ANN201
        return self.inner.fingerprint()


def test_min_k_pp_on_a_backend_without_vocab_stats_is_a_clear_error(fast):
    b = LogprobsOnly(fast)
    assert not supports_vocab_stats(b)
    with pytest.raises(ScoreError, match="vocabulary statistics.*logprobs-only"):
        score_texts(["a b"], b, ScoringRequest(scores=("loss", "min_k_pp"), options={}), SEED)


def test_bad_options_are_clear_errors(model_dir):
    with pytest.raises(BackendError, match="chunk_rows"):
        HFBackend(str(model_dir), chunk_rows=0)
    with pytest.raises(BackendError, match="compile"):
        HFBackend(str(model_dir), compile="fastest")
    with pytest.raises(BackendError, match="prefix"):
        HFBackend(str(model_dir)).token_logprobs_ids([[1]])


def test_fingerprint_records_numerics_settings(model_dir, fast):
    s = fast.fingerprint().settings
    assert s["compile"] is None and s["attn_implementation"] == "sdpa"
    eager = HFBackend(str(model_dir), attn="eager").fingerprint()
    assert eager.settings["attn_implementation"] == "eager"
    assert eager.digest() != fast.fingerprint().digest()
    # batch and chunk sizes do not change the fingerprint (results agree within TOL)
    same = HFBackend(str(model_dir), batch_size=2, chunk_rows=3).fingerprint()
    assert same.digest() == fast.fingerprint().digest()
