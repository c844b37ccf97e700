"""Leaderboard cells from hand-made records, checked against numbers computed here independently."""

import json
import re
import statistics

import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.reports import leaderboard as lb
from bench.reports.load import COLUMNS, load_record_frame
from bench.reports.reference import default_reference_dir, load_reference
from bench.testing.reports import make_record, write_records
from bench.util.errors import UserError

ODINW = [f"odinw-{i:02d}" for i in range(13)]


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for k, v in where.items():
        mask &= table[k] == v
    assert mask.sum() == 1, f"expected one row for {where}, got {int(mask.sum())}"
    return table[mask].iloc[0]


def test_task_cells_mean_std_and_missing_seeds(tmp_path):
    recs = [make_record(task="synth-a", seed=s, value=v) for s, v in zip([0, 1, 2], [40.0, 42.0, 47.0])]
    recs += [make_record(task="synth-b", seed=s, value=v) for s, v in zip([0, 1], [30.0, 31.0])]
    recs += [make_record(task="synth-a", regime="zero-shot", value=20.0)]
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    assert len(df) == 6
    table = lb.leaderboard_table(df)
    full = _row(table, regime="full-ft", shots="5")
    assert full["synth-a (AP)"] == f"{statistics.mean([40, 42, 47]):.1f} ± {statistics.stdev([40, 42, 47]):.1f}"
    assert full["synth-a (AP)"] == "43.0 ± 3.6"
    # synth-b ran 2 of the 3 seeds seen for full-ft 5-shot: shown, not hidden
    assert full["synth-b (AP)"] == f"30.5 ± {statistics.stdev([30, 31]):.1f} (2/3 seeds)"
    assert full["seeds"] == "2-3/3"
    # group "synth": mean/median over task means; std over seeds present in both tasks (0 and 1)
    per_seed = [statistics.mean([40, 30]), statistics.mean([42, 31])]
    assert full["synth mean"] == f"{statistics.mean([43.0, 30.5]):.1f} ± {statistics.stdev(per_seed):.1f} (2/3 seeds)"
    assert full["synth median"] == f"{statistics.median([43.0, 30.5]):.1f} (2/3 seeds)"
    zero = _row(table, regime="zero-shot")
    assert zero["synth-a (AP)"] == "20.0"
    assert zero["synth-b (AP)"] == lb.MISSING
    assert zero["seeds"] == "1/1"
    assert full["trainable params"] == "1.00K" and full["device"] == "cpu"


def test_expected_seeds_can_be_given(tmp_path):
    write_records(tmp_path, [make_record(seed=s, value=40.0 + s) for s in range(3)] + [make_record(seed=9)])
    table = lb.leaderboard_table(load_record_frame(tmp_path), seeds=[0, 1, 2, 3])
    # seed 9 is not among --seeds, so it is left out; 3 of the 4 expected seeds are there
    assert _row(table, regime="full-ft")["synth-a (AP)"] == "41.0 ± 1.0 (3/4 seeds)"


def test_odinw_mean_over_fewer_than_13_tasks_is_marked(tmp_path):
    values = [10.0 + 3 * i for i in range(9)]
    recs = [make_record(task=t, regime="zero-shot", value=v, groups=("odinw13", "odinw35"))
            for t, v in zip(ODINW[:9], values)]
    write_records(tmp_path, recs)
    row = _row(lb.leaderboard_table(load_record_frame(tmp_path)), regime="zero-shot")
    assert row["odinw13 mean"] == f"{statistics.mean(values):.1f}* (9/13)" == "22.0* (9/13)"
    assert row["odinw13 median"] == f"{statistics.median(values):.1f}* (9/13)"
    assert row["odinw35 mean"].endswith("* (9/35)")


