"""Paired ablation: pairing rules, and numbers against a direct scipy computation on the known values."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.cli import main as cli_main
from bench.reports import ablation
from bench.reports.load import load_record_frame
from bench.testing.reports import make_record, write_records
from bench.util.errors import UserError

TASKS = ("t1", "t2", "t3")
SEEDS = (0, 1, 2)
LATE, DEEP = {"fusion": "late"}, {"fusion": "deep"}
N = 999  # resamples: enough to compare against scipy with the same seed, fast in tests


def value(task: str, regime: str, seed: int, fusion: str) -> float:
    """Deep fusion helps prompt tuning a lot, full fine-tuning a little (the paper's Table 8 pattern)."""
    base = 30.0 + 5 * TASKS.index(task) + 0.5 * seed
    if regime == "full-ft":
        return base + 10 + (1.0 + 0.3 * seed if fusion == "deep" else 0.0)
    return base + (6.0 + TASKS.index(task) + 0.2 * seed if fusion == "deep" else 0.0)


@pytest.fixture
def results(tmp_path):
    recs = [make_record(task=t, regime=r, seed=s, overrides={"fusion": f}, value=value(t, r, s, f))
            for t in TASKS for r in ("prompt-tuning", "full-ft") for s in SEEDS for f in ("late", "deep")]
    # runs without a partner: a different lr on side a only, and a seed only side b has
    recs.append(make_record(task="t1", regime="full-ft", seed=0, overrides={"fusion": "late", "lr": 0.1}, value=1.0))
    recs.append(make_record(task="t2", regime="full-ft", seed=7, overrides={"fusion": "deep"}, value=99.0))
    write_records(tmp_path, recs)
    return tmp_path


def test_pairs_differ_only_in_the_ablated_override(results):
    df = load_record_frame(results)
    pairs, counts = ablation.pair_runs(df, LATE, DEEP)
    assert len(pairs) == len(TASKS) * 2 * len(SEEDS)
    assert counts == {"unpaired_a": 1, "unpaired_b": 1}
    for p in pairs.to_dict("records"):
        assert p["value_a"] == value(p["task"], p["regime"], p["seed"], "late")
        assert p["value_b"] == value(p["task"], p["regime"], p["seed"], "deep")
    # the lr=0.1 run pairs only with a deep run that has the same lr: none here
    assert 1.0 not in set(pairs["value_a"]) and 99.0 not in set(pairs["value_b"])


def test_ablation_numbers_match_scipy(results):
    df = load_record_frame(results)
    pairs, _ = ablation.pair_runs(df, LATE, DEEP)
    table = ablation.ablation_table(pairs, seed=3, n_resamples=N)
    assert list(table["task"]) == [*TASKS, "all tasks · prompt-tuning", "all tasks · full-ft", "overall"]
    assert list(table["pooled_over"]) == ["regimes, shots, seeds"] * 3 + ["tasks, shots, seeds"] * 2 + [
        "tasks, regimes, shots, seeds"]
    assert set(table["metric"]) == {"AP"}
    for regime in ("prompt-tuning", "full-ft"):
        diffs = np.array([value(t, regime, s, "deep") - value(t, regime, s, "late") for t in TASKS for s in SEEDS])
        row = table[table["task"] == f"all tasks · {regime}"].iloc[0]
        assert row["pairs"] == 9 and row["mean_diff"] == pytest.approx(diffs.mean())
        assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    all_diffs = []
    for task in TASKS:
        # pairs are ordered by their key (regime, then seed), which fixes what the seeded bootstrap draws
        diffs = np.array([value(task, r, s, "deep") - value(task, r, s, "late")
                          for r in ("full-ft", "prompt-tuning") for s in SEEDS])
        all_diffs += list(diffs)
        row = table[table["task"] == task].iloc[0]
        ci = stats.bootstrap((diffs,), np.mean, n_resamples=N, confidence_level=0.95, method="percentile",
                             rng=np.random.default_rng(3)).confidence_interval
        assert row["pairs"] == 6
        assert row["mean_diff"] == pytest.approx(diffs.mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
        assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
        assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
    overall = table.iloc[-1]
    all_diffs = np.array(all_diffs)
    ci = stats.bootstrap((all_diffs,), np.mean, n_resamples=N, method="percentile",
                         rng=np.random.default_rng(3)).confidence_interval
    assert overall["pairs"] == 18 and overall["mean_diff"] == pytest.approx(all_diffs.mean())
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert overall["wilcoxon_p"] == pytest.approx(stats.wilcoxon(all_diffs).pvalue)
    # the bootstrap seed is honoured: same seed, same interval
    again = ablation.ablation_table(pairs, seed=3, n_resamples=N)
    pd.testing.assert_frame_equal(table, again)


def test_tuning_gap_against_direct_computation(results):
    df = load_record_frame(results)
    gap = ablation.tuning_gap(df, LATE, DEEP, seed=5, n_resamples=N)
    expected = {}
    for f in ("late", "deep"):
        expected[f] = np.array([value(t, "full-ft", s, f) - value(t, "prompt-tuning", s, f)
                                for t in TASKS for s in SEEDS])
    change = expected["deep"] - expected["late"]
    for row, values in zip(gap.to_dict("records"), (expected["late"], expected["deep"], change)):
        ci = stats.bootstrap((values,), np.mean, n_resamples=N, method="percentile",
                             rng=np.random.default_rng(5)).confidence_interval
        assert row["pairs"] == 9
        assert row["mean_gap"] == pytest.approx(values.mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert list(gap["setting"]) == ["a: fusion=late", "b: fusion=deep", "b - a (change of the gap)"]
    assert gap.iloc[2]["mean_gap"] < 0  # deep fusion narrows the gap, by construction


def test_unset_override_counts_as_the_named_side(tmp_path):
    recs = [make_record(task=t, seed=s, value=40.0 + s) for t in TASKS for s in SEEDS]  # default: no override
    recs += [make_record(task=t, seed=s, overrides=LATE, value=38.0 + s) for t in TASKS for s in SEEDS]
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    with pytest.raises(UserError, match="--unset-as"):
        ablation.pair_runs(df, LATE, DEEP)
    pairs, counts = ablation.pair_runs(df, LATE, DEEP, unset_as="b")
    assert len(pairs) == 9 and counts == {"unpaired_a": 0, "unpaired_b": 0}
    assert np.allclose(pairs["diff"], 2.0)
    table = ablation.ablation_table(pairs, n_resamples=N)
    # every difference equal: the CI collapses to it and the signed-rank test is defined
    assert table.iloc[-1][["mean_diff", "ci_low", "ci_high"]].tolist() == pytest.approx([2.0, 2.0, 2.0])


def test_bad_settings_are_refused():
    assert ablation.parse_assignments("fusion=late, lr=0.01,flag=true") == {"fusion": "late", "lr": 0.01,
                                                                            "flag": True}
    with pytest.raises(UserError, match="KEY=VALUE"):
        ablation.parse_assignments("fusion")
    df = pd.DataFrame(columns=["overrides"])
    with pytest.raises(UserError, match="same keys"):
        ablation.pair_runs(df, {"fusion": "late"}, {"lr": 1})
    with pytest.raises(UserError, match="same setting"):
        ablation.pair_runs(df, LATE, dict(LATE))
    assert np.isnan(ablation.wilcoxon_p(np.zeros(4)))


def test_forest_plot_and_cli(results, tmp_path):
    df = load_record_frame(results)
    pairs, _ = ablation.pair_runs(df, LATE, DEEP)
    table = ablation.ablation_table(pairs, n_resamples=N)
    fig = ablation.forest_plot(table, LATE, DEEP)
    [ax] = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1 (n=6)", "t2 (n=6)", "t3 (n=6)",
                                                            "all tasks · prompt-tuning (n=9)",
                                                            "all tasks · full-ft (n=9)", "overall (n=18)"]
    assert ax.get_xlabel() == "difference in AP (b − a): fusion=deep minus fusion=late"
    assert len(ax.containers) == 3  # per-task, per-regime and overall error bars
    zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0.0, 0.0]]
    assert len(zero) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "per task, pooled over regimes (95% bootstrap CI)", "per regime, pooled over tasks (95% bootstrap CI)",
        "overall: every pair pooled (95% bootstrap CI)"]
    out = tmp_path / "abl"
    rc = cli_main(["ablation", "--a", "fusion=late", "--b", "fusion=deep", "--results", str(results),
                   "--out", str(out), "--seed", "3", "--n-resamples", str(N)])
    assert rc == 0
    written = pd.read_csv(out / "ablation.csv")
    pd.testing.assert_frame_equal(written, ablation.ablation_table(pairs, seed=3, n_resamples=N),
                                  check_dtype=False)
    md = (out / "ablation.md").read_text()
    assert md.startswith("Generated by `glip-bench ablation` from 38 records")
    assert "'overall' pools every pair: all tasks, regimes, shots and seeds together" in md
    assert "different metrics" not in md  # every task here reports AP
    assert "Wilcoxon signed-rank" in md and "Unpaired runs left out: 1 on side a, 1 on side b." in md
    assert "b - a (change of the gap)" in md and (out / "ablation-gap.csv").is_file()
    assert (out / "ablation-forest.png").stat().st_size > 0 and (out / "ablation-forest.svg").is_file()


