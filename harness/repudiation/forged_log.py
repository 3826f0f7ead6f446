"""Write what the forger produced: a PoL log for D minus the targets, and the rebuilt model.

The forged log keeps the original checkpoints (it claims the deployed model, as a PoR must)
and replaces the minibatches of the steps that held a target. Its data file holds only the
blocks of D' = D minus the targets' blocks, so the log never contains a target; the steps
index into that file. Document spans are dropped (they described the original stream).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from canaries.files import clean_leftovers, new_tmp_dir, swap_in_dir
from harness.repudiation.forge import Forgery
from harness.repudiation.replay import State
from harness.train.pol import (
    DATA_FILE,
    DataRecord,
    PoLLog,
    StepRecord,
    load_blocks,
    save_tensors,
    write_log,
)
from harness.train.state import restore_state


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_forged_log(
    log: PoLLog, forgery: Forgery, out: Path, provenance: dict[str, Any], force: bool = False
) -> PoLLog:
    """Write the forged log folder `out` (complete or not at all); returns it, loaded."""
    blocks = load_blocks(log)
    keep = [i for i in range(int(blocks.shape[0])) if i not in forgery.removed]
    new_index = {old: new for new, old in enumerate(keep)}
    clean_leftovers(out)
    tmp = new_tmp_dir(out)
    try:
        data = DataRecord(
            file=DATA_FILE,
            sha256=save_tensors(tmp / DATA_FILE, {"blocks": blocks[keep]}),
            blocks=len(keep),
            block_size=int(blocks.shape[1]),
        )
        steps = tuple(StepRecord(s.lr, tuple(new_index[i] for i in s.batch)) for s in forgery.steps)
        for c in log.checkpoints:
            _link_or_copy(log.checkpoint_path(c), tmp / c.file)
        shutil.copytree(log.root / log.tokenizer, tmp / log.tokenizer)
        forged = PoLLog(
            model=log.model, loss=log.loss, optimizer=log.optimizer, schedule=log.schedule,
            batch_size=log.batch_size, checkpoint_every=log.checkpoint_every, data=data,
            steps=steps, checkpoints=log.checkpoints, tokenizer=log.tokenizer,
            environment=log.environment, provenance={"kind": "forged", **provenance},
        )
        write_log(forged, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_in_dir(tmp, out, force, "forged log folder")
    return forged.with_root(out)


def save_model(log: PoLLog, state: State, out: Path, tokenizer: Any) -> Path:
    """Save a replayed state as a transformers model folder (for scoring and audits)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(**log.model["config"]))
    restore_state(model, None, state)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def state_tensor_count(state: State) -> int:
    return sum(int(v.numel()) for k, v in state.items() if k.startswith("param/"))
