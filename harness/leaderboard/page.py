"""index.html: a self-contained page (inline CSS, JS and plots; no external requests) with a
sortable model x task table, each value linking to its cell's report, and a plot per series."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from harness.leaderboard.config import LeaderboardConfig, TaskEntry
from harness.leaderboard.table import HOLM_FAMILY, CellSummary
from harness.report.wording import fmt_p

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;color:#1b1f24;
padding:0 1em}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;
margin-top:1.8em}table{border-collapse:collapse;font-size:.9em;max-width:100%}
td,th{border:1px solid #d0d7de;padding:.25em .45em;text-align:left;vertical-align:top;
overflow-wrap:break-word}th{background:#f6f8fa;cursor:pointer;user-select:none}
td code{overflow-wrap:anywhere}.v{white-space:nowrap}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.small{color:#57606a;font-size:.88em}.bound{color:#0a3069}.est{color:#6e7781;font-style:italic}
.shift{color:#cf222e;font-weight:600}.fail{color:#cf222e}img{max-width:100%;height:auto}
.wrap{overflow-x:auto}code{font-family:ui-monospace,monospace;font-size:.88em}
pre{white-space:pre-wrap;overflow-wrap:anywhere}
"""

SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function(th){
 th.addEventListener("click",function(){
  var table=th.closest("table"),body=table.tBodies[0],i=th.cellIndex;
  var dir=th.getAttribute("aria-sort")==="ascending"?"descending":"ascending";
  table.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort");});
  th.setAttribute("aria-sort",dir);
  var num=th.dataset.type==="num",sign=dir==="ascending"?1:-1;
  function key(r){var v=r.cells[i].dataset.v;if(v===undefined||v==="")return null;
   return num?parseFloat(v):v.toLowerCase();}
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=key(a),y=key(b);if(x===null&&y===null)return 0;
   if(x===null)return 1;if(y===null)return -1;return (x<y?-1:x>y?1:0)*sign;});
  rows.forEach(function(r){body.appendChild(r);});
 });
});
"""


def _is_benchmark(t: TaskEntry, cells: Sequence[CellSummary]) -> bool:
    mine = [c for c in cells if c.task == t.name and c.status == "done"]
    if mine:
        return all(c.auc is not None for c in mine)
    from harness.registry import TaskError, get_task

    try:
        return not get_task(t.task).needs_canaries
    except TaskError:
        return False


def _link(c: CellSummary, text: str, css: str = "") -> str:
    href = f"cells/{escape(c.id)}/report.html"
    cls = f" class='{css}'" if css else ""
    return f"<a href='{href}'{cls}>{text}</a>"


def _td(v: Any, html: str) -> str:
    return f"<td data-v='{escape(str(v))}'>{html}</td>" if v is not None else f"<td>{html}</td>"


def _failed(c: CellSummary | None) -> str:
    if c is None:
        return "<td>—</td>"
    if c.status == "missing":
        return "<td class='small'>not run</td>"
    return (f"<td><a class='fail' href='cells/{escape(c.id)}/log.txt' "
            f"title='{escape(c.error)}'>failed</a></td>")


def fmt_log10_p(log10: float | None) -> str:
    """A p-value given by its log10, as reports print it."""
    if log10 is None:
        return ""
    return fmt_p(10.0**log10 if log10 > -300 else 0.0, log10)


def _claim_cells(c: CellSummary | None) -> str:
    if c is None or c.status != "done":
        return _failed(c) + "<td></td>"
    if c.kind == "bound":
        p = _link(c, f"<span class=v>p ≤ {escape(fmt_log10_p(c.log10_pvalue))}</span>", "bound")
        h = f"<span class=v>p ≤ {escape(fmt_log10_p(c.holm_log10))}</span>" if (
            c.holm_log10 is not None) else ""
        return _td(c.log10_pvalue, p + " <span class=small>bound</span>") + _td(c.holm_log10, h)
    p = _link(c, f"<span class=v>p ≈ {escape(fmt_log10_p(c.log10_pvalue))}</span>", "est")
    return _td(c.log10_pvalue, p + " <span class=small>estimate</span>") + "<td></td>"


def _bench_cells(c: CellSummary | None) -> str:
    if c is None or c.status != "done":
        return _failed(c) + "<td></td>"
    lo, hi = c.auc_ci or (float("nan"), float("nan"))
    auc = _link(c, f"<span class=v>{c.auc:.3f}</span> <span class='small v'>[{lo:.3f}, "
                f"{hi:.3f}]</span>", "est")
    blo, bhi = c.blind_ci or (float("nan"), float("nan"))
    flag = " <span class=shift>SHIFTED</span>" if c.shifted else ""
    blind = (f"<span class=v>{c.blind_auc:.3f}</span> <span class='small v'>[{blo:.3f}, "
             f"{bhi:.3f}]</span>{flag}")
    return (_td(c.auc, auc + f" <span class=small>{escape(c.best_score)}</span>")
            + _td(c.blind_auc, blind))


def grid_table(config: LeaderboardConfig, cells: Sequence[CellSummary]) -> str:
    by = {(c.model, c.task): c for c in cells}
    bench = {t.name: _is_benchmark(t, cells) for t in config.tasks}
    series = [s.name for s in config.series]
    head = ["<th data-type='text'>model</th>"]
    head += [f"<th data-type='num'>{escape(s)}</th>" for s in series]
    for t in config.tasks:
        n = escape(t.name)
        if bench[t.name]:
            head += [f"<th data-type='num'>{n}: AUC [CI] (estimate)</th>",
                     f"<th data-type='num'>{n}: blind AUC [CI]</th>"]
        else:
            head += [f"<th data-type='num'>{n}: p</th>",
                     f"<th data-type='num'>{n}: Holm p</th>"]
    rows = []
    for m in config.models:
        tds = [f"<td data-v='{escape(m.name)}'><b>{escape(m.name)}</b><br>"
               f"<code class=small>{escape(m.spec)}</code></td>"]
        tds += [_td(m.series.get(s), f"{m.series[s]:g}" if s in m.series else "")
                for s in series]
        for t in config.tasks:
            c = by.get((m.name, t.name))
            tds.append(_bench_cells(c) if bench[t.name] else _claim_cells(c))
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return ("<div class=wrap><table class=sortable id=grid><thead><tr>" + "".join(head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def render_page(config: LeaderboardConfig, cells: Sequence[CellSummary], run: dict[str, Any],
                provenance: dict[str, Any]) -> str:
    from harness.leaderboard.plots import series_plot_png
    from harness.mi.shift import NO_BOUND, SHIFT_RULE
    from harness.report.plots import png_data_uri

    done = sum(c.status == "done" for c in cells)
    parts = [
        f"<h1>{escape(config.title)}</h1>",
        f"<p class=small>tdp-harness {escape(str(provenance.get('harness_version')))} · git "
        f"<code>{escape(str(provenance.get('git')))}</code> · {done} of {len(cells)} cells done · "
        f"{escape(str(run.get('workers', '')))} · config <code>{escape(config.path)}</code> "
        f"(sha256 <code>{config.sha256[:16]}…</code>)</p>",
        "<p><b>How to read.</b> <span class=bound>p ≤ x (bound)</span>: an exact false-positive "
        "bound under the stated assumptions (canary tasks). <span class=est>≈ / AUC "
        "(estimate)</span>: an estimate, never a bound. Holm p: adjusted across the grid over "
        f"{escape(HOLM_FAMILY)}. Click a column header to sort; click a value for its report.</p>",
        grid_table(config, cells),
        f"<p class=small><b>Membership-inference columns.</b> {escape(NO_BOUND)} "
        f"{escape(SHIFT_RULE)} <span class=shift>SHIFTED</span> marks such a split.</p>",
    ]
    for s in config.series:
        uri = png_data_uri(series_plot_png(config, cells, s))
        parts.append(f"<h2>Series: {escape(s.name)}</h2><img alt='series {escape(s.name)}' "
                     f"src='{uri}'>")
    parts.append("<h2>Files</h2><p><a href='leaderboard.json'>leaderboard.json</a> (every "
                 "cell, digested) · <a href='leaderboard.csv'>leaderboard.csv</a> · verify: "
                 "<code>tdp verify THIS_FOLDER</code></p>")
    parts.append(f"<details><summary>Config</summary><pre>{escape(config.text)}</pre></details>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{escape(config.title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + f"<script>{SORT_JS}</script></body></html>\n")
