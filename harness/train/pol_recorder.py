"""Write a proof-of-learning log while `train_causal_lm` runs (format: `harness.train.pol`)."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from canaries.files import check_new_output, clean_leftovers, new_tmp_dir, swap_in_dir
from harness.train.pol import (
    DATA_FILE,
    TOKENIZER_DIR,
    CheckpointRecord,
    DataRecord,
    PoLError,
    PoLLog,
    PoLOptions,
    StepRecord,
    checkpoint_file,
    document_spans,
    save_tensors,
    write_log,
)
from harness.train.state import capture_state


def environment(device: str) -> dict[str, Any]:
    """What a replay must match to be bit-exact: library versions, device, thread count."""
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": device,
        "threads": torch.get_num_threads(),
    }


class PoLRecorder:
    """Builds a log in a hidden folder and moves it into place only once training finished."""

    def __init__(
        self,
        options: PoLOptions,
        header: dict[str, Any],
        blocks: torch.Tensor,
        documents: Sequence[tuple[str, int]],
        tokenizer: Any,
    ) -> None:
        """`header`: model, loss, optimizer, schedule, batch_size; `documents`: (text, tokens)."""
        if int(options.checkpoint_every) < 1:
            raise PoLError(f"checkpoint_every must be >= 1, got {options.checkpoint_every}")
        self.final = Path(options.directory)
        check_new_output(self.final, options.force, "PoL log folder")
        clean_leftovers(self.final)
        self.tmp = new_tmp_dir(self.final)
        self.options, self.header = options, header
        tokenizer.save_pretrained(self.tmp / TOKENIZER_DIR)
        self.steps: list[StepRecord] = []
        self.checkpoints: list[CheckpointRecord] = []
        spans = document_spans([n for _, n in documents])
        self.data = DataRecord(
            file=DATA_FILE,
            sha256=save_tensors(self.tmp / DATA_FILE, {"blocks": blocks.cpu()}),
            blocks=int(blocks.shape[0]),
            block_size=int(blocks.shape[1]),
            documents=tuple(spans),
            document_sha256=tuple(hashlib.sha256(t.encode()).hexdigest() for t, _ in documents),
        )

    def checkpoint(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        step = len(self.steps)
        if self.checkpoints and self.checkpoints[-1].step == step:
            return
        name = checkpoint_file(step)
        digest = save_tensors(self.tmp / name, capture_state(model, opt))
        self.checkpoints.append(CheckpointRecord(step, name, digest))

    def record(self, lr: float, batch: torch.Tensor, model: torch.nn.Module, opt: Any) -> None:
        """Note one finished step; checkpoint after every k-th."""
        self.steps.append(StepRecord(float(lr), tuple(int(i) for i in batch.tolist())))
        if len(self.steps) % self.options.checkpoint_every == 0:
            self.checkpoint(model, opt)

    def finish(self, model: torch.nn.Module, opt: torch.optim.Optimizer, device: str) -> PoLLog:
        self.checkpoint(model, opt)
        log = PoLLog(
            **self.header,
            checkpoint_every=int(self.options.checkpoint_every),
            data=self.data,
            steps=tuple(self.steps),
            checkpoints=tuple(self.checkpoints),
            environment=environment(device),
            provenance={"kind": "trained"},
        )
        write_log(log, self.tmp)
        swap_in_dir(self.tmp, self.final, force=self.options.force, what="PoL log folder")
        return log.with_root(self.final)
