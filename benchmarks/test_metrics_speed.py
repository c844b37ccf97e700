"""Metric backends' speed: pycocotools vs hotcoco (COCO, 5000 images), lvis-api vs lvis_style.

Run with `nox -s bench` (pytest benchmarks --benchmark-only). Nothing here asserts a time; the
speed-up of the fast backend over the reference (ratio of the fastest rounds: the machines are
shared and noisy) is stored in the benchmark JSON as extra_info["speedup_vs_reference"] and printed. Both backends must give the same numbers, which is
checked (a correctness check, not a timing one).
"""

from __future__ import annotations

import math

import pytest

from bench.metrics import evaluate
from bench.testing.bench_smoke import sized
from bench.testing.metrics import make_detection_fixture, make_lvis_fixture

_MIN_SECONDS: dict[tuple[str, str], float] = {}
_VALUES: dict[tuple[str, str], dict[str, float]] = {}


@pytest.fixture(scope="module")
def coco_5000() -> tuple[dict, list[dict]]:
    """5000 images, 20 classes, about 19 detections per image (95k) (realistic score noise)."""
    return make_detection_fixture(n_images=sized(5000, 50), n_categories=20, seed=0, false_positives=30)


@pytest.fixture(scope="module")
def lvis_1000() -> tuple[dict, list[dict]]:
    return make_lvis_fixture(n_images=sized(1000, 30), n_categories=sized(200, 20), seed=0)


def _run(
    benchmark, group: str, metric: str, gt: dict, dets: list[dict], backend: str, reference: str
) -> None:
    rounds = 1 if backend == reference else 3
    result = benchmark.pedantic(
        evaluate, args=(metric, gt, dets), kwargs={"backend": backend}, rounds=rounds, iterations=1
    )
    benchmark.extra_info.update(
        images=len(gt["images"]), detections=len(dets), AP=result.values["AP"], library=result.library
    )
    _VALUES[group, backend] = result.values
    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    _MIN_SECONDS[group, backend] = benchmark.stats.stats.min
    if backend != reference and (group, reference) in _MIN_SECONDS:  # the reference runs first (parametrize order)
        ratio = _MIN_SECONDS[group, reference] / _MIN_SECONDS[group, backend]
        benchmark.extra_info["speedup_vs_reference"] = ratio
        print(f"\n{group}: {backend} is {ratio:.1f}x faster than {reference}")
        a, b = _VALUES[group, reference], _VALUES[group, backend]
        assert all(
            math.isclose(a[k], b[k], abs_tol=1e-12) or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
        )


@pytest.mark.benchmark(group="coco_bbox 5000 images")
@pytest.mark.parametrize("backend", ["pycocotools", "hotcoco"])
def test_coco_bbox_speed(benchmark, coco_5000, backend):
    gt, dets = coco_5000
    _run(benchmark, "coco_bbox", "coco_bbox", gt, dets, backend, reference="pycocotools")


@pytest.mark.benchmark(group="lvis_bbox 1000 images x 200 classes")
@pytest.mark.parametrize("backend", ["lvis", "hotcoco"])
def test_lvis_bbox_speed(benchmark, lvis_1000, backend):
    gt, dets = lvis_1000
    _run(benchmark, "lvis_bbox", "lvis_bbox", gt, dets, backend, reference="lvis")
