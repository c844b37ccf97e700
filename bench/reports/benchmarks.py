"""Summarise a pytest-benchmark JSON file as ratios against the baseline of each group.

Benchmarks are grouped with `@pytest.mark.benchmark(group=...)`; the baseline of a group is the one
whose `extra_info["baseline"]` is true (e.g. pycocotools against hotcoco, the naive chunked
path against the cached one). Ratios are only meaningful within one run on one machine, which is
why the summary never compares against numbers from another file.

    python -m bench.reports.benchmarks results/benchmarks/latest.json

It ends with `headline`: the ratios the project sets speed targets for, one line each.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def summary_lines(data: dict) -> list[str]:
    """One line per benchmark, grouped, fastest first, with its ratio to the group's baseline."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data.get("benchmarks", []):
        groups[b.get("group") or b["name"]].append(b)
    machine = data.get("machine_info", {})
    lines = [f"machine: {machine.get('cpu', {}).get('brand_raw', '?')} ({machine.get('node', '?')})"]
    for group, items in sorted(groups.items()):
        base = next((b for b in items if b.get("extra_info", {}).get("baseline")), None)
        lines.append(f"[{group}]")
        for b in sorted(items, key=lambda b: b["stats"]["mean"]):
            mean = b["stats"]["mean"]
            ratio = f"  {base['stats']['mean'] / mean:6.2f}x faster than baseline" if base and b is not base else ""
            tag = "  (baseline)" if b is base else ""
            extra = {k: v for k, v in b.get("extra_info", {}).items() if k != "baseline"}
            lines.append(f"  {b['name']:<60} {mean * 1e3:10.2f} ms{tag}{ratio}  {extra if extra else ''}")
    return lines


def _find(data: dict, name: str) -> dict | None:
    return next((b for b in data.get("benchmarks", []) if b["name"] == name), None)


def _info(data: dict, name: str, key: str) -> float | None:
    b = _find(data, name)
    return None if b is None else b.get("extra_info", {}).get(key)


def headline(data: dict) -> list[str]:
    """The ratios the project sets speed targets for, one line each, from whichever benchmarks this run holds."""
    lines = ["speed targets, this run:"]
    chunk = _info(data, "test_chunked_prompt_glip_t_parts[glip-t]", "cached_over_naive")
    if chunk is not None:
        official = _info(data, "test_chunked_prompt_glip_t_parts[glip-t]", "cached_over_official_naive")
        share = _info(data, "test_chunked_prompt_glip_t_parts[glip-t]", "per_chunk_share_of_full_forward")
        late = _info(data, "test_chunked_prompt_glip_t_parts[glip-t-a]", "cached_over_naive")
        lines.append(f"  chunked prompts, glip-t 256x256, 31 chunks: cached / naive {chunk:.3f} (target <= 0.5); vs "
                     f"the official padded forward {official:.3f}; per-chunk share of a forward {share:.3f}"
                     + (f"; glip-t-a {late:.4f}" if late is not None else ""))
    full = "test_chunked_prompt_glip_t_parts_full_size"
    if _info(data, full, "cached_over_naive") is not None:
        lines.append(f"  chunked prompts, glip-t 800x1333: cached / naive {_info(data, full, 'cached_over_naive'):.3f}, "
                     f"vs the official padded forward {_info(data, full, 'cached_over_official_naive'):.3f}")
    rates = {k: _info(data, f"test_batch_size[{k}]", "images_per_s") for k in (1, 4, 8)}
    if all(v is not None for v in rates.values()):
        lines.append("  batched inference, glip-synth on cpu: " + ", ".join(f"batch {k} {v:.1f}" for k, v in
                                                                           rates.items()) + " images/s")
    gpu = [b["extra_info"] for b in data.get("benchmarks", []) if b["name"].startswith("test_glip_t_images_per_s_cuda")]
    if gpu:
        lines.append(f"  glip-t on {gpu[0]['device']}: " + ", ".join(
            f"{e['dtype']} batch {e['batch_size']} {e['images_per_s']:.2f}" for e in
            sorted(gpu, key=lambda e: (e["dtype"], e["batch_size"]))) + " images/s")
    else:
        lines.append("  glip-t on a GPU (bf16 autocast): not measured, no CUDA device in this run")
    cpu = {d: _info(data, f"test_glip_synth_images_per_s_cpu[{d}]", "images_per_s") for d in ("fp32", "bf16")}
    if all(v is not None for v in cpu.values()):
        lines.append(f"  glip-synth on cpu, batch 8: fp32 {cpu['fp32']:.1f}, bf16 autocast {cpu['bf16']:.1f} images/s")
    for name, what in (("test_coco_bbox_speed[hotcoco]", "COCO, 5000 images"),
                       ("test_lvis_bbox_speed[hotcoco]", "LVIS, 1000 images")):
        x = _info(data, name, "speedup_vs_reference")
        if x is not None:
            lines.append(f"  hotcoco vs the reference library, {what}: {x:.1f}x (target >= 30x)")
    frac = _info(data, "test_glip_t_forward_gflops", "fraction_of_matmul")
    if frac is not None:
        lines.append(f"  glip-t forward: {_info(data, 'test_glip_t_forward_gflops', 'gflops_per_s'):.1f} GFLOP/s, "
                     f"{frac:.2f} of a large matmul's")
    harness = [b["extra_info"] for b in data.get("benchmarks", []) if b["name"].startswith("test_harness_overhead")]
    if harness:
        steps = sorted(harness, key=lambda e: -e["harness_fraction"])
        lines.append("  harness share of a zero-shot pass: " + " -> ".join(
            f"{e['harness_fraction']:.1%} ({e['pipeline']})" for e in steps) + " (target < 10%)")
    batched, single = _find(data, "test_postprocess_batched[batched]"), _find(data, "test_postprocess_batched[image-by-image]")
    if batched and single:
        lines.append(f"  postprocess, batch 8: batched {single['stats']['mean'] / batched['stats']['mean']:.2f}x "
                     f"faster than image by image")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"no benchmark file at {path}: run `nox -s bench` first", file=sys.stderr)
        return 2
    data = json.loads(path.read_text())
    print("\n".join(summary_lines(data) + [""] + headline(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
