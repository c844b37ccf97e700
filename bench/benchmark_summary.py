"""Summarise a pytest-benchmark JSON file as ratios against the baseline of each group.

Benchmarks are grouped with `@pytest.mark.benchmark(group=...)`; the baseline of a group is the one
whose `extra_info["baseline"]` is true (e.g. pycocotools against faster-coco-eval, the naive chunked
path against the cached one). Ratios are only meaningful within one run on one machine, which is
why the summary never compares against numbers from another file.

    python -m bench.benchmark_summary results/benchmarks/latest.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def summarise(data: dict) -> list[str]:
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"no benchmark file at {path}: run `nox -s bench` first", file=sys.stderr)
        return 2
    print("\n".join(summarise(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
