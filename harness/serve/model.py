"""The served model: teacher-forced scoring and sampling, one model call at a time, cancellable.

Model calls take turns first come, first served (`ModelTurns`); a request whose client has
gone stops at the next forward-batch boundary when scoring, at the next generated token when
sampling, and leaves the queue within POLL_S while waiting for its turn: `should_stop` is
polled at each of those points.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria

from harness.serve.stop_rules import StopRule, StopWatch

POLL_S = 0.05
NO_STOP = StopRule()


def never() -> bool:
    return False


class Cancelled(Exception):
    """The request's client went away; its remaining model work was dropped."""


class ModelTurns:
    """A first-come-first-served lock whose waiters can give up (threading.Lock is not FIFO)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    @property
    def queue(self) -> int:
        """Model calls waiting for their turn."""
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self._held

    @contextmanager
    def turn(self, should_stop: Callable[[], bool] = never) -> Iterator[None]:
        """Hold the model for one call; Cancelled if should_stop() turns true while waiting."""
        mine = threading.Event()
        with self._mutex:
            if self._held:
                self._waiting.append(mine)
            else:
                self._held = True
                mine.set()
        while not mine.wait(POLL_S):
            if should_stop():
                with self._mutex:
                    if not mine.is_set():  # still queued: leave the queue
                        self._waiting.remove(mine)
                        raise Cancelled()
                break  # handed the turn meanwhile; hold and release it below
        try:
            if should_stop():
                raise Cancelled()
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()  # hand over; the lock stays held
            else:
                self._held = False


@dataclass(frozen=True)
class SeqScores:
    """Teacher-forced scores of one token sequence (positions 1..len-1) and of its next token."""

    logprobs: list[float]
    ranks: list[int]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]
    next_top_ids: list[int]
    next_top_logprobs: list[float]


class _StopWhen(StoppingCriteria):
    """Ends generation (every sequence) once should_stop() is true."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        super().__init__()
        self.should_stop, self.fired = should_stop, False

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        self.fired = self.fired or self.should_stop()
        return torch.full(
            (input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device
        )


class ScoringModel:
    """Token-id scoring and generation over a loaded HFBackend; one model call at a time."""

    def __init__(self, backend: Any, served_name: str, max_logprobs: int = 20) -> None:
        from harness.serve.limits import max_token_bytes

        self.backend, self.name, self.max_logprobs = backend, served_name, max_logprobs
        self.model, self.tokenizer = backend.model, backend.tokenizer
        self.vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self.max_model_len = int(backend.max_length)
        self.max_token_bytes = max_token_bytes(self.tokenizer)
        self.turns = ModelTurns()
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

    def score(
        self, seqs: list[list[int]], k: int, should_stop: Callable[[], bool] = never
    ) -> list[SeqScores]:
        """Right-padded batches as in the hf backend; one turn, should_stop between batches.

        One turn for all batches, not one each: a thread handover at every batch lowered
        requests/s under 4 concurrent clients (7-16% in paired runs of bench/serve_load.py).
        """
        out: list[SeqScores] = []
        bs = max(1, int(self.backend.batch_size))
        with self.turns.turn(should_stop), torch.inference_mode():
            for start in range(0, len(seqs), bs):
                if start and should_stop():
                    raise Cancelled()
                out.extend(self._score_batch(seqs[start : start + bs], k))
        return out

    def _score_batch(self, seqs: list[list[int]], k: int) -> list[SeqScores]:
        """fp32 log-softmax one row at a time, on the model's device."""
        width, dev = max(len(s) for s in seqs), self.backend.device
        ids = torch.full((len(seqs), width), self.backend.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, : len(s)], mask[row, : len(s)] = torch.tensor(s), 1
        logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        res = []
        for row, s in enumerate(seqs):
            logp = torch.log_softmax(logits[row, : len(s)].float(), dim=-1)
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

    def sample(
        self,
        prompt: list[int],
        max_tokens: int,
        n: int,
        temperature: float,
        seed: int | None,
        should_stop: Callable[[], bool] = never,
        rule: StopRule = NO_STOP,
    ) -> list[list[int]]:
        """n continuations of one prompt (greedy at temperature 0: one, repeated n times), each
        cut after its first EOS, stop token id or the token completing a stop string.

        One turn for the whole call: seeding and sampling must not interleave with another
        request's sampling. should_stop is checked after every generated token.
        """
        ids = torch.tensor([prompt], device=self.backend.device)
        sampled, stop = temperature > 0, _StopWhen(should_stop)
        eos = self.tokenizer.eos_token_id
        watch = StopWatch(rule, self.tokenizer, len(prompt), eos)
        with self.turns.turn(should_stop), torch.inference_mode():
            torch.manual_seed(0 if seed is None else seed)
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
                stopping_criteria=[stop, watch] if rule.active else [stop],
            )
        if stop.fired:
            raise Cancelled()
        conts = []
        for r, row in enumerate(out[:, len(prompt) :].tolist()):
            if r in watch.ended:
                row = row[: watch.ended[r]]
            elif eos is not None and eos in row:
                row = row[: row.index(eos) + 1]
            conts.append(row)
        return conts if sampled else [list(conts[0]) for _ in range(n)]
