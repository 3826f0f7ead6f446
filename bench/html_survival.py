"""Measure the carrier survival matrix on real host pages (Debian's python3-doc HTML).

Run from the repository root after `apt-get install -y python3-doc` and `pip install -e '.[html]'`:

    python bench/html_survival.py --out results/html-survival --pages 40

It picks N host pages (seeded), draws one seeded canary set per carrier (N canaries, 10 words),
embeds each set with `tdp canaries embed` (one canary per page, every page of the set), and
runs `tdp survival` over all the manifests. A second experiment embeds 16-word canaries (over
trafilatura's 100-character dedup threshold) four times each, in four different pages of one
crawl. Host pages and embedded pages stay in --work (third-party pages are not committed);
the host list with sha256 and the package version, the commands, and the matrices go to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canaries.canary_set import Plan, new_canary_set, save_canary_set  # noqa: E402
from canaries.drbg import HashDRBG, derive_seed  # noqa: E402
from canaries.generators import words_spec  # noqa: E402
from canaries.html import CARRIERS, MIN_PARAGRAPH_CHARS, HtmlEmbedError, decode_page, scan_page  # noqa: E402

DOC_ROOT = Path("/usr/share/doc/python3.11/html")
SECTIONS = (
    "tutorial",
    "howto",
    "faq",
    "reference",
    "using",
    "extending",
    "installing",
    "distributing",
)
TDP = [str(Path(sys.executable).parent / "tdp")]


def usable(path: Path) -> bool:
    try:
        layout = scan_page(decode_page(path.read_bytes()))
    except HtmlEmbedError:
        return False
    return any(p.text_chars >= MIN_PARAGRAPH_CHARS for p in layout.paragraphs)


def pick_hosts(
    n: int, work: Path, max_bytes: int | None = None, sections: tuple[str, ...] = SECTIONS
) -> list[str]:
    """N usable pages of python3-doc (seeded choice), copied to work/hosts; `()` means every section."""
    roots = [DOC_ROOT / s for s in sections] or [DOC_ROOT]
    pages = sorted({str(p.relative_to(DOC_ROOT)) for r in roots for p in r.rglob("*.html")})
    pages = [
        p
        for p in pages
        if usable(DOC_ROOT / p)
        and (max_bytes is None or (DOC_ROOT / p).stat().st_size <= max_bytes)
    ]
    HashDRBG(derive_seed("tdp-bench-hosts", "v1"), "hosts").shuffle(pages)
    chosen = sorted(pages[:n])
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} usable pages under {DOC_ROOT}; install python3-doc")
    for p in chosen:
        (work / "hosts" / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DOC_ROOT / p, work / "hosts" / p)
    return chosen


def run(cmd: list[str], log: list[str]) -> None:
    shown = "tdp " + shlex.join(cmd[1:])
    log.append(shown)
    print(f"$ {shown}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def make_set(path: Path, count: int, length: int, label: str) -> None:
    cs, seed = new_canary_set(
        words_spec(length), count, Plan(counterfactuals=100), derive_seed(label, "v1")
    )
    save_canary_set(cs, path, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results/html-survival")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tdp-html-survival"))
    ap.add_argument("--pages", type=int, default=40)
    args = ap.parse_args()
    t0 = time.time()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    hosts = pick_hosts(args.pages, args.work)
    version = (
        subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "python3-doc"], capture_output=True, text=True
        ).stdout
        or "unknown"
    )
    with (args.out / "hosts.tsv").open("w") as f:
        f.write(f"# host pages: Debian package python3-doc {version}, under {DOC_ROOT}\n")
        f.write("path\tbytes\tsha256\n")
        for p in hosts:
            data = (DOC_ROOT / p).read_bytes()
            f.write(f"{p}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n")
    log: list[str] = []
    manifests = []
    for name in CARRIERS:
        cfile = args.work / "canaries" / f"{name}.json"
        make_set(cfile, args.pages, 10, f"tdp-bench-survival-{name}")
        run(
            TDP
            + [
                "canaries",
                "embed",
                "--canaries",
                str(cfile),
                "--pages",
                str(args.work / "hosts"),
                "--carrier",
                name,
                "--seed",
                derive_seed("tdp-bench-embed", name).hex()[:32],
                "-o",
                str(args.work / "embedded" / name),
            ],
            log,
        )
        manifests += ["--manifest", str(cfile) + ".embed.json"]
    run(
        TDP
        + [
            "survival",
            *manifests,
            "--filters-on",
            "trafilatura-fineweb",
            "--filters-on",
            "resiliparse-main",
            "-o",
            str(args.out / "single"),
        ],
        log,
    )
    repeat_manifests = []
    for name in ("paragraph", "own-paragraph", "font-size-0", "noscript"):
        cfile = args.work / "canaries-repeat" / f"{name}.json"
        make_set(cfile, args.pages // 4, 16, f"tdp-bench-repeat-{name}")
        run(
            TDP
            + [
                "canaries",
                "embed",
                "--canaries",
                str(cfile),
                "--pages",
                str(args.work / "hosts"),
                "--carrier",
                name,
                "--repeat",
                "4",
                "--seed",
                derive_seed("tdp-bench-rep", name).hex()[:32],
                "-o",
                str(args.work / "embedded-repeat" / name),
            ],
            log,
        )
        repeat_manifests += ["--manifest", str(cfile) + ".embed.json"]
    run(
        TDP
        + [
            "survival",
            *repeat_manifests,
            "--extractor",
            "trafilatura-fineweb",
            "--extractor",
            "resiliparse-main",
            "-o",
            str(args.out / "repeat4"),
        ],
        log,
    )
    (args.out / "COMMANDS.md").write_text(
        "# How this matrix was made\n\n"
        f"`python bench/html_survival.py --out {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
        f" --pages {args.pages}` ran these commands ({time.time() - t0:.0f} s on 2 shared CPU cores):\n\n"
        + "".join(f"    {c}\n" for c in log)
    )
    print(f"done in {time.time() - t0:.0f} s: {args.out}")


if __name__ == "__main__":
    main()
