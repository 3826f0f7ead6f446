"""A training state as named tensors: model parameters plus optimiser state, by parameter name.

`param/<name>` holds each parameter (tied weights appear once, under their first name);
`opt/<name>/<key>` each optimiser state entry (AdamW: step, exp_avg, exp_avg_sq). Keyed by
name rather than by position so that a checkpoint means the same thing to any reader.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

PARAM = "param/"
OPT = "opt/"


def capture_state(
    model: torch.nn.Module, opt: torch.optim.Optimizer | None
) -> dict[str, torch.Tensor]:
    """Copy the parameters and the optimiser state of `model` into a flat dict of tensors."""
    out = {PARAM + n: p.detach().clone() for n, p in model.named_parameters()}
    if opt is None:
        return out
    for name, p in model.named_parameters():
        for key, value in opt.state.get(p, {}).items():
            out[f"{OPT}{name}/{key}"] = torch.as_tensor(value).detach().clone()
    return out


def restore_state(
    model: torch.nn.Module, opt: torch.optim.Optimizer | None, state: Mapping[str, torch.Tensor]
) -> None:
    """Load a captured state into `model` (and `opt`); every parameter must be present."""
    named = dict(model.named_parameters())
    missing = [n for n in named if PARAM + n not in state]
    if missing:
        raise KeyError(f"state lacks parameters {missing[:3]}")
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(state[PARAM + n])
    if opt is None:
        return
    opt.state.clear()
    for key, value in state.items():
        if not key.startswith(OPT):
            continue
        name, _, entry = key[len(OPT):].rpartition("/")
        opt.state[named[name]][entry] = value.detach().clone()


def parameters_of(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the parameters of a captured state, by parameter name."""
    return {k[len(PARAM):]: v for k, v in state.items() if k.startswith(PARAM)}


def flat_parameters(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All parameters of a state as one float64 vector, in name order."""
    params = parameters_of(state)
    return torch.cat([params[n].reshape(-1).double() for n in sorted(params)])


def parameter_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """The l2 distance between the parameters of two states (float64 accumulation)."""
    return float(torch.linalg.vector_norm(flat_parameters(a) - flat_parameters(b)))
