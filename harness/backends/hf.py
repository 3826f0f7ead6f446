"""transformers backend: CPU or GPU, length-sorted right-padded batches, fp32 log-softmax."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.backends.base import BackendError, Fingerprint
from harness.backends.spec import ModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _looks_local(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists()


def weights_sha256(directory: Path) -> str:
    """sha256 over the names and bytes of every weight file in a model directory."""
    h = hashlib.sha256()
    files = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise BackendError(f"{directory}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


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
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if dtype not in DTYPES:
            raise BackendError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        local = _looks_local(model)
        if local:
            path = Path(model).expanduser()
            if not path.is_dir():
                raise BackendError(f"model directory not found: {model}")
            if not (path / "config.json").exists():
                raise BackendError(f"{model}: not a transformers model directory (no config.json)")
            model = str(path.resolve())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            self.model = AutoModelForCausalLM.from_pretrained(
                model, revision=revision, dtype=DTYPES[dtype]
            ).to(device)
        except Exception as e:  # hub/network/format errors come in many types
            raise BackendError(f"cannot load model {model!r} (revision {revision}): {e}") from e
        self.model.eval()
        self.model_id, self.revision, self.dtype, self.device = model, revision, dtype, device
        self.batch_size, self.progress = int(batch_size), progress
        self._weights = weights_sha256(Path(model)) if local else None
        if not local and revision is None:
            self.revision = getattr(self.model.config, "_commit_hash", None)
        tok = self.tokenizer
        self.prefix_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.prefix_id or 0)
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> HFBackend:
        allowed = {"dtype", "device", "batch_size", "progress"}
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

    @torch.inference_mode()
    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log-probs, scored in length-sorted right-padded batches."""
        encoded = [self.encode(t) for t in texts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out: list[np.ndarray | None] = [None] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in self._bar(batches, "scoring"):
            width = len(encoded[batch[0]])
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            tok_lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1).cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = tok_lp[row, : len(encoded[i]) - 1].astype(np.float32)
        return [x for x in out if x is not None]

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
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0 if temperature > 0 else None,
                num_return_sequences=n,
                pad_token_id=self.pad_id,
            )
            new = gen[:, ids.shape[1] :]
            results.append(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return results

    # --- identity ------------------------------------------------------------------------
    def fingerprint(self) -> Fingerprint:
        import transformers

        from canaries.generators import tokenizer_sha256

        return Fingerprint(
            backend=self.name,
            model=self.model_id,
            revision=self.revision,
            weights_sha256=self._weights,
            dtype=self.dtype,
            tokenizer_sha256=tokenizer_sha256(self.tokenizer),
            versions={"transformers": transformers.__version__, "torch": torch.__version__},
            settings={"device": self.device.split(":")[0], "scoring_prefix_id": self.prefix_id},
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
        cut at its first EOS, so padding after an early stop is not returned.
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
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0 if temperature > 0 else None,
                num_return_sequences=n,
                pad_token_id=self.pad_id,
            )
            rows = gen[:, ids.shape[1] :].tolist()
            results.append([r[: r.index(eos)] if eos in r else r for r in rows])
        return results
