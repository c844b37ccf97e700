"""Time and memory of GLIP forward passes on CPU (random weights; numbers, not a test).

    python benchmarks/model_forward.py                 # glip-t and glip-l at 800x1333, glip-synth training step
    python benchmarks/model_forward.py --preset glip-t --runs 3 --threads 2

Each measurement runs in its own subprocess so peak RSS (resource.getrusage ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def rss_gib() -> float:
    """Current resident set size in GiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def measure(preset: str, runs: int, threads: int, height: int, width: int, batch: int, train: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    from glip.config import TOY_WORDS, VOCAB_CHARS, get_preset
    from glip.language import build_wordpiece_tokenizer
    from glip.model import GLIP
    from glip.structures import ImageBatch, TrainTarget

    cfg = get_preset(preset)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    # bert-base-uncased is not available offline: a small WordPiece vocabulary stands in (timing and memory
    # do not depend on which ids the 256 tokens carry)
    tok = None if cfg.vocab_words else build_wordpiece_tokenizer(list(TOY_WORDS) + list(VOCAB_CHARS))
    model = GLIP(cfg, tokenizer=tok)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
    images = ImageBatch(torch.randn(batch, 3, pad_h, pad_w), [(height, width)] * batch, [(height, width)] * batch)
    captions = ["person. bicycle. car. motorcycle. airplane. bus. train. truck. boat. traffic light"] * batch
    rss_before = rss_gib()
    times = []
    if train:
        model.train()
        pm = torch.zeros(1, 256)
        pm[0, 1] = 1
        targets = [TrainTarget(torch.tensor([[10.0, 20.0, 60.0, 90.0]]), pm)] * batch
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(runs):
            t = time.perf_counter()
            loss = sum(model(images, captions, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
    else:
        model.eval()
        with torch.no_grad():
            for _ in range(runs):
                t = time.perf_counter()
                model(images, captions)
                times.append(time.perf_counter() - t)
    return {"preset": preset, "mode": "train step (fwd+bwd+AdamW)" if train else "forward (no_grad)",
            "batch": batch, "input": f"{pad_h}x{pad_w}", "threads": threads, "params_M": round(n_params / 1e6, 2),
            "build_s": round(build_s, 2), "times_s": [round(t, 3) for t in times], "min_s": round(min(times), 3),
            "rss_after_build_GiB": round(rss_before, 2), "peak_rss_GiB": round(peak_gib(), 2),
            "forward_extra_GiB": round(peak_gib() - rss_before, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="measure one preset in this process (default: the standard set)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--height", type=int, default=800)
    p.add_argument("--width", type=int, default=1333)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--train", action="store_true", help="time a training step instead of inference")
    a = p.parse_args()
    if a.preset:
        print(json.dumps(measure(a.preset, a.runs, a.threads, a.height, a.width, a.batch, a.train)))
        return
    jobs = [["--preset", "glip-t"], ["--preset", "glip-l", "--runs", "1"],
            ["--preset", "glip-synth", "--height", "128", "--width", "128", "--batch", "8", "--train", "--runs", "5"]]
    for job in jobs:
        cmd = [sys.executable, __file__, *job, "--threads", str(a.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(out, flush=True)


if __name__ == "__main__":
    main()
