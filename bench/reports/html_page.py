"""The leaderboard as one offline HTML page: sortable by any column, filterable by model, regime and
shots (and by domain, where a group is shown as domain means), the best value per score column marked,
each row's full hyper-parameters and folded per-task values in its details.

The page carries its CSS and its small script inline (no CDN, no external file), so it opens from
a results folder or an e-mail attachment alike. Cells keep the table's text; the number a cell is
sorted and ranked by is its leading value (data-v), so sorting needs no parsing in the browser.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable

import pandas as pd

from bench.reports.leaderboard import (
    COST_COLUMNS,
    DETAIL_COLUMNS,
    MISSING,
    REPORTED,
    header_key,
    is_score_column,
    short_headers,
)
from bench.reports.load import regime_order, shots_order

FILTERS = {"kind": "Kind", "model": "Model", "regime": "Regime", "shots": "Shots"}
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)")
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "s": 1.0, "min": 60.0, "h": 3600.0}

STYLE = """
body{font-family:system-ui,sans-serif;font-size:13px;margin:12px;color:#222}
h1{font-size:17px;margin:0 0 4px}
p.gen{color:#666;margin:0 0 8px}
form{margin:0 0 8px}form label{margin-right:14px}
table{border-collapse:collapse}
th,td{border:1px solid #d6d6d6;padding:2px 5px;vertical-align:top}
th{background:#eef0f3;font-weight:600;text-align:left;max-width:7.5em;white-space:normal;position:sticky;top:0}
th[data-type]{cursor:pointer}th[data-type]:hover{background:#dde3ea}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td{white-space:nowrap}td.num{text-align:right}
td small{display:block;color:#666;font-size:11px}
td.best{background:#fff1b8;font-weight:700}
tr.reported td{background:#f3f6fb;font-style:italic}tr.reported td.best{background:#fff1b8}
details summary{cursor:pointer;color:#36c}
details dl{white-space:normal;max-width:32em;margin:4px 0}details dt{font-weight:600}details dd{margin:0 0 3px 8px}
.legend{color:#444;max-width:80em}
"""

SCRIPT = """
(function () {
  var table = document.getElementById("leaderboard");
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var sorted = -1, direction = 1;
  function key(row, i) {
    var cell = row.cells[i];
    if (cell.hasAttribute("data-v")) {
      var v = cell.getAttribute("data-v");
      return v === "" ? null : parseFloat(v);
    }
    var t = cell.textContent.trim().toLowerCase();
    return t === "\\u2014" ? null : t;
  }
  function sortBy(i, dir) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      if (x === null || y === null) { return (x === null) - (y === null); }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    heads[i].setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    sorted = i; direction = dir;
  }
  heads.forEach(function (h, i) {
    if (!h.hasAttribute("data-type")) { return; }
    h.addEventListener("click", function () {
      var first = h.getAttribute("data-type") === "num" ? -1 : 1;  // scores: highest first
      sortBy(i, sorted === i ? -direction : first);
    });
  });
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  function filter() {
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var ok = selects.every(function (s) {
        return s.value === "" || row.getAttribute("data-" + s.getAttribute("data-filter")) === s.value;
      });
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    // a score column with no value in any shown row is hidden, so the numbers that are there fit
    heads.forEach(function (h, i) {
      if (h.getAttribute("data-type") !== "num") { return; }
      var empty = Array.prototype.every.call(body.rows, function (r) {
        return r.hidden || r.cells[i].getAttribute("data-v") === "";
      });
      // the domain select hides the other domains' mean columns (data-domain); group means stay
      var off = domain !== null && domain.value !== "" && h.hasAttribute("data-domain")
        && h.getAttribute("data-domain") !== domain.value;
      h.hidden = empty || off;
      Array.prototype.forEach.call(body.rows, function (r) { r.cells[i].hidden = empty || off; });
    });
    document.getElementById("count").textContent = shown + " of " + body.rows.length + " rows";
  }
  selects.forEach(function (s) { s.addEventListener("change", filter); });
  var domain = document.getElementById("domain");
  if (domain !== null) { domain.addEventListener("change", filter); }
  filter();
})();
"""


def sort_value(text: str) -> float:
    """The number a cell is sorted by: '30.1* ± 1.5 (1/5)' -> 30.1, '1.41M' -> 1.41e6, '6.5 min' -> 390;
    NaN for a missing cell."""
    match = _NUMBER.match(text.strip())
    if not match:
        return math.nan
    rest = text.strip()[match.end():].lstrip().split(" ", 1)[0]
    return float(match.group(1)) * _SCALE.get(rest, 1.0)


def _number_cell(text: str, value: float, best: bool) -> str:
    cut = min((i for i in (text.find(" ±"), text.find(" (")) if i >= 0), default=len(text))
    main, rest = text[:cut], text[cut:].strip()
    inner = html.escape(main) + (f"<small>{html.escape(rest)}</small>" if rest else "")
    data = "" if math.isnan(value) else f"{value:g}"
    return f'<td class="num{" best" if best else ""}" data-v="{data}">{inner}</td>'


def _details(row: pd.Series, folded: dict[str, str] | None = None) -> str:
    """The row's detail columns, then every value folded out of the table (per-task values of a group
    shown as domain means), each with its domain so a reader can find it."""
    items = "".join(f"<dt>{html.escape(c)}</dt><dd>{html.escape(str(row[c]))}</dd>"
                    for c in DETAIL_COLUMNS if c in row.index and str(row[c]) != MISSING)
    items += "".join(f'<dt data-domain="{html.escape(d)}">{html.escape(c)}{f" [{html.escape(d)}]" if d else ""}</dt>'
                     f"<dd>{html.escape(str(row[c]))}</dd>"
                     for c, d in sorted((folded or {}).items(), key=lambda kv: (kv[1], kv[0]))
                     if c in row.index and str(row[c]) != MISSING)
    return f"<td><details><summary>details</summary><dl>{items}</dl></details></td>"


def _domain_filter(domains: dict[str, str]) -> str:
    """A select that shows one domain's mean columns only (the group means stay)."""
    if not domains:
        return ""
    return (f'<label>Domain <select id="domain"><option value="">all</option>{_options(domains.values())}'
            "</select></label>")


def _options(values: Iterable[str], order=None) -> str:
    unique = sorted(set(values), key=order) if order else sorted(set(values))
    return "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in unique if v != MISSING)


def leaderboard_page(table: pd.DataFrame, header: str, legend: Iterable[str]) -> str:
    """The page for a leaderboard table (bench.reports.leaderboard.leaderboard_table)."""
    folded, domains = table.attrs.get("folded", {}), table.attrs.get("domains", {})
    shown = [c for c in table.columns if c not in DETAIL_COLUMNS and c not in folded]
    numeric = [c for c in shown if is_score_column(c) or c in COST_COLUMNS]
    values = {c: [sort_value(str(t)) for t in table[c]] for c in numeric}
    # an incomplete group number (starred) is not the group's, so it cannot be the column's best
    best = {c: max((v for v, t in zip(values[c], table[c]) if not math.isnan(v) and "*" not in str(t)),
                   default=math.nan) for c in shown if is_score_column(c)}
    short = short_headers(shown)
    heads = []
    for c in shown:
        kind = "num" if c in numeric else "text"
        title = f' title="{html.escape(c)}"' if c in short else ""
        domain = f' data-domain="{html.escape(domains[c])}"' if c in domains else ""
        heads.append(f'<th data-type="{kind}"{title}{domain}>{html.escape(short.get(c, c))}</th>')
    heads.append("<th>details</th>")
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        cells = []
        for c in shown:
            text = str(row[c])
            if c in numeric:
                v = values[c][i]
                cells.append(_number_cell(text, v, c in best and not math.isnan(v) and v == best[c]))
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        attrs = "".join(f' data-{f}="{html.escape(str(row[f]))}"' for f in FILTERS)
        cls = ' class="reported"' if row["kind"] == REPORTED else ""
        rows.append(f"<tr{cls}{attrs}>{''.join(cells)}{_details(row, folded)}</tr>")
    orders = {"regime": regime_order, "shots": lambda s: shots_order(s) if s.replace(".", "").isdigit() or s == "all"
              else math.inf}
    filters = "".join(
        f'<label>{label} <select data-filter="{f}"><option value="">all</option>'
        f"{_options(table[f].astype(str), orders.get(f))}</select></label>" for f, label in FILTERS.items())
    filters += _domain_filter(domains)
    key = header_key(shown)
    notes = "".join(f"<li>{html.escape(t)}</li>" for t in [*legend, *([key] if key else [])])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>glip-bench leaderboard</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>glip-bench leaderboard</h1>\n<p class=\"gen\">{html.escape(header)} Click a column header to sort; "
        "highlighted: the best (highest) value of each score column, incomplete (starred) group numbers not counted; "
        "columns with no value in the shown rows are hidden; italic rows: reported numbers.</p>\n"
        f"<form id=\"filters\">{filters}<span id=\"count\">{len(table)} rows</span></form>\n"
        f"<table id=\"leaderboard\"><thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + f"\n</tbody></table>\n<ul class=\"legend\">{notes}</ul>\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
