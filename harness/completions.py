"""OpenAI/vLLM `/v1/completions` semantics over a transformers model, for `tdp serve`.

Follows the response format of vLLM's OpenAI server (0.24, `entrypoints/openai/completion`):
`echo` with `logprobs` gives `token_logprobs` with a null first entry, `top_logprobs` keyed by
token string (the actual token plus the top `logprobs`), `tokens` and `text_offset`; vLLM's
`prompt_logprobs` (keyed by token id, with rank) and `return_token_ids` extensions are
supported. Log-probs are raw (before temperature), computed in float32 from the model's
logits and clamped below at -9999 as vLLM does. Requests asking for features not implemented
here (streaming, stop strings, penalties, top-p/top-k truncation ...) are refused with HTTP
400 rather than silently ignored.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

LOGPROB_FLOOR = -9999.0  # vLLM clamps -inf (not JSON) to this
#: request fields accepted only at these (OpenAI default) values
NEUTRAL = {
    "stream": (False, None),
    "suffix": (None, ""),
    "stop": (None, [], ""),
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "repetition_penalty": (1, 1.0, None),
    "top_p": (1, 1.0, None),
    "top_k": (None, 0, -1),
    "min_p": (None, 0, 0.0),
    "best_of": (None, 1),
    "logit_bias": (None, {}),
    "use_beam_search": (False, None),
    "min_tokens": (0, None),
    "stop_token_ids": (None, []),
}
ACCEPTED = {
    "model",
    "prompt",
    "echo",
    "logprobs",
    "max_tokens",
    "n",
    "temperature",
    "seed",
    "prompt_logprobs",
    "return_token_ids",
    "add_special_tokens",
    "user",
} | set(NEUTRAL)


class RequestError(ValueError):
    """A request the server refuses; carries the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SeqScores:
    """Teacher-forced scores of one token sequence (positions 1..len-1) and of its next token."""

    logprobs: list[float]
    ranks: list[int]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]
    next_top_ids: list[int]
    next_top_logprobs: list[float]


class ScoringModel:
    """Token-id scoring and generation over a loaded HFBackend; one model call at a time."""

    def __init__(self, backend: Any, served_name: str, max_logprobs: int = 20) -> None:
        self.backend, self.name, self.max_logprobs = backend, served_name, max_logprobs
        self.model, self.tokenizer = backend.model, backend.tokenizer
        self.vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self.max_model_len = int(backend.max_length)
        self.lock = threading.Lock()
        fp = backend.fingerprint()
        ident = fp.model_identity()
        self.card_extra = {
            "identity": ident.to_dict() if ident is not None else None,
            "weights_sha256": fp.weights_sha256,
            "tokenizer_sha256": fp.tokenizer_sha256,
            "dtype": fp.dtype,
            "revision": fp.revision,
            "backend": fp.backend,
        }

    @torch.inference_mode()
    def score(self, seqs: list[list[int]], k: int) -> list[SeqScores]:
        """Right-padded batches as in the hf backend; fp32 log-softmax one row at a time."""
        out: list[SeqScores] = []
        bs = max(1, int(self.backend.batch_size))
        with self.lock:
            for start in range(0, len(seqs), bs):
                out.extend(self._score_batch(seqs[start : start + bs], k))
        return out

    def _score_batch(self, seqs: list[list[int]], k: int) -> list[SeqScores]:
        width, dev = max(len(s) for s in seqs), self.backend.device
        ids = torch.full((len(seqs), width), self.backend.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, : len(s)], mask[row, : len(s)] = torch.tensor(s), 1
        logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        res = []
        for row, s in enumerate(seqs):
            logp = torch.log_softmax(logits[row, : len(s)].float(), dim=-1)  # stays on device
            tok = torch.tensor(s[1:], dtype=torch.long, device=logp.device)
            actual = logp[:-1].gather(-1, tok[:, None]).squeeze(-1)
            ranks = (logp[:-1] > actual[:, None]).sum(-1) + 1
            top = torch.topk(logp, k=max(1, min(k, self.vocab)), dim=-1)
            res.append(
                SeqScores(
                    logprobs=actual.tolist(),
                    ranks=ranks.tolist(),
                    top_ids=top.indices[:-1].tolist(),
                    top_logprobs=top.values[:-1].tolist(),
                    next_top_ids=top.indices[-1].tolist(),
                    next_top_logprobs=top.values[-1].tolist(),
                )
            )
        return res

    @torch.inference_mode()
    def sample(
        self, prompt: list[int], max_tokens: int, n: int, temperature: float, seed: int | None
    ) -> list[list[int]]:
        """n continuations of one prompt (greedy at temperature 0), cut after the first EOS."""
        ids = torch.tensor([prompt], device=self.backend.device)
        sampled = temperature > 0
        with self.lock:
            torch.manual_seed(0 if seed is None else int(seed))
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=sampled,
                temperature=temperature if sampled else None,
                top_k=0 if sampled else None,
                top_p=None,
                num_return_sequences=n if sampled else 1,
                pad_token_id=self.backend.pad_id,
            )
        if not sampled:
            out = out.expand(n, -1)
        eos = self.tokenizer.eos_token_id
        conts = []
        for row in out[:, len(prompt) :].tolist():
            if eos is not None and eos in row:
                row = row[: row.index(eos) + 1]
            conts.append(row)
        return conts


