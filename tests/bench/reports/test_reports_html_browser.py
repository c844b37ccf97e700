"""The HTML leaderboard in a real headless Chromium: sort by clicking a header, filter with the
selects, and check that every number column lies inside a 1366 px wide screen.

A probe script appended to a copy of the page drives the page's own script through DOM events and
writes what it saw into the DOM, which `chromium --dump-dom` returns. Skipped where no Chromium is
installed (Debian: `apt-get install chromium`)."""

import json
import re

import pytest

from bench.reports import browser
from bench.reports import leaderboard as lb
from bench.reports.load import load_record_frame
from bench.testing.reports import make_record, write_records

pytestmark = pytest.mark.skipif(browser.find_chromium() is None,
                                reason="no Chromium binary (chromium, chromium-browser, google-chrome) on PATH; "
                                       "install it with `apt-get install -y chromium`")

TASKS = [f"synth-task{i}" for i in range(7)]  # a wide group: abbreviated headers

PROBE = """
<script>
(function () {
  var table = document.getElementById("leaderboard");
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function col(name) { return heads.findIndex(function (h) { return h.textContent.replace(/[\\u25B2\\u25BC ]+$/, "") === name; }); }
  function visible(i) {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; })
      .map(function (r) { return r.cells[i].textContent; });
  }
  var out = {};
  var mean = col("synth mean");
  heads[mean].click();
  out.desc = visible(mean);
  heads[mean].click();
  out.asc = visible(mean);
  out.sortState = heads[mean].getAttribute("aria-sort");
  var regime = document.querySelector('select[data-filter="regime"]');
  regime.value = "prompt-tuning";
  regime.dispatchEvent(new Event("change"));
  out.filteredRegimes = visible(col("regime"));
  out.count = document.getElementById("count").textContent;
  out.width = window.innerWidth;
  out.rightEdges = {};
  heads.forEach(function (h) { out.rightEdges[h.textContent] = h.getBoundingClientRect().right; });
  out.best = Array.prototype.map.call(document.querySelectorAll("td.best"), function (td) {
    return heads[td.cellIndex].textContent + "=" + td.getAttribute("data-v"); });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


PROBE_KIND = """
<script>
(function () {
  var kind = document.querySelector('select[data-filter="kind"]');
  kind.value = "run here";
  kind.dispatchEvent(new Event("change"));
  var out = {shown: {}, hidden: []};
  Array.prototype.forEach.call(document.getElementById("leaderboard").tHead.rows[0].cells, function (h) {
    if (h.hidden) { out.hidden.push(h.textContent); } else { out.shown[h.textContent] = h.getBoundingClientRect().right; }
  });
  out.count = document.getElementById("count").textContent;
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


@pytest.fixture
def page(tmp_path):
    recs = []
    for fusion, shift in (("deep", 0.0), ("late", -5.0)):
        ckpt = f"models/glip-{fusion}.safetensors"
        over = {"fusion": fusion, "max_iters": 40, "batch_size": 4}
        for i, task in enumerate(TASKS):
            recs.append(make_record(task=task, regime="zero-shot", checkpoint=ckpt, overrides=over,
                                    value=30.0 + i + shift))
        for regime, base in (("prompt-tuning", 40.0), ("full-ft", 45.0)):
            for seed in (0, 1):
                for i, task in enumerate(TASKS):
                    recs.append(make_record(task=task, regime=regime, seed=seed, checkpoint=ckpt, overrides=over,
                                            value=base + i + seed + shift, trainable_params=123_456))
    write_records(tmp_path / "res", recs)
    df = load_record_frame(tmp_path / "res")
    table = lb.leaderboard_table(df)
    html = lb.render_html(table, len(df))
    (tmp_path / "leaderboard.html").write_text(html, encoding="utf-8")
    probed = html.replace("</body>", PROBE + "</body>")
    (tmp_path / "probe.html").write_text(probed, encoding="utf-8")
    return tmp_path, table


def _probe(path) -> dict:
    dom = browser.dump_dom(path, width=1366, height=900)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the probe script did not run: " + dom[-500:]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _lead(text: str) -> float:
    return float(re.match(r"-?\d+(?:\.\d+)?", text).group(0))


def test_sort_filter_and_fit_in_a_1366px_screen(page):
    tmp_path, table = page
    seen = _probe(tmp_path / "probe.html")
    means = [_lead(t) for t in table["synth mean"]]
    # clicking a score header sorts highest first, clicking again lowest first
    assert [_lead(t) for t in seen["desc"]] == sorted(means, reverse=True)
    assert [_lead(t) for t in seen["asc"]] == sorted(means)
    assert seen["sortState"] == "ascending"
    assert seen["filteredRegimes"] == ["prompt-tuning", "prompt-tuning"] and seen["count"] == "2 of 6 rows"
    # every score and cost column ends inside the screen, without horizontal scrolling
    assert seen["width"] == 1366
    for header in ["task0", "task6", "synth mean", "synth median", "trainable params", "train time / run"]:
        assert 0 < seen["rightEdges"][header] <= 1366, (header, seen["rightEdges"])
    # best per column: full-ft with deep fusion (the highest values) in every score column
    best_mean = max(means)
    assert f"synth mean={best_mean:g}" in seen["best"]
    assert len([b for b in seen["best"] if b.startswith("task")]) == len(TASKS)


def test_kind_filter_hides_columns_only_reported_rows_fill(page, tmp_path):
    """With the published rows (COCO, LVIS, Flickr30K, ODinW columns) the table is wider than a screen;
    showing the reproduced rows only hides the columns they leave empty, and the rest fit again."""
    from bench.reports.reference import default_reference_dir, load_reference

    reference = load_reference([default_reference_dir() / "reported-numbers.csv"])
    df = load_record_frame(page[0] / "res")
    html = lb.render_html(lb.leaderboard_table(df, reference), len(df))
    (tmp_path / "kind.html").write_text(html.replace("</body>", PROBE_KIND + "</body>"), encoding="utf-8")
    seen = _probe(tmp_path / "kind.html")
    assert seen["count"] == "6 of " + str(html.count("<tr") - 1) + " rows"
    assert "coco (AP)" in seen["hidden"] and "odinw13 mean" in seen["hidden"]
    assert "synth mean" in seen["shown"] and "task6" in seen["shown"]
    for header, right in seen["shown"].items():
        assert 0 < right <= 1366, (header, seen["shown"])


def test_screenshot_is_a_1366px_png(page, tmp_path):
    png = browser.screenshot(page[0] / "leaderboard.html", tmp_path / "shot.png", width=1366, height=900)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 1366 and int.from_bytes(head[20:24], "big") == 900


def test_cli_writes_the_screenshot(tmp_path):
    from bench.cli import main as cli_main

    write_records(tmp_path / "res", [make_record(seed=s, value=40.0 + s) for s in range(2)])
    assert cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "out"),
                     "--no-reference", "--screenshot", str(tmp_path / "out" / "leaderboard.png")]) == 0
    head = (tmp_path / "out" / "leaderboard.png").read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") == 1366
