"""Train a GPT-2-style causal LM from scratch on a text corpus with accelerate; save in HF format."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class TrainConfig:
    """Model size and optimisation settings; the defaults train in about a minute on 2 CPU cores."""

    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    block_size: int = 64
    epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    path: str
    parameters: int
    tokens_per_epoch: int
    steps: int
    final_loss: float
    seconds: float


def pack_blocks(texts: Sequence[str], tokenizer: Any, block_size: int) -> torch.Tensor:
    """Concatenate documents with EOS between them and cut into (n, block_size) blocks."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer.encode(t, add_special_tokens=False))
        ids.append(eos)
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"corpus of {len(ids)} tokens is shorter than one block of {block_size}")
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


def pretrained(init_from: str | Path, config: TrainConfig) -> Any:
    """A checkpoint to fine-tune, in float32 (no mixed precision is configured); its context
    must hold a block of `config.block_size`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(init_from), dtype=torch.float32)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and config.block_size > context:
        raise ValueError(f"block_size {config.block_size} exceeds {init_from}'s context {context}")
    return model


def train_causal_lm(
    texts: Sequence[str],
    tokenizer: Any,
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    desc: str = "training",
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train from scratch and save model + tokenizer to `out_dir` (a transformers directory).

    With `init_from` (a transformers folder or hub id; `tokenizer` must be its tokenizer) the
    checkpoint is fine-tuned instead of a fresh model (the size fields of `config` are unused).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import GPT2Config, GPT2LMHeadModel, get_linear_schedule_with_warmup

    set_seed(config.seed)
    t0 = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    blocks = pack_blocks(texts, tokenizer, config.block_size)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.block_size * 2,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        loss_type="ForCausalLM",
    )
    model = GPT2LMHeadModel(cfg) if init_from is None else pretrained(init_from, config)
    gen = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(blocks, batch_size=config.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * len(loader)
    sched = get_linear_schedule_with_warmup(opt, config.warmup_steps, total)
    model, opt, loader, sched = accelerator.prepare(model, opt, loader, sched)
    model.train()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="step")
    loss_value = float("nan")
    for _ in range(config.epochs):
        for batch in loader:
            loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
            accelerator.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
            loss_value = float(loss.detach())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
    if bar is not None:
        bar.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out)
    tokenizer.save_pretrained(out)
    result = TrainResult(
        path=str(out),
        parameters=sum(p.numel() for p in unwrapped.parameters()),
        tokens_per_epoch=int(blocks.numel()),
        steps=total,
        final_loss=loss_value,
        seconds=time.time() - t0,
    )
    (out / "tdp_training.json").write_text(
        json.dumps({"config": asdict(config), "result": asdict(result)}, indent=1) + "\n"
    )
    return result