def test_ignore_pairs_runs_from_separately_pretrained_checkpoints(tmp_path):
    """The synthetic demo pretrains each fusion on its own: the checkpoint differs with the ablated key."""
    recs = []
    for t in TASKS:
        for r in ("prompt-tuning", "full-ft"):
            for s in SEEDS:
                for f in ("late", "deep"):
                    recs.append(make_record(task=t, regime=r, seed=s, overrides={"fusion": f},
                                            checkpoint=f"models/{f}.safetensors", value=value(t, r, s, f)))
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    with pytest.raises(UserError, match="no paired runs"):
        ablation.pair_runs(df, LATE, DEEP)
    pairs, counts = ablation.pair_runs(df, LATE, DEEP, ignore=["checkpoint"])
    assert len(pairs) == len(TASKS) * 2 * len(SEEDS) and counts == {"unpaired_a": 0, "unpaired_b": 0}
    assert (pairs["checkpoint_a"] == "models/late.safetensors").all()
    gap = ablation.tuning_gap(df, LATE, DEEP, ignore=["checkpoint"], n_resamples=N)
    expected = np.mean([(value(t, "full-ft", s, "deep") - value(t, "prompt-tuning", s, "deep"))
                        - (value(t, "full-ft", s, "late") - value(t, "prompt-tuning", s, "late"))
                        for t in TASKS for s in SEEDS])
    assert gap.iloc[-1]["mean_gap"] == pytest.approx(expected)
    with pytest.raises(UserError, match="not a pairing key"):
        ablation.pair_runs(df, LATE, DEEP, ignore=["colour"])


