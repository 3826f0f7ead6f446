"""`openai` backend: teacher-forced scoring through any OpenAI-compatible completions server.

Spec: `openai:<base URL ending in /v1>/<served model name>[,key=value...]`, for example
`openai:http://127.0.0.1:8000/v1/meta-llama/Llama-3.2-1B,tokenizer=./tok,concurrency=8`.
Everything after the first `/v1/` is the served model name, verbatim (a name that starts with
"/", as `vllm serve /abs/path` and `tdp serve hf:/abs/path` name a local model, takes a double
slash: `openai:http://127.0.0.1:8000/v1//abs/path`); with the URL ending in `/v1` the server's
only model is used. The API key is read from the environment variable named by
`api_key_env` (default OPENAI_API_KEY) and is never logged, fingerprinted or reported.

Scoring posts token-id prompts (our tokenizer, scoring prefix in front, never re-tokenized by
the server) to `/v1/completions` with `echo=true, logprobs=1, max_tokens=1, temperature=0`
and reads `choices[i].logprobs.token_logprobs`: entry 0 is null (no log-prob for the first
token), entries 1..len-1 are the prompt's, then at most one generated token. With
`prompt_logprobs=true` (vLLM servers) it also asks for vLLM's `prompt_logprobs` and
`return_token_ids` and reads each position by token id, checking the server scored exactly
the ids sent. Response format as in vLLM 0.24 `entrypoints/openai/completion` and its docs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from canaries.tokenizer_identity import tokenizer_digest, tokenizer_match
from harness.backends.base import BackendError, Fingerprint, ModelIdentity
from harness.backends.encoding import load_tokenizer, scoring_ids, scoring_prefix_id
from harness.backends.http_client import JsonClient
from harness.backends.spec import ModelSpec
from harness.backends.tensor_digest import SCHEME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenAISettings:
    """Client settings; those that can change a log-prob go into the fingerprint."""

    tokenizer: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = 16
    concurrency: int = 4
    max_retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 300.0
    prompt_logprobs: bool = False
    check_tokenizer: bool = True

    def __post_init__(self) -> None:
        for key in ("batch_size", "concurrency"):
            if int(getattr(self, key)) < 1:
                raise BackendError(f"openai backend option {key} must be >= 1")
        if int(self.max_retries) < 0 or float(self.backoff_s) < 0 or float(self.timeout_s) <= 0:
            raise BackendError("openai backend: max_retries, backoff_s >= 0 and timeout_s > 0")


def split_endpoint(url: str) -> tuple[str, str | None]:
    """`http://h:8000/v1/org/model` -> (`http://h:8000/v1`, `org/model`); no name -> None.

    The name is everything after the first `/v1/`, verbatim, so a name that starts with "/"
    (the default name `vllm serve` and `tdp serve` give a local path) is written with a double
    slash: `http://h:8000/v1//abs/path/model` -> `/abs/path/model`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(
            f"openai backend needs an http(s) URL ending in /v1[/model], got {url!r}"
        )
    if parts.username or parts.password:
        raise BackendError(
            "no credentials in the URL (it is written into reports); use api_key_env"
        )
    segments = parts.path.split("/")
    if "v1" not in segments:
        raise BackendError(
            f"openai backend URL {url!r} has no /v1 path (e.g. http://host:8000/v1/model)"
        )
    cut = segments.index("v1") + 1
    base_path, name = "/".join(segments[:cut]), "/".join(segments[cut:]) or None
    return urlunsplit((parts.scheme, parts.netloc, base_path, "", "")), name


def public_url(url: str) -> str:
    """The URL without user info or query, fit for fingerprints and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def echo_token_logprobs(prompt_ids: Sequence[int], choice: dict[str, Any]) -> np.ndarray:
    """Prompt log-probs from an echoed choice: `token_logprobs[1:len(prompt)]`, lengths checked."""
    lp = (choice.get("logprobs") or {}).get("token_logprobs")
    if lp is None:
        raise BackendError(
            "server returned no logprobs.token_logprobs (does it support echo + logprobs?)"
        )
    n = len(prompt_ids)
    if not n <= len(lp) <= n + 1:
        raise BackendError(
            f"server returned {len(lp)} log-probs for a prompt of {n} tokens plus at most one "
            "generated; it does not echo prompt log-probs (some return generated tokens only)"
        )
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if tokens is not None and len(tokens) != len(lp):
        raise BackendError(f"server returned {len(tokens)} tokens but {len(lp)} log-probs")
    if lp[0] is not None:
        raise BackendError("server returned a log-prob for the first prompt token; expected null")
    body = lp[1:n]
    if any(x is None for x in body):
        raise BackendError("server returned null log-probs inside the prompt")
    return np.asarray(body, dtype=np.float64)


def vllm_prompt_logprobs(prompt_ids: Sequence[int], choice: dict[str, Any]) -> np.ndarray:
    """Prompt log-probs from vLLM's `prompt_logprobs` extension, read by token id."""
    got_ids = choice.get("prompt_token_ids")
    if got_ids is not None and list(got_ids) != list(prompt_ids):
        raise BackendError(
            f"server scored a prompt of {len(got_ids)} tokens that differs from the "
            f"{len(prompt_ids)} sent"
        )
    pl = choice.get("prompt_logprobs")
    if pl is None:
        raise BackendError("server returned no prompt_logprobs (is it a vLLM server?)")
    if len(pl) != len(prompt_ids):
        raise BackendError(
            f"server returned {len(pl)} prompt log-prob positions for a prompt of "
            f"{len(prompt_ids)} tokens"
        )
    if pl[0]:
        raise BackendError("server returned a log-prob for the first prompt token; expected null")
    out = np.empty(len(prompt_ids) - 1, dtype=np.float64)
    for pos in range(1, len(prompt_ids)):
        entry = pl[pos] or {}
        hit = entry.get(str(prompt_ids[pos]))
        if hit is None:
            raise BackendError(
                f"prompt_logprobs at position {pos} lack prompt token {prompt_ids[pos]}"
            )
        out[pos - 1] = hit["logprob"]
    return out


