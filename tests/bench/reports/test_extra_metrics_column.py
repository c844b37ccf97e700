"""Records' extra metrics (metrics.extra) reach the leaderboard's details and HTML page, and only when present."""

from __future__ import annotations

from bench.reports.html_page import leaderboard_page
from bench.reports.leaderboard import EXTRA_COLUMN, display_table, leaderboard_table
from bench.reports.load import records_to_frame
from bench.testing.reports import make_record


def _with_extra(record: dict, nms_ap: float, f1: float) -> dict:
    record["metrics"]["extra"] = {
        "nms-ap": {"primary": "AP", "values": {"AP": nms_ap}, "definition": "NMS-AP", "backend": "hotcoco"},
        "f1": {"primary": "F1_50", "values": {"F1_50": f1}, "definition": "F1", "backend": "numpy"},
    }
    return record


def test_extra_metrics_are_a_detail_column():
    plain = leaderboard_table(records_to_frame([make_record(seed=0), make_record(seed=1)]))
    assert EXTRA_COLUMN not in plain.columns  # no record has any: the table is as before
    records = [_with_extra(make_record(seed=0), 30.0, 50.0), _with_extra(make_record(seed=1), 32.0, 52.0)]
    table = leaderboard_table(records_to_frame(records))
    assert table[EXTRA_COLUMN].tolist() == ["nms-ap AP 31.0 (2 runs); f1 F1_50 51.0 (2 runs)"]
    assert EXTRA_COLUMN not in display_table(table).columns  # details only: not in the Markdown / LaTeX tables
    page = leaderboard_page(table, "header", [])
    assert "<dt>extra metrics</dt><dd>nms-ap AP 31.0 (2 runs); f1 F1_50 51.0 (2 runs)</dd>" in page
    assert "<th>extra metrics" not in page
