"""Cost-curve figures: the Figure objects carry the expected axes, series, bands and scales."""

import statistics

import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection

from bench.cli import main as cli_main
from bench.reports import curves
from bench.reports.load import load_record_frame
from bench.testing.reports import make_record, write_records
from bench.util.errors import UserError

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
    return load_record_frame(tmp_path)


def test_ap_vs_shots_lines_bands_and_labels(df):
    fig = curves.ap_vs_shots(df)
    [ax] = fig.axes
    assert ax.get_xlabel() == "training images per class (shots); 0 = zero-shot"
    assert ax.get_ylabel() == "AP (mean over 2 tasks), %"
    assert "band: ±1 std over seeds" in ax.get_title()
    # the legend is the figure's, outside the axes, so it covers no point
    assert ax.get_legend() is None
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["zero-shot · glip-synth", "prompt-tuning · glip-synth", "full-ft · glip-synth"]
    _assert_legend_outside(fig, ax)
    assert len(ax.get_lines()) == 3
    assert [line.get_color() for line in ax.get_lines()] == [curves.REGIME_COLOURS[r]
                                                             for r in ("zero-shot", "prompt-tuning", "full-ft")]
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


def _assert_legend_outside(fig, ax):
    fig.canvas.draw()
    legend_box = fig.legends[0].get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # right of the data area, no overlap


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
    assert ax.get_xlabel() == "trainable parameters (count, log scale)"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2  # prompt-tuning and full-ft; zero-shot has 0 trainable parameters
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["prompt-tuning · glip-synth",
                                                                  "full-ft · glip-synth"]
    _assert_legend_outside(fig, ax)
    assert "1 point(s) with no trainable parameters (zero-shot) not shown" in ax.get_title()
    xs = sorted({float(x) for c in scatters for x in c.get_offsets()[:, 0]})
    assert xs == [1_000.0, 1_000_000.0]


def test_ap_vs_compute_counts_images_seen_not_seconds(tmp_path):
    """Same iteration budget, different wall-clock: the same compute. More images: more compute."""
    recs = [make_record(regime="zero-shot", trainable_params=0, train_seconds=0.0, images_seen=0)]
    for shots, seconds, images in ((1, 90.0, 160), (10, 30.0, 160), ("all", 30.0, 640)):
        for seed in (0, 1):
            recs.append(make_record(shots=None if shots == "all" else shots, seed=seed, train_seconds=seconds,
                                    images_seen=images, value=40.0 + seed))
    write_records(tmp_path, recs)
    fig = curves.ap_vs_compute(load_record_frame(tmp_path))
    [ax] = fig.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "training compute per run: images seen (iterations × batch size, log scale)"
    offsets = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert sorted(offsets[:, 0].tolist()) == [160.0, 160.0, 640.0]
    assert "1 point(s) without training (zero-shot) not shown" in ax.get_title()
    _assert_legend_outside(fig, ax)


def test_colours_follow_the_regime_in_every_figure(df):
    """A panel without some series still draws the others in the colours and markers of every figure."""
    partial = df[~((df["task"] == "synth-b") & (df["regime"] == "prompt-tuning"))]
    fig = curves.per_task(partial)
    a, b = fig.axes
    styles_a = {line.get_label(): (line.get_color(), line.get_marker()) for line in a.get_lines()}
    styles_b = {line.get_label(): (line.get_color(), line.get_marker()) for line in b.get_lines()}
    assert "prompt-tuning · glip-synth" in styles_a and "prompt-tuning · glip-synth" not in styles_b
    assert styles_b["full-ft · glip-synth"] == styles_a["full-ft · glip-synth"] == (curves.REGIME_COLOURS["full-ft"],
                                                                                   "o")
    shots_fig = curves.ap_vs_shots(df)
    assert {line.get_label(): line.get_color() for line in shots_fig.axes[0].get_lines()}["full-ft · glip-synth"] \
        == curves.REGIME_COLOURS["full-ft"]


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
        curves.select_tasks(load_record_frame(tmp_path / "mix"))


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
    """Budgets shared by every training run and the common split stay out of the legend; fusion stays
    in, and the checkpoint is not named since fusion already tells the series apart."""
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
    ax = curves.ap_vs_shots(load_record_frame(tmp_path)).axes[0]
    labels = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert labels == ["zero-shot · glip-synth · fusion=deep", "full-ft · glip-synth · fusion=deep",
                      "zero-shot · glip-synth · fusion=late", "full-ft · glip-synth · fusion=late"]
    # one marker per variant, one colour per regime
    markers = {line.get_label(): line.get_marker() for line in ax.get_lines()}
    assert markers["full-ft · glip-synth · fusion=deep"] == markers["zero-shot · glip-synth · fusion=deep"] \
        != markers["full-ft · glip-synth · fusion=late"]


def test_per_task_for_a_wide_group_keeps_the_legend_off_every_panel(tmp_path):
    tasks = [f"odinw-{i:02d}" for i in range(13)]
    recs = [make_record(task=t, regime=r, shots=s, seed=k, value=20.0 + i + (s or 0) + k, groups=("odinw13",))
            for i, t in enumerate(tasks) for r in ("prompt-tuning", "full-ft") for s in (1, 5) for k in (0, 1)]
    write_records(tmp_path, recs)
    df = load_record_frame(tmp_path)
    for shown in (tasks, tasks[:1]):  # a wide group, and one narrow panel under a long title
        fig = curves.per_task(df[df["task"].isin(shown)])
        assert [ax.get_title() for ax in fig.axes] == shown
        fig.canvas.draw()
        legend = fig.legends[0].get_window_extent()
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent()), ax.get_title()
        assert not legend.overlaps(fig.get_suptitle() and fig._suptitle.get_window_extent())


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
