"""Hostile input and faults in `tdp canaries embed` and `tdp survival` (issue 14, HTML side).

Prints one table per part and, with --out, writes it to OUT/SUMMARY.md:

A. >= 1,000 generated hostile pages (tests/hostile_pages.py) plus file-system traps through
   `tdp canaries embed` under `strace -f -y`: tracebacks, per-page errors, pages embedded,
   files opened outside the pages tree (from the resolved path of every successful open), and
   the sentinel text of the files outside found in the output; then one CLI run per page kind.
B. SIGKILL at every file-system call of a run into a fresh output and of a --force run over an
   earlier one (strace `-e inject=SYSCALL:signal=SIGKILL:when=N` on the main process, for every
   call that touches the work folder): states right after the kill, leftovers after the next run.
C. debian-handbook pages (`apt-get install debian-handbook`): pages embedded out of 50.
D. `tdp survival` on pages whose long runs of '<' stall datatrove's Gopher filters, and the
   cost of the per-document worker on the handbook pages (--doc-timeout 30 against 0).

Usage: python bench/hostile_html.py [--pages 1100] [--out results/hostile-html]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hostile_pages import PAGE_KINDS, prose, write_corpus  # noqa: E402

TDP = [str(Path(sys.executable).parent / "tdp")]
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
ENV_MARK = "TDPBENCHENVMARK4242"
WRITE_CALLS = (
    "openat",
    "open",
    "creat",
    "write",
    "pwrite64",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "fsync",
    "fdatasync",
    "fchmod",
    "fchmodat",
    "chmod",
    "flock",
    "close",
)


def tdp(
    *args: str, strace: list[str] | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV_MARK: "1", "PYTHONPATH": str(ROOT)}
    cmd = [*(strace or []), *TDP, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def new_canaries(folder: Path, k: int, name: str = "c.json") -> Path:
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.generators import words_spec

    cs, seed = new_canary_set(words_spec(8), k, Plan(counterfactuals=50), seed=name.encode() * 8)
    return save_canary_set(cs, folder / name, seed)


CARRIERS = ["font-size-0", "paragraph", "comment", "own-paragraph", "template", "meta"]


def embed_args(cfile: Path, pages: Path, out: Path, *extra: str) -> list[str]:
    args = ["canaries", "embed", "--canaries", str(cfile), "--pages", str(pages), "-o", str(out)]
    for c in CARRIERS:
        args += ["--carrier", c]
    return [*args, "--seed", "00" * 16, *extra]


def tree_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


# A. hostile pages ------------------------------------------------------------------------------


def outside_opens(trace: Path, outside: Path) -> list[str]:
    """Successful opens whose resolved file (strace -y) is outside the tree we meant to read."""
    bad = []
    pat = re.compile(r"= \d+<(.*)>$")
    for line in trace.read_text(errors="replace").splitlines():
        m = pat.search(line)
        if not m or not re.search(r"\bopen(at2?)?\(", line):
            continue
        path = m.group(1)
        if path.startswith(str(outside)) or path == "/etc/passwd" or path.endswith("/environ"):
            bad.append(path)
    return bad


def _traced_embed(work: Path, corpus, k: int, tag: str, *extra: str) -> dict:
    """One CLI embed of the whole corpus with `k` canaries, under strace when it is installed."""
    cfile = new_canaries(work, k, name=f"{tag}.json")
    trace = work / f"trace-{tag}.txt"
    strace = ["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-o", str(trace)]
    strace = strace if shutil.which("strace") else []
    t0 = time.monotonic()
    r = tdp(*embed_args(cfile, corpus.root, work / f"out-{tag}", *extra), strace=strace)
    took = time.monotonic() - t0
    mfile = work / f"{tag}.json.embed.json"
    manifest = json.loads(mfile.read_text()) if r.returncode == 0 else {}
    out = tree_bytes(work / f"out-{tag}") if r.returncode == 0 else b""
    could = re.search(r"only (\d+) of (\d+) pages could carry one", r.stderr)
    return {
        "exit": r.returncode,
        "tracebacks": r.stderr.count("Traceback"),
        "skipped_lines": [ln for ln in r.stderr.splitlines() if ln.startswith("skipped ")],
        "could_carry": int(could.group(1)) if could else None,
        "manifest": manifest,
        "outside_opens": len(outside_opens(trace, corpus.outside)) if strace else None,
        "sentinel_in_output": out.count(corpus.sentinel.encode()),
        "environ_in_output": out.count(ENV_MARK.encode()),
        "seconds": round(took, 1),
        "strace": bool(strace),
    }


def part_a(work: Path, n: int, page_timeout: float) -> dict:
    corpus = write_corpus(work / "pages", n, seed=14, big_rounds=1, huge_bytes=6_000_000)
    files = len(corpus.kinds) + len(corpus.traps)
    limit = ("--page-timeout", str(page_timeout))
    # 1: one canary per file, so that every page is tried (the batch must then refuse)
    every = _traced_embed(work, corpus, files, "every", *limit)
    # 2: as many canaries as pages could carry one: a complete output and manifest
    k = every["could_carry"] or 1
    for _ in range(3):
        full = _traced_embed(work, corpus, k, f"full{k}", *limit)
        if full["exit"] == 0 or not full["could_carry"]:
            break
        k = full["could_carry"]
    errors = full["manifest"].get("errors", [])
    kinds = [_one_kind(work, corpus.root, kind, page_timeout) for kind in [*PAGE_KINDS, "traps"]]
    return {
        "files": files,
        "generated_pages": len(corpus.kinds),
        "traps": len(corpus.traps),
        "every": every,
        "full": full,
        "why": collections.Counter(_reason(ln.split(": ", 1)[1]) for ln in every["skipped_lines"]),
        "full_errors": len(errors),
        "per_kind": kinds,
        "follow": _follow_run(work, corpus, k // 2, page_timeout),  # room for the other pairing
        "control": _detector_control(work, corpus),
    }


def _reason(text: str) -> str:
    text = re.sub(r"byte 0x[0-9a-f]+", "byte 0xNN", text)
    return re.sub(r"(?<![\w-])\d[\d,.]*(?!\w)", "N", text)[:90]


def _detector_control(work: Path, corpus) -> int | None:
    """The outside-read detector must see a read that does happen: `cat` of a file outside."""
    if not shutil.which("strace"):
        return None
    trace = work / "trace-control.txt"
    subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=open,openat,openat2",
            "-o",
            str(trace),
            "cat",
            str(corpus.outside / "secret.html"),
        ],
        capture_output=True,
    )
    return len(outside_opens(trace, corpus.outside))


def _follow_run(work: Path, corpus, usable: int, page_timeout: float) -> dict:
    """The same corpus with --follow-links-inside: links inside are read, none outside."""
    cfile = new_canaries(work, usable, name="f.json")
    trace = work / "trace-follow.txt"
    strace = ["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-o", str(trace)]
    strace = strace if shutil.which("strace") else []
    extra = ("--page-timeout", str(page_timeout), "--follow-links-inside")
    r = tdp(*embed_args(cfile, corpus.root, work / "out-follow", *extra), strace=strace)
    m = json.loads((work / "f.json.embed.json").read_text()) if r.returncode == 0 else {}
    out = tree_bytes(work / "out-follow") if r.returncode == 0 else b""
    link_errors = [e for e in m.get("errors", []) if "link" in e["error"]]
    return {
        "exit": r.returncode,
        "tracebacks": r.stderr.count("Traceback"),
        "outside_opens": len(outside_opens(trace, corpus.outside)) if strace else None,
        "sentinel_in_output": out.count(corpus.sentinel.encode()),
        "link_errors": len(link_errors),
        "links_read": len([t for t in corpus.traps.values() if t == "link-in"])
        - sum(e["page"] == "traps/in.html" for e in link_errors),
    }


def _one_kind(work: Path, root: Path, kind: str, page_timeout: float) -> dict:
    """One CLI run over the pages of one kind: a batch of only hostile pages."""
    pages = root / kind
    cfile = new_canaries(work, 3, name=f"k-{kind}.json")
    r = tdp(*embed_args(cfile, pages, work / f"out-{kind}", "--page-timeout", str(page_timeout)))
    return {
        "kind": kind,
        "exit": r.returncode,
        "tracebacks": r.stderr.count("Traceback"),
        "error_lines": sum(line.startswith("Error: ") for line in r.stderr.splitlines()),
    }


# B. kills ----------------------------------------------------------------------------------


def small_site(folder: Path, n: int) -> Path:
    import random

    folder.mkdir()
    (folder / "sub").mkdir()
    for i in range(n):
        sub = folder / ("sub" if i % 3 == 0 else "")
        (sub / f"p{i}.html").write_text(
            f"<html><head><title>{i}</title></head><body><p>{prose(random.Random(i))}</p></body></html>"
        )
    return folder


def kill_points(work: Path, args: list[str]) -> list[tuple[str, int]]:
    """(syscall, invocation number) of every call in WRITE_CALLS touching `work`, main process."""
    trace = work / "dry.txt"
    tdp(
        *args,
        strace=["strace", "-qq", "-y", "-e", f"trace={','.join(WRITE_CALLS)}", "-o", str(trace)],
    )
    seen: collections.Counter = collections.Counter()
    points = []
    for line in trace.read_text(errors="replace").splitlines():
        m = re.match(r"(\w+)\(", line)
        if not m:
            continue
        seen[m.group(1)] += 1
        if str(work) in line:
            points.append((m.group(1), seen[m.group(1)]))
    return points


def classify(out: Path, manifest: Path, old: tuple | None, new: tuple | None) -> str:
    pending = any(p.name.startswith(".tdp-pending-") for p in out.parent.iterdir())
    state = (tree_bytes(out), manifest.read_bytes()) if out.exists() and manifest.exists() else None
    if not out.exists() and not manifest.exists():
        state = "none"
    if state == new:
        return "everything"
    if state == (old if old is not None else "none"):
        return "nothing" + (" (pending record)" if pending else "")
    return "pending record" if pending else "INCONSISTENT"


def part_b(work: Path, pages: int, force: bool) -> dict:
    site = small_site(work / "site", pages)
    cfile = new_canaries(work, 3)
    out, manifest = work / "out", work / "c.json.embed.json"
    keep = work / "keep"
    old = None
    extra = ["--force"] if force else []
    if force:
        tdp(*embed_args(cfile, site, out, "--seed", "11" * 16))
        shutil.copytree(out, keep / "out")
        shutil.copy2(manifest, keep / "m.json")
        old = (tree_bytes(out), manifest.read_bytes())
    args = embed_args(cfile, site, out, *extra)

    def reset() -> None:
        for p in (out, manifest):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        if force:
            shutil.copytree(keep / "out", out)
            shutil.copy2(keep / "m.json", manifest)

    reset()
    points = kill_points(work, args)
    new = (tree_bytes(out), manifest.read_bytes())
    states: collections.Counter = collections.Counter()
    leftovers = tracebacks = inconsistent_after = 0
    for call, n in points:
        reset()
        inject = f"inject={call}:signal=SIGKILL:when={n}"
        tdp(*args, strace=["strace", "-qq", "-o", "/dev/null", "-e", f"trace={call}", "-e", inject])
        states[classify(out, manifest, old, new)] += 1
        time.sleep(0.05)  # the killed run's worker exits on EOF
        r = tdp(*args)  # the next run: recovers, then works or refuses an existing result
        tracebacks += r.stderr.count("Traceback")
        leftovers += sum(
            p.name.startswith(".tdp-")
            for p in set(out.parent.iterdir()) | set(manifest.parent.iterdir())
        )
        after = classify(out, manifest, old, new)
        inconsistent_after += after not in ("everything",)
    return {
        "scenario": "--force over an earlier result" if force else "fresh output",
        "kill_points": len(points),
        "calls": collections.Counter(c for c, _ in points),
        "states": states,
        "leftovers_after_next_run": leftovers,
        "not_complete_after_next_run": inconsistent_after,
        "tracebacks": tracebacks,
    }


# C. debian-handbook ------------------------------------------------------------------------------


def part_c(work: Path) -> dict | None:
    if not HANDBOOK.is_dir():
        return None
    src = sorted(
        p for p in HANDBOOK.iterdir() if p.suffix == ".html" and p.is_file() and not p.is_symlink()
    )
    pages = work / "handbook"
    pages.mkdir()
    for p in src[:50]:
        shutil.copyfile(p, pages / p.name)
    cfile = new_canaries(work, 50)
    r = tdp(*embed_args(cfile, pages, work / "hb-out"))
    m = json.loads((work / "c.json.embed.json").read_text()) if r.returncode == 0 else {}
    tags = collections.Counter()
    for p in m.get("placements", []):
        if p["carrier"] in ("own-paragraph", "meta"):  # before a container, or in <head>
            continue
        text = (work / "hb-out" / p["page"]).read_bytes()[: p["byte_offset"]].decode()
        opened = re.findall(r"<(p|div|li|td|section|dd|blockquote|head)\b[^>]*>", text)
        tags[opened[-1] if opened else "?"] += 1
    return {
        "pages": len(src[:50]),
        "embedded": len(m.get("placements", [])),
        "exit": r.returncode,
        "errors": [e["page"] + ": " + e["error"] for e in m.get("errors", [])],
        "containers": tags,
        "manifest": work / "c.json.embed.json",
    }


# D. survival -------------------------------------------------------------------------------


def part_d(work: Path, handbook_manifest: Path | None) -> dict:
    pages = small_site(work / "stall-site", 6)
    for i, n in enumerate((20_000, 40_000)):
        body = prose(__import__("random").Random(i)) + " " + "&lt;" * n
        (pages / f"stall{i}.html").write_text(f"<html><body><p>{body}</p></body></html>")
    cfile = new_canaries(work, 8, name="s.json")
    tdp(
        "canaries",
        "embed",
        "--canaries",
        str(cfile),
        "--pages",
        str(pages),
        "--carrier",
        "paragraph",
        "-o",
        str(work / "stall-out"),
    )
    res = {}
    t0 = time.monotonic()
    r = tdp(
        "survival",
        "--manifest",
        str(work / "s.json.embed.json"),
        "--extractor",
        "resiliparse-all",
        "--doc-timeout",
        "10",
        "-o",
        str(work / "surv-stall"),
    )
    res["stall_seconds"] = round(time.monotonic() - t0, 1)
    res["stall_exit"] = r.returncode
    res["stall_tracebacks"] = r.stderr.count("Traceback")
    doc = (
        json.loads((work / "surv-stall" / "survival.json").read_text()) if r.returncode == 0 else {}
    )
    res["stopped"] = [(s["page"], s["stage"]) for s in doc.get("stopped", [])]
    res["gopher_repetition_20k_unlimited_s"] = _unlimited_filter_seconds(work / "stall-out")
    if handbook_manifest is not None:
        for _ in range(5):  # alternate; the machine is shared, so report min and median
            for label, limit in (("worker", "30"), ("in-process", "0")):
                t0 = time.monotonic()
                r = tdp(
                    "survival",
                    "--manifest",
                    str(handbook_manifest),
                    "--extractor",
                    "resiliparse-main",
                    "--extractor",
                    "trafilatura-fineweb",
                    "--doc-timeout",
                    limit,
                    "--force",
                    "-o",
                    str(work / f"surv-{label}"),
                )
                took = round(time.monotonic() - t0, 1)
                res.setdefault(f"handbook_{label}_all", []).append(took)
                res[f"handbook_{label}_seconds"] = _min_median(res[f"handbook_{label}_all"])
                res[f"handbook_{label}_exit"] = r.returncode
        same = [
            json.loads((work / f"surv-{lab}" / "survival.json").read_text())["cells"]
            for lab in ("worker", "in-process")
        ]
        res["handbook_same_matrix"] = same[0] == same[1]
        res["stages_overhead"] = _stages_overhead()
    return res


def _stages_overhead(rounds: int = 5) -> dict:
    """The FineWeb filter chain on the extracted handbook pages, in this process, with and
    without the per-document worker, alternating (seconds: min and median of `rounds`)."""
    from harness.survival.pipeline import EXTRACTORS, _filter_steps, quiet_datatrove, run_stages

    quiet_datatrove()
    src = sorted(p for p in HANDBOOK.iterdir() if p.suffix == ".html" and not p.is_symlink())
    pages = [(p.name, p.read_text()) for p in src[:50]]
    texts = EXTRACTORS["resiliparse-main"].extract(pages, 30, None).texts
    _filter_steps()
    run_stages(texts, True, None)  # warm-up: spaCy, datatrove caches
    times: dict[str, list[float]] = {"worker": [], "in-process": []}
    docs = sum(bool(t) for t in texts.values())
    for _ in range(rounds):
        for label, limit in (("worker", 30.0), ("in-process", None)):
            t0 = time.perf_counter()
            run_stages(texts, True, limit)
            times[label].append(round(time.perf_counter() - t0, 2))
    return {"docs": docs, **{k: _min_median(v) for k, v in times.items()}}


def _min_median(xs: list[float]) -> str:
    s = sorted(xs)
    return f"{s[0]} (median {s[len(s) // 2]})"


def _unlimited_filter_seconds(pages: Path) -> float:
    """datatrove's Gopher repetition filter, no limit, on the text of the 20k-'<' page."""
    code = (
        "import time,sys; from datatrove.data import Document;"
        "from resiliparse.extract.html2text import extract_plain_text as x;"
        "from harness.survival.pipeline import _filter_steps; f=_filter_steps()[0][1];"
        "t=x(open(sys.argv[1]).read()); t0=time.monotonic();"
        "list(f.run(iter([Document(text=t,id='p')]))); print(time.monotonic()-t0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(pages / "stall0.html")], capture_output=True, text=True
    )
    return round(float(r.stdout.strip() or "nan"), 1)


