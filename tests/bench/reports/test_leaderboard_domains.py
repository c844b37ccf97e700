"""Leaderboard columns for a group split into domains (RF100-VL), test sets told apart by annotation hash,
and reported rows of such groups."""

from __future__ import annotations

import pandas as pd

from bench.reports import leaderboard as lb
from bench.reports.load import records_to_frame
from bench.reports.reference import reference_cells
from bench.testing.reports import make_record


def _frame(records):
    return records_to_frame(records, [f"r{i}.json" for i in range(len(records))])


def _rec(task, value, seed=3, groups=None, ann="", regime="zero-shot"):
    rec = make_record(task=task, value=value, seed=seed, regime=regime, groups=groups or ("rf100vl",))
    rec["task"]["ann_sha256"] = ann
    return rec


def test_tasks_fold_into_domain_means_in_markdown_but_not_in_csv():
    recs = [_rec("rf100vl-a", 10.0, groups=("rf100vl", "rf100vl-aerial")),
            _rec("rf100vl-b", 20.0, groups=("rf100vl", "rf100vl-aerial")),
            _rec("rf100vl-c", 40.0, groups=("rf100vl", "rf100vl-sport"))]
    table = lb.leaderboard_table(_frame(recs))
    shown = list(lb.display_table(table).columns)
    assert [c for c in shown if lb.is_score_column(c)] == ["rf100vl mean", "rf100vl-aerial mean", "rf100vl-sport mean"]
    row = table.iloc[0]
    assert row["rf100vl-aerial mean"] == "15.0" and row["rf100vl-sport mean"] == "40.0"
    assert row["rf100vl mean"] == "23.3"  # the mean over data sets, not over domain means
    assert {"rf100vl-a (AP)", "rf100vl-b (AP)", "rf100vl-c (AP)"} <= set(table.columns)
    assert "rf100vl-a (AP)" in lb.render_csv(table).splitlines()[0]
    md = lb.render_markdown(table, 3)
    assert "rf100vl-a (AP)" not in md and lb.DOMAIN_LEGEND in md
    page = lb.render_html(table, 3)
    assert '<th data-type="num" data-domain="aerial">rf100vl-aerial mean</th>' in page
    assert 'rf100vl-c (AP) [sport]</dt><dd>40.0</dd>' in page


def test_a_plain_group_is_not_folded():
    recs = [_rec("synth-a", 10.0, groups=("synth",)), _rec("synth-b", 30.0, groups=("synth",))]
    table = lb.leaderboard_table(_frame(recs))
    assert table.attrs["folded"] == {} and "synth-a (AP)" in lb.display_table(table).columns
    assert lb.DOMAIN_LEGEND not in lb.render_markdown(table, 2)


def test_two_test_sets_of_one_task_are_two_columns():
    """A task scored on two annotation files (the full and the FSOD test set differ for six RF100-VL data
    sets) gets one column per file: the two numbers are never averaged."""
    recs = [_rec("rf100vl-fruitjes", 10.0, seed=3, ann="a" * 64), _rec("rf100vl-fruitjes", 30.0, seed=30, ann="b" * 64)]
    values = lb.leaderboard_values(_frame(recs))
    cells = values[values["kind"] == "task"].set_index("column")["mean"].to_dict()
    assert cells == {"rf100vl-fruitjes#aaaaaaaa (AP)": 10.0, "rf100vl-fruitjes#bbbbbbbb (AP)": 30.0}
    same = lb.leaderboard_values(_frame([_rec("rf100vl-x", 10.0, seed=3, ann="a" * 64),
                                         _rec("rf100vl-x", 30.0, seed=30, ann="a" * 64)]))
    assert same[same["kind"] == "task"]["column"].tolist() == ["rf100vl-x (AP)"]
    # zero-shot on val and fine-tuned on test: two files, one task column (the rows differ by regime)
    val, test = _rec("odinw-x", 10.0, ann="a" * 64), _rec("odinw-x", 30.0, ann="b" * 64, regime="full-ft")
    frame = _frame([val, test]).assign(split=["val", "test"])
    cols = lb.leaderboard_values(frame).query("kind == 'task'")["column"].unique().tolist()
    assert cols == ["odinw-x (AP)"]


def test_reported_rf100vl_rows_land_in_group_mean_columns():
    ref = pd.DataFrame([{"model": "M", "pretrain_data": "", "task": "rf100vl-aerial", "split": "test",
                         "regime": "zero-shot", "shots": "0", "metric": "AP", "value": 12.5, "std": float("nan"),
                         "source": "paper Table X", "note": ""}])
    cells = reference_cells(ref)
    assert cells["column"].tolist() == ["rf100vl-aerial mean"] and cells["split"].tolist() == ["test"]
