"""When a `tdp serve` completion ends: EOS, `stop_token_ids` and `stop` strings.

Semantics of OpenAI's completions API and vLLM's server (0.24 `sampling_params.py`,
`CompletionRequest`): `stop` is a string or a list of strings; the returned text ends before the
first stop string, which is left out unless vLLM's `include_stop_str_in_output` is true (default
false), and `finish_reason` is "stop" with `stop_reason` the string. Stop strings are searched in
the generated text only (never the prompt), decoded as the returned text is (special tokens
skipped). `stop_token_ids` end generation at any of those ids, which stay in the output
(`stop_reason` is the id); EOS ends it with `stop_reason` null. As in vLLM, the returned tokens
and their log-probs run up to and including the token that completed a stop string, while the
text is cut before the string. One difference from vLLM: when two stop strings are completed by
the same token, vLLM takes the first in list order, we take the one that starts first in the
text (OpenAI's "the text ends before the first stop sequence").

OpenAI allows 4 stop strings; vLLM sets no limit. lm-evaluation-harness appends the model's EOS
string to a task's `until` list, so 4 would refuse real tasks: up to MAX_STOP_STRINGS here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria

from harness.serve.limits import RequestError, bool_field

MAX_STOP_STRINGS, MAX_STOP_CHARS, MAX_STOP_TOKEN_IDS = 16, 256, 64


@dataclass(frozen=True)
class StopRule:
    """What ends a completion besides EOS and max_tokens."""

    strings: tuple[str, ...] = ()
    token_ids: tuple[int, ...] = ()
    include_string: bool = False

    @property
    def active(self) -> bool:
        return bool(self.strings or self.token_ids)


@dataclass(frozen=True)
class Ending:
    """A completion as returned: its tokens, its text, why it ended."""

    tokens: list[int]
    text: str
    finish_reason: str
    stop_reason: str | int | None


def stop_rule(body: Mapping[str, Any], vocab: int) -> StopRule:
    """`stop`, `stop_token_ids` and `include_stop_str_in_output` of a request body, checked."""
    raw = body.get("stop")
    strings = [raw] if isinstance(raw, str) else raw
    if strings is None or strings == "":
        strings = []
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise RequestError("stop must be a string or a list of strings")
    if len(strings) > MAX_STOP_STRINGS:
        raise RequestError(f"stop has {len(strings)} strings; at most {MAX_STOP_STRINGS}")
    if any(not s or len(s) > MAX_STOP_CHARS for s in strings):
        raise RequestError(f"each stop string must have 1..{MAX_STOP_CHARS} characters")
    try:
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("stop strings must be valid Unicode (lone surrogate)") from None
    ids = body.get("stop_token_ids") or []
    if not isinstance(ids, list) or len(ids) > MAX_STOP_TOKEN_IDS:
        raise RequestError(f"stop_token_ids must be a list of at most {MAX_STOP_TOKEN_IDS} ids")
    for x in ids:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < vocab:
            raise RequestError(f"stop_token_ids must be integers in 0..{vocab - 1}")
    include = bool_field(body, "include_stop_str_in_output", False)
    return StopRule(tuple(dict.fromkeys(strings)), tuple(dict.fromkeys(ids)), include)


def first_stop(text: str, strings: Sequence[str]) -> tuple[int, str] | None:
    """(position, string) of the stop string that starts first in text; None if none occurs."""
    best: tuple[int, str] | None = None
    for s in strings:
        at = text.find(s)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, s)
    return best


def ending(cont: list[int], rule: StopRule, tok: Any, eos: int | None) -> Ending:
    """Cut generated tokens where the first stop (EOS, stop id or stop string) happened."""
    ends = set(rule.token_ids) | ({eos} if eos is not None else set())
    cut = next((i + 1 for i, t in enumerate(cont) if t in ends), len(cont))
    tokens = cont[:cut]
    text = tok.decode(tokens, skip_special_tokens=True)
    hit = first_stop(text, rule.strings)
    if hit is not None:
        tokens = _shortest_stopped(tokens, rule.strings, tok)
        text = tok.decode(tokens, skip_special_tokens=True)
        at, s = first_stop(text, rule.strings) or hit  # the search keeps a prefix holding one
        return Ending(tokens, text[: at + len(s) if rule.include_string else at], "stop", s)
    if tokens and tokens[-1] in ends:
        return Ending(tokens, text, "stop", None if tokens[-1] == eos else tokens[-1])
    return Ending(tokens, text, "length", None)


def _shortest_stopped(tokens: list[int], strings: Sequence[str], tok: Any) -> list[int]:
    """The shortest prefix whose text holds a stop string (binary search: found in the whole)."""
    lo, hi = 1, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if first_stop(tok.decode(tokens[:mid], skip_special_tokens=True), strings) is None:
            lo = mid + 1
        else:
            hi = mid
    return tokens[:hi]


class StopWatch(StoppingCriteria):
    """Ends each generated row at its first stop id or stop string; records its length.

    Only a window of recent tokens is decoded per step: a token stands for at least one byte of
    text (skipped special tokens aside), so a stop string of B UTF-8 bytes completed by the
    newest token lies within its last B + 1 tokens; the window is B + 4.
    """

    def __init__(self, rule: StopRule, tok: Any, prompt_len: int, eos: int | None) -> None:
        super().__init__()
        self.rule, self.tok, self.prompt_len, self.eos = rule, tok, prompt_len, eos
        longest = max((len(s.encode("utf-8")) for s in rule.strings), default=0)
        self.window = longest + 4
        self.ended: dict[int, int] = {}

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        for row in range(input_ids.shape[0]):
            if row not in self.ended:
                gen = input_ids[row, self.prompt_len :].tolist()
                if self._stops(gen):
                    self.ended[row] = len(gen)
        done = [row in self.ended for row in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _stops(self, gen: list[int]) -> bool:
        if not gen or (self.eos is not None and self.eos in gen):
            return False  # EOS ends a row by itself; what follows it is padding
        if gen[-1] in self.rule.token_ids:
            return True
        if not self.rule.strings:
            return False
        tail = self.tok.decode(gen[-self.window :], skip_special_tokens=True)
        return first_stop(tail, self.rule.strings) is not None
