"""transformers backend: CPU or GPU, length-bucketed right-padded batches, fp32 log-softmax.

The scoring fast path runs the model's trunk (everything up to the final hidden states) on a
batch, keeps only the hidden states of scored positions, and projects them onto the
vocabulary in chunks of `chunk_rows` rows: lm_head -> float32 -> logsumexp -> gather the target
logit. The full [batch, length, vocab] logits tensor never exists, so memory stays bounded by
`chunk_rows x vocab` floats whatever the batch, and the same pass yields the per-position
statistics Min-K%++ needs (`vocab_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.backends.base import BackendError, Fingerprint, ModelIdentity, VocabStats
from harness.backends.hub import looks_local, require_hub_or_cache
from harness.backends.identity import config_digest, identity_of_dir, model_dir
from harness.backends.spec import ModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: config attributes that transform logits after lm_head; models with them take the full path
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def _check_loaded_as_stored(model: str, info: dict[str, Any]) -> None:
    """The model's identity is a digest of the stored tensors, so they must be what is loaded:
    an ignored (unexpected) tensor would change the identity and not the numbers, a missing one
    would be drawn at random on every load under one identity."""
    problems = {k: sorted(info.get(k) or ())[:5] for k in ("unexpected_keys", "missing_keys",
                                                          "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        said = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in problems.items())
        raise BackendError(f"{model}: checkpoint and model do not match ({said})")


class HFBackend:
    """Teacher-forced scoring and generation with a transformers causal LM."""

    name = "hf"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 32,
        progress: bool = False,
        max_batch_tokens: int = 65536,
        chunk_rows: int = 8192,
        attn: str = "sdpa",
        compile: bool | str = False,
    ) -> None:
        """Load a model and tokenizer.

        Args:
            model: hub id or local directory.
            revision: hub revision (commit, tag or branch).
            dtype: "float32", "bfloat16", "float16" or "auto" (bf16 on GPU, fp32 on CPU).
            device: "cpu", "cuda[:i]" or "auto".
            batch_size: most sequences per forward pass.
            progress: show progress bars.
            max_batch_tokens: most padded tokens (rows x width) per forward pass; with the
                length sort this buckets sequences of similar length together.
            chunk_rows: scored positions projected onto the vocabulary at once (memory bound:
                chunk_rows x vocab float32 values).
            attn: attention implementation asked of transformers ("sdpa", "eager", ...); falls
                back to the model's default where the architecture does not support it.
            compile: False, True (= "default") or a torch.compile mode: compiles the trunk and
                the chunk pass; the first batch of each shape pays the compile time.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if dtype not in DTYPES:
            raise BackendError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if not progress:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        local = looks_local(model)
        if local:
            path = Path(model).expanduser()
            if not path.is_dir():
                raise BackendError(f"model directory not found: {model}")
            if not (path / "config.json").exists():
                raise BackendError(f"{model}: not a transformers model directory (no config.json)")
            model = str(path.resolve())
        if compile is True:
            compile = "default"
        if compile is not False and compile not in COMPILE_MODES:
            raise BackendError(
                f"compile must be false, true or one of {COMPILE_MODES}, got {compile!r}"
            )
        for opt, val in (("batch_size", batch_size), ("max_batch_tokens", max_batch_tokens),
                         ("chunk_rows", chunk_rows)):
            if int(val) < 1:
                raise BackendError(f"{opt} must be a positive integer, got {val!r}")
        # a local folder never touches the network; an unreachable hub fails fast or uses the cache
        files_only = require_hub_or_cache(model, "model", revision)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, revision=revision, local_files_only=files_only
            )
            kw = {"revision": revision, "dtype": DTYPES[dtype], "output_loading_info": True,
                  "local_files_only": files_only}
            try:
                self.model, info = AutoModelForCausalLM.from_pretrained(
                    model, attn_implementation=attn, **kw
                )
            except (ValueError, ImportError):  # architecture without this attention kernel
                self.model, info = AutoModelForCausalLM.from_pretrained(model, **kw)
            self.model = self.model.to(device)
        except Exception as e:  # hub/network/format errors come in many types
            raise BackendError(f"cannot load model {model!r} (revision {revision}): {e}") from e
        _check_loaded_as_stored(model, info)
        self.model.eval()
        self.model_id, self.revision, self.dtype, self.device = model, revision, dtype, device
        self.batch_size, self.progress = int(batch_size), progress
        self.max_batch_tokens, self.chunk_rows = int(max_batch_tokens), int(chunk_rows)
        self.compile_mode: str | None = compile or None
        self._setup_fast_path()
        self._local, self._identity, self._config_sha256 = local, None, None
        if not local and revision is None:
            self.revision = getattr(self.model.config, "_commit_hash", None)
        tok = self.tokenizer
        self.prefix_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.prefix_id or 0)
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> HFBackend:
        allowed = {"dtype", "device", "batch_size", "progress", "max_batch_tokens", "chunk_rows",
                   "attn", "compile"}
        unknown = set(spec.options) - allowed
        if unknown:
            raise BackendError(f"hf backend options {sorted(unknown)} unknown; allowed {sorted(allowed)}")
        return cls(spec.model, spec.revision, **spec.options)

    # --- scoring -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` with the scoring prefix (BOS, else EOS) in front."""
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        unk = self.tokenizer.unk_token_id
        if unk is not None and unk in ids:
            raise BackendError(
                f"tokenizer of {self.model_id} maps part of the text to its unknown token, "
                f"so that text cannot be scored faithfully: {text[:60]!r}"
            )
        if not ids:
            raise BackendError(f"text encodes to no tokens: {text[:60]!r}")
        if self.prefix_id is not None:
            ids = [self.prefix_id] + ids
        if len(ids) > self.max_length:
            raise BackendError(
                f"text of {len(ids)} tokens exceeds the model's context of {self.max_length}"
            )
        return ids

    def _setup_fast_path(self) -> None:
        """Find the trunk and lm_head; compile the trunk if asked."""
        cfg = self.model.config
        trunk = getattr(self.model, "base_model", None)
        head = self.model.get_output_embeddings()
        transforms = [a for a in _LOGIT_TRANSFORMS if getattr(cfg, a, None) not in (None, 1, 1.0)]
        self._chunked = (
            trunk is not None and trunk is not self.model and isinstance(head, torch.nn.Linear)
            and not transforms
        )
        self._trunk, self._head = (trunk, head) if self._chunked else (None, None)
        if trunk is not None and hasattr(trunk, "warn_if_padding_and_no_attention_mask"):
            # scoring passes no mask on purpose (right padding, causal: see _forward_positions);
            # silence transformers' one-time "pass an attention_mask" advice for that reason
            trunk.warn_if_padding_and_no_attention_mask = lambda *_: None
        self.attn_implementation = getattr(cfg, "_attn_implementation", None)
        if self.compile_mode is not None:
            if not self._chunked:
                raise BackendError(f"{self.model_id}: compile needs a trunk + linear lm_head model")
            self._trunk = torch.compile(self._trunk, mode=self.compile_mode, dynamic=False)
            self._chunk_fn = torch.compile(self._chunk_pass, mode=self.compile_mode, dynamic=False)
        else:
            self._chunk_fn = self._chunk_pass

    def _batches(self, encoded: Sequence[list[int]]) -> list[list[int]]:
        """Length bucketing: indices sorted by length, cut into batches of at most batch_size
        rows and max_batch_tokens padded tokens (width = the batch's longest sequence)."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = len(encoded[cur[0]]) if cur else len(encoded[i])
            too_wide = (len(cur) + 1) * width > self.max_batch_tokens
            if cur and (len(cur) >= self.batch_size or too_wide):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def _forward_positions(self, encoded: Sequence[list[int]], batch: list[int]) -> tuple[Any, Any]:
        """(hidden or logits rows, target ids) for every scored position of a batch, row-major.

        Right padding with a causal model: a real position attends only to earlier real
        positions, never to the padding after it, and position ids count from 0 either way, so
        no attention mask is passed (letting SDPA take its causal kernel). Rows' outputs are
        therefore independent of their neighbours and of the padding width.
        """
        lengths = [len(encoded[i]) for i in batch]
        width = lengths[0]
        full = all(n == width for n in lengths)  # no padding: reshapes instead of masked selects
        if full:
            arr = np.array([encoded[i] for i in batch], dtype=np.int64)
        else:
            arr = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            for row, i in enumerate(batch):
                arr[row, : lengths[row]] = encoded[i]
        ids = torch.from_numpy(arr)
        valid = torch.from_numpy(np.arange(width - 1)[None, :] < np.array(lengths)[:, None] - 1)
        if self.device.startswith("cuda"):  # async copy: the host prepares the next batch meanwhile
            ids = ids.pin_memory().to(self.device, non_blocking=True)
        valid = valid.to(self.device)
        targets = ids[:, 1:].reshape(-1) if full else ids[:, 1:][valid]
        if self._chunked:
            out = self._trunk(input_ids=ids, use_cache=False)[0][:, :-1]
        else:
            out = self.model(input_ids=ids, use_cache=False).logits[:, :-1]
        return (out.reshape(-1, out.shape[-1]) if full else out[valid]), targets

    def _chunk_pass(self, rows: Any, targets: Any, stats: bool) -> tuple[Any, Any, Any]:
        """One chunk of scored positions: lm_head -> float32 -> logsumexp -> target log-prob.

        With `stats`, also mu = E_p[log p] and var = E_p[(log p - mu)^2] over the vocabulary.
        """
        logits = (self._head(rows) if self._chunked else rows).float()
        lse = torch.logsumexp(logits, dim=-1)
        lp = logits.gather(-1, targets[:, None]).squeeze(-1) - lse
        if not stats:
            return lp, None, None
        logp = logits - lse[:, None]
        p = logp.exp()
        mu = (p * logp).sum(-1)
        var = (p * (logp - mu[:, None]).square()).sum(-1)
        return lp, mu, var

    def _score(
        self, encoded: Sequence[list[int]], stats: bool
    ) -> tuple[list[np.ndarray], list[VocabStats]]:
        """Target log-probs (and, if `stats`, vocab statistics) for token-id sequences."""
        lp_out: list[np.ndarray | None] = [None] * len(encoded)
        vs_out: list[VocabStats | None] = [None] * len(encoded)
        pending: list[tuple[list[int], Any, Any, Any]] = []
        graphs = self.compile_mode in ("reduce-overhead", "max-autotune")
        for batch in self._bar(self._batches(encoded), "scoring"):
            if graphs:  # CUDA graph trees: each batch is a new step; its outputs are copied below
                torch.compiler.cudagraph_mark_step_begin()
            rows, targets = self._forward_positions(encoded, batch)
            lp_parts, mu_parts, var_parts = [], [], []
            for start in range(0, rows.shape[0], self.chunk_rows):
                end = start + self.chunk_rows
                lp, mu, var = self._chunk_fn(rows[start:end], targets[start:end], stats)
                lp_parts.append(lp.clone() if graphs else lp)
                if stats:
                    mu_parts.append(mu.clone() if graphs else mu)
                    var_parts.append(var.clone() if graphs else var)
            # results stay on the device until every batch is queued: no sync per batch
            pending.append((
                batch,
                torch.cat(lp_parts),
                torch.cat(mu_parts) if stats else None,
                torch.cat(var_parts) if stats else None,
            ))
        for batch, lp_t, mu_t, var_t in pending:
            flat = lp_t.cpu().numpy().astype(np.float32)
            mus = mu_t.cpu().numpy() if stats else None
            vars_ = var_t.cpu().numpy() if stats else None
            pos = 0
            for i in batch:
                n = len(encoded[i]) - 1
                lp_out[i] = flat[pos : pos + n]
                if stats:
                    vs_out[i] = VocabStats(mus[pos : pos + n], vars_[pos : pos + n])
                pos += n
        return [x for x in lp_out if x is not None], [x for x in vs_out if x is not None]

    @torch.inference_mode()
    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log-probs, scored in length-bucketed right-padded batches."""
        return self.token_logprobs_ids([self.encode(t) for t in texts])

    @torch.inference_mode()
    def token_logprobs_ids(self, encoded: Sequence[list[int]]) -> list[np.ndarray]:
        """Per-token log-probs of already-encoded sequences (prefix token included, unscored)."""
        for ids in encoded:
            if len(ids) < 2:
                raise BackendError("an encoded sequence needs the prefix and at least one token")
        return self._score(encoded, stats=False)[0]

    @torch.inference_mode()
    def vocab_stats(self, texts: Sequence[str]) -> list[VocabStats]:
        """Per scored position, the mean and variance of log p(z | prefix) for z ~ p(. | prefix).

        These are Min-K%++'s mu and sigma^2 (Zhang et al. 2024): expectations under the model's
        own next-token distribution, not uniform averages over the vocabulary. Computed in
        float32 in the same chunked pass as the log-probs.
        """
        return self.vocab_stats_ids([self.encode(t) for t in texts])

    @torch.inference_mode()
    def vocab_stats_ids(self, encoded: Sequence[list[int]]) -> list[VocabStats]:
        """`vocab_stats` of already-encoded sequences (prefix token included, unscored)."""
        for ids in encoded:
            if len(ids) < 2:
                raise BackendError("an encoded sequence needs the prefix and at least one token")
        return self._score(encoded, stats=True)[1]

    # --- generation ----------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """Greedy (temperature 0) or sampled continuations, decoded without the prompt."""
        torch.manual_seed(seed)
        results: list[list[str]] = []
        for prompt in self._bar(prompts, "generating"):
            ids = torch.tensor([self.encode(prompt)], device=self.device)
            # greedy decoding is deterministic: transformers refuses num_return_sequences > 1
            # without sampling, so decode once and repeat the continuation n times
            sample = temperature > 0
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0 if temperature > 0 else None,
                num_return_sequences=n if sample else 1,
                pad_token_id=self.pad_id,
            )
            new = gen[:, ids.shape[1] :]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            results.append(texts if sample else texts * n)
        return results

    # --- identity ------------------------------------------------------------------------
    def identity(self) -> ModelIdentity:
        """Digests of the loaded checkpoint's stored tensors and of the tokenizer (computed once;
        the weights digest is cached on disk, so a large model is hashed once per file)."""
        if self._identity is None:
            if self._local:
                folder = Path(self.model_id)
            else:  # the snapshot transformers just loaded, pinned to its commit
                commit = getattr(self.model.config, "_commit_hash", None) or self.revision
                folder = model_dir(self.model_id, commit, local_only=True)
            self._identity = identity_of_dir(folder, self.tokenizer)
            self._config_sha256 = config_digest(folder)
        return self._identity

    def fingerprint(self) -> Fingerprint:
        import transformers

        ident = self.identity()
        return Fingerprint(
            backend=self.name,
            model=self.model_id,
            revision=self.revision,
            weights_sha256=ident.weights,
            dtype=self.dtype,
            tokenizer_sha256=ident.tokenizer,
            versions={"transformers": transformers.__version__, "torch": torch.__version__},
            settings={
                "device": self.device.split(":")[0],
                "scoring_prefix_id": self.prefix_id,
                "attn_implementation": self.attn_implementation,
                "chunked_vocab": self._chunked,
                "compile": self.compile_mode,
                "config_sha256": self._config_sha256,
            },
            identity_scheme=ident.scheme,
        )

    def _bar(self, items: Sequence[Any], desc: str) -> Any:
        if not self.progress:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, leave=False)

    @torch.inference_mode()
    def generate_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[list[int]]]:
        """Continuations as token ids of prompts given as token ids (never re-tokenized).

        The scoring prefix (BOS, else EOS) goes in front as in `encode`; each continuation is
        cut at its first EOS, so padding after an early stop is not returned. Greedy `n > 1`
        gives n copies of the one greedy continuation, as `generate` does.
        """
        torch.manual_seed(seed)
        eos = self.tokenizer.eos_token_id
        results: list[list[list[int]]] = []
        for prompt in self._bar(prompt_ids, "generating"):
            head = [self.prefix_id] if self.prefix_id is not None else []
            full = head + [int(i) for i in prompt]
            if not full:
                raise BackendError("generate_ids needs a non-empty prompt")
            ids = torch.tensor([full], device=self.device)
            room = self.max_length - len(full)  # positions beyond the context do not exist
            if room < 1:
                raise BackendError(
                    f"prompt of {len(full)} tokens fills the context of {self.max_length}"
                )
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=min(max_new_tokens, room),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0 if temperature > 0 else None,
                num_return_sequences=n if temperature > 0 else 1,  # greedy: one, repeated
                pad_token_id=self.pad_id,
            )
            rows = gen[:, ids.shape[1] :].tolist()
            rows = rows if temperature > 0 else [list(rows[0]) for _ in range(n)]
            results.append([r[: r.index(eos)] if eos in r else r for r in rows])
        return results