def test_complete_odinw13_has_no_marker_and_a_seed_std(tmp_path):
    recs, per_seed = [], {s: [] for s in range(3)}
    for i, task in enumerate(ODINW):
        for s in range(3):
            v = 20.0 + i + 0.7 * s * (i % 3)
            per_seed[s].append(v)
            recs.append(make_record(task=task, seed=s, value=v, groups=("odinw13",)))
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    row = _row(lb.leaderboard_table(df), regime="full-ft")
    task_means = [statistics.mean(per_seed[s][i] for s in range(3)) for i in range(13)]
    seed_means = [statistics.mean(per_seed[s]) for s in range(3)]
    assert row["odinw13 mean"] == f"{statistics.mean(task_means):.1f} ± {statistics.stdev(seed_means):.1f}"
    assert row["odinw13 median"] == f"{statistics.median(task_means):.1f}"
    values = lb.leaderboard_values(df)
    g = values[values["column"] == "odinw13 mean"].iloc[0]
    assert g["mean"] == pytest.approx(statistics.mean(task_means))
    assert (g["n_tasks"], g["expected_tasks"], g["n_seeds"], g["expected_seeds"]) == (13, 13, 3, 3)


def test_overrides_and_checkpoints_make_separate_rows(tmp_path):
    write_records(tmp_path, [
        make_record(value=40.0), make_record(value=30.0, overrides={"fusion": "late"}),
        make_record(value=35.0, checkpoint="other.pth"), make_record(value=33.0, prompt_set="official"),
    ])
    table = lb.leaderboard_table(load_record_frame(tmp_path))
    assert len(table) == 4
    assert _row(table, variant="fusion=late")["synth-a (AP)"] == "30.0"
    assert _row(table, checkpoint="other.pth")["synth-a (AP)"] == "35.0"
    assert _row(table, variant="prompts=official")["synth-a (AP)"] == "33.0"
    assert _row(table, variant="default", checkpoint=lb.MISSING)["synth-a (AP)"] == "40.0"


def test_task_versions_get_separate_columns(tmp_path):
    write_records(tmp_path, [make_record(value=40.0, task_version=1), make_record(value=45.0, task_version=2,
                                                                                  seed=1)])
    row = lb.leaderboard_table(load_record_frame(tmp_path)).iloc[0]
    assert row["synth-a@v1 (AP)"].startswith("40.0") and row["synth-a@v2 (AP)"].startswith("45.0")


def test_invalid_record_is_an_error_naming_the_file(tmp_path):
    [good] = write_records(tmp_path, [make_record()])
    bad = tmp_path / "runs" / "elsewhere" / "record.json"  # a second run folder of the same results set
    bad.parent.mkdir(parents=True)
    record = make_record(seed=1)
    record["metrics"]["values"]["AP"] = 140.0
    bad.write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"invalid record .*runs/elsewhere/record.json.*0-100"):
        load_record_frame(tmp_path)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="runs/elsewhere/record.json"):
        load_record_frame(tmp_path)
    bad.write_text(good.read_text())  # the same run twice
    with pytest.raises(UserError, match="has two records"):
        load_record_frame(tmp_path)
    with pytest.raises(UserError, match="nope not found"):
        load_record_frame(tmp_path / "nope")


def test_report_commands_read_one_results_set_and_refuse_to_mix_them(tmp_path):
    """A folder that is a set gives its own records (sets below it are left out); a folder holding several
    sets and none of its own is refused, naming them."""
    write_records(tmp_path / "results", [make_record(value=10.0)])
    write_records(tmp_path / "results" / "demo", [make_record(value=20.0), make_record(seed=1, value=30.0)])
    assert list(load_record_frame(tmp_path / "results")["value"]) == [10.0]
    assert len(load_record_frame(tmp_path / "results" / "demo")) == 2
    write_records(tmp_path / "sets" / "a", [make_record()])
    write_records(tmp_path / "sets" / "b", [make_record()])
    with pytest.raises(UserError, match=r"holds 2 result sets.*sets/a \(1 records\).*sets/b.*--results"):
        load_record_frame(tmp_path / "sets")