@dataclass(frozen=True)
class CompletionRequest:
    """A validated `/v1/completions` request."""

    prompts: list[list[int]]
    echo: bool
    n: int
    max_tokens: int
    temperature: float
    logprobs: int | None
    prompt_logprobs: int | None
    seed: int | None
    return_token_ids: bool


def _prompts(body: dict[str, Any], tok: Any) -> list[list[int]]:
    p = body.get("prompt")
    special = bool(body.get("add_special_tokens", True))
    if isinstance(p, str):
        p = [p]
    if isinstance(p, list) and p and all(isinstance(x, int) for x in p):
        p = [p]
    if not isinstance(p, list) or not p:
        raise RequestError(
            "prompt must be a string, a list of strings, a list of token ids or a list of lists"
        )
    out = []
    for item in p:
        if isinstance(item, str):
            out.append(list(tok.encode(item, add_special_tokens=special)))
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        ):
            out.append(item)
        else:
            raise RequestError(
                "each prompt must be a non-empty string or a non-empty list of token ids"
            )
    return out


def _validate(body: dict[str, Any], sm: ScoringModel) -> CompletionRequest:
    """Check a request body against what this server implements; RequestError otherwise."""
    unknown = sorted(set(body) - ACCEPTED)
    if unknown:
        raise RequestError(f"fields not supported by tdp serve: {unknown}")
    for key, neutral in NEUTRAL.items():
        if key in body and body[key] not in neutral:
            raise RequestError(f"{key}={body[key]!r} is not supported by tdp serve")
    if body.get("model") not in (None, sm.name):
        raise RequestError(f"The model `{body.get('model')}` does not exist.", 404)
    echo, n = bool(body.get("echo", False)), body.get("n", 1)
    max_tokens, temperature = body.get("max_tokens", 16), body.get("temperature", 1.0)
    temperature = 1.0 if temperature is None else temperature
    logprobs, prompt_lp = body.get("logprobs"), body.get("prompt_logprobs")
    if not isinstance(n, int) or not 1 <= n <= 64:
        raise RequestError("n must be an integer in 1..64")
    if not isinstance(max_tokens, int) or max_tokens < (0 if echo else 1) or max_tokens > 4096:
        raise RequestError("max_tokens must be an integer in 1..4096 (0 allowed with echo)")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise RequestError("temperature must be >= 0")
    for key, val in (("logprobs", logprobs), ("prompt_logprobs", prompt_lp)):
        if val is not None and (not isinstance(val, int) or not 0 <= val <= sm.max_logprobs):
            raise RequestError(f"{key} must be an integer in 0..{sm.max_logprobs}")
    prompts = _prompts(body, sm.tokenizer)
    for ids in prompts:
        if any(i < 0 or i >= sm.vocab for i in ids):
            raise RequestError(f"token ids must lie in 0..{sm.vocab - 1}")
        if len(ids) + max_tokens > sm.max_model_len:
            raise RequestError(
                f"prompt of {len(ids)} tokens + max_tokens {max_tokens} exceeds {sm.max_model_len}"
            )
    return CompletionRequest(
        prompts=prompts,
        echo=echo,
        n=n,
        max_tokens=max_tokens,
        temperature=float(temperature),
        logprobs=logprobs,
        prompt_logprobs=prompt_lp,
        seed=body.get("seed"),
        return_token_ids=bool(body.get("return_token_ids")),
    )


def _lp(x: float) -> float:
    return max(float(x), LOGPROB_FLOOR)


