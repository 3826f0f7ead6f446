"""End to end: hidden-HTML canaries -> real extractor -> corpus -> tiny model trained here -> audits.

Run from the repository root (python3-doc installed, `pip install -e '.[html]'`):

    python bench/html_e2e.py --out results/html-e2e

One committed canary set per carrier group; every host page (Debian's python3-doc HTML) carries
one canary of every group, each canary in `--repeat` different pages, so page-level effects
(a filter dropping a page) hit all groups alike and only the carrier differs. The pages go
through datatrove's Trafilatura step with FineWeb's settings; its output is the training corpus
of a GPT-2-style model trained from scratch on this CPU. Then `canary-rank` (and `extraction`,
when that task is installed) audits the model on each group: groups whose carrier survives the
extractor should get small p-values, groups whose carrier is dropped should not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from html_survival import TDP, pick_hosts, run  # noqa: E402

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set  # noqa: E402
from canaries.corpus import Corpus, write_corpus  # noqa: E402
from canaries.drbg import derive_seed  # noqa: E402
from canaries.embed import load_manifest, manifest_path_for  # noqa: E402
from canaries.generators import words_spec  # noqa: E402

GROUPS = ("paragraph", "font-size-0", "clip", "display-none", "comment", "meta")


def extract_corpus(pages_dir: Path, timeout: float) -> dict[str, str]:
    """datatrove Trafilatura (FineWeb settings) over every page, in sorted order, one crawl."""
    from harness.survival.pipeline import EXTRACTORS, quiet_datatrove

    quiet_datatrove()
    pages = sorted(str(p.relative_to(pages_dir)) for p in pages_dir.rglob("*.html"))
    return EXTRACTORS["trafilatura-fineweb"].run(
        [(p, (pages_dir / p).read_text("utf-8")) for p in pages], timeout
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results/html-e2e")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tdp-html-e2e"))
    ap.add_argument("--pages", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument(
        "--max-page-bytes", type=int, default=40_000, help="keeps the corpus small enough for a CPU"
    )
    ap.add_argument("--length", type=int, default=12)
    ap.add_argument("--prefix-length", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--counterfactuals", type=int, default=500)
    ap.add_argument("--groups", default=",".join(GROUPS))
    args = ap.parse_args()
    t0 = time.time()
    groups = args.groups.split(",")
    if args.pages % args.repeat:
        raise SystemExit(
            "--pages must be a multiple of --repeat (every page carries one canary per group)"
        )
    if args.work.exists():
        shutil.rmtree(args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    hosts = pick_hosts(args.pages, args.work, args.max_page_bytes, sections=())
    (args.out / "hosts.txt").write_text("".join(h + "\n" for h in hosts))

    # 1. one committed canary set per carrier group, embedded layer by layer into the same pages
    plan = Plan(
        score="loss", statistic="rank-sum", counterfactuals=args.counterfactuals, alpha=0.01
    )
    pages = args.work / "hosts"
    for g in groups:
        cfile = args.work / "canaries" / f"{g}.json"
        cs, seed = new_canary_set(
            words_spec(args.length, args.prefix_length),
            args.pages // args.repeat,
            plan,
            derive_seed("tdp-e2e-canaries", g),
        )
        save_canary_set(cs, cfile, seed)
        out = args.work / "layers" / g
        run(
            TDP
            + [
                "canaries",
                "embed",
                "--canaries",
                str(cfile),
                "--pages",
                str(pages),
                "--carrier",
                g,
                "--repeat",
                str(args.repeat),
                "--seed",
                derive_seed("tdp-e2e-embed", g).hex()[:32],
                "-o",
                str(out),
            ],
            log,
        )
        pages = out

    # 2. extractor -> corpus (and the same extractor on the clean hosts, for the tokenizer)
    print("extracting (datatrove Trafilatura, FineWeb settings) ...", flush=True)
    corpus = extract_corpus(pages, 60.0)
    clean = extract_corpus(args.work / "hosts", 60.0)
    names = sorted(corpus)
    write_corpus(
        Corpus([corpus[n] for n in names], names, [{"id": n} for n in names]),
        args.work / "corpus.jsonl",
    )
    survival = {}
    for g in groups:
        cfile = args.work / "canaries" / f"{g}.json"
        texts = {c.id: c.text for c in load_canary_set(cfile).canaries}
        m = load_manifest(manifest_path_for(cfile))
        copies = [p for p in m.placements if texts[p.canary_id] in corpus.get(p.page, "")]
        survival[g] = {
            "copies": len(m.placements),
            "in_corpus": len(copies),
            "canaries_with_a_copy": len({p.canary_id for p in copies}),
            "canaries": len(texts),
        }
        print(f"  {g}: {len(copies)}/{len(m.placements)} copies reached the corpus", flush=True)

    # 3. train a tiny model on the corpus (tokenizer trained on the clean extraction)
    from harness.train import TrainConfig, train_causal_lm, train_tokenizer

    tok = train_tokenizer(list(clean.values()), 2048)
    cfg = TrainConfig(epochs=args.epochs)
    trained = train_causal_lm(
        [corpus[n] for n in names], tok, cfg, args.work / "target", progress=False
    )
    print(
        f"trained {trained.parameters:,} params on {trained.tokens_per_epoch:,} tokens/epoch, "
        f"loss {trained.final_loss:.3f}, {trained.seconds:.0f}s",
        flush=True,
    )

    # 4. audits, one per group (canary-rank, and extraction when installed)
    from harness.audit import audit_from_paths, make_report
    from harness.registry import TaskError, get_task
    from harness.report import write_report

    tasks = ["canary-rank"]
    try:
        get_task("extraction")
        tasks.append("extraction")
    except TaskError:
        pass
    model = f"hf:{args.work / 'target'}"
    audits = []
    for task in tasks:
        for g in groups:
            a = audit_from_paths(model, args.work / "canaries" / f"{g}.json", task, progress=False)
            s = survival[g]
            role = "audit" if s["in_corpus"] else "null-control"
            audits.append(
                type(a)(
                    **{
                        **a.__dict__,
                        "role": role,
                        "title": f"{task}: carrier {g} ({s['in_corpus']}/{s['copies']} copies "
                        "reached the corpus)",
                    }
                )
            )
            log.append(
                f"tdp audit --model {model} --canaries {args.work / 'canaries' / (g + '.json')} "
                f"--task {task} -o <dir>"
            )
    notes = [
        f"Host pages: {args.pages} pages of Debian's python3-doc (list in hosts.txt); each page carries one "
        f"canary of every group; each canary is in {args.repeat} different pages.",
        "Extractor: datatrove's Trafilatura step with FineWeb's settings (favour_precision=True, "
        "deduplicate=True), one crawl. Quality filters are not applied here (see the survival matrix: "
        "they drop documentation pages whatever the carrier).",
        f"Model: GPT-2 style, {trained.parameters:,} parameters, trained from scratch here: {json.dumps(cfg.__dict__)}; "
        "tokenizer trained on the clean extraction of the same hosts.",
        "Audits of groups none of whose copies reached the corpus are marked null-control: the model never "
        "saw those canaries, so their p-values should look uniform.",
    ]
    report = make_report(
        "Hidden HTML canaries through a real extractor into a trained model", audits, notes
    )
    write_report(report, args.out)
    rows = []
    for a in audits:
        g = a.canary_set.path.rsplit("/", 1)[-1].removesuffix(".json")
        s = survival[g]
        rows.append(
            f"| {a.task} | {g} | {s['in_corpus']}/{s['copies']} | {s['canaries_with_a_copy']}/{s['canaries']} | "
            f"{a.primary.result.pvalue:.3g} | {a.primary.result.kind} |"
        )
    (args.out / "SUMMARY.md").write_text(
        "# Hidden HTML canaries: extractor -> corpus -> model -> audit\n\n"
        f"`python bench/html_e2e.py {shlex.join(sys.argv[1:])}` "
        f"({time.time() - t0:.0f} s on 2 shared CPU cores). Full report: report.md / report.html / report.json.\n\n"
        "| task | carrier group | copies in corpus | canaries with a copy | primary p | kind |\n"
        "|---|---|---:|---:|---:|---|\n"
        + "\n".join(rows)
        + "\n\n## Notes\n\n"
        + "".join(f"- {n}\n" for n in notes)
        + "\n## Commands\n\n"
        + "".join(f"    {c}\n" for c in log)
    )
    (args.out / "survival.json").write_text(json.dumps(survival, indent=1) + "\n")
    print((args.out / "SUMMARY.md").read_text())


if __name__ == "__main__":
    main()
