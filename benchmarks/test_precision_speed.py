"""Images/s of the inference engine in float32 and under bf16 autocast, batch 1 / 4 / 8, with the device's name.

- cuda (skipped without a CUDA device): glip-t (seeded random weights: speed does not depend on them) on
  800x1333 inputs (the official test size), an 80-class prompt in one chunk, through
  bench.models.glip.predict_detection (the harness's own path). float32 at the same batch size is each
  bf16 run's baseline (extra_info["bf16_speedup"]).
- cpu: glip-synth on the synthetic synth-shapes test split, batch 8, float32 and bf16, so the autocast path
  runs on every bench run, GPU or not (on a CPU without bf16 units it is no faster).

extra_info: images_per_s, device (torch's name for it), dtype, batch size. Nothing asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.models.glip import predict_detection
from bench.util.provenance import device_name

DTYPES = {"fp32": None, "bf16": torch.bfloat16}
_SECONDS: dict[tuple[str, int, str], float] = {}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def large_images(tmp_path_factory):
    """16 random 1333x800 images as a detection data set (no annotations: only speed is measured)."""
    from bench.data.types import DetectionDataset, ImageInfo

    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    infos = []
    for i in range(1, 17):
        Image.fromarray(rng.integers(0, 255, (800, 1333, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
        infos.append(ImageInfo(i, f"{i:03d}.png", root / f"{i:03d}.png", 1333, 800))
    cats = [{"id": k + 1, "name": f"class {k}"} for k in range(80)]
    coco = {"images": [{"id": im.id, "file_name": im.file_name, "width": 1333, "height": 800} for im in infos],
            "annotations": [], "categories": cats}
    return DetectionDataset("large", "test", root / "ann.json", infos, cats, {}, coco)


def _measure(benchmark, model, dataset, names, device: str, dtype: str, batch_size: int, rounds: int) -> None:
    from glip.prompts import build_prompt_chunks

    chunks = build_prompt_chunks(model.tokenizer, names)
    model.to(device)

    def run() -> int:
        preds, _ = predict_detection(model, dataset, chunks, 100, batch_size, device, num_workers=0,
                                     autocast_dtype=DTYPES[dtype])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(preds)

    detections = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.mean if benchmark.stats is not None else float("nan")
    _SECONDS[(device, batch_size, dtype)] = seconds
    info = {"device": device_name(device), "dtype": dtype, "batch_size": batch_size, "images": len(dataset),
            "images_per_s": len(dataset) / seconds, "detections": detections, "threads": torch.get_num_threads(),
            "baseline": dtype == "fp32"}
    fp32 = _SECONDS.get((device, batch_size, "fp32"))
    if dtype == "bf16" and fp32:
        info["bf16_speedup"] = fp32 / seconds
    benchmark.extra_info.update(info)


@needs_cuda
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("batch_size", [1, 4, 8])
def test_glip_t_images_per_s_cuda(benchmark, random_model, lvis_like_names, large_images, batch_size, dtype):
    benchmark.group = f"precision: glip-t 800x1333 on cuda, batch {batch_size}"
    model = random_model("glip-t")
    _measure(benchmark, model, large_images, lvis_like_names(80), "cuda", dtype, batch_size, rounds=3)


@pytest.mark.benchmark(group="precision: glip-synth on cpu (synth-shapes test, 30 images), batch 8")
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_glip_synth_images_per_s_cpu(benchmark, random_model, synth_root, dtype):
    from bench.tasks.registry import get_task

    task = get_task("synth-shapes")
    dataset = task.load("test", synth_root)
    model = random_model("glip-synth", lift=True)  # lifted scores: the postprocess sees candidates
    _measure(benchmark, model, dataset, [c["name"] for c in dataset.categories], "cpu", dtype, 8, rounds=3)
