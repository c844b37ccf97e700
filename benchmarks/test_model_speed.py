"""Achieved GFLOP/s of a glip-t forward on CPU against a large matmul on the same machine.

glip-t (the real architecture, random weights, a small WordPiece vocabulary standing in for bert-base-uncased)
at a reduced 256x256 input: a full 800x1333 forward takes tens of seconds on 2 cores. FLOPs come from
torch.utils.flop_counter.FlopCounterMode (matmuls and convolutions; elementwise ops, softmax, norms are not
counted). The DCNv2 of the DyConv blocks is grid_sample + matmul: FlopCounterMode has no formula for
grid_sample, so its bilinear sampling is not counted and the DyConv share is undercounted (its matmul is).

extra_info: flops per part (backbone + FPN, language, head), the forward's seconds per part, GFLOP/s per part,
and the fraction of the matmul's GFLOP/s reached. Nothing asserts a time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench.testing.bench_smoke import sized

SIZE = sized(256, 64)
MATMUL = sized(2048, 64)
_MATMUL: dict[str, float] = {}
CAPTION = ". ".join(["person", "bicycle", "car", "red square", "blue circle", "small green star"] * 6)


@pytest.mark.benchmark(group="GFLOP/s: glip-t forward (256x256) vs a 2048^3 fp32 matmul")
def test_matmul_gflops(benchmark):
    a, b = torch.randn(MATMUL, MATMUL), torch.randn(MATMUL, MATMUL)
    benchmark.pedantic(torch.mm, args=(a, b), rounds=5, iterations=1, warmup_rounds=1)
    flops = 2 * MATMUL**3
    benchmark.extra_info.update(threads=torch.get_num_threads(), gflop=flops / 1e9)
    if benchmark.stats is not None:
        _MATMUL["gflops_per_s"] = flops / benchmark.stats.stats.min / 1e9
        benchmark.extra_info["gflops_per_s"] = _MATMUL["gflops_per_s"]


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.benchmark(group="GFLOP/s: glip-t forward (256x256) vs a 2048^3 fp32 matmul")
def test_glip_t_forward_gflops(benchmark, random_model):
    model = random_model("glip-t", min_size=SIZE, max_size=SIZE)
    rng = np.random.default_rng(0)
    batch = model.preprocess([Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))])
    with torch.no_grad():
        features = model.encode_images(batch)
        text = model.encode_text([CAPTION])
        parts = {
            "backbone": lambda: model.encode_images(batch),
            "language": lambda: model.encode_text([CAPTION]),
            "head": lambda: model.forward_head(features, text),
        }
        flops = {k: _flops(f) for k, f in parts.items()}
        seconds: dict[str, list[float]] = {k: [] for k in parts}

        def forward() -> None:
            for k, f in parts.items():
                t = time.perf_counter()
                f()
                seconds[k].append(time.perf_counter() - t)

        benchmark.pedantic(forward, rounds=2, iterations=1, warmup_rounds=1)
    best = {k: min(v) for k, v in seconds.items()}
    total_flops, total_s = sum(flops.values()), sum(best.values())
    info = {"threads": torch.get_num_threads(), "input": [SIZE, SIZE], "tokens": 256 if model.config.pad_to_max_query
            else int(text.attention_mask.sum()), "gflop": total_flops / 1e9, "gflops_per_s": total_flops / total_s / 1e9}
    for k in parts:
        info[f"{k}_gflop"] = flops[k] / 1e9
        info[f"{k}_s"] = best[k]
        info[f"{k}_gflops_per_s"] = flops[k] / best[k] / 1e9
    if "gflops_per_s" in _MATMUL:
        info["fraction_of_matmul"] = info["gflops_per_s"] / _MATMUL["gflops_per_s"]
    info["note"] = "DCN grid_sample sampling not counted (no FlopCounterMode formula)"
    benchmark.extra_info.update(info)
    print(f"\nglip-t {SIZE}x{SIZE}: {info['gflop']:.1f} GFLOP in {total_s:.2f} s = {info['gflops_per_s']:.1f} GFLOP/s; "
          + ", ".join(f"{k} {info[f'{k}_gflop']:.1f} GFLOP / {best[k]:.2f} s" for k in parts))