def completions(body: dict[str, Any], sm: ScoringModel) -> dict[str, Any]:
    """Answer one `/v1/completions` request (no streaming)."""
    r = _validate(body, sm)
    k = max(r.logprobs or 0, r.prompt_logprobs or 0, 1)
    greedy_one = r.max_tokens <= 1 and r.temperature == 0
    prompt_scores = (
        sm.score(r.prompts, k) if greedy_one or r.echo or r.prompt_logprobs is not None else None
    )
    choices, gen_total = [], 0
    for p, ids in enumerate(r.prompts):
        if r.max_tokens == 0:
            conts = [[] for _ in range(r.n)]
        elif greedy_one:
            conts = [[prompt_scores[p].next_top_ids[0]]] * r.n
        else:
            conts = sm.sample(ids, r.max_tokens, r.n, r.temperature, r.seed)
        full = None
        if r.logprobs is not None:
            full = (
                [prompt_scores[p]] * r.n
                if greedy_one or r.max_tokens == 0
                else sm.score([ids + c for c in conts], k)
            )
        for j, cont in enumerate(conts):
            choices.append(
                _choice(
                    len(choices),
                    ids,
                    cont,
                    full[j] if full else None,
                    prompt_scores[p] if prompt_scores else None,
                    r,
                    sm,
                )
            )
            gen_total += len(cont)
    n_prompt = sum(len(ids) for ids in r.prompts)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": sm.name,
        "choices": choices,
        "system_fingerprint": None,
        "usage": {
            "prompt_tokens": n_prompt,
            "completion_tokens": gen_total,
            "total_tokens": n_prompt + gen_total,
        },
    }


def _choice(
    index: int,
    ids: list[int],
    cont: list[int],
    full: SeqScores | None,
    prompt_sc: SeqScores | None,
    r: CompletionRequest,
    sm: ScoringModel,
) -> dict[str, Any]:
    tok = sm.tokenizer
    eos = tok.eos_token_id
    text = tok.decode(cont, skip_special_tokens=True)
    finish = "stop" if cont and cont[-1] == eos else "length"
    choice: dict[str, Any] = {
        "index": index,
        "text": (tok.decode(ids) + text) if r.echo else text,
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
        "prompt_logprobs": None,
    }
    if r.logprobs is not None and full is not None:
        seq, first = (ids + cont, 0) if r.echo else (cont, len(ids))
        choice["logprobs"] = _completion_logprobs(seq, first, full, r.logprobs, tok)
    if r.prompt_logprobs is not None and prompt_sc is not None:
        choice["prompt_logprobs"] = _prompt_logprobs(ids, prompt_sc, r.prompt_logprobs, tok)
    if r.return_token_ids:
        choice.update(prompt_token_ids=ids, token_ids=cont)
    return choice


def _position(sc: SeqScores, pos: int) -> tuple[float, list[int], list[float]]:
    """(actual log-prob, top ids, top log-probs) at sequence position pos >= 1."""
    if pos - 1 < len(sc.logprobs):
        return sc.logprobs[pos - 1], sc.top_ids[pos - 1], sc.top_logprobs[pos - 1]
    return sc.next_top_logprobs[0], sc.next_top_ids, sc.next_top_logprobs  # greedy next token


def _completion_logprobs(
    seq: list[int], first: int, sc: SeqScores, k: int, tok: Any
) -> dict[str, Any]:
    offsets, lps, tokens, tops, offset = [], [], [], [], 0
    for i, tid in enumerate(seq):
        pos = first + i
        token = tok.decode([tid])
        if pos == 0:
            lps.append(None)
            tops.append(None)
        else:
            actual, top_ids, top_lps = _position(sc, pos)
            lps.append(_lp(actual))
            entry = {token: _lp(actual)}
            for t, v in zip(top_ids[:k], top_lps[:k], strict=True):
                entry.setdefault(tok.decode([t]), _lp(v))
            tops.append(entry)
        tokens.append(token)
        offsets.append(offset)
        offset += len(token)
    return {"text_offset": offsets, "token_logprobs": lps, "tokens": tokens, "top_logprobs": tops}


def _prompt_logprobs(
    ids: list[int], sc: SeqScores, k: int, tok: Any
) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = [None]
    for pos in range(1, len(ids)):
        entry = {
            str(ids[pos]): {
                "logprob": _lp(sc.logprobs[pos - 1]),
                "rank": sc.ranks[pos - 1],
                "decoded_token": tok.decode([ids[pos]]),
            }
        }
        for rank, (t, v) in enumerate(
            zip(sc.top_ids[pos - 1][:k], sc.top_logprobs[pos - 1][:k], strict=True), 1
        ):
            entry.setdefault(
                str(t), {"logprob": _lp(v), "rank": rank, "decoded_token": tok.decode([t])}
            )
        out.append(entry)
    return out


def models_card(sm: ScoringModel, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": sm.name,
                "object": "model",
                "created": created,
                "owned_by": "tdp",
                "root": sm.name,
                "parent": None,
                "max_model_len": sm.max_model_len,
                "permission": [],
                "tdp": sm.card_extra,
            }
        ],
    }