# E. landing: main's lxml-only check against lexbor ---------------------------------------


def part_e(work: Path, rev: str, n: int) -> dict | None:
    """Placements the lxml-only check of `rev` accepted on generated pages, and how many of
    them lexbor does not put in any text container; the same for this code."""
    import importlib.util
    import random

    from canaries.html import CARRIERS as NEW
    from canaries.html import HtmlEmbedError
    from canaries.landing import PARSERS
    from canaries.splice import embed_in_page

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:canaries/html.py"],
                         capture_output=True, text=True)  # fmt: skip
    if src.returncode != 0:
        return None
    (work / "old_html.py").write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("old_html", work / "old_html.py")
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_html"] = old
    spec.loader.exec_module(old)
    containers = {"p", "div", "li", "td", "th", "section", "article", "main", "blockquote", "dd"}
    containers |= {"figcaption"}
    rng, canary = random.Random(5), "alpha bravo charlie"
    counts = collections.Counter()
    kinds = [k for k in PAGE_KINDS if k != "lt-tag-run"]  # quadratic in html.parser: no limit here
    for i in range(n):
        data = PAGE_KINDS[kinds[i % len(kinds)]](rng, False)
        for name in ("font-size-0", "paragraph", "comment"):
            for label, mod, errors in (
                ("main", old, old.HtmlEmbedError),
                ("here", None, HtmlEmbedError),
            ):
                try:
                    if mod is None:
                        new, _ = embed_in_page(data, canary, NEW[name], bytes([i % 256]) * 16)
                    else:
                        new, _ = mod.embed_in_page(
                            data, canary, mod.CARRIERS[name], bytes([i % 256]) * 16
                        )
                except errors:
                    continue
                counts[f"{label}_accepted"] += 1
                holders = PARSERS["lexbor"](new.decode(), NEW[name], canary)
                if not any(set(h.ancestors) & containers for h in holders):
                    counts[f"{label}_outside"] += 1
    return {"rev": rev, "pages": n, **counts}


