"""Cost-curve figures: the Figure objects carry the expected axes, series, bands and scales."""

import statistics

import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection

from bench.cli import main as cli_main
from bench.errors import UserError
from bench.reports import curves
from bench.reports.load import load_records
from bench.reports.testing import make_record, write_records

REGIMES = {"prompt-tuning": 1_000, "full-ft": 1_000_000}


def _value(task: str, regime: str, shots, seed: int) -> float:
    return 20.0 + (5 if task == "synth-b" else 0) + (shots or 20) + (3 if regime == "full-ft" else 0) + seed


@pytest.fixture
def df(tmp_path):
    recs = []
    for task in ("synth-a", "synth-b"):
        recs.append(make_record(task=task, regime="zero-shot", value=20.0, trainable_params=0, train_seconds=0.0))
        for regime, params in REGIMES.items():
            for shots in (1, 5, None):
                for seed in (0, 1, 2):
                    if task == "synth-b" and regime == "prompt-tuning" and shots == 5 and seed == 2:
                        continue  # one missing run: that point is incomplete
                    recs.append(make_record(task=task, regime=regime, shots=shots, seed=seed,
                                            value=_value(task, regime, shots, seed), trainable_params=params,
                                            train_seconds=36.0 * (shots or 20),
                                            device_hours=(36.0 * (shots or 20) + 7.0) / 3600))  # + inference
    write_records(tmp_path, recs)
    return load_records(tmp_path)


def test_ap_vs_shots_lines_bands_and_labels(df):
    fig = curves.ap_vs_shots(df)
    [ax] = fig.axes
    assert ax.get_xlabel() == "training images per class (shots); 0 = zero-shot"
    assert ax.get_ylabel() == "AP (mean over 2 tasks), %"
    assert "band: ±1 std over seeds" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["zero-shot · glip-synth", "prompt-tuning · glip-synth", "full-ft · glip-synth"]
    assert len(ax.get_lines()) == 3
    # one std band per series with >= 2 seeds (zero-shot has one seed: no band)
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "5", "all (full set)"]
    ft = ax.get_lines()[2]
    expected = [statistics.mean(statistics.mean(_value(t, "full-ft", s, k) for k in range(3))
                                for t in ("synth-a", "synth-b")) for s in (1, 5, None)]
    np.testing.assert_allclose(ft.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(ft.get_ydata(), expected)
    # the prompt-tuning 5-shot point lacks a seed on one task: starred, once
    stars = [t for t in ax.texts if t.get_text() == "*"]
    assert len(stars) == 1 and stars[0].xy[0] == 2


def test_points_count_tasks_and_seeds(df):
    points = curves.series_points(df)
    pt5 = points[(points["regime"] == "prompt-tuning") & (points["shots_label"] == "5")].iloc[0]
    assert (pt5["n_tasks"], pt5["n_seeds"], bool(pt5["complete"])) == (2, 2, False)
    # std over seeds of the per-seed task mean, only seeds present in both tasks (0 and 1)
    per_seed = [statistics.mean([_value("synth-a", "prompt-tuning", 5, s), _value("synth-b", "prompt-tuning", 5, s)])
                for s in (0, 1)]
    assert pt5["std"] == pytest.approx(statistics.stdev(per_seed))


def test_ap_vs_params_is_log_scaled_per_regime(df):
    fig = curves.ap_vs_params(df)
    [ax] = fig.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "trainable parameters (log scale)"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2  # prompt-tuning and full-ft; zero-shot has 0 trainable parameters
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prompt-tuning", "full-ft"]
    assert "1 point(s) with no trainable parameters (zero-shot) not shown" in ax.get_title()
    xs = sorted({float(x) for c in scatters for x in c.get_offsets()[:, 0]})
    assert xs == [1_000.0, 1_000_000.0]


def test_ap_vs_compute_names_the_device(df):
    [ax] = curves.ap_vs_compute(df).axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "training compute per run (CPU-hours, log scale)"
    offsets = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    # training seconds / 3600 (36 s per shot), not the record's device_hours, which adds inference
    np.testing.assert_allclose(sorted(set(offsets[:, 0].round(6))), [0.01, 0.05, 0.2])
    assert "without training compute (zero-shot) not shown" in ax.get_title()
    gpu = df.assign(device="cuda:0")
    assert "GPU-hours" in curves.ap_vs_compute(gpu).axes[0].get_xlabel()
    mixed = df.assign(device=["cpu" if i % 2 else "cuda:0" for i in range(len(df))])
    assert "GPU and CPU" in curves.ap_vs_compute(mixed).axes[0].get_xlabel()


def test_per_task_small_multiples(df):
    fig = curves.per_task(df)
    assert [ax.get_title() for ax in fig.axes] == ["synth-a", "synth-b"]
    for ax in fig.axes:
        assert len(ax.get_lines()) == 3 and ax.get_ylabel() == "AP, %"
    # synth-b's prompt-tuning 5-shot point misses a seed its peers have: starred in its own panel only
    assert [len([t for t in ax.texts if t.get_text() == "*"]) for ax in fig.axes] == [0, 1]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "zero-shot · glip-synth", "prompt-tuning · glip-synth", "full-ft · glip-synth"]
    assert fig.get_suptitle().startswith("Per-task score vs. training shots")