def _reference_csv(path):
    path.write_text(
        "model,pretrain_data,task,split,regime,shots,metric,value,std,source,note\n"
        "GLIP-X,O365,odinw13,val,zero-shot,0,AP_mean,28.7,,some README,\n"
        "GLIP-X,O365,coco,val2017,zero-shot,0,AP,42.9,,some README,\n"
        "GLIP-X,O365,lvis,minival,zero-shot,0,APr,14.2,,some README,not a headline metric\n"
        "GLIP-X,O365,odinw13,avg13,full-finetune,5,AP,50.1,1.2,paper Table 11,\n"
    )
    return path


def test_reference_rows_stand_beside_reproduced_rows(tmp_path):
    write_records(tmp_path / "res", [make_record(task=t, regime="zero-shot", value=20.0, groups=("odinw13",))
                                     for t in ODINW[:2]] + [make_record(task="coco", regime="zero-shot",
                                                                        value=12.5, groups=())])
    reference = load_reference([_reference_csv(tmp_path / "ref.csv")])
    table = lb.leaderboard_table(load_record_frame(tmp_path / "res"), reference)
    assert list(table["kind"]) == [lb.REPRODUCED, lb.REPORTED, lb.REPORTED]
    zs = _row(table, kind=lb.REPORTED, regime="zero-shot")
    assert (zs["model"], zs["variant"], zs["pretrain data"], zs["source"]) == ("GLIP-X", "O365", "O365", "some README")
    assert zs["odinw13 mean"] == "28.7 (val)"
    assert zs["coco (AP)"] == "42.9 (val2017)"
    assert not any(c.startswith("lvis") for c in table.columns)  # APr is not LVIS's headline metric
    ft = _row(table, kind=lb.REPORTED, regime="full-ft")
    assert (ft["shots"], ft["odinw13 mean"], ft["source"]) == ("5", "50.1 ± 1.2", "paper Table 11")
    ours = _row(table, kind=lb.REPRODUCED)
    assert ours["odinw13 mean"] == "20.0* (2/13)"
    assert ours["coco (AP)"] == "12.5"  # the reproduced and the reported COCO number share one column


def test_shipped_reference_csvs_load():
    ref_dir = default_reference_dir()
    reference = load_reference([ref_dir / "reported-numbers.csv", ref_dir / "paper-numbers.csv"])
    assert len(reference) == 50 + 1738
    table = lb.leaderboard_table(pd.DataFrame(columns=list(COLUMNS)), reference)
    row = table[(table["model"] == "GLIP-T (C)") & (table["source"] == "microsoft/GLIP README model zoo")
                & (table["regime"] == "zero-shot")].iloc[0]
    assert row["odinw13 mean"] == "44.4 (val)" and row["coco (AP)"] == "46.7 (val2017)"
    # benchmark splits map onto the task YAML names (lvis-minival, flickr30k-val / -test)
    mmdet = table[(table["model"] == "GLIP-T (C)") & (table["regime"] == "pretrain-eval")].iloc[0]
    assert (mmdet["flickr30k-val (R@1)"], mmdet["flickr30k-test (R@1)"]) == ("84.8 (val)", "85.5 (test)")
    lvis = table[(table["model"] == "GLIP-T (C)") & (table["regime"] == "zero-shot")
                 & (table["source"] == "mmdetection configs/glip/README.md (official row)")].iloc[0]
    assert lvis["lvis-minival (AP)"] == "24.6 (minival)"
    pt = table[(table["model"] == "GLIP-T (A)") & (table["regime"] == "prompt-tuning") & (table["shots"] == "all")]
    assert len(pt) == 1  # Table 13 only; the Table 16 "Avg" duplicate is dropped


