"""Replay training steps: the one place where a logged step is recomputed.

A `Run` is what a verifier or a forger sees of a training run: how to build the model and
optimiser, the loss of a minibatch named by data indices, the per-step records, and the
checkpointed states. `run_from_log` makes one from a PoL log; tests build small ones by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.train.pol import PoLError, PoLLog, StepRecord, load_blocks, load_tensors
from harness.train.state import capture_state, restore_state

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Problem:
    """How to rebuild a training step: model, optimiser, and the loss of data indices."""

    make_model: Callable[[], torch.nn.Module]
    make_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    loss: Callable[[torch.nn.Module, Sequence[int]], torch.Tensor]


@dataclass(frozen=True)
class Run:
    """A logged run: its steps, data size, and checkpointed states (loaded on demand)."""

    problem: Problem
    steps: tuple[StepRecord, ...]
    n_points: int
    batch_size: int
    checkpoint_steps: tuple[int, ...]
    load_state: Callable[[int], State]

    def segments(self) -> list[tuple[int, int]]:
        """(start, end) step pairs between consecutive checkpoints."""
        c = self.checkpoint_steps
        return list(zip(c[:-1], c[1:], strict=True))


class Replayer:
    """One model and optimiser that states are loaded into and steps are replayed on."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.model = problem.make_model()
        self.model.train()
        self.opt = problem.make_optimizer(self.model.parameters())
        self.gradient_evaluations = 0

    def load(self, state: State) -> None:
        restore_state(self.model, self.opt, state)

    def state(self) -> State:
        return capture_state(self.model, self.opt)

    def _backward(self, batch: Sequence[int], micro_batches: int) -> None:
        """Accumulate the minibatch gradient, in up to `micro_batches` parts (another summation
        order, as other hardware would have: the mean is the same, the rounding is not)."""
        parts = _split(batch, micro_batches)
        for part in parts:
            loss = self.problem.loss(self.model, part)
            (loss * (len(part) / len(batch)) if len(parts) > 1 else loss).backward()
        self.gradient_evaluations += 1

    def step(self, record: StepRecord, micro_batches: int = 1) -> None:
        """One optimiser step on `record.batch` at `record.lr`."""
        for group in self.opt.param_groups:
            group["lr"] = record.lr
        self._backward(record.batch, micro_batches)
        self.opt.step()
        self.opt.zero_grad()

    def gradient(self, batch: Sequence[int]) -> torch.Tensor:
        """The flat minibatch gradient at the current parameters (parameters unchanged)."""
        self.opt.zero_grad()
        self._backward(batch, 1)
        grads = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for _, p in sorted(self.model.named_parameters())
        ]
        self.opt.zero_grad()
        return torch.cat(grads).double()


def _split(batch: Sequence[int], parts: int) -> list[list[int]]:
    """`batch` cut into min(parts, len) contiguous pieces of near-equal size. The loss is a
    mean over tokens and every block has the same length, so piece means weighted by piece
    size give the whole batch's mean."""
    if parts < 1:
        raise ValueError(f"micro-batch count must be >= 1, got {parts}")
    parts = min(parts, len(batch))
    bounds = [round(i * len(batch) / parts) for i in range(parts + 1)]
    return [list(batch[bounds[i] : bounds[i + 1]]) for i in range(parts)]


def replay(
    replayer: Replayer, start: State, steps: Sequence[StepRecord], micro_batches: int = 1
) -> State:
    """The state after replaying `steps` from `start`."""
    replayer.load(start)
    for record in steps:
        replayer.step(record, micro_batches)
    return replayer.state()


def gpt2_problem(log: PoLLog, blocks: torch.Tensor) -> Problem:
    """The problem a harness PoL log describes: GPT-2, causal-LM loss, AdamW."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.train.trainer import lm_loss

    if log.model.get("kind") != "gpt2" or log.loss != "causal-lm-mean":
        raise PoLError(f"unsupported model/loss in log: {log.model.get('kind')}/{log.loss}")
    o = log.optimizer
    if o.get("kind") != "adamw":
        raise PoLError(f"unsupported optimiser in log: {o.get('kind')!r}")

    def make_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            params, lr=0.0, betas=tuple(o["betas"]), eps=o["eps"],
            weight_decay=o["weight_decay"], amsgrad=o["amsgrad"],
        )

    def loss(model: Any, batch: Sequence[int]) -> torch.Tensor:
        return lm_loss(model, blocks[torch.as_tensor(list(batch), dtype=torch.long)])

    return Problem(lambda: GPT2LMHeadModel(GPT2Config(**log.model["config"])), make_optimizer, loss)


def run_from_log(log: PoLLog) -> Run:
    """A `Run` over a PoL log; checkpoints are read (and digest-checked) when first needed."""
    blocks = load_blocks(log)
    by_step = {c.step: c for c in log.checkpoints}

    def load_state(step: int) -> State:
        record = by_step[step]
        return load_tensors(log.checkpoint_path(record), record.sha256)

    return Run(
        problem=gpt2_problem(log, blocks),
        steps=log.steps,
        n_points=int(blocks.shape[0]),
        batch_size=log.batch_size,
        checkpoint_steps=tuple(sorted(by_step)),
        load_state=load_state,
    )
