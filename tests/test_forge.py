"""The PoR forger (Kong et al., Algorithm 2/3): its splits, a forged log never holding a target,
and Theorem 1 on a logistic-regression toy (the outlier cannot be forged, the others can)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from canaries.drbg import HashDRBG
from harness.repudiation.forge import (
    ForgeOptions,
    forge,
    forged_run,
    group_targets,
    merge_units,
    split_parts,
)
from harness.repudiation.replay import Problem, Replayer, Run
from harness.repudiation.verify import verify_run
from harness.train.pol import StepRecord


def test_splits_keep_groups_whole_and_parts_balanced():
    units = merge_units([frozenset({1, 2}), frozenset({2, 9}), frozenset({40, 41, 42})])
    assert sorted(map(sorted, units)) == [[1, 2, 9], [40, 41, 42]]
    part = split_parts(100, units, 4, HashDRBG(b"s" * 16, "t"))
    assert len({part[i] for i in (1, 2, 9)}) == 1 and len({part[i] for i in (40, 41, 42)}) == 1
    sizes = [part.count(k) for k in range(4)]
    assert max(sizes) - min(sizes) <= 3
    assert sorted(sum(group_targets(7, 3, 0), [])) == list(range(7))
    with pytest.raises(ValueError, match="kappa"):
        ForgeOptions(kappa=1)


# --- Theorem 1: logistic regression, SGD with batch size 1 -------------------------------------

def _toy(twins: int = 6, bases: int = 8) -> tuple[Run, torch.Tensor, torch.Tensor]:
    """Inliers on the plane x3 = 0, each with near-identical twins; one outlier off the plane."""
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(bases, 2, generator=gen, dtype=torch.float64)
    rows, labels = [], []
    for i in range(bases):
        for _ in range(twins):
            jitter = 1e-5 * torch.randn(2, generator=gen, dtype=torch.float64)
            rows.append(torch.cat([base[i] + jitter, torch.zeros(1, dtype=torch.float64)]))
            labels.append(float(i % 2))
    rows.append(torch.tensor([0.5, -0.3, 2.0], dtype=torch.float64))  # dist to the plane: 2
    labels.append(1.0)
    x, y = torch.stack(rows), torch.tensor(labels, dtype=torch.float64)

    def make_model() -> torch.nn.Module:
        m = torch.nn.Linear(3, 1, bias=False).double()
        torch.nn.init.zeros_(m.weight)
        return m

    def loss(model: torch.nn.Module, batch) -> torch.Tensor:  # noqa: ANN001
        idx = torch.as_tensor(list(batch))
        return F.binary_cross_entropy_with_logits(model(x[idx]).squeeze(-1), y[idx])

    problem = Problem(make_model, lambda p: torch.optim.SGD(p, lr=0.5), loss)
    order = list(range(len(x))) * 2
    HashDRBG(b"toy-order-seed!!", "order").shuffle(order)
    steps = tuple(StepRecord(0.5, (i,)) for i in order)
    replayer, states = Replayer(problem), []
    for record in steps:
        states.append(replayer.state())
        replayer.step(record)
    states.append(replayer.state())
    run = Run(problem, steps, len(x), 1, tuple(range(len(steps) + 1)), lambda t: states[t])
    return run, x, y


def test_theorem_1_the_outlier_cannot_be_forged_the_inliers_can():
    run, x, y = _toy()
    outlier = len(x) - 1
    inliers = [0, 7, 13, 20, 26, 33, 40, 47]
    groups = [frozenset({i}) for i in [outlier, *inliers]]
    forgeries, _ = forge(run, groups, ForgeOptions(kappa=4, mu=60, seed=1))
    tolerance = 1e-3  # per-step error lr * ||g' - g||; twins are 1e-5 apart, the outlier 2
    assert verify_run(run, tolerance).valid  # the honest run itself
    verdicts = [verify_run(forged_run(run, f), tolerance) for f in forgeries]
    assert not verdicts[0].valid
    assert all(v.valid for v in verdicts[1:]), [v.max_error for v in verdicts[1:]]
    # Theorem 1's bound at each step that held the outlier: |sigmoid(w.x1) - y1| dist(x1, plane)
    out = forgeries[0]
    assert len(out.forged_steps) == 2  # two epochs, one visit each
    for t, gap in zip(out.forged_steps, out.gradient_gaps, strict=True):
        w = run.load_state(t)["param/weight"].reshape(-1)
        bound = abs(torch.sigmoid(w @ x[outlier]) - y[outlier]) * 2.0
        assert gap >= float(bound) * (1 - 1e-9) > 0
    assert all(outlier not in s.batch for s in out.steps)


# --- the GPT-2 forger on a real PoL log ---------------------------------------------------------

@pytest.fixture(scope="module")
def canary_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A tiny model trained with PoL logging on docstrings with one canary planted 4 times."""
    from canaries.canary_set import Plan, new_canary_set
    from canaries.drbg import derive_seed
    from canaries.generators import words_spec
    from canaries.inject import inject_texts
    from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer
    from harness.train.pol import PoLOptions

    root = tmp_path_factory.mktemp("forge")
    docs = stdlib_docstrings(max_bytes=8_000)
    cs, _ = new_canary_set(words_spec(6), 1, Plan(counterfactuals=5), derive_seed("forge", "1"))
    injected, _ = inject_texts(docs, cs, 4, derive_seed("forge-inject", "1"))
    tok = train_tokenizer(docs, 300)
    cfg = TrainConfig(n_layer=1, n_embd=16, n_head=2, block_size=16, epochs=2, batch_size=8,
                      lr=5e-3, warmup_steps=3)
    train_causal_lm(injected, tok, cfg, root / "model", progress=False,
                    pol=PoLOptions(root / "pol", checkpoint_every=8))
    doc = next(t for t in injected[3:] if cs.canaries[0].text not in t)
    (root / "canary.txt").write_text(cs.canaries[0].text)
    (root / "doc.txt").write_text(doc)
    return root, cs.canaries[0].text, doc


