"""lm-evaluation-harness's `local-completions` model against `tdp serve` (issue 9).

Three local tasks (JSON lines written here, no hub download): `generate_until` with stop strings,
`multiple_choice` (log-likelihoods) and `loglikelihood_rolling` (bits per byte). Each runs
through `tdp serve` and through lm-eval's own in-process `hf` model on the same tiny model;
the answers must agree, and the server must have done the stopping itself (lm-eval also cuts
at `until` on its side, which would hide a server that ignored `stop`). Needs the `clients`
extra (`pip install -e '.[clients]'`); skipped without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tiny_lm import serving, tiny_lm_dir

from harness.serve.server import ScoringHandler

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("aiohttp")  # lm_eval[api]
pytest.importorskip("tenacity")

TASKS = ("tdp_gen", "tdp_mc", "tdp_roll")
PROMPTS = ("The quick brown fox", "Return the number of", "Canary 7 3", "If the argument is")


class Recording(ScoringHandler):
    """tdp serve, keeping every /v1/completions body and reply (class-level list)."""

    seen: list[tuple[dict, dict]] = []

    def _routes(self):
        routes = super()._routes()
        method, answer = routes["/v1/completions"]

        def record(body):
            reply = answer(body)
            self.seen.append((body, reply))
            return reply

        return {**routes, "/v1/completions": (method, record)}


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _task(folder: Path, name: str, rows: list[dict], body: str) -> None:
    data = _jsonl(folder / f"{name}.jsonl", rows)
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {json.dumps(data)}\n  cache_dir: {json.dumps(str(folder / 'cache'))}\n"
        f"test_split: test\n{body}metadata:\n  version: 1\n"
    )


def _stops(texts: list[str]) -> list[str]:
    """Two-letter runs from inside greedy continuations: stop strings that surely occur."""
    found = [m.group(0) for t in texts if (m := re.search(r"(?<=.)[A-Za-z]{2}", t))]
    if not found:
        pytest.fail(f"no two-letter run in the greedy texts {texts!r}")
    return list(dict.fromkeys(found))[:2]


def write_tasks(folder: Path, stops: list[str]) -> None:
    _task(
        folder,
        "tdp_gen",
        [{"prompt": p, "target": "x"} for p in PROMPTS],
        'output_type: generate_until\ndoc_to_text: "{{prompt}}"\ndoc_to_target: "{{target}}"\n'
        f"generation_kwargs:\n  until: {json.dumps(stops)}\n  max_gen_toks: 12\n"
        "  do_sample: false\n  temperature: 0\nmetric_list:\n  - metric: exact_match\n",
    )
    mc = [
        {"q": "Is a list mutable?", "choices": [" yes", " no"], "label": 0},
        {"q": "Return the", "choices": [" number", " string", " list"], "label": 1},
    ]
    _task(
        folder,
        "tdp_mc",
        mc,
        'output_type: multiple_choice\ndoc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\n'
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n",
    )
    pages = [{"page": "The quick brown fox jumps over the lazy dog. " * 6}, {"page": PROMPTS[1]}]
    _task(
        folder,
        "tdp_roll",
        pages,
        'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{page}}"\n'
        "metric_list:\n  - metric: bits_per_byte\n",
    )


def evaluate(model: str, model_args: dict, folder: Path) -> dict:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(folder), include_defaults=False)
    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=list(TASKS),
        task_manager=tm,
        batch_size=4,
        bootstrap_iters=0,
        log_samples=True,
    )


def test_local_completions_runs_generate_until_and_loglikelihood_tasks(tmp_path_factory):
    model_dir = tiny_lm_dir(tmp_path_factory)
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    Recording.seen = []
    with serving(model_dir, handler=Recording) as srv:
        free = [
            srv.sm.tokenizer.decode(c, skip_special_tokens=True)
            for p in PROMPTS
            for c in srv.sm.sample(srv.sm.tokenizer.encode(p), 12, 1, 0.0, None)
        ]
        stops = _stops(free)
        write_tasks(folder, stops)
        args = {
            "model": "tiny",
            "base_url": srv.url + "/completions",
            "tokenizer": str(model_dir),
            "tokenizer_backend": "huggingface",
            "max_length": srv.sm.max_model_len,
            "max_retries": 1,
        }
        served = evaluate("local-completions", args, folder)
    # the same rolling windows: lm-eval's API models keep one token of max_length for the
    # generated token and make windows one shorter again (api_models.py); hf's are max_length
    hf_args = {"pretrained": str(model_dir), "dtype": "float32", "device": "cpu"}
    local = evaluate("hf", {**hf_args, "max_length": srv.sm.max_model_len - 2}, folder)

    # generate_until: the server received the stop strings and stopped by itself
    gens = [(b, r) for b, r in Recording.seen if b.get("max_tokens") == 12]
    assert gens and all(set(stops) <= set(b["stop"]) for b, _ in gens)
    choices = [c for _, r in gens for c in r["choices"]]
    assert len(choices) == len(PROMPTS)
    assert any(c["finish_reason"] == "stop" and c["stop_reason"] in stops for c in choices)
    assert not any(s in c["text"] for c in choices for s in stops)
    for name in TASKS:
        a, b = served["samples"][name], local["samples"][name]
        rows = (folder / f"{name}.jsonl").read_text().splitlines()
        assert len(a) == len(b) == len(rows)
        for x, y in zip(a, b, strict=True):
            assert x["doc"] == y["doc"]
            if name == "tdp_gen":
                assert x["resps"] == y["resps"]  # same greedy text, cut at the same place
            else:  # one log-likelihood per choice (mc) or per document (rolling)
                assert _logliks(x["resps"]) == pytest.approx(_logliks(y["resps"]), abs=1e-4)
    bpb = served["results"]["tdp_roll"]["bits_per_byte,none"]
    assert bpb == pytest.approx(local["results"]["tdp_roll"]["bits_per_byte,none"], rel=1e-6)
    assert served["results"]["tdp_mc"]["acc,none"] == local["results"]["tdp_mc"]["acc,none"]


def _logliks(resps: list) -> list[float]:
    """lm-eval's per-request answers: `[(loglik, is_greedy)]` (mc) or `[loglik]` (rolling)."""
    return [float(r[0][0]) if isinstance(r[0], tuple | list) else float(r[0]) for r in resps]