def _render_e(e: dict) -> list[str]:
    return [
        "## E. Landing checked by an HTML5 parser",
        "",
        f"{e['pages']} generated pages (no large ones), carriers font-size-0, paragraph and "
        f"comment: main ({e['rev']}, lxml-only check) accepted {e.get('main_accepted', 0)} "
        f"placements, of which lexbor (resiliparse's parser) puts {e.get('main_outside', 0)} in no "
        f"text container at all; this code accepted {e.get('here_accepted', 0)}, of which "
        f"{e.get('here_outside', 0)}.",
        "",
    ]


# report -----------------------------------------------------------------------------------------


def render(a: dict | None, bs: list[dict], c: dict | None, d: dict, e: dict | None = None) -> str:
    lines = ["# Hostile HTML: embed and survival under hostile input and kills", ""]
    lines += ["Made by `python bench/hostile_html.py` (see its docstring for the method).", ""]
    if a:
        lines += _render_a(a)
    if bs:
        lines += _render_b(bs)
    if c:
        lines += _render_c(c)
    if d:
        lines += _render_d(d)
    if e:
        lines += _render_e(e)
    return "\n".join(lines)


def _render_a(a: dict) -> list[str]:
    e, f = a["every"], a["full"]
    m = f["manifest"]
    lines = ["## A. Generated hostile pages through `tdp canaries embed`", ""]
    lines += [
        f"{a['generated_pages']} generated pages ({len(PAGE_KINDS)} kinds, the first of each kind "
        f"at the large size) and {a['traps']} file-system traps. Run 1 asks for one canary per "
        "file, so that every page is tried and the batch must end with a one-line refusal "
        "naming each page; run 2 asks for as many canaries as run 1 found pages for.",
        "",
        "| measure | run 1: every page tried | run 2: complete embed |",
        "|---|---:|---:|",
    ]
    rows = [
        ("exit status", e["exit"], f["exit"]),
        ("tracebacks", e["tracebacks"], f["tracebacks"]),
        (
            "per-page errors (named on stderr / in the manifest)",
            len(e["skipped_lines"]),
            a["full_errors"],
        ),
        ("pages that carry a canary", e["could_carry"], len(m.get("placements", []))),
        ("pages copied unchanged", "-", len(m.get("untouched", []))),
        (
            "successful opens outside the tree (strace -f -y)",
            e["outside_opens"],
            f["outside_opens"],
        ),
        ("sentinel text of outside files in the output", "-", f["sentinel_in_output"]),
        ("process-environment marker in the output", "-", f["environ_in_output"]),
        ("seconds (under strace)", e["seconds"], f["seconds"]),
    ]
    lines += [f"| {k} | {v1} | {v2} |" for k, v1, v2 in rows]
    lines += [
        "",
        f"Detector control: the same strace count for `cat` of a file outside the tree: "
        f"{a['control']}.",
    ]
    f = a["follow"]
    lines += [
        "",
        f"With `--follow-links-inside` (same files): exit {f['exit']}, tracebacks "
        f"{f['tracebacks']}, links inside the tree read {f['links_read']}, links refused "
        f"{f['link_errors']}, opens outside the tree {f['outside_opens']}, sentinel in the output "
        f"{f['sentinel_in_output']}.",
    ]
    runs = a["per_kind"]
    lines += [
        "",
        f"One CLI run per kind ({len(runs)} runs, 3 canaries each): tracebacks "
        f"{sum(r['tracebacks'] for r in runs)}; runs failing with a one-line `Error:` "
        f"{sum(r['exit'] != 0 for r in runs)} (batches without enough usable pages), "
        f"other failures {sum(r['exit'] != 0 and r['error_lines'] != 1 for r in runs)}.",
        "",
    ]
    lines += ["Per-page errors of run 1 by reason:", "", "| reason | pages |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in a["why"].most_common()]
    return [*lines, ""]


def _render_b(bs: list[dict]) -> list[str]:
    lines = ["## B. SIGKILL at every file-system call of an embed run", ""]
    lines += [
        "| scenario | kill points | right after the kill | leftovers after the next run | "
        "not both output and manifest after the next run | tracebacks |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for b in bs:
        states = ", ".join(f"{k}: {v}" for k, v in sorted(b["states"].items()))
        lines.append(
            f"| {b['scenario']} | {b['kill_points']} | {states} | "
            f"{b['leftovers_after_next_run']} | {b['not_complete_after_next_run']} | "
            f"{b['tracebacks']} |"
        )
    for b in bs:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(b["calls"].items()))
        lines.append(f"\n{b['scenario']}: kill points by system call: {calls}.")
    return [*lines, ""]


def _render_c(c: dict) -> list[str]:
    if True:
        lines = ["## C. debian-handbook (en-US, first 50 pages in name order)", ""]
        lines += [
            f"Embedded: **{c['embedded']} / {c['pages']}** (exit {c['exit']}); carriers "
            f"round-robin over {', '.join(CARRIERS)}.",
            "",
        ]
        lines += [
            "Containers that received an in-text carrier: "
            + ", ".join(f"{k} {v}" for k, v in c["containers"].most_common())
            + "."
        ]
        lines += [f"- refused: {e}" for e in c["errors"]]
    return [*lines, ""]


def _render_d(d: dict) -> list[str]:
    lines = ["## D. `tdp survival` with a per-document time limit", ""]
    lines += [
        f"Pages with 20k and 40k '<' (as `&lt;`) through resiliparse-all and the FineWeb "
        f"filters, --doc-timeout 10: exit {d['stall_exit']}, {d['stall_seconds']} s, "
        f"tracebacks {d['stall_tracebacks']}, stopped: "
        + ", ".join(f"{p} at {s}" for p, s in d["stopped"])
        + ". Without a limit, datatrove's Gopher repetition filter alone takes "
        + f"{d['gopher_repetition_20k_unlimited_s']} s on the 20k page's extracted text.",
        "",
    ]
    if "handbook_worker_seconds" in d:
        lines += [
            f"Handbook pages (50, resiliparse-main + trafilatura-fineweb, full filter chain): "
            f"{d['handbook_worker_seconds']} s with the per-document worker, "
            f"{d['handbook_in-process_seconds']} s in-process (--doc-timeout 0); same "
            f"matrix: {d['handbook_same_matrix']}. The machine is shared (2 cores, other jobs), "
            "so the filter chain alone was also timed inside one process, alternating, on the "
            f"{d['stages_overhead']['docs']} extracted documents (4 filters + MinHash): "
            f"{d['stages_overhead']['worker']} s with the worker, "
            f"{d['stages_overhead']['in-process']} s in-process.",
            "",
        ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1100)
    ap.add_argument("--kill-pages", type=int, default=6)
    ap.add_argument("--page-timeout", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--skip", default="", help="parts to skip, e.g. 'bd'")
    ap.add_argument("--compare-with", default="f217cc4", help="git revision of main for part E")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tdp-hostile-") as tmp:
        work = Path(tmp)
        parts = {}
        for name in "abcd":
            (work / name).mkdir()
        a = part_a(work / "a", opts.pages, opts.page_timeout) if "a" not in opts.skip else None
        bs = [
            part_b(work / "b" / s, opts.kill_pages, s == "force")
            for s in ("fresh", "force")
            if "b" not in opts.skip and not (work / "b" / s).mkdir(parents=True)
        ]
        c = part_c(work / "c") if "c" not in opts.skip else None
        d = part_d(work / "d", c["manifest"] if c else None) if "d" not in opts.skip else {}
        e = part_e(work, opts.compare_with, opts.pages) if "e" not in opts.skip else None
        parts.update(a=a, b=bs, c=c, d=d, e=e)
        text = render(a, bs, c, d, e)
    print(text)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "SUMMARY.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
