"""`glip-bench tasks`: list the benchmark tasks, their splits, prompts, metric, version and whether
their data are on disk."""

from __future__ import annotations

import argparse
import json

HELP = "list tasks (or a group's tasks) with split, classes, prompt sets, metric, version and data presence"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", help="only the tasks of this group (e.g. odinw13, odinw35)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--sources", action="store_true",
                        help="after the table, where to get the data of each task whose data are not all present")
    parser.add_argument("--data-root", default=None,
                        help="data root to check for the data (default: $GLIP_BENCH_DATA, else ./data)")


def _presence(task, data_root) -> str:
    present = task.present_splits(data_root)
    if len(present) == len(task.splits):
        return "yes"
    return "partial: " + ",".join(present) if present else "no"


def _classes(t) -> str:
    """#classes column: the count, "from file", or an open-vocabulary split (base / novel)."""
    if t.open_vocab is not None:
        side = lambda r: ("+".join(r["frequency"]) if isinstance(r, dict) else str(len(r)))  # noqa: E731
        return f"base {side(t.open_vocab['base'])} / novel {side(t.open_vocab['novel'])}"
    if t.format == "mdetr_refexp":
        return "per expression"
    return "from file" if t.num_classes is None else str(t.num_classes)


def rows(group: str | None, data_root: str | None) -> list[dict]:
    """One dict per task (or group member), in display order."""
    from bench.tasks.registry import load_registry, resolve_data_root

    reg = load_registry()
    root = resolve_data_root(data_root)
    members = reg.group_members(group) if group else [(n, True) for n in reg.names()]
    out = []
    for name, defined in members:
        if not defined:
            out.append({"name": name, "defined": False})
            continue
        t = reg.get(name)
        out.append({
            "name": t.name, "defined": True, "version": t.version, "split": t.eval_split,
            "finetune_split": t.finetune_split, "classes": t.num_classes, "prompt_sets": list(t.prompt_sets),
            "metric": t.metric, "groups": list(t.groups), "data": _presence(t, root),
            "root": str(t.root_path(root)), "format": t.format, "open_vocab": t.open_vocab,
            "classes_label": _classes(t), "source": t.source,
        })
    return out


def main(args: argparse.Namespace) -> int:
    from bench.tasks.registry import load_registry, resolve_data_root

    table = rows(args.group, args.data_root)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    header = ["task", "split", "#classes", "prompt sets", "metric", "version", "data"]
    lines = []
    for r in table:
        if not r["defined"]:
            lines.append([r["name"], "-", "-", "-", "-", "-", "not defined (no YAML)"])
            continue
        split = r["split"] if r["split"] == r["finetune_split"] else f"{r['split']} (ft: {r['finetune_split']})"
        ncls = r["classes_label"]
        lines.append([r["name"], split, ncls, ",".join(r["prompt_sets"]), r["metric"], str(r["version"]), r["data"]])
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    for line in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    defined = sum(r["defined"] for r in table)
    what = f"group {args.group}" if args.group else str(load_registry().directory)
    note = f"{defined} of {len(table)} defined" if defined != len(table) else f"{defined} tasks"
    print(f"\n{what}: {note}; data root {resolve_data_root(args.data_root)}")
    missing = [r for r in table if r["defined"] and r["data"] != "yes"]
    if missing and args.sources:
        print("\nwhere to get the missing data:")
        for r in missing:
            print(f"  {r['name']}: {r['source']}")
    elif missing:
        print(f"{len(missing)} tasks lack data on disk: add --sources to see where to get each")
    return 0
