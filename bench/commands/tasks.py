"""`glip-bench tasks`: list the benchmark tasks, their splits, prompts, metric, version and whether
their data are on disk."""

from __future__ import annotations

import argparse
import json

HELP = "list tasks (or a group's tasks) with split, classes, prompt sets, metric, version and data presence"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", help="only the tasks of this group (e.g. odinw13, odinw35)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data-root", default=None,
                        help="data root to check for the data (default: $GLIP_BENCH_DATA, else ./data)")
    parser.add_argument("--sources", action="store_true",
                        help="after the table, where to get the data of each task whose data are not all present")


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


def rows(group: str | None, data_root: str | None, fold_families: bool = False) -> list[dict]:
    """One dict per task (or group member), in display order; fold_families: leave out the tasks of task
    families (bench.tasks.family), which `family_lines` summarises."""
    from bench.tasks.registry import load_registry, resolve_data_root

    reg = load_registry()
    root = resolve_data_root(data_root)
    members = reg.group_members(group) if group else [(n, True) for n in reg.names()]
    if fold_families:
        members = [(n, ok) for n, ok in members if not (ok and hasattr(reg.get(n), "family"))]
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
            "classes_label": _classes(t), "source": t.source, **_family_fields(t, root),
        })
    return out


def _family_fields(task, root) -> dict:
    """A task family's task (bench.tasks.family): its domain, whether annotator instructions are there (the
    `instructions` prompt set needs them), its fixed shots, and how to get its data."""
    if not hasattr(task, "domain"):
        return {}
    present = task.has_instructions(root)
    sets = [p for p in task.prompt_sets if p != "instructions" or present]
    return {"domain": task.domain, "prompt_sets": sets, "instructions": present,
            "fixed_train_shots": task.fixed_train_shots, "how_to_get": task.how_to_get}


def family_lines() -> list[str]:
    """One line per task family variant: its task count and the group that lists them."""
    from bench.tasks.registry import load_registry

    reg = load_registry()
    counts: dict[str, int] = {}
    for t in reg.list():
        if hasattr(t, "family"):
            counts[t.groups[0]] = counts.get(t.groups[0], 0) + 1
    return [f"{g}: {n} tasks (a task family; list them with `glip-bench tasks --group {g}`)"
            for g, n in sorted(counts.items())]


def main(args: argparse.Namespace) -> int:
    from bench.tasks.registry import load_registry, resolve_data_root

    fold = not args.group and not args.json
    table = rows(args.group, args.data_root, fold_families=fold)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    domains = any("domain" in r for r in table)
    header = ["task", *(["domain"] if domains else []), "split", "#classes", "prompt sets", "metric", "version", "data"]
    lines = []
    for r in table:
        if not r["defined"]:
            lines.append([r["name"], *(["-"] if domains else []), "-", "-", "-", "-", "-", "not defined (no YAML)"])
            continue
        split = r["split"] if r["split"] == r["finetune_split"] else f"{r['split']} (ft: {r['finetune_split']})"
        ncls = r["classes_label"]
        psets = ",".join(r["prompt_sets"])
        if "instructions" in r and not r["instructions"]:
            psets += " (no instructions file)" if r["data"] != "no" else " (+instructions if present)"
        data = r["data"] + (" (see below)" if r["data"] != "yes" and r.get("how_to_get") else "")
        lines.append([r["name"], *([r.get("domain", "-")] if domains else []), split, ncls, psets, r["metric"],
                      str(r["version"]), data])
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    for line in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    defined = sum(r["defined"] for r in table)
    what = f"group {args.group}" if args.group else ", ".join(str(d) for d in load_registry().directories)
    note = f"{defined} of {len(table)} defined" if defined != len(table) else f"{defined} tasks"
    print(f"\n{what}: {note}; data root {resolve_data_root(args.data_root)}")
    for line in family_lines() if fold else []:
        print(f"  + {line}")
    _print_how_to_get([r for r in table if r.get("how_to_get") and r["data"] != "yes"])
    missing = [r for r in table if r["defined"] and r["data"] != "yes" and not r.get("how_to_get")]
    if missing and args.sources:
        print("\nwhere to get the missing data:")
        for r in missing:
            print(f"  {r['name']}: {r['source']}")
    elif missing:
        print(f"{len(missing)} tasks lack data on disk: add --sources to see where to get each")
    return 0


def _print_how_to_get(missing: list[dict]) -> None:
    """Once per download call (not once per task): how to get the data of the tasks listed without it."""
    by_how: dict[str, list[str]] = {}
    for r in missing:
        how = r["how_to_get"].split(" (this task's folder:")[0]
        by_how.setdefault(how, []).append(r["name"])
    for how, names in by_how.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        print(f"\nno data for {shown}. To get it: {how}")
        print("  (`glip-bench tasks --json` gives each task's folder; a FSOD task's train split is its fixed "
              "10-shot sample: run it with --shots 10)" if any("fsod" in n for n in names) else
              "  (`glip-bench tasks --json` gives each task's folder)")
