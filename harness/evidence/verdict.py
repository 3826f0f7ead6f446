"""The one-page verdict of `tdp evidence verify`: every failure named, open items listed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.evidence.checks import EvidenceCheck

WIDTH = 100
#: checks of a report shown even when they pass: what the claim rests on
KEY_CHECKS = (":: rescore", ":: statistics", ":: protocol: assigned", ":: digest")


def _line(c: EvidenceCheck) -> str:
    text = f"[{c.verdict:>4}] {c.member} :: {c.check}: {c.detail}"
    return text if len(text) <= 2 * WIDTH else text[: 2 * WIDTH - 1] + "…"


def passed(checks: Sequence[EvidenceCheck]) -> bool:
    return not any(c.verdict == "FAIL" for c in checks)


def render_verdict(path: Path, digest: str, checks: Sequence[EvidenceCheck]) -> str:
    """Header, failures, open items, a count of what held, and the verdict line."""
    fails = [c for c in checks if c.verdict == "FAIL"]
    opens = [c for c in checks if c.verdict == "open"]
    ok = [c for c in checks if c.verdict == "ok"]
    lines = [f"Evidence bundle {path}", f"  sha256 {digest}", ""]
    seal = [c for c in checks if c.check in ("signature", "signer", "certificate", "timestamp")]
    lines += ["Seal:", *(f"  {_line(c)}" for c in seal), ""]
    held = [c for c in ok if c.member.startswith("(") or c.check.endswith(KEY_CHECKS)
            or c.member == "report.pdf"]
    if held:
        lines += ["What held:", *(f"  {_line(c)}" for c in held), ""]
    if fails:
        lines += [f"FAILED checks ({len(fails)}):", *(f"  {_line(c)}" for c in fails), ""]
    rest = [c for c in opens if c not in seal]
    if rest:
        lines += [f"Open (not proven, not failed) ({len(rest)} besides the seal's):",
                  *(f"  {_line(c)}" for c in rest), ""]
    lines.append(f"{len(ok)} checks ok, {len(opens)} open, {len(fails)} failed.")
    if fails:
        lines.append(f"VERDICT: FAILED ({', '.join(sorted({c.member for c in fails}))[:300]})")
    elif opens:
        lines.append("VERDICT: VERIFIED, WITH OPEN ITEMS (each is named above; the claim is only "
                     "as strong as what was checked)")
    else:
        lines.append("VERDICT: VERIFIED")
    return "\n".join(lines)