class OpenAIBackend:
    """Scores and generates through `/v1/completions` of an OpenAI-compatible server."""

    name = "openai"

    def __init__(self, url: str, revision: str | None = None, **options: Any) -> None:
        if revision is not None:
            raise BackendError(
                f"openai backend: the server decides what it serves; drop @{revision} from the "
                "spec (a free-text revision would let anyone re-draw the audit seed)"
            )
        if "api_key" in options:
            raise BackendError(
                "never put an API key in a model spec; set api_key_env=NAME of an env var"
            )
        try:
            self.settings = OpenAISettings(**options)
        except (TypeError, ValueError) as e:
            allowed = sorted(OpenAISettings.__dataclass_fields__)
            raise BackendError(f"openai backend options: {e}; allowed {allowed}") from e
        base, served = split_endpoint(url)
        s = self.settings
        self.client = JsonClient(base, s.api_key_env, s.timeout_s, s.max_retries, s.backoff_s)
        self.base_url, self.revision = base, revision
        self.server_model = model_card(self.client, served)
        self._tokenizer_digest: str | None = None
        self.model_id = str(self.server_model["id"])
        self.tokenizer = load_tokenizer(s.tokenizer or self.model_id)
        self.prefix_id = scoring_prefix_id(self.tokenizer)
        # the prompt plus the one generated token must fit the server's context
        self.max_length = int(self.server_model.get("max_model_len") or 1 << 30) - 1
        if s.check_tokenizer:
            self._check_tokenizer()

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIBackend:
        return cls(spec.model, spec.revision, **spec.options)

    # --- server discovery ----------------------------------------------------------------
    def _check_tokenizer(self) -> None:
        """Compare tokenizers where the server names its own (tdp serve) or tokenizes (vLLM)."""
        tdp = self.server_model.get("tdp") or {}
        served = self._served_identity()
        claimed = served.tokenizer if served is not None else tdp.get("tokenizer_sha256")
        # older tdp servers publish the legacy digest (the raw serialisation): accept either
        if claimed is not None and tokenizer_match(self.tokenizer, claimed) is None:
            raise BackendError(
                f"local tokenizer differs from the one {self.model_id!r} is served with (sha256 "
                f"{claimed[:12]}…); pass tokenizer=PATH of the model's own tokenizer"
            )
        probe = "Tokenizer check: 0123 ÄÖ ünïcode, tabs\tand  spaces."
        reply = self.client.post_optional(
            "/tokenize",
            {"model": self.model_id, "prompt": probe, "add_special_tokens": False},
            root=True,
        )
        if reply is not None and "tokens" in reply:
            mine = [int(i) for i in self.tokenizer.encode(probe, add_special_tokens=False)]
            if list(reply["tokens"]) != mine:
                raise BackendError(
                    f"local tokenizer and the server's tokenize the probe text differently for "
                    f"{self.model_id!r}; pass tokenizer=PATH of the served model's tokenizer"
                )

    # --- scoring -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` with the scoring prefix (BOS, else EOS) in front."""
        return scoring_ids(self.tokenizer, text, self.prefix_id, self.max_length)

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log-probs of each text; requests run `concurrency` at a time."""
        encoded = [self.encode(t) for t in texts]
        bs = self.settings.batch_size
        batches = [encoded[i : i + bs] for i in range(0, len(encoded), bs)]
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            scored = list(pool.map(self._score_batch, batches))
        return [lp.astype(np.float32) for batch in scored for lp in batch]

    def _score_batch(self, batch: list[list[int]]) -> list[np.ndarray]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "prompt": batch,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        if self.settings.prompt_logprobs:
            body.update(prompt_logprobs=0, return_token_ids=True)
        choices = self._choices(self.client.post("/completions", body), len(batch))
        read = vllm_prompt_logprobs if self.settings.prompt_logprobs else echo_token_logprobs
        return [read(ids, c) for ids, c in zip(batch, choices, strict=True)]

    @staticmethod
    def _choices(reply: dict[str, Any], expected: int) -> list[dict[str, Any]]:
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != expected:
            raise BackendError(f"server returned {len(choices)} choices, expected {expected}")
        return choices

    # --- generation ----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """Greedy (temperature 0) or sampled continuations; choices come prompt-major.

        Greedy asks for one choice per prompt and repeats it n times: vLLM's server refuses
        n > 1 at temperature 0, and greedy decoding has one answer.
        """
        if max_new_tokens < 1 or n < 1 or temperature < 0:
            raise BackendError("generate needs max_new_tokens >= 1, n >= 1 and temperature >= 0")
        encoded = [self.encode(p) for p in prompts]
        bs = self.settings.batch_size
        batches = [encoded[i : i + bs] for i in range(0, len(encoded), bs)]
        asked = n if temperature > 0 else 1

        def run(batch: list[list[int]]) -> list[list[str]]:
            body: dict[str, Any] = {
                "model": self.model_id,
                "prompt": batch,
                "n": asked,
                "max_tokens": max_new_tokens,
                "temperature": float(temperature),
                "top_p": 1.0,
            }
            if temperature > 0:
                body["seed"] = seed
            choices = self._choices(self.client.post("/completions", body), len(batch) * asked)
            rows = [
                [c.get("text", "") for c in choices[i * asked : (i + 1) * asked]]
                for i in range(len(batch))
            ]
            return rows if asked == n else [row * n for row in rows]

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return [row for rows in pool.map(run, batches) for row in rows]

    # --- identity ------------------------------------------------------------------------
    def _served_identity(self) -> ModelIdentity | None:
        """The identity the server publishes, if it is one this client can compare."""
        ident = card_identity(self.server_model)
        if ident is not None and ident.scheme != SCHEME:
            log.warning("server's identity scheme %s is not %s: unused", ident.scheme, SCHEME)
            return None
        return ident

    def fingerprint(self) -> Fingerprint:
        """The server's published identity (tdp serve) with the local tokenizer's digest; a
        server that publishes none leaves weights and identity scheme unset."""
        served = dict(self.server_model.get("tdp") or {})
        keep = ("batch_size", "concurrency", "prompt_logprobs")
        settings: dict[str, Any] = {k: v for k, v in asdict(self.settings).items() if k in keep}
        settings.update(
            base_url=public_url(self.base_url),
            scoring_prefix_id=self.prefix_id,
            max_tokens=1,
            temperature=0.0,
        )
        if served:
            settings["server"] = served
        ident = self._served_identity()
        if self._tokenizer_digest is None:  # state-free, so computed once
            self._tokenizer_digest = tokenizer_digest(self.tokenizer)
        return Fingerprint(
            backend=self.name,
            model=self.model_id,
            revision=served.get("revision"),
            weights_sha256=ident.weights if ident else served.get("weights_sha256"),
            dtype=str(served.get("dtype", "unknown")),
            tokenizer_sha256=self._tokenizer_digest,
            versions={},
            settings=settings,
            identity_scheme=SCHEME if ident else None,
        )


def model_card(client: JsonClient, served: str | None) -> dict[str, Any]:
    """The /v1/models entry of the served model (the only one when `served` is None)."""
    data = client.get("/models").get("data") or []
    ids = [m.get("id") for m in data]
    if served is None:
        if len(data) != 1:
            raise BackendError(f"server at {client.shown_url} serves {ids}; name one in the URL")
        return dict(data[0])
    for m in data:
        if m.get("id") == served:
            return dict(m)
    loose = [m for m in data if m.get("id") == served.rstrip("/")]
    if len(loose) == 1:  # specs written before names were read verbatim: `.../v1/org/model/`
        return dict(loose[0])
    raise BackendError(f"server at {client.shown_url} does not serve {served!r}; it serves {ids}")


def served_identity(spec: ModelSpec) -> ModelIdentity | None:
    """The identity an OpenAI-compatible server publishes for the served model, if any."""
    try:
        s = OpenAISettings(**spec.options)
    except (TypeError, ValueError) as e:
        raise BackendError(f"openai backend options: {e}") from e
    base, served = split_endpoint(spec.model)
    client = JsonClient(base, s.api_key_env, s.timeout_s, s.max_retries, s.backoff_s)
    return card_identity(model_card(client, served))


def card_identity(card: dict[str, Any]) -> ModelIdentity | None:
    """The identity in a /v1/models entry (`tdp.identity`), or None when it has none."""
    raw = (card.get("tdp") or {}).get("identity")
    return None if raw is None else ModelIdentity.from_dict(raw)