def test_renderers_carry_the_header_and_every_cell(tmp_path):
    write_records(tmp_path, [make_record(seed=s, value=40.0 + s) for s in range(2)]
                  + [make_record(task="x|y", seed=0, value=10.0)])
    df = load_record_frame(tmp_path)
    table = lb.leaderboard_table(df)
    md = lb.render_markdown(table, len(df))
    assert md.splitlines()[0] == lb.header_line(3)
    assert "generated" in md.splitlines()[0].lower() and "do not edit" in md.splitlines()[0]
    pipe_rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(pipe_rows) == len(table) + 2
    assert "x\\|y (AP)" in pipe_rows[0]
    assert "40.5 ± 0.7 (2/2 seeds)" not in md and "40.5 ± 0.7" in md
    back = pd.read_csv(pd.io.common.StringIO(lb.render_csv(table)), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, table)
    tex = lb.render_latex(table, 3)
    assert tex.startswith("% " + lb.header_line(3)) and r"40.5 $\pm$ 0.7" in tex and r"\begin{tabular}" in tex
    html = lb.render_html(table, 3)
    # offline: style and script inline, nothing fetched from elsewhere
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html and "<script>" in html
    assert "src=" not in html and "http" not in html and "<link" not in html
    assert '<td class="num best" data-v="40.5">40.5<small>± 0.7</small></td>' in html and "from 3 records" in html


def test_variant_label_is_what_differs_and_details_keep_the_rest(tmp_path):
    """Budgets every run shares and one regime's own settings leave the label; fusion stays; the full
    hyper-parameters and checkpoint are in the CSV and the HTML details, not in the Markdown."""
    recs = []
    for fusion in ("deep", "late"):
        ckpt = f"models/glip-synth-{fusion}-abc.safetensors"
        recs.append(make_record(regime="zero-shot", checkpoint=ckpt, overrides={"fusion": fusion, "max_iters": 40}))
        recs.append(make_record(regime="full-ft", checkpoint=ckpt,
                                overrides={"fusion": fusion, "max_iters": 40, "lang_lr": 0.001}))
        recs.append(make_record(regime="prompt-tuning", checkpoint=ckpt, overrides={"fusion": fusion, "max_iters": 40}))
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    table = lb.leaderboard_table(df)
    assert sorted(set(table["variant"])) == ["fusion=deep", "fusion=late"]
    ft = _row(table, variant="fusion=late", regime="full-ft")
    assert ft["hparams"] == "fusion=late, lang_lr=0.001, max_iters=40"
    assert ft["checkpoint"] == "models/glip-synth-late-abc.safetensors"
    md = lb.render_markdown(table, len(df))
    header = next(line for line in md.splitlines() if line.startswith("| kind"))
    assert header == ("| kind | model | variant | regime | shots | synth-a (AP) | synth mean | synth median | seeds "
                      "| trainable params | train time / run |")
    assert "lang_lr" not in md and "glip-synth-late-abc" not in md
    csv = lb.render_csv(table)
    assert "fusion=late, lang_lr=0.001, max_iters=40" in csv and "models/glip-synth-late-abc.safetensors" in csv
    html = lb.render_html(table, len(df))
    assert "<dt>hparams</dt><dd>fusion=late, lang_lr=0.001, max_iters=40</dd>" in html
    # only the checkpoint differs: its file name becomes the label
    write_records(tmp_path / "ck", [make_record(checkpoint="a/one.pth"), make_record(checkpoint="b/two.pth")])
    assert sorted(lb.leaderboard_table(load_record_frame(tmp_path / "ck"))["variant"]) == ["one", "two"]


def test_wide_group_headers_are_abbreviated_with_a_key(tmp_path):
    tasks = [f"odinw-set{i}" for i in range(7)]
    write_records(tmp_path, [make_record(task=t, groups=("odinw13",), value=10.0 + i) for i, t in enumerate(tasks)]
                  + [make_record(task="coco", groups=(), value=5.0)])
    df = load_record_frame(tmp_path)
    table = lb.leaderboard_table(df)
    md = lb.render_markdown(table, len(df))
    header = next(line for line in md.splitlines() if line.startswith("| kind"))
    assert "| coco (AP) | set0 | set1 |" in header and "odinw-set0" not in header
    assert "- Columns: set0 = odinw-set0 (AP); set1 = odinw-set1 (AP);" in md
    assert "% Columns: set0 = odinw-set0 (AP)" in lb.render_latex(table, len(df))
    html = lb.render_html(table, len(df))
    assert '<th data-type="num" title="odinw-set6 (AP)">set6</th>' in html


