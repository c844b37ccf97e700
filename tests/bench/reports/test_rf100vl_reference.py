"""results/reference/rf100vl-numbers.csv: every shipped RF100-VL number names its source, lands in a group
column the task registry knows, and a default `glip-bench leaderboard` over an RF100-VL record shows it."""

from __future__ import annotations

import pandas as pd

from bench.cli import main as cli_main
from bench.reports.reference import (
    DEFAULT_REFERENCE_FILES,
    default_reference_dir,
    load_reference,
    reference_column,
)
from bench.tasks.registry import all_groups
from bench.testing.reports import make_record, write_records

SHIPPED = default_reference_dir() / "rf100vl-numbers.csv"


def test_every_shipped_row_has_a_source_and_a_leaderboard_column():
    ref = load_reference([SHIPPED])
    assert len(ref) > 0
    assert (ref["source"].str.strip() != "").all()
    groups = set(all_groups())
    for rec in ref.to_dict("records"):
        assert rec["task"] in groups, rec["task"]
        assert reference_column(rec["task"], rec["split"], rec["metric"]) == f"{rec['task']} mean", rec
        assert 0.0 <= rec["value"] <= 100.0 and rec["regime"] in ("zero-shot", "full-ft"), rec
    assert "rf100vl-numbers.csv" in DEFAULT_REFERENCE_FILES


def test_default_leaderboard_shows_the_reported_rf100vl_mean(tmp_path):
    rec = make_record(task="rf100vl-actions", regime="zero-shot", value=12.5, groups=("rf100vl", "rf100vl-sport"))
    write_records(tmp_path / "res", [rec])
    assert cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "leaderboard.csv", dtype=str, keep_default_na=False)
    shipped = pd.read_csv(SHIPPED, dtype=str, keep_default_na=False)
    first = shipped.iloc[0]
    row = table[(table["kind"] == "reported") & (table["model"] == first["model"])]
    assert len(row) == 1
    split = f" ({first['split']})" if first["split"] else ""
    assert row["rf100vl mean"].item() == f"{float(first['value']):.1f}{split}"
    assert row["source"].item() == first["source"]
    # the reproduced row sits in the same column, and reported-numbers.csv is still read by default
    ours = table[table["model"] == rec["spec"]["model"]]
    assert ours["rf100vl mean"].str.startswith("12.5").all() and len(ours) == 1
    assert (table["source"] == "microsoft/GLIP README model zoo").any()
