"""Scoring at real scale: each metric backend on a COCO-val-size and an LVIS-size fixture, same run, with peak memory.

    PYTHONPATH=. python benchmarks/scoring_scale.py                       # COCO 5k images, LVIS Fixed AP 2k images
    PYTHONPATH=. python benchmarks/scoring_scale.py --lvis-images 20000 --backends hotcoco   # LVIS val size only
    GLIP_BENCH_SMOKE=1 PYTHONPATH=. python benchmarks/scoring_scale.py    # tiny sizes (the test suite's smoke run)

The fixtures are written once (ground truth JSON, detections as an (N, 7) .npy); every backend then scores
them in its own process, through bench.metrics.evaluate (validation and conversion included, as a run
scores), so its peak memory (ru_maxrss) is its own: "peak" is the process's peak, "scoring" the part above
what the loaded fixture held. Values (the headline ones and per class) are compared with the reference
backend's (pycocotools / lvis-api): identical, or the largest difference. Prints a table with the speed-up over the reference and writes --json. Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.testing.bench_smoke import sized  # noqa: E402  (GLIP_BENCH_SMOKE=1: tiny default sizes)

REFERENCE = {"coco_bbox": "pycocotools", "lvis_fixed_ap": "lvis", "lvis_bbox": "lvis"}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def child(metric: str, folder: Path, backend: str) -> None:
    """Score the fixture in `folder` with `backend`; print one JSON line."""
    import gc

    import numpy as np
    import orjson

    from bench.metrics import evaluate

    gt = orjson.loads((folder / "gt.json").read_bytes())
    dets = np.load(folder / "dets.npy")
    gc.collect()
    before = _rss_mb()
    gc.disable()  # as the runner scores (bench.runs.scoring.gc_paused)
    start = time.perf_counter()
    result = evaluate(metric, gt, dets, backend=backend)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "loaded_mb": before, "scoring_mb": peak - before,
                      "backend": result.backend, "library": result.library, "values": result.values,
                      "per_class": result.per_class}))


def write_fixture(kind: str, folder: Path, images: int, classes: int, per_image: int, chunks: int) -> dict:
    import numpy as np
    import orjson

    from bench.testing.metrics import make_detection_fixture, make_lvis_v1_like

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "coco":
        gt, dicts = make_detection_fixture(n_images=images, n_categories=classes, seed=0, false_positives=90,
                                           crowd_fraction=0.01)
        dets = np.array([(d["image_id"], *d["bbox"], d["score"], d["category_id"]) for d in dicts])
    else:
        gt, dets = make_lvis_v1_like(images, classes, per_image=per_image, chunks=chunks, seed=0)
    (folder / "gt.json").write_bytes(orjson.dumps(gt))
    np.save(folder / "dets.npy", dets)
    return {"images": len(gt["images"]), "classes": len(gt["categories"]), "objects": len(gt["annotations"]),
            "detections": int(len(dets))}


def run_backend(metric: str, folder: Path, backend: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", metric, str(folder), backend],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def max_diff(a: dict, b: dict) -> float:
    """Largest |a - b| over the keys (0-100 scale); inf when keys or NaN-ness differ."""
    if a.keys() != b.keys() or any(math.isnan(a[k]) != math.isnan(b[k]) for k in a):
        return math.inf
    return max((abs(a[k] - b[k]) for k in a if not math.isnan(a[k])), default=0.0)


def measure(name: str, metric: str, folder: Path, info: dict, backends: list[str]) -> list[dict]:
    rows, ref = [], None
    order = sorted(backends, key=lambda b: b != REFERENCE[metric])  # the reference first
    for backend in order:
        out = run_backend(metric, folder, backend)
        row = {"fixture": name, "metric": metric, **info, "asked": backend, **out}
        if "error" not in out:
            if backend == REFERENCE[metric]:
                ref = out
            if ref is not None and ref is not out:
                row["speedup"] = ref["seconds"] / out["seconds"]
                row["max_diff"] = max(max_diff(ref["values"], out["values"]), max_diff(ref["per_class"], out["per_class"]))
                row["identical"] = row["max_diff"] == 0.0
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    if "error" in row:
        return f"{row['fixture']:<34} {row['asked']:<12} failed: {row['error']}"
    extra = ""
    if "speedup" in row:
        equal = "identical" if row["identical"] else f"differ by up to {row['max_diff']:.1e}"
        extra = f"  {row['speedup']:6.1f}x the reference, values {equal}"
    return (f"{row['fixture']:<34} {row['asked']:<12} {row['seconds']:8.2f} s  peak {row['peak_mb']:8.0f} MB "
            f"(scoring {row['scoring_mb']:7.0f} MB)  AP {row['values']['AP']:.4f}{extra}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=3, metavar=("METRIC", "FOLDER", "BACKEND"), help=argparse.SUPPRESS)
    p.add_argument("--coco-images", type=int, default=sized(5000, 40), help="0: skip the COCO fixture")
    p.add_argument("--coco-classes", type=int, default=80)
    p.add_argument("--lvis-images", type=int, default=sized(2000, 20), help="0: skip the LVIS fixture")
    p.add_argument("--lvis-classes", type=int, default=sized(1203, 50))
    p.add_argument("--per-image", type=int, default=sized(300, 30), help="LVIS detections per image per chunk")
    p.add_argument("--chunks", type=int, default=2, help="LVIS prompt chunks per image")
    p.add_argument("--backends", default="reference,hotcoco",
                   help="comma-separated; 'reference' = pycocotools / lvis-api")
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="scoring-scale-") as tmp:
        for kind, images, classes, metric in (("coco", args.coco_images, args.coco_classes, "coco_bbox"),
                                               ("lvis", args.lvis_images, args.lvis_classes, "lvis_fixed_ap")):
            if images <= 0:
                continue
            folder = Path(tmp) / kind
            info = write_fixture(kind, folder, images, classes, args.per_image, args.chunks)
            name = f"{kind} {info['images']} img x {info['classes']} cls, {info['detections']} dets"
            backends = [REFERENCE[metric] if b == "reference" else b for b in args.backends.split(",")]
            rows += measure(name, metric, folder, info, backends)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