def test_select_tasks_refuses_mixed_metrics(df, tmp_path):
    with pytest.raises(UserError, match="no records for task"):
        curves.select_tasks(df, ["nope"])
    with pytest.raises(UserError, match="no records in group 'odinw13'"):
        curves.select_tasks(df, group="odinw13")
    write_records(tmp_path / "mix", [make_record(), make_record(task="flickr", primary="R@1")])
    with pytest.raises(UserError, match="mix primary metrics"):
        curves.select_tasks(load_records(tmp_path / "mix"))


def test_save_and_cli_write_png_and_svg(df, tmp_path):
    paths = curves.save_figure(curves.ap_vs_shots(df), tmp_path / "figs", "shots")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:500]
    results = tmp_path  # the fixture's records live here
    assert cli_main(["curves", "--results", str(results), "--out", str(tmp_path / "plots")]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(f"{s}.{e}" for s in ("ap-vs-shots", "ap-vs-params", "ap-vs-compute", "per-task")
                           for e in ("png", "svg"))


def test_zero_shot_only_records_say_nothing_could_be_drawn(df):
    zero = df[df["regime"] == "zero-shot"]
    [ax] = curves.ap_vs_params(zero).axes
    assert ax.get_legend() is None
    assert [t.get_text() for t in ax.texts] == ["no runs with a positive value on this axis"]
    assert "2 point(s) with no trainable parameters" not in ax.get_title()  # one point: both tasks pooled
    assert "1 point(s) with no trainable parameters" in ax.get_title()


def test_legend_names_only_what_tells_series_apart(tmp_path):
    """Budgets shared by every training run and the common split stay out of the legend; fusion and the
    checkpoint (which differ between the series) stay in."""
    recs = []
    for fusion in ("deep", "late"):
        ckpt = f"models/glip-synth-{fusion}-abc.safetensors"
        recs.append(make_record(task="synth-a", regime="zero-shot", shots=0, checkpoint=ckpt,
                                overrides={"fusion": fusion, "infer_batch_size": 8}, value=5.0))
        for seed in (3, 30):
            recs.append(make_record(task="synth-a", regime="full-ft", shots=5, seed=seed, checkpoint=ckpt,
                                    overrides={"fusion": fusion, "infer_batch_size": 8, "max_iters": 40},
                                    value=40.0 + seed))
    write_records(tmp_path, recs)
    ax = curves.ap_vs_shots(load_records(tmp_path)).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["zero-shot · glip-synth (glip-synth-deep-abc) · fusion=deep",
                      "full-ft · glip-synth (glip-synth-deep-abc) · fusion=deep",
                      "zero-shot · glip-synth (glip-synth-late-abc) · fusion=late",
                      "full-ft · glip-synth (glip-synth-late-abc) · fusion=late"]


def test_cli_without_arguments_draws_one_set_of_figures_per_primary_metric(tmp_path):
    """`glip-bench curves` as the README prints it, on results that hold detection (AP) and grounding (R@1)."""
    write_records(tmp_path, [make_record(), make_record(seed=1, value=42.0),
                             make_record(task="flickr", primary="R@1", value=70.0)])
    out = tmp_path / "plots"
    assert cli_main(["curves", "--results", str(tmp_path), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}-{m}.{e}" for s in ("ap-vs-shots", "ap-vs-params", "ap-vs-compute", "per-task")
                           for m in ("ap", "r1") for e in ("png", "svg"))
    assert cli_main(["curves", "--results", str(tmp_path), "--out", str(tmp_path / "one"), "--tasks", "flickr"]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir())[0] == "ap-vs-compute.png"
    assert cli_main(["curves", "--results", str(tmp_path), "--tasks", "synth-a,nope"]) == 2
