"""What `tdp serve` accepts: resource limits, and strict readers for a request's body and fields.

Every check here is cheap and runs before any tokenizing or model work; each failure is a
RequestError carrying a 4xx status and a one-line message (OpenAI's error shape is made in
harness/serve/server.py). JSON is parsed strictly: `NaN`, `Infinity` and numbers that overflow to
infinity are refused (Python's json module accepts them by default), and so is nesting deep
enough to exhaust the parser's recursion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class RequestError(ValueError):
    """A request the server refuses; carries the HTTP status (4xx unless the server is busy)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: vLLM's bound for `seed` (a signed 64-bit integer), see its CompletionRequest
SEED_MIN, SEED_MAX = -(1 << 63), (1 << 63) - 1
#: prompts the openai backend sends per request by default; scales the default token budget
CLIENT_BATCH = 16
#: a body gets BODY_GRACE_S plus one second per BODY_MIN_RATE bytes, up to body_timeout_s
#: (Apache mod_reqtimeout's rule, `RequestReadTimeout body=20,MinRate=500`)
BODY_GRACE_S, BODY_MIN_RATE = 5.0, 32 << 10
#: normalizers may shrink text before it is split: NFC composes at most 3 bytes into 1
#: (conjoining Hangul jamo, 9 bytes -> one 3-byte syllable); 4 leaves a margin
NORMALIZER_SLACK = 4


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on one request and on the server's connections; defaults suit a loopback audit.

    max_request_tokens 0 means CLIENT_BATCH full contexts (16 x max_model_len): every batch
    the openai backend sends by default fits. Timeouts are wall-clock budgets for a whole
    phase, not per read, so a client trickling a byte at a time cannot extend them.
    """

    max_body_bytes: int = 16 << 20
    max_prompts: int = 256
    max_request_tokens: int = 0
    max_connections: int = 128
    max_queue: int = 16
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    send_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for key in ("max_body_bytes", "max_prompts", "max_connections", "max_queue"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"serve limit {key} must be >= 1")
        if self.max_request_tokens < 0:
            raise ValueError("serve limit max_request_tokens must be >= 0 (0: automatic)")
        for key in ("header_timeout_s", "body_timeout_s", "send_timeout_s"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"serve limit {key} must be > 0")

    def body_deadline_s(self, length: int) -> float:
        """Seconds a body of `length` bytes may take to arrive: small bodies get little time."""
        return min(self.body_timeout_s, BODY_GRACE_S + length / BODY_MIN_RATE)

    def request_tokens(self, max_model_len: int) -> int:
        """The token budget of one request (prompt tokens plus n x max_tokens, all prompts)."""
        return self.max_request_tokens or CLIENT_BATCH * max_model_len


def content_length(headers: Any, limit: int) -> int:
    """The body length a request declares, checked before a byte of it is read."""
    if headers.get("Transfer-Encoding"):
        raise RequestError("chunked request bodies are not accepted; send Content-Length", 411)
    values = headers.get_all("Content-Length") or []
    if not values:
        raise RequestError("a POST needs a Content-Length header", 411)
    if len(set(values)) > 1 or not values[0].strip().isdigit() or not values[0].isascii():
        raise RequestError(f"invalid Content-Length {', '.join(values)[:40]!r}")
    length = int(values[0])
    if length > limit:
        raise RequestError(f"request body of {length} bytes exceeds the limit of {limit}", 413)
    return length


def _refuse_constant(name: str) -> float:
    raise RequestError(f"body is not strict JSON: {name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"body is not strict JSON: {text[:20]} overflows a float")
    return value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A strict JSON object from a UTF-8 body; RequestError (400) for anything else."""
    try:
        body = json.loads(raw or b"{}", parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise RequestError("body is not JSON the server parses: nested too deeply") from None
    except RequestError:
        raise
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise RequestError(f"body is not JSON: {str(e)[:200]}") from None
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    return body


def int_field(body: Mapping[str, Any], key: str, default: int | None, lo: int, hi: int) -> Any:
    """An integer field (not a bool, not a float) in lo..hi; null or absent gives the default."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(f"{key} must be an integer in {lo}..{hi}")
    return value


def bool_field(body: Mapping[str, Any], key: str, default: bool) -> bool:
    """A boolean field; null or absent gives the default."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{key} must be true or false")
    return value


def number_field(body: Mapping[str, Any], key: str, default: float, lo: float) -> float:
    """A finite number >= lo; null or absent gives the default."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{key} must be a number")
    value = float(value)
    if not math.isfinite(value) or value < lo:
        raise RequestError(f"{key} must be a finite number >= {lo}")
    return value


def token_ids(value: Any, vocab: int, what: str, limit: int) -> list[int]:
    """A non-empty list of at most `limit` token ids in 0..vocab-1 (length checked first)."""
    if not isinstance(value, list) or not value:
        raise RequestError(f"{what} must be a non-empty list of token ids")
    if len(value) > limit:
        raise RequestError(f"{what} has {len(value)} tokens; the limit is {limit}")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < vocab:
            raise RequestError(f"token ids must be integers in 0..{vocab - 1}")
    return value


def max_token_bytes(tokenizer: Any) -> int:
    """The most UTF-8 bytes of text one token can stand for, read off the vocabulary.

    Vocabulary strings never encode shorter than the text they decode to (byte-level BPE
    maps each byte to a 1-2 byte character; SentencePiece writes a space as 3-byte U+2581),
    so a prompt of B bytes has at least B / (this x NORMALIZER_SLACK) tokens: a bound safe
    to check before tokenizing. Added special tokens are in the vocabulary too. Tokenizers
    whose normalizer deletes characters (accent stripping) are outside this bound.
    """
    vocab = tokenizer.get_vocab()
    return max((len(piece.encode("utf-8", "surrogatepass")) for piece in vocab), default=1)
