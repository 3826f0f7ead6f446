"""vLLM backend: offline `vllm.LLM`, teacher-forced prompt log-probs from token-id prompts.

Coded against vLLM 0.24.0 (`vllm/logprobs.py`, `vllm/outputs.py`, `vllm/sampling_params.py`,
`vllm/v1/engine/logprobs.py` of that release). What it relies on:

- `SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False, temperature=0)`;
  `max_tokens=0` is rejected by vLLM, one generated token is cheap.
- `RequestOutput.prompt_logprobs` has one entry per prompt token; entry 0 is None (or, with
  `flat_logprobs=True`, an empty position). Entry i holds the actual token i first and then
  the top-k; with `prompt_logprobs=0` only the actual token. We read the actual token by its
  id, never by its position in the entry.
- `FlatLogprobs` (flat_logprobs=True) keeps parallel lists `token_ids`, `logprobs`, `ranks`
  with `start_indices`/`end_indices` per position; we read those lists directly so that no
  per-position dict is built.
- Prompts are `TokensPrompt(prompt_token_ids=ids)`, never re-tokenized; the scoring prefix
  (BOS, else EOS) is prepended here, as in every other backend.

The CPU test suite checks this module's parsing and validation against objects shaped like
vLLM 0.24's (`tests/test_backend_vllm.py`); only a machine with vLLM and a GPU runs the
engine itself (the contract suite includes it where `vllm` imports).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends.base import BackendError, Fingerprint, ModelIdentity
from harness.backends.encoding import load_tokenizer, scoring_ids, scoring_prefix_id
from harness.backends.identity import config_digest, identity_of_dir, model_dir
from harness.backends.spec import ModelSpec

log = logging.getLogger(__name__)

#: vLLM release this module was written and checked against
VLLM_VERSION_CODED_AGAINST = "0.24.0"
#: env vars that change vLLM numerics or scheduling; their values go into the fingerprint
NUMERIC_ENV = ("VLLM_BATCH_INVARIANT", "VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_ATTENTION_BACKEND")


@dataclass(frozen=True)
class VLLMSettings:
    """Engine settings; every one that can change a log-prob is recorded in the fingerprint."""

    dtype: str = "bfloat16"
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    seed: int = 0
    #: prompts handed to one `LLM.generate` call (outputs keep input order)
    chunk_size: int = 20_000
    progress: bool = False

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `vllm.LLM`: raw log-probs, no prefix cache (stale-value bug)."""
        kw: dict[str, Any] = {
            "dtype": self.dtype,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            "seed": self.seed,
            "logprobs_mode": "raw_logprobs",
            "enable_prefix_caching": False,
        }
        for key in ("max_model_len", "max_num_batched_tokens", "max_num_seqs"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        return kw


def scoring_params_kwargs(flat_logprobs: bool) -> dict[str, Any]:
    """SamplingParams for teacher-forced scoring: the actual token's log-prob at every position."""
    kw: dict[str, Any] = {
        "max_tokens": 1,
        "prompt_logprobs": 0,
        "detokenize": False,
        "temperature": 0.0,
    }
    if flat_logprobs:
        kw["flat_logprobs"] = True
    return kw


def generation_params_kwargs(
    max_new_tokens: int, n: int, temperature: float, seed: int
) -> dict[str, Any]:
    """SamplingParams for greedy (temperature 0) or full-distribution sampled continuations.

    Greedy asks the engine for one continuation whatever n is: vLLM refuses n > 1 at temperature
    0 (`SamplingParams._verify_greedy_sampling`: "n must be 1 when using greedy sampling"), and
    greedy decoding has one answer, which `VLLMBackend.generate` repeats n times.
    """
    if max_new_tokens < 1:
        raise BackendError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if n < 1:
        raise BackendError(f"n must be at least 1, got {n}")
    if temperature < 0:
        raise BackendError(f"temperature must be >= 0, got {temperature}")
    kw: dict[str, Any] = {
        "n": n if temperature > 0 else 1,  # vLLM refuses greedy n > 1: generate() repeats
        "max_tokens": max_new_tokens,
        "temperature": float(temperature),
        "top_p": 1.0,
        "top_k": 0,
        "detokenize": False,
    }
    if temperature > 0:
        kw["seed"] = seed  # vLLM gives the n children seeds seed, seed+1, ...
    return kw


def supports_flat_logprobs(sampling_params_cls: Callable[..., Any]) -> bool:
    """True if this vLLM's SamplingParams accepts `flat_logprobs` (added in 0.11-era releases)."""
    fields = getattr(sampling_params_cls, "__struct_fields__", None)
    if fields is not None:
        return "flat_logprobs" in fields
    try:
        sampling_params_cls(flat_logprobs=True)
    except TypeError:
        return False
    return True


def _flat_actual_logprobs(prompt_ids: Sequence[int], flat: Any) -> np.ndarray:
    """Actual-token log-probs from a FlatLogprobs: parallel lists, one range per position."""
    starts, ends = flat.start_indices, flat.end_indices
    token_ids, logprobs = flat.token_ids, flat.logprobs
    out = np.empty(len(prompt_ids) - 1, dtype=np.float64)
    for pos in range(1, len(prompt_ids)):
        want, found = prompt_ids[pos], None
        for j in range(starts[pos], ends[pos]):
            if token_ids[j] == want:
                found = logprobs[j]
                break
        if found is None:
            raise BackendError(f"vLLM prompt log-probs at position {pos} lack prompt token {want}")
        out[pos - 1] = found
    return out


def _dict_actual_logprobs(prompt_ids: Sequence[int], entries: Sequence[Any]) -> np.ndarray:
    """Actual-token log-probs from a list of {token_id: Logprob} dicts (entry 0 is None)."""
    out = np.empty(len(prompt_ids) - 1, dtype=np.float64)
    for pos in range(1, len(prompt_ids)):
        entry, want = entries[pos], prompt_ids[pos]
        if entry is None or want not in entry:
            raise BackendError(f"vLLM prompt log-probs at position {pos} lack prompt token {want}")
        out[pos - 1] = entry[want].logprob
    return out


def prompt_token_logprobs(prompt_ids: Sequence[int], prompt_logprobs: Any) -> np.ndarray:
    """log p(t_i | t_<i) for i = 1..len-1 from one RequestOutput's `prompt_logprobs`.

    Raises BackendError when vLLM returned no prompt log-probs, a number of positions other
    than the number of prompt tokens, a first position that is not empty, or a position
    without the prompt's own token; and when a log-prob is NaN or positive.
    """
    if prompt_logprobs is None:
        raise BackendError("vLLM returned no prompt log-probs (was prompt_logprobs set?)")
    if len(prompt_logprobs) != len(prompt_ids):
        raise BackendError(
            f"vLLM returned {len(prompt_logprobs)} prompt log-prob positions for a prompt of "
            f"{len(prompt_ids)} tokens"
        )
    if hasattr(prompt_logprobs, "start_indices"):
        if prompt_logprobs.start_indices[0] != prompt_logprobs.end_indices[0]:
            raise BackendError("vLLM returned a log-prob for the first prompt token; expected none")
        lp = _flat_actual_logprobs(prompt_ids, prompt_logprobs)
    else:
        if prompt_logprobs[0]:
            raise BackendError("vLLM returned a log-prob for the first prompt token; expected none")
        lp = _dict_actual_logprobs(prompt_ids, prompt_logprobs)
    if np.isnan(lp).any() or (lp > 1e-4).any():
        raise BackendError(
            "vLLM returned NaN or positive log-probs; check logprobs_mode is raw_logprobs"
        )
    return lp.astype(np.float32)


def check_prompt_ids(sent: Sequence[int], output: Any) -> None:
    """The engine must have scored exactly the ids we sent (no BOS added, no truncation)."""
    got = getattr(output, "prompt_token_ids", None)
    if got is not None and list(got) != list(sent):
        raise BackendError(
            f"vLLM scored a prompt of {len(got)} tokens that differs from the {len(sent)} sent"
        )


class VLLMBackend:
    """Teacher-forced scoring and generation with an offline `vllm.LLM` engine."""

    name = "vllm"

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        sampling_params_cls: Callable[..., Any],
        model: str,
        revision: str | None = None,
        settings: VLLMSettings | None = None,
        identity: ModelIdentity | None = None,
        versions: dict[str, str] | None = None,
    ) -> None:
        """Wrap an engine; use `from_spec`/`load` to build one (tests pass a stand-in engine)."""
        self.llm, self.tokenizer, self._params_cls = llm, tokenizer, sampling_params_cls
        self.model_id, self.revision = model, revision
        self.settings = settings or VLLMSettings()
        self._identity, self._versions = identity, dict(versions or {})
        self._config_sha256: str | None = None
        self.flat_logprobs = supports_flat_logprobs(sampling_params_cls)
        self.prefix_id = scoring_prefix_id(tokenizer)
        engine_max = getattr(getattr(llm, "model_config", None), "max_model_len", None)
        # the prompt plus the one generated token must fit the engine's context
        self.max_length = int(engine_max or self.settings.max_model_len or 1 << 30) - 1

    @classmethod
    def load(cls, model: str, revision: str | None = None, **options: Any) -> VLLMBackend:
        """Start a vLLM engine for `model` (local directory or hub id)."""
        try:
            import vllm
        except ImportError as e:
            raise BackendError(
                f"backend 'vllm' needs vllm: pip install 'tdp-harness[vllm]' ({e})"
            ) from e
        import torch
        import transformers

        settings = VLLMSettings(**options)
        local = Path(model).expanduser().is_dir()
        if local:
            model = str(Path(model).expanduser().resolve())
        if vllm.__version__.split(".")[:2] != VLLM_VERSION_CODED_AGAINST.split(".")[:2]:
            log.warning(
                "vllm %s installed; this backend was checked against %s",
                vllm.__version__,
                VLLM_VERSION_CODED_AGAINST,
            )
        tokenizer = load_tokenizer(model, revision)
        try:
            llm = vllm.LLM(model=model, revision=revision, **settings.engine_kwargs())
        except Exception as e:  # engine start-up fails in many ways (CUDA, config, memory)
            raise BackendError(f"vLLM cannot load {model!r} (revision {revision}): {e}") from e
        versions = {
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        return cls(
            llm,
            tokenizer,
            vllm.SamplingParams,
            model,
            revision,
            settings,
            None,  # computed on first use, from the files vLLM loaded
            versions,
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VLLMBackend:
        allowed = set(VLLMSettings.__dataclass_fields__)
        unknown = set(spec.options) - allowed
        if unknown:
            raise BackendError(
                f"vllm backend options {sorted(unknown)} unknown; allowed {sorted(allowed)}"
            )
        return cls.load(spec.model, spec.revision, **spec.options)

    # --- scoring -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` with the scoring prefix (BOS, else EOS) in front."""
        return scoring_ids(self.tokenizer, text, self.prefix_id, self.max_length)

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log-probs of each text, from vLLM prompt log-probs read by token id."""
        encoded = [self.encode(t) for t in texts]
        params = self._params_cls(**scoring_params_kwargs(self.flat_logprobs))
        out: list[np.ndarray] = []
        step = self.settings.chunk_size
        for start in range(0, len(encoded), step):
            chunk = encoded[start : start + step]
            results = self._run(chunk, params)
            for ids, res in zip(chunk, results, strict=True):
                check_prompt_ids(ids, res)
                out.append(prompt_token_logprobs(ids, res.prompt_logprobs))
        return out

    # --- generation ----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """Greedy (temperature 0: one continuation, repeated n times) or sampled continuations,
        decoded without the prompt."""
        params = self._params_cls(**generation_params_kwargs(max_new_tokens, n, temperature, seed))
        encoded = [self.encode(p) for p in prompts]
        results = self._run(encoded, params)
        asked = n if temperature > 0 else 1
        texts: list[list[str]] = []
        for res in results:
            outs = sorted(res.outputs, key=lambda o: o.index)
            if len(outs) != asked:
                raise BackendError(f"vLLM returned {len(outs)} continuations, asked for {asked}")
            row = [self.tokenizer.decode(list(o.token_ids), skip_special_tokens=True) for o in outs]
            texts.append(row if asked == n else row * n)
        return texts

    def _run(self, encoded: Sequence[list[int]], params: Any) -> list[Any]:
        prompts = [{"prompt_token_ids": ids} for ids in encoded]  # = vllm.TokensPrompt
        results = self.llm.generate(prompts, params, use_tqdm=self.settings.progress)
        if len(results) != len(prompts):
            raise BackendError(f"vLLM returned {len(results)} outputs for {len(prompts)} prompts")
        return list(results)

    # --- identity ------------------------------------------------------------------------
    def identity(self) -> ModelIdentity:
        """Digests of the stored tensors and of the tokenizer: the same files as the hf backend
        reads (a hub model from the snapshot vLLM downloaded), so both give one identity."""
        if self._identity is None:
            folder = model_dir(self.model_id, self.revision, local_only=True)
            self._identity = identity_of_dir(folder, self.tokenizer)
            self._config_sha256 = config_digest(folder)
        return self._identity

    def fingerprint(self) -> Fingerprint:
        settings = {k: v for k, v in asdict(self.settings).items() if k not in ("progress",)}
        settings.update(
            {
                "logprobs_mode": "raw_logprobs",
                "enable_prefix_caching": False,
                "flat_logprobs": self.flat_logprobs,
                "prompt_logprobs": 0,
                "scoring_prefix_id": self.prefix_id,
                "env": {k: os.environ[k] for k in NUMERIC_ENV if k in os.environ},
            }
        )
        ident = self.identity()
        settings["config_sha256"] = self._config_sha256
        return Fingerprint(
            backend=self.name,
            model=self.model_id,
            revision=self.revision,
            weights_sha256=ident.weights,
            dtype=self.settings.dtype,
            tokenizer_sha256=ident.tokenizer,
            versions=self._versions,
            settings=settings,
            identity_scheme=ident.scheme,
        )
