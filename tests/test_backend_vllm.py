"""vllm backend logic on CPU, against output objects shaped like vLLM 0.24's.

What these tests verify: the parsing and validation of `RequestOutput.prompt_logprobs`
(list-of-dicts and FlatLogprobs forms), reading by token id, the length checks, the
SamplingParams and engine settings we pass, prompt construction (BOS prefix, token ids), output
order, generation bookkeeping and the fingerprint. Where `vllm` imports, its own `Logprob`,
`FlatLogprobs`, `RequestOutput` and `CompletionOutput` classes are used; otherwise stand-ins
with the same fields (written from vLLM 0.24's `vllm/logprobs.py` and `vllm/outputs.py`).
What they do NOT verify: that a real vLLM engine returns these shapes; that runs only where
vllm and a GPU exist (tests/test_backend_contract.py, `vllm` parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from tiny_lm import TEXTS

from harness.backends import BackendError, load_backend, parse_model_spec
from harness.backends.vllm import (
    VLLMBackend,
    VLLMSettings,
    generation_params_kwargs,
    prompt_token_logprobs,
    scoring_params_kwargs,
    supports_flat_logprobs,
)

try:  # vLLM's own classes where installed
    from vllm.logprobs import FlatLogprobs, Logprob
    from vllm.outputs import CompletionOutput, RequestOutput

    REAL_VLLM_TYPES = True
except ImportError:
    REAL_VLLM_TYPES = False

    @dataclass
    class Logprob:  # type: ignore[no-redef]
        """Fields of vllm.logprobs.Logprob (0.24)."""

        logprob: float
        rank: int | None = None
        decoded_token: str | None = None

    @dataclass
    class FlatLogprobs:  # type: ignore[no-redef]
        """Fields and append semantics of vllm.logprobs.FlatLogprobs (0.24)."""

        start_indices: list[int] = field(default_factory=list)
        end_indices: list[int] = field(default_factory=list)
        token_ids: list[int] = field(default_factory=list)
        logprobs: list[float] = field(default_factory=list)
        ranks: list[int | None] = field(default_factory=list)
        decoded_tokens: list[str | None] = field(default_factory=list)

        def append(self, position: dict[int, Any] | None) -> None:
            self.start_indices.append(len(self.logprobs))
            for tid, lp in (position or {}).items():
                self.token_ids.append(tid)
                self.logprobs.append(lp.logprob)
                self.ranks.append(lp.rank)
                self.decoded_tokens.append(lp.decoded_token)
            self.end_indices.append(len(self.logprobs))

        def __len__(self) -> int:
            return len(self.start_indices)

    @dataclass
    class CompletionOutput:  # type: ignore[no-redef]
        index: int
        text: str
        token_ids: list[int]
        cumulative_logprob: float | None
        logprobs: Any
        finish_reason: str | None = None

    @dataclass
    class RequestOutput:  # type: ignore[no-redef]
        request_id: str
        prompt: str | None
        prompt_token_ids: list[int] | None
        prompt_logprobs: Any
        outputs: list[Any]
        finished: bool


def make_prompt_logprobs(ids: list[int], logp: torch.Tensor, k: int, flat: bool) -> Any:
    """prompt_logprobs as vLLM 0.24 builds them: entry 0 None, then actual token + top-k."""
    container: Any = FlatLogprobs() if flat else []
    container.append(None)
    for pos in range(1, len(ids)):
        row = logp[pos - 1]
        actual = ids[pos]
        rank = int((row > row[actual]).sum()) + 1
        entry = {actual: Logprob(float(row[actual]), rank, None)}
        top = torch.topk(row, k) if k else None
        if top is not None:
            for r, (v, t) in enumerate(
                zip(top.values.tolist(), top.indices.tolist(), strict=True), 1
            ):
                entry.setdefault(int(t), Logprob(v, r, None))
        container.append(entry)
    return container


class FakeSamplingParams:
    """Records keyword arguments like vllm.SamplingParams; declares fields as msgspec does."""

    __struct_fields__ = (
        "n",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "prompt_logprobs",
        "detokenize",
        "flat_logprobs",
    )

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self.__struct_fields__)
        if unknown:
            raise TypeError(f"unexpected {unknown}")
        # vLLM's SamplingParams._verify_greedy_sampling (temperature below _SAMPLING_EPS)
        if kwargs.get("temperature", 1.0) < 1e-5 and kwargs.get("n", 1) > 1:
            raise ValueError(f"n must be 1 when using greedy sampling, got {kwargs['n']}.")
        self.kwargs = kwargs


class OldSamplingParams(FakeSamplingParams):
    """A vLLM without flat_logprobs."""

    __struct_fields__ = (
        "n",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "prompt_logprobs",
        "detokenize",
    )


class HFStandInEngine:
    """Answers `LLM.generate` like vLLM, computing numbers with a transformers model (fp32).

    It checks the prompts are token-id prompts and returns outputs in input order with
    vLLM-shaped prompt log-probs, so the backend's own code runs end to end on CPU.
    """

    def __init__(self, model_dir: Any, k: int = 0) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.k, self.calls = k, []

    @torch.inference_mode()
    def generate(
        self, prompts: list[dict[str, Any]], params: Any, use_tqdm: bool = False
    ) -> list[Any]:
        self.calls.append(params.kwargs)
        outs = []
        for i, p in enumerate(prompts):
            assert set(p) == {"prompt_token_ids"}, "prompts must be TokensPrompt"
            ids = p["prompt_token_ids"]
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            if params.kwargs.get("prompt_logprobs") is not None:
                flat = params.kwargs.get("flat_logprobs", False)  # as vLLM: the request decides
                plp = make_prompt_logprobs(ids, logp, self.k, flat)
                gen = [CompletionOutput(0, "", [int(logp[-1].argmax())], None, None)]
            else:
                n, m = params.kwargs["n"], params.kwargs["max_tokens"]
                out = self.model.generate(
                    input_ids=torch.tensor([ids]), max_new_tokens=m, do_sample=False, pad_token_id=0
                )
                cont = out[0, len(ids) :].tolist()
                cont = (
                    cont[: cont.index(0) + 1] if 0 in cont else cont
                )  # vLLM stops after EOS (id 0)
                gen = [CompletionOutput(j, "", list(cont), None, None) for j in reversed(range(n))]
                plp = None
            outs.append(RequestOutput(str(i), None, list(ids), plp, gen, True))
        return outs


def vllm_over(model_dir, hf_reference, flat: bool = True, k: int = 0, **settings):
    """The backend over a stand-in engine; flat=False stands for a vLLM without flat_logprobs."""
    engine = HFStandInEngine(model_dir, k)
    params_cls = FakeSamplingParams if flat else OldSamplingParams
    backend = VLLMBackend(
        engine,
        hf_reference.tokenizer,
        params_cls,
        str(model_dir),
        settings=VLLMSettings(**settings),
        versions={"vllm": "stand-in"},
    )
    return backend, engine


# --- parsing of prompt_logprobs ------------------------------------------------------------
IDS = [0, 7, 3, 9]
ROWS = torch.log_softmax(torch.randn(3, 12, generator=torch.Generator().manual_seed(1)), -1)
WANT = np.array([ROWS[0, 7], ROWS[1, 3], ROWS[2, 9]], dtype=np.float32)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("k", [0, 1, 5])
def test_prompt_logprobs_read_by_token_id(flat, k):
    plp = make_prompt_logprobs(IDS, ROWS, k, flat)
    assert len(plp) == len(IDS)
    np.testing.assert_array_equal(prompt_token_logprobs(IDS, plp), WANT)


def test_reads_by_token_id_not_dict_position():
    """Top-k entries first and the actual token last: a position-based reader would be wrong."""
    plp: list[Any] = [None]
    for pos in range(1, len(IDS)):
        row, actual = ROWS[pos - 1], IDS[pos]
        entry = {
            int(t): Logprob(float(row[t]), r)
            for r, t in enumerate(torch.topk(row, 3).indices.tolist(), 1)
        }
        entry[actual] = Logprob(float(row[actual]), 99)
        plp.append(entry)
    assert (
        sum(next(iter(e)) != a for e, a in zip(plp[1:], IDS[1:], strict=True)) >= 2
    )  # the case is exercised
    np.testing.assert_array_equal(prompt_token_logprobs(IDS, plp), WANT)


def test_flat_reader_searches_by_id_when_actual_is_not_first():
    flat = FlatLogprobs()
    flat.append(None)
    for pos in range(1, len(IDS)):
        row, actual = ROWS[pos - 1], IDS[pos]
        decoys = [t for t in range(12) if t != actual][:2]
        flat.append(
            {
                **{t: Logprob(float(row[t]), 1) for t in decoys},
                actual: Logprob(float(row[actual]), 5),
            }
        )
    assert flat.token_ids[flat.start_indices[1]] != IDS[1]
    np.testing.assert_array_equal(prompt_token_logprobs(IDS, flat), WANT)


@pytest.mark.parametrize("flat", [False, True])
def test_wrong_number_of_positions_fails_loudly(flat):
    plp = make_prompt_logprobs(IDS[:-1], ROWS, 0, flat)
    with pytest.raises(BackendError, match="3 prompt log-prob positions for a prompt of 4 tokens"):
        prompt_token_logprobs(IDS, plp)


@pytest.mark.parametrize("flat", [False, True])
def test_position_without_prompt_token_fails(flat):
    other = [0, 7, 3, 10]  # the engine scored a different last token
    plp = make_prompt_logprobs(other, ROWS, 0, flat)
    with pytest.raises(BackendError, match="position 3 lack prompt token 9"):
        prompt_token_logprobs(IDS, plp)


def test_missing_or_malformed_prompt_logprobs_fail():
    with pytest.raises(BackendError, match="no prompt log-probs"):
        prompt_token_logprobs(IDS, None)
    plp = make_prompt_logprobs(IDS, ROWS, 0, False)
    plp[0] = {7: Logprob(-1.0, 1)}
    with pytest.raises(BackendError, match="first prompt token"):
        prompt_token_logprobs(IDS, plp)
    bad = make_prompt_logprobs(IDS, ROWS + 5.0, 0, False)  # logits, not log-probs
    with pytest.raises(BackendError, match="positive"):
        prompt_token_logprobs(IDS, bad)


# --- parameters and settings ---------------------------------------------------------------
def test_scoring_and_engine_settings():
    assert scoring_params_kwargs(True) == {
        "max_tokens": 1,
        "prompt_logprobs": 0,
        "detokenize": False,
        "temperature": 0.0,
        "flat_logprobs": True,
    }
    assert "flat_logprobs" not in scoring_params_kwargs(False)
    kw = VLLMSettings(max_num_seqs=512).engine_kwargs()
    assert kw["logprobs_mode"] == "raw_logprobs" and kw["enable_prefix_caching"] is False
    assert kw["max_num_seqs"] == 512 and "max_model_len" not in kw
    assert supports_flat_logprobs(FakeSamplingParams) and not supports_flat_logprobs(
        OldSamplingParams
    )
    g = generation_params_kwargs(8, 3, 0.7, 11)
    assert g["seed"] == 11 and g["n"] == 3 and g["top_k"] == 0 and g["detokenize"] is False
    assert "seed" not in generation_params_kwargs(8, 1, 0.0, 11)
    assert generation_params_kwargs(8, 3, 0.0, 11)["n"] == 1  # vLLM refuses greedy n > 1
    with pytest.raises(BackendError, match="max_new_tokens"):
        generation_params_kwargs(0, 1, 0.0, 0)


def test_spec_and_missing_vllm_give_clear_errors():
    spec = parse_model_spec(
        "vllm:org/model@v2,dtype=float16,max_num_seqs=256", ("hf", "vllm", "openai")
    )
    assert spec.backend == "vllm" and spec.revision == "v2" and spec.options["max_num_seqs"] == 256
    with pytest.raises(BackendError, match="unknown"):
        VLLMBackend.from_spec(parse_model_spec("vllm:m,flash=1", ("vllm",)))
    if not REAL_VLLM_TYPES:
        with pytest.raises(BackendError, match=r"tdp-harness\[vllm\]"):
            load_backend("vllm:./nowhere")


# --- the backend end to end over a stand-in engine -----------------------------------------
@pytest.mark.parametrize("flat", [True, False])
def test_backend_matches_hf_reference_through_vllm_shapes(model_dir, hf_reference, flat):
    backend, engine = vllm_over(model_dir, hf_reference, flat, k=2, chunk_size=4)
    assert backend.flat_logprobs is flat
    got = backend.token_logprobs(list(TEXTS))
    ref = hf_reference.token_logprobs(list(TEXTS))
    assert len(engine.calls) == 2  # 6 prompts in chunks of 4
    assert (
        engine.calls[0]["prompt_logprobs"] == 0
        and engine.calls[0].get("flat_logprobs", False) is flat
    )
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == np.float32 and g.shape == r.shape
        np.testing.assert_allclose(g, r, atol=1e-5)


def test_engine_that_changes_the_prompt_is_caught(model_dir, hf_reference):
    backend, engine = vllm_over(model_dir, hf_reference, True)
    real = engine.generate

    def add_bos(prompts, params, use_tqdm=False):
        return real(
            [{"prompt_token_ids": [0, *p["prompt_token_ids"]]} for p in prompts], params, use_tqdm
        )

    engine.generate = add_bos
    with pytest.raises(BackendError, match="differs from the"):
        backend.token_logprobs([TEXTS[0]])


def test_generate_returns_n_decoded_continuations_in_index_order(model_dir, hf_reference):
    backend, engine = vllm_over(model_dir, hf_reference, True)
    out = backend.generate(["The quick", "Return the"], max_new_tokens=5, n=3)
    assert len(out) == 2 and all(len(row) == 3 for row in out)
    ref = hf_reference.generate(["The quick", "Return the"], max_new_tokens=5)
    assert [row[0] for row in out] == [row[0] for row in ref]
    assert engine.calls[-1]["detokenize"] is False and engine.calls[-1]["max_tokens"] == 5
    # greedy n = 3: one continuation asked of the engine (vLLM refuses n > 1), repeated
    assert engine.calls[-1]["n"] == 1 and all(len(set(row)) == 1 for row in out)
    backend.generate(["The quick"], max_new_tokens=2, n=3, temperature=0.7, seed=1)
    assert engine.calls[-1]["n"] == 3 and engine.calls[-1]["seed"] == 1


def test_fingerprint_records_numerics_settings(model_dir, hf_reference, monkeypatch):
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    backend, _ = vllm_over(
        model_dir, hf_reference, True, dtype="float32", max_num_batched_tokens=16384
    )
    fp = backend.fingerprint()
    s = fp.settings
    assert fp.backend == "vllm" and fp.dtype == "float32" and fp.tokenizer_sha256
    assert s["logprobs_mode"] == "raw_logprobs" and s["enable_prefix_caching"] is False
    assert s["flat_logprobs"] is True and s["max_num_batched_tokens"] == 16384
    assert s["env"] == {"VLLM_BATCH_INVARIANT": "1"} and s["scoring_prefix_id"] == 0
    other, _ = vllm_over(
        model_dir, hf_reference, True, dtype="float32", max_num_batched_tokens=8192
    )
    assert other.fingerprint().digest() != fp.digest()


def test_verify_accepts_an_audit_made_through_vllm(model_dir, hf_reference, tmp_path):
    """`tdp verify` parses vllm: specs (it once refused them as an unknown backend)."""
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.generators import words_spec
    from harness.audit import AuditContext, make_report, run_audit
    from harness.verify import VerifyOptions, verify_report

    backend, _ = vllm_over(model_dir, hf_reference, True, dtype="float32")
    cs, seed = new_canary_set(words_spec(4), 3, Plan(counterfactuals=20, alpha=0.05), b"m" * 32)
    path = save_canary_set(cs, tmp_path / "c.json", seed)
    spec = f"vllm:{model_dir},dtype=float32"
    a = run_audit("canary-rank", AuditContext(cs, str(path), backend, spec, progress=False))
    checks = verify_report(make_report("vllm", [a]), VerifyOptions((path,), rescore=False))
    assert [c for c in checks if c.verdict == "FAIL"] == []
    assert next(c for c in checks if c.name == "model name").verdict == "ok"
