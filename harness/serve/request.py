"""Validate a `/v1/completions` body into a CompletionRequest, cheapest checks first.

Order matters against abuse: field types and ranges, then the number of prompts, then each
string prompt's UTF-8 length against what the model's context could possibly hold (a bound
from the vocabulary, harness/serve_limits.max_token_bytes) and the request's token budget
(a lower bound on tokens), and only then tokenizing, after which exact token counts are
checked. Fields this server does not implement are refused unless they hold OpenAI's neutral
default, rather than silently ignored.

`max_tokens: null` means what it means in vLLM's server (`get_max_tokens` in
`vllm/entrypoints/utils.py`): as many tokens as the context leaves after the prompt, here also at
most MAX_NEW_TOKENS. A prompt that tokenizes to no tokens is refused after tokenizing, with
vLLM's message ("The decoder prompt cannot be empty"); an empty string is accepted where the
tokenizer adds a BOS, as in vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.serve.limits import (
    NORMALIZER_SLACK,
    SEED_MAX,
    SEED_MIN,
    RequestError,
    ServeLimits,
    bool_field,
    int_field,
    number_field,
    token_ids,
)
from harness.serve.model import ScoringModel
from harness.serve.stop_rules import StopRule, stop_rule

#: request fields accepted only at these (OpenAI default) values
NEUTRAL = {
    "stream": (False, None),
    "suffix": (None, ""),
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
    "stop",
    "stop_token_ids",
    "include_stop_str_in_output",
} | set(NEUTRAL)
MAX_N, MAX_NEW_TOKENS = 64, 4096


@dataclass(frozen=True)
class CompletionRequest:
    """A validated `/v1/completions` request."""

    prompts: list[list[int]]
    echo: bool
    n: int
    #: new tokens allowed per prompt (one entry per prompt: `max_tokens: null` fills each context)
    max_tokens: tuple[int, ...]
    temperature: float
    logprobs: int | None
    prompt_logprobs: int | None
    seed: int | None
    return_token_ids: bool
    stop: StopRule


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _check_fields(body: dict[str, Any], sm: ScoringModel) -> None:
    unknown = sorted(str(k) for k in set(body) - ACCEPTED)
    if unknown:
        shown = ", ".join(_short(k, 40) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise RequestError(f"fields not supported by tdp serve: [{shown}]{more}")
    for key, neutral in NEUTRAL.items():
        if key in body and body[key] not in neutral:
            raise RequestError(f"{key}={_short(body[key])} is not supported by tdp serve")
    if body.get("model") not in (None, sm.name):
        raise RequestError(f"The model `{_short(body.get('model'))}` does not exist.", 404)


def _prompt_items(body: dict[str, Any], limits: ServeLimits) -> list[Any]:
    """The prompts as sent (strings or id lists), their number checked before anything else."""
    p = body.get("prompt")
    if isinstance(p, str):
        return [p]
    if isinstance(p, list) and p and isinstance(p[0], int) and not isinstance(p[0], bool):
        return [p]  # one prompt of token ids
    if not isinstance(p, list) or not p:
        raise RequestError(
            "prompt must be a string, a list of strings, a list of token ids or a list of lists"
        )
    if len(p) > limits.max_prompts:
        raise RequestError(
            f"{len(p)} prompts in one request; this server takes at most {limits.max_prompts}"
        )
    return p


def _byte_checked(items: list[Any], sm: ScoringModel, budget: int, per_prompt: int) -> int:
    """Refuse what cannot fit before tokenizing; returns a lower bound on prompt tokens."""
    per_token = sm.max_token_bytes * NORMALIZER_SLACK
    cap, least = sm.max_model_len * per_token, 0
    for i, item in enumerate(items):
        if isinstance(item, str):
            if len(item) > cap:  # a char is at least one UTF-8 byte: no need to encode
                raise _too_long(i, f"{len(item)} characters", sm)
            try:
                size = len(item.encode("utf-8"))
            except UnicodeEncodeError:
                raise RequestError(f"prompt {i} is not valid Unicode (lone surrogate)") from None
            if size > cap:
                raise _too_long(i, f"{size} bytes", sm)
            least += -(-size // per_token) + per_prompt
        elif isinstance(item, list):
            least += len(item) + per_prompt
        else:
            raise RequestError("each prompt must be a string or a non-empty list of token ids")
        if least > budget:
            raise _over_budget(f"at least {least}", budget)
    return least


def _too_long(i: int, size: str, sm: ScoringModel) -> RequestError:
    return RequestError(
        f"prompt {i} has {size}, more than the model's context of {sm.max_model_len} tokens "
        "can hold"
    )


def _over_budget(tokens: str, budget: int) -> RequestError:
    return RequestError(
        f"request needs {tokens} tokens (prompts plus n x max_tokens); this server takes at "
        f"most {budget} per request: send fewer prompts per request"
    )


def _encode(items: list[Any], sm: ScoringModel, special: bool) -> list[list[int]]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            ids = list(sm.tokenizer.encode(item, add_special_tokens=special))
            if not ids:  # vLLM's words (v1 input processor, _validate_prompt_len)
                raise RequestError(f"prompt {i}: The decoder prompt cannot be empty (no tokens)")
        else:
            ids = token_ids(item, sm.vocab, f"prompt {i}", sm.max_model_len)
        out.append(ids)
    return out


def _new_tokens(
    prompts: list[list[int]], asked: int | None, echo: bool, sm: ScoringModel
) -> tuple[int, ...]:
    """max_tokens per prompt: as asked, or (null) what the context leaves, each checked to fit."""
    out = []
    for ids in prompts:
        room = sm.max_model_len - len(ids)
        if asked is not None and asked > room:
            raise RequestError(
                f"prompt of {len(ids)} tokens + max_tokens {asked} exceeds {sm.max_model_len}"
            )
        if asked is None and room < (0 if echo else 1):
            raise RequestError(
                f"prompt of {len(ids)} tokens leaves no room in the model's context of "
                f"{sm.max_model_len} for a generated token"
            )
        out.append(min(room, MAX_NEW_TOKENS) if asked is None else asked)
    return tuple(out)


def parse_completion_request(
    body: dict[str, Any], sm: ScoringModel, limits: ServeLimits
) -> CompletionRequest:
    """Check a request body against what this server implements; RequestError otherwise."""
    _check_fields(body, sm)
    echo = bool_field(body, "echo", False)
    n = int_field(body, "n", 1, 1, MAX_N)
    fill = "max_tokens" in body and body["max_tokens"] is None  # null: up to the context
    asked = None if fill else int_field(body, "max_tokens", 16, 0 if echo else 1, MAX_NEW_TOKENS)
    temperature = number_field(body, "temperature", 1.0, 0.0)
    logprobs = int_field(body, "logprobs", None, 0, sm.max_logprobs)
    prompt_lp = int_field(body, "prompt_logprobs", None, 0, sm.max_logprobs)
    seed = int_field(body, "seed", None, SEED_MIN, SEED_MAX)
    special = bool_field(body, "add_special_tokens", True)
    return_ids = bool_field(body, "return_token_ids", False)
    stop = stop_rule(body, sm.vocab)
    items = _prompt_items(body, limits)
    budget = limits.request_tokens(sm.max_model_len)
    _byte_checked(items, sm, budget, n * (asked if asked is not None else int(not echo)))
    prompts = _encode(items, sm, special)
    max_tokens = _new_tokens(prompts, asked, echo, sm)
    total = sum(len(ids) + n * m for ids, m in zip(prompts, max_tokens, strict=True))
    if total > budget:
        raise _over_budget(str(total), budget)
    return CompletionRequest(
        prompts=prompts,
        echo=echo,
        n=n,
        max_tokens=max_tokens,
        temperature=temperature,
        logprobs=logprobs,
        prompt_logprobs=prompt_lp,
        seed=seed,
        return_token_ids=return_ids,
        stop=stop,
    )