def test_a_forged_log_never_contains_a_target(canary_log, tmp_path):
    from harness.cli import main
    from harness.repudiation.targets import contains, locate, log_tokenizer
    from harness.train.pol import load_blocks, load_log

    root, canary, doc = canary_log
    out = tmp_path / "por"
    r = CliRunner().invoke(main, ["repudiate", "--log", str(root / "pol"), "--target",
                                  str(root / "canary.txt"), "--target", str(root / "doc.txt"),
                                  "--mu", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    original = load_log(root / "pol")
    tok, blocks = log_tokenizer(original), load_blocks(original)
    summary = json.loads((out / "summary.json").read_text())
    assert [p["targets"] for p in summary["pors"]] == [[0], [1]]
    for por, text in zip(summary["pors"], (canary, doc), strict=True):
        forged = load_log(por["log"])
        data = load_blocks(forged)
        assert locate(blocks, tok, text).occurrences >= 1
        assert not contains(data, tok, text)
        assert locate(data, tok, text).blocks == frozenset()
        if text == canary:  # random words: not even 5 tokens of it in a row may remain
            ids = tok.encode(text, add_special_tokens=False)
            grams = {tuple(ids[i : i + 5]) for i in range(len(ids) - 4)}
            rows = data.tolist()
            assert not any(tuple(r[j : j + 5]) in grams for r in rows for j in range(len(r) - 4))
        assert forged.provenance["kind"] == "forged"
        assert len(por["forged_steps"]) > 0 and por["distance"] > 0
        removed = locate(blocks, tok, text).blocks
        held = [t for t, s in enumerate(original.steps) if removed & set(s.batch)]
        assert por["forged_steps"] == held  # exactly the steps that held the target
        assert (Path(por["model"]) / "config.json").exists()


def test_cli_repudiate_refuses_a_target_not_in_the_data(canary_log, tmp_path):
    from harness.cli import main

    root = canary_log[0]
    (tmp_path / "absent.txt").write_text("words that were never part of the training corpus")
    r = CliRunner().invoke(main, ["repudiate", "--log", str(root / "pol"), "--target",
                                  str(tmp_path / "absent.txt"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "does not occur in the log's training data" in r.output


def test_swap_candidates_change_only_the_targets_blocks(canary_log):
    from harness.repudiation.por import locate_targets
    from harness.repudiation.replay import run_from_log
    from harness.train.pol import load_log

    root, canary, _ = canary_log
    log = load_log(root / "pol")
    run = run_from_log(log)
    removed = locate_targets(log, [canary])[0].blocks
    (forgery,), cost = forge(run, [removed], ForgeOptions(mu=2, swap=True))
    assert forgery.forged_steps and cost.searched == len(forgery.forged_steps)
    for t in forgery.forged_steps:
        before, after = set(run.steps[t].batch), set(forgery.steps[t].batch)
        assert before - removed <= after and not after & removed
        assert len(after) == len(before)