def test_tuning_gap_pairs_regimes_whose_training_settings_differ(tmp_path):
    """Each regime has its own lr; the gap still pairs full-ft with prompt-tuning of the same model variant."""
    recs = [make_record(task=t, regime=r, seed=s, overrides={"fusion": f, **({"lr": 1e-3} if r == "full-ft" else {})},
                        value=value(t, r, s, f))
            for t in TASKS for r in ("prompt-tuning", "full-ft") for s in SEEDS for f in ("late", "deep")]
    write_records(tmp_path, recs)
    gap = ablation.tuning_gap(load_record_frame(tmp_path), LATE, DEEP, n_resamples=N)
    assert gap["pairs"].tolist() == [len(TASKS) * len(SEEDS)] * 3
    expected_late = np.mean([value(t, "full-ft", s, "late") - value(t, "prompt-tuning", s, "late")
                             for t in TASKS for s in SEEDS])
    assert gap.iloc[0]["mean_gap"] == pytest.approx(expected_late)


def test_overall_over_mixed_metrics_says_so(tmp_path):
    recs = [make_record(task=t, primary=m, seed=s, overrides={"fusion": f}, value=40.0 + s + (3 if f == "deep" else 0))
            for t, m in (("det", "AP"), ("ground", "R@1")) for s in SEEDS for f in ("late", "deep")]
    write_records(tmp_path, recs)
    pairs, _ = ablation.pair_runs(load_record_frame(tmp_path), LATE, DEEP)
    table = ablation.ablation_table(pairs, n_resamples=N)
    assert list(table["task"]) == ["det", "ground", "overall"]  # one regime: no per-regime rows
    assert list(table["metric"]) == ["AP", "R@1", "AP/R@1"]
    note = ablation.pooling_note(table)
    assert "averages differences in different metrics (AP, R@1" in note
    labels = [t.get_text() for t in ablation.forest_plot(table, LATE, DEEP).legends[0].get_texts()]
    assert labels[-1] == "overall: every pair pooled, mixing AP and R@1 (95% bootstrap CI)"


def test_cli_pairs_separately_pretrained_sides_by_default_and_says_what_it_matched(tmp_path):
    """`glip-bench ablation --a fusion=late --b fusion=deep` as printed in the README: each side's runs come from
    its own checkpoint, so the default ignores the checkpoint; the markdown says so instead of claiming it matched."""
    recs = [make_record(task=t, regime="full-ft", seed=s, overrides={"fusion": f},
                        checkpoint=f"models/{f}.safetensors", value=value(t, "full-ft", s, f))
            for t in TASKS for s in SEEDS for f in ("late", "deep")]
    write_records(tmp_path, recs)
    out = tmp_path / "abl"
    assert cli_main(["ablation", "--a", "fusion=late", "--b", "fusion=deep", "--results", str(tmp_path),
                     "--out", str(out), "--n-resamples", str(N)]) == 0
    md = (out / "ablation.md").read_text()
    assert "Pairs are runs equal in model, task, regime, shots, seed, prompt set, split and every other override " \
           "(allowed to differ: checkpoint)." in md
    assert "| overall | tasks, regimes, shots, seeds | AP | 9 |" in md
    strict = tmp_path / "strict"
    assert cli_main(["ablation", "--a", "fusion=late", "--b", "fusion=deep", "--results", str(tmp_path),
                     "--out", str(strict), "--ignore", "", "--n-resamples", str(N)]) == 2
