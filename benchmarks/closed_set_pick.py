"""Timed script: which closed-set detector is the supervised baseline? RT-DETRv2 against D-FINE, both the tiny
random configs of bench.testing.hf, on the same task and budget. Random weights, CPU, one thread.

    PYTHONPATH=. python benchmarks/closed_set_pick.py [--out DIR] [--epochs 40] [--seeds 3,30,300]

1. The train-step time of each, interleaved in one process (so the machine's load hits both alike): batch 4
   at the processor's 64 px, transformers' loss, an AdamW step; the median of 50 steps after 10 warm-up ones.
2. `glip-bench run --regime full-ft --shots all` on synth-shapes (scale 0.03), the final weights kept
   (eval_every=0, lr 1e-3): eval AP per seed after the same number of steps.

Prints both, and the ratios D-FINE / RT-DETRv2.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

TYPES = ("rt_detr_v2", "d_fine")


def step_times(root: Path, steps: int = 60, warmup: int = 10) -> dict[str, float]:
    """Median seconds per training step of each model type, the two interleaved step by step."""
    from transformers import AutoModelForObjectDetection

    from bench.testing.hf import save_tiny

    models = {t: AutoModelForObjectDetection.from_pretrained(save_tiny(t, root / f"speed-{t}"),
                                                             local_files_only=True).train() for t in TYPES}
    optims = {t: torch.optim.AdamW(m.parameters(), 1e-4) for t, m in models.items()}
    pixels = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    labels = [{"class_labels": torch.tensor([0, 2]),
               "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]])}] * 4
    times: dict[str, list[float]] = {t: [] for t in TYPES}
    for i in range(steps):
        for t, model in models.items():
            start = time.perf_counter()
            loss = model(pixel_values=pixels, labels=labels).loss
            optims[t].zero_grad()
            loss.backward()
            optims[t].step()
            if i >= warmup:
                times[t].append(time.perf_counter() - start)
    return {t: statistics.median(v) for t, v in times.items()}


def trained_ap(root: Path, epochs: int, seeds: str) -> dict[str, dict[int, float]]:
    """Eval AP (points) per seed after full-ft on synth-shapes' whole train split, final weights kept."""
    from bench.synthetic.generate import generate
    from bench.testing.hf import run_cli, save_tiny

    data = root / "data"
    generate(data, scale=0.03, tasks=["synth-shapes"])
    out: dict[str, dict[int, float]] = {}
    for t in TYPES:
        rc, records = run_cli(save_tiny(t, root / t), data, root / f"results-{t}", "--shots", "all", "--seeds", seeds,
                              "--set", f"max_epochs={epochs}", "--set", "lr=0.001", "--set", "eval_every=0",
                              regime="full-ft")
        if rc != 0:
            raise SystemExit(f"{t}: glip-bench run failed (rc {rc})")
        out[t] = {r["spec"]["seed"]: r["metrics"]["values"]["AP"] for r in records}
        print(f"{t}: {records[0]['training']['iters']} steps on {len(records[0]['fewshot']['train_image_ids'])} "
              f"images, {records[0]['cost']['total_params']} parameters", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", default="3,30,300")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        times = step_times(root)
        for t, s in times.items():
            print(f"{t}: median train step {s:.4f} s")
        print(f"step time d_fine / rt_detr_v2: {times['d_fine'] / times['rt_detr_v2']:.2f}")
        ap = trained_ap(root, args.epochs, args.seeds)
        for t, by_seed in ap.items():
            print(f"{t}: AP " + ", ".join(f"seed {s} {v:.2f}" for s, v in sorted(by_seed.items()))
                  + f"; mean {statistics.mean(by_seed.values()):.2f}")


if __name__ == "__main__":
    main()
