"""The per-run TIDE chart draws a record's tide values and refuses anything else."""

from __future__ import annotations

import pytest

from bench.metrics import tide
from bench.reports.tide_chart import tide_figure, write_tide_chart
from bench.testing.metrics import make_detection_fixture
from bench.util.errors import UserError


def test_tide_chart_bars_are_the_record_values(tmp_path):
    gt, dets = make_detection_fixture(40, 3, seed=4)
    result = tide.compute(gt, dets).to_dict()
    fig = tide_figure(result, "run")
    heights = [round(p.get_height(), 9) for p in fig.axes[0].patches]
    assert heights == [round(result["values"][f"dAP_{t}"], 9)
                       for t in ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN")]
    path = write_tide_chart(result, tmp_path / "tide.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="dAP_Cls"):
        tide_figure({"values": {"AP": 1.0}})
