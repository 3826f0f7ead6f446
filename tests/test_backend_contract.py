"""One contract, every installed backend: the same texts and the same assertions.

Backends: `hf` (always), `openai` (against a real `tdp serve` on loopback, always), `vllm`
(only where `vllm` imports and a CUDA device exists; it runs the real engine, in float32).
Tolerance against the float32 transformers reference, max abs difference per token log-prob:
1e-5 for hf and openai (the same fp32 arithmetic behind HTTP), 2e-3 for vllm (other kernels,
not batch-invariant). Batch independence is held to the same tolerances. Greedy `n > 1` gives n
identical strings on every backend (vLLM refuses n > 1 at temperature 0, so the vllm and openai
backends ask for one continuation and repeat it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_lm import TEXTS, serving

from harness.backends import Backend, load_backend

TOLERANCE = {"hf": 1e-5, "openai": 1e-5, "vllm": 2e-3}
BACKENDS = ["hf", "openai", "vllm"]


@pytest.fixture(scope="module")
def reference(model_dir) -> Backend:
    return load_backend(f"hf:{model_dir},dtype=float32,device=cpu")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, model_dir):
    name = request.param
    if name == "hf":
        yield load_backend(f"hf:{model_dir},dtype=float32,batch_size=2")
    elif name == "openai":
        with serving(model_dir) as srv:
            yield load_backend(
                f"openai:{srv.url}/tiny,tokenizer={model_dir},batch_size=2,concurrency=2"
            )
    else:
        pytest.importorskip("vllm")
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("vllm backend needs a CUDA device")
        yield load_backend(
            f"vllm:{model_dir},dtype=float32,max_model_len=128,gpu_memory_utilization=0.3,"
            "enforce_eager=true"
        )


def test_one_array_per_text_with_one_entry_per_token(backend, reference):
    out = backend.token_logprobs(list(TEXTS))
    assert len(out) == len(TEXTS)
    for text, lp in zip(TEXTS, out, strict=True):
        n_tokens = len(reference.tokenizer.encode(text, add_special_tokens=False))
        assert lp.ndim == 1 and lp.dtype == np.float32 and len(lp) == n_tokens
        assert np.isfinite(lp).all() and (lp <= 0).all()


def test_agrees_with_float32_reference(backend, reference):
    tol = TOLERANCE[backend.name]
    for got, ref in zip(
        backend.token_logprobs(list(TEXTS)), reference.token_logprobs(list(TEXTS)), strict=True
    ):
        assert np.abs(got - ref).max() <= tol


def test_batch_independence_and_order(backend):
    tol = TOLERANCE[backend.name]
    together = backend.token_logprobs(list(TEXTS))
    alone = [backend.token_logprobs([t])[0] for t in TEXTS]
    reversed_ = backend.token_logprobs(list(reversed(TEXTS)))[::-1]
    for a, b, c in zip(together, alone, reversed_, strict=True):
        assert a.shape == b.shape == c.shape
        assert np.abs(a - b).max() <= tol and np.abs(a - c).max() <= tol


@pytest.mark.parametrize("n,temperature", [(1, 0.0), (3, 0.0), (3, 1.0)])
def test_generate_returns_n_strings_per_prompt(backend, n, temperature):
    prompts = ["The quick brown", "Return the number", "x"]
    out = backend.generate(prompts, max_new_tokens=4, n=n, temperature=temperature, seed=3)
    assert len(out) == len(prompts)
    assert all(len(row) == n and all(isinstance(s, str) for s in row) for row in out)
    if temperature == 0:
        assert all(len(set(row)) == 1 for row in out)  # greedy: n identical continuations
        assert out == backend.generate(prompts, max_new_tokens=4, n=n, temperature=0.0, seed=99)


def test_fingerprint_is_stable_and_names_the_tokenizer(backend, reference):
    fp = backend.fingerprint()
    assert fp.backend == backend.name
    assert fp.digest() == backend.fingerprint().digest()
    assert fp.tokenizer_sha256 == reference.fingerprint().tokenizer_sha256
    json.dumps(fp.to_dict())
