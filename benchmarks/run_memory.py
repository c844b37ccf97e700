"""A zero-shot run's peak memory against the number of images: does it grow with the split, or stay bounded?

    PYTHONPATH=. python benchmarks/run_memory.py                          # 200 and 2,000 images
    PYTHONPATH=. python benchmarks/run_memory.py --images 200 2000 --classes 1203 --chunk-size 40
    GLIP_BENCH_SMOKE=1 PYTHONPATH=. python benchmarks/run_memory.py       # tiny sizes (the test suite's smoke run)

Each size runs in its own process: a generated LVIS-like Fixed-AP task (--classes categories with r/c/f
frequencies, negative and not-exhaustive ids: bench.testing.metrics.make_lvis_v1_like's ground truth,
with small solid-colour images written as PNG), a glip-tiny model with random weights (memory, not
accuracy, is measured: a random model gives as many detections as a trained one, up to the caps), the
class prompt chunked (--chunk-size classes per chunk, 300 detections per image per chunk, no cap after
the merge: Fixed AP), and the run's evaluation path, `bench.runs.predict.evaluate_split`, predicting,
saving and scoring the split exactly as `glip-bench run` does. The process's peak resident memory
(resource.getrusage ru_maxrss: everything the process ever held at once, torch and the model included)
is read after scoring; "run" is that peak minus the resident memory just before predicting (model and
data loaded). Prints a table, the ratio of the largest size's peak to the smallest's and the memory per
1,000 images; --json keeps the rows. Nothing is asserted on time.
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

from bench.testing.bench_smoke import sized  # (GLIP_BENCH_SMOKE=1: tiny default sizes)

SIZES = ((64, 48), (48, 64), (80, 60))  # image sizes (w, h): batches group by input size, as real data does


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def write_task(folder: Path, n_images: int, n_classes: int) -> Path:
    """The ground truth (gt.json) and the images of an LVIS-like split; returns the annotation file."""
    import numpy as np
    import orjson
    from PIL import Image

    from bench.testing.metrics import make_lvis_v1_like
    from glip.config import TOY_WORDS

    gt, _ = make_lvis_v1_like(n_images, n_categories=n_classes, per_image=0, chunks=1, seed=0)
    words = [w for w in TOY_WORDS if len(w) > 2]  # names the toy vocabulary has: "red square", "cat dog", ...
    for k, cat in enumerate(gt["categories"]):
        cat["name"] = f"{words[k % len(words)]} {words[(k // len(words)) % len(words)]}"
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for im in gt["images"]:  # shrink the split to the sizes above; boxes scale with it
        (w, h), (w0, h0) = SIZES[im["id"] % len(SIZES)], (im["width"], im["height"])
        im["width"], im["height"], im["file_name"] = w, h, f"{im['id']}.png"
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        Image.new("RGB", (w, h), colour).save(folder / "images" / im["file_name"])
        im["_scale"] = (w / w0, h / h0)
    scale = {im["id"]: im.pop("_scale") for im in gt["images"]}
    for a in gt["annotations"]:
        sx, sy = scale[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        a["bbox"] = [x * sx, y * sy, max(bw * sx, 1.0), max(bh * sy, 1.0)]
        a["area"] = a["bbox"][2] * a["bbox"][3]
    path = folder / "gt.json"
    path.write_bytes(orjson.dumps(gt))
    return path


def child(folder: Path, chunk_size: int) -> None:
    """Predict, save and score the split in `folder` as a zero-shot run does; print one JSON line."""
    import orjson
    import torch

    from bench.data.coco import build_detection_dataset
    from bench.models.glip_adapter import GLIPAdapter
    from bench.runs.hparams import InferenceHParams
    from bench.runs.predict import EvalTask, detect_settings, evaluate_split
    from glip.config import get_preset
    from glip.model import GLIP
    from glip.prompts import build_prompt_chunks

    torch.set_num_threads(1)  # two-core shared machine: one thread per run, no hand-offs
    torch.manual_seed(0)
    gt_path = folder / "gt.json"
    gt = orjson.loads(gt_path.read_bytes())
    dataset = build_detection_dataset(gt, gt_path, folder / "images", name="lvis-like", split="val")
    model = GLIP(get_preset("glip-tiny", pre_nms_thresh=0.0, pre_nms_top_n=1000)).eval()  # random init
    names = [c["prompt_name"] for c in dataset.categories]
    chunks = build_prompt_chunks(model.tokenizer, names, chunk_size=chunk_size, max_len=model.config.max_query_len)
    ids = [int(c["id"]) for c in dataset.categories]
    chunks = [(ch, [ids[i] for i in ch.phrase_indices]) for ch in chunks]
    task = EvalTask(metric="lvis_fixed_ap", format="coco", detections_per_image=300)  # LVIS: 300 per image per chunk
    settings = detect_settings(task, InferenceHParams(infer_batch_size=8), "cpu", num_workers=0)
    before = _rss_mb()
    start = time.perf_counter()
    ev = evaluate_split(GLIPAdapter(model), task, dataset, settings, backend="hotcoco", chunks=chunks,
                        save_to=folder / "run")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from bench.results import store

    saved = len(store.read_predictions(folder / "run"))  # after the peak was read
    print(json.dumps({"images": len(dataset.image_ids), "classes": len(ids), "chunks": len(chunks),
                      "saved_detections": saved, "peak_mb": peak, "before_mb": before, "run_mb": peak - before,
                      "seconds": seconds, "AP": ev.result.values["AP"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=sized([200, 2000], [10, 30]))
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=10, help="classes per prompt chunk")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.chunk_size)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="run-memory-") as tmp:
        for n in args.images:
            folder = Path(tmp) / f"n{n}"
            write_task(folder, n, args.classes)
            proc = subprocess.run([sys.executable, __file__, "--child", str(folder), "--chunk-size",
                                   str(args.chunk_size)], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{n} images failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'images':>7} {'classes':>7} {'chunks':>6} {'saved dets':>10} {'before MB':>9} {'peak MB':>8} "
          f"{'run MB':>7} {'seconds':>7}")
    for r in rows:
        print(f"{r['images']:>7} {r['classes']:>7} {r['chunks']:>6} {r['saved_detections']:>10} {r['before_mb']:>9.0f} "
              f"{r['peak_mb']:>8.0f} {r['run_mb']:>7.0f} {r['seconds']:>7.1f}")
    small, large = rows[0], rows[-1]
    per_1000 = (large["peak_mb"] - small["peak_mb"]) / (large["images"] - small["images"]) * 1000
    print(f"peak at {large['images']} / peak at {small['images']} images: {large['peak_mb'] / small['peak_mb']:.2f}x; "
          f"{per_1000:.0f} MB more peak per 1,000 images")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
