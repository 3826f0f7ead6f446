"""OpenAI/vLLM `/v1/completions` semantics over a transformers model, for `tdp serve`.

Follows the response format of vLLM's OpenAI server (0.24, `entrypoints/openai/completion`):
`echo` with `logprobs` gives `token_logprobs` with a null first entry, `top_logprobs` keyed by
token string (the actual token plus the top `logprobs`), `tokens` and `text_offset`; vLLM's
`prompt_logprobs` (keyed by token id, with rank) and `return_token_ids` extensions are
supported. Log-probs are raw (before temperature), computed in float32 from the model's
logits and clamped below at -9999 as vLLM does. Requests asking for features not implemented
here (streaming, penalties, top-p/top-k truncation ...) are refused with HTTP
400 rather than silently ignored (harness/serve/request.py); `/tokenize` and
`/detokenize` are answered here too, under the same limits. Stop strings and stop token ids
follow OpenAI and vLLM (harness/serve/stop_rules.py). Greedy `n > 1` returns n identical choices, as
OpenAI's API does; vLLM's server refuses it ("n must be 1 when using greedy sampling").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from harness.serve.limits import (
    NORMALIZER_SLACK,
    RequestError,
    ServeLimits,
    bool_field,
    token_ids,
)
from harness.serve.model import Cancelled, ScoringModel, SeqScores, never
from harness.serve.request import CompletionRequest, parse_completion_request
from harness.serve.stop_rules import Ending, ending

__all__ = [
    "Cancelled",
    "RequestError",
    "ScoringModel",
    "completions",
    "detokenize",
    "models_card",
    "tokenize",
]

LOGPROB_FLOOR = -9999.0  # vLLM clamps -inf (not JSON) to this


def _lp(x: float) -> float:
    return max(float(x), LOGPROB_FLOOR)


def completions(
    body: dict[str, Any],
    sm: ScoringModel,
    limits: ServeLimits | None = None,
    should_stop: Callable[[], bool] = never,
) -> dict[str, Any]:
    """Answer one `/v1/completions` request (no streaming); Cancelled once should_stop()."""
    r = parse_completion_request(body, sm, limits or ServeLimits())
    k = max(r.logprobs or 0, r.prompt_logprobs or 0, 1)
    greedy_one = [m <= 1 and r.temperature == 0 for m in r.max_tokens]
    prompt_scores = (
        sm.score(r.prompts, k, should_stop)
        if any(greedy_one) or r.echo or r.prompt_logprobs is not None
        else None
    )
    choices, gen_total = [], 0
    for p, ids in enumerate(r.prompts):
        endings = [
            ending(c, r.stop, sm.tokenizer, sm.tokenizer.eos_token_id)
            for c in _continuations(p, r, sm, prompt_scores, should_stop)
        ]
        full = None
        if r.logprobs is not None:
            full = (
                [prompt_scores[p]] * r.n
                if greedy_one[p] or r.max_tokens[p] == 0
                else sm.score([ids + e.tokens for e in endings], k, should_stop)
            )
        for j, end in enumerate(endings):
            choices.append(
                _choice(
                    len(choices),
                    ids,
                    end,
                    full[j] if full else None,
                    prompt_scores[p] if prompt_scores else None,
                    r,
                    sm,
                )
            )
            gen_total += len(end.tokens)
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


def _continuations(
    p: int,
    r: CompletionRequest,
    sm: ScoringModel,
    prompt_scores: list[SeqScores] | None,
    should_stop: Callable[[], bool],
) -> list[list[int]]:
    """n generated token lists for prompt p; greedy n > 1 gives n copies of one, as OpenAI."""
    m = r.max_tokens[p]
    if m == 0:
        return [[] for _ in range(r.n)]
    if m == 1 and r.temperature == 0 and prompt_scores is not None:
        return [[prompt_scores[p].next_top_ids[0]] for _ in range(r.n)]  # scored already
    return sm.sample(r.prompts[p], m, r.n, r.temperature, r.seed, should_stop, r.stop)


def _choice(
    index: int,
    ids: list[int],
    end: Ending,
    full: SeqScores | None,
    prompt_sc: SeqScores | None,
    r: CompletionRequest,
    sm: ScoringModel,
) -> dict[str, Any]:
    tok, cont = sm.tokenizer, end.tokens
    choice: dict[str, Any] = {
        "index": index,
        "text": (tok.decode(ids) + end.text) if r.echo else end.text,
        "logprobs": None,
        "finish_reason": end.finish_reason,
        "stop_reason": end.stop_reason,
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


def tokenize(body: dict[str, Any], sm: ScoringModel) -> dict[str, Any]:
    """vLLM's `/tokenize` for a string prompt; refuses text longer than the context can hold."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise RequestError("tokenize needs a string prompt")
    cap = sm.max_model_len * sm.max_token_bytes * NORMALIZER_SLACK
    try:
        if len(prompt) > cap or len(prompt.encode("utf-8")) > cap:
            raise RequestError(
                f"prompt is longer than the model's context of {sm.max_model_len} tokens can hold"
            )
    except UnicodeEncodeError:
        raise RequestError("prompt is not valid Unicode (lone surrogate)") from None
    special = bool_field(body, "add_special_tokens", True)
    ids = list(sm.tokenizer.encode(prompt, add_special_tokens=special))
    return {"count": len(ids), "max_model_len": sm.max_model_len, "tokens": ids, "token_strs": None}


def detokenize(body: dict[str, Any], sm: ScoringModel, limits: ServeLimits) -> dict[str, Any]:
    """vLLM's `/detokenize`: the text of a list of token ids (each checked against the vocab)."""
    tokens = body.get("tokens")
    if tokens is None or tokens == []:
        return {"prompt": ""}
    ids = token_ids(tokens, sm.vocab, "tokens", limits.request_tokens(sm.max_model_len))
    return {"prompt": sm.tokenizer.decode(ids)}