def test_html_marks_the_best_complete_value_and_reported_rows(tmp_path):
    write_records(tmp_path / "res", [make_record(value=40.0), make_record(value=50.0, overrides={"fusion": "late"}),
                                     make_record(task="coco", groups=(), value=30.0, regime="zero-shot")])
    reference = load_reference([_reference_csv(tmp_path / "ref.csv")])
    df = load_record_frame(tmp_path / "res")
    table = lb.leaderboard_table(df, reference)
    html = lb.render_html(table, len(df))
    assert html.count('class="num best"') == len(re.findall(r'class="num best" data-v="(50|42\.9|50\.1)"', html))
    assert '<td class="num best" data-v="50">50.0</td>' in html  # synth-a: the late row
    assert '<td class="num best" data-v="42.9">42.9<small>(val2017)</small></td>' in html  # coco: reported wins
    # a starred (incomplete) group mean is never the best: synth has 1 task here but odinw13 rows are reported
    assert html.count('<tr class="reported"') == 2
    assert '<select data-filter="regime"><option value="">all</option><option value="zero-shot">zero-shot</option>' \
        '<option value="full-ft">full-ft</option>' in html


def test_cli_writes_all_formats(tmp_path, capsys):
    write_records(tmp_path / "res", [make_record(seed=s, value=40.0 + s) for s in range(3)])
    ref = _reference_csv(tmp_path / "ref.csv")
    rc = cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "out"),
                   "--reference", str(ref)])
    assert rc == 0
    out = tmp_path / "out"
    for name in ("LEADERBOARD.md", "leaderboard.csv", "leaderboard.tex", "leaderboard.html",
                 "leaderboard-values.csv"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "LEADERBOARD.md").read_text()
    assert "41.0 ± 1.0" in md and "28.7 (val)" in md and md.startswith(lb.header_line(3))

    values = pd.read_csv(out / "leaderboard-values.csv")
    assert values.loc[values["column"] == "synth-a (AP)", "mean"].item() == pytest.approx(41.0)
    # a broken record makes the command fail, naming the file
    bad = tmp_path / "res" / "runs" / "broken" / "record.json"
    bad.parent.mkdir()
    bad.write_text("{}")
    assert cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(out), "--no-reference"]) == 2
    assert "runs/broken/record.json" in capsys.readouterr().err


def test_cli_group_sizes_come_from_the_registry_and_the_flag(tmp_path, monkeypatch):
    import bench.tasks.registry

    monkeypatch.setattr(bench.tasks.registry, "all_groups", lambda tasks_dir=None: {"synth": list("abcde")})
    write_records(tmp_path / "res", [make_record(seed=s, value=40.0 + s) for s in range(3)]
                  + [make_record(task="m1", groups=("mine",), value=10.0)])
    out = tmp_path / "out"
    assert cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(out), "--no-reference",
                     "--group-size", "mine=4"]) == 0
    table = pd.read_csv(out / "leaderboard.csv", dtype=str, keep_default_na=False)
    row = table.iloc[0]
    assert row["synth mean"] == "41.0* ± 1.0 (1/5)"  # the registry knows 5 synth tasks; 1 ran
    assert row["mine mean"] == "10.0* (1/4; 1/3 seeds)"


def test_cli_screenshot_without_a_browser_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLIP_BENCH_CHROMIUM", str(tmp_path / "no-such-chromium"))
    write_records(tmp_path / "res", [make_record()])
    rc = cli_main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "out"),
                   "--no-reference", "--screenshot", str(tmp_path / "shot.png")])
    assert rc == 2
    assert "no Chromium found" in capsys.readouterr().err and not (tmp_path / "shot.png").exists()
    assert (tmp_path / "out" / "leaderboard.html").is_file()  # the tables are written before the screenshot
