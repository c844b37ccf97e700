"""`glip-bench fetch`: download weights and data on a machine with internet, into the places the other commands
read them from. The catalogue is bench/fetch/catalogue.py; docs/fetching.md says what each item is."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.util.errors import UserError

if TYPE_CHECKING:
    from bench.fetch.catalogue import Item

HELP = ("download official GLIP checkpoints, bert-base-uncased, ODinW, RF100-VL and transformers detectors "
        "(needs internet; --list works offline)")
HF_MODEL = "hf-model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="catalogue names or groups (glip-t, bert-base-uncased, glip-checkpoints, odinw13, "
                             "odinw-aquarium, rf100vl, grounding-dino-tiny, ...: see --list), or "
                             "`hf-model REPO [REPO ...]` for any transformers detector on the hub")
    parser.add_argument("--list", action="store_true", help="show what can be fetched and where it would go")
    parser.add_argument("--to", default=None, metavar="DIR",
                        help="the weights folder (default ./weights); with hf-model, the model's own folder "
                             "(then ./weights/<repo name> if not given)")
    parser.add_argument("--data-root", default=None, help="data root (default: $GLIP_BENCH_DATA, else ./data)")
    parser.add_argument("--revision", default="main", help="hub branch, tag or commit to download from")
    parser.add_argument("--force", action="store_true",
                        help="download again and replace what is there (also a data set folder no fetch wrote)")
    parser.add_argument("--verify", action="store_true",
                        help="hash the files already there against the hub's checksums too (a fresh download always is)")


def _roots(args: argparse.Namespace) -> dict[str, Path]:
    from bench.tasks.registry import resolve_data_root

    return {"weights": Path(args.to or "weights"), "data": resolve_data_root(args.data_root)}


def destination(item: Item, roots: dict[str, Path]) -> Path:
    return roots[item.place] / item.dest


def _shown(item: Item, roots: dict[str, Path]) -> str:
    """Where an item lands, as the user would pass it (a file item: the file itself)."""
    dest = destination(item, roots)
    if item.kind == "odinw-zip":
        return str(dest / Path(item.files[0]).stem)
    return str(dest / item.files[0]) if item.kind == "file" and len(item.files) == 1 else str(dest)


def _task_roots() -> dict[str, str]:
    from bench.tasks.registry import load_registry

    return {t.name: t.root for t in load_registry().list()}


def _items(args: argparse.Namespace) -> list[Item]:
    from bench.fetch.catalogue import GROUPS, ITEMS, Item, resolve

    if not args.names:
        raise UserError("name what to fetch (e.g. `glip-bench fetch glip-t bert-base-uncased odinw13`); "
                        "`glip-bench fetch --list` shows every name")
    if args.names[0] != HF_MODEL:
        if HF_MODEL in args.names:
            raise UserError(f"{HF_MODEL} goes first and alone: `glip-bench fetch {HF_MODEL} OWNER/NAME [--to DIR]`")
        in_catalogue = all(n in ITEMS or n in GROUPS for n in args.names)
        return resolve(args.names, None if in_catalogue else _task_roots())
    repos = args.names[1:]
    if not repos or any(r.count("/") != 1 for r in repos):
        raise UserError(f"{HF_MODEL} takes hub repositories as OWNER/NAME, e.g. "
                        f"`glip-bench fetch {HF_MODEL} IDEA-Research/grounding-dino-tiny --to gdino-t`")
    if args.to and len(repos) > 1:
        raise UserError(f"--to names one model's folder; fetch {len(repos)} repositories one at a time")
    return [Item(repo, HF_MODEL, f"transformers checkpoint {repo}", "weights",
                 repo.split("/")[1], repo=repo, use="--model hf:{path}") for repo in repos]


def _fetch(item: Item, roots: dict[str, Path], args: argparse.Namespace) -> Path:
    from bench.fetch import archive, hub, roboflow
    from bench.util.logs import get_logger

    dest = destination(item, roots)
    if item.kind == HF_MODEL and args.names[0] == HF_MODEL and args.to:
        dest = Path(args.to)
    if item.kind == "file":
        for name in item.files:
            hub.fetch_file(item.repo, name, dest, args.revision, args.force, args.verify)
        return dest / item.files[0] if len(item.files) == 1 else dest
    if item.kind == "folder":
        return hub.fetch_folder(item.repo, list(item.files), dest, args.revision, args.force, args.verify)
    if item.kind == HF_MODEL:
        hub.fetch_folder(item.repo, hub.model_files(item.repo, args.revision), dest, args.revision, args.force,
                         args.verify)
        _check_family(dest)
        return dest
    if item.kind == "odinw-zip":
        stem = Path(item.files[0]).stem
        if not args.force and archive.unpacked(dest, stem):
            get_logger().info("%s: already unpacked in %s", item.name, dest)
            return dest
        zip_path = hub.fetch_file(item.repo, item.files[0], dest / ".download", args.revision, args.force)
        archive.unpack(zip_path, dest, stem, replace=args.force)
        zip_path.unlink()
        return dest
    if item.kind == "rf100vl":
        return roboflow.download(item.function, dest, item.name)
    raise AssertionError(item.kind)  # pragma: no cover - the catalogue's kinds are all handled above


def _check_family(dest: Path) -> None:
    """A fetched checkpoint of a family glip-bench has no adapter for is kept, with a warning that says so."""
    from bench.models.hf.loading import detect_family, model_dir
    from bench.util.logs import get_logger

    try:
        detect_family(model_dir(f"hf:{dest}"))
    except UserError as e:
        get_logger().warning("fetched %s, but `--model hf:%s` will refuse it: %s", dest, dest, e)


def _odinw_report(stems: set[str], data_root: Path) -> list[str]:
    """Which tasks the unpacked ODinW zips feed, and whether `glip-bench tasks` now finds their data."""
    from bench.fetch.catalogue import odinw_zip_of
    from bench.tasks.registry import load_registry

    lines = []
    for task in load_registry().list():
        if odinw_zip_of(task.root) in stems:
            present = task.present_splits(data_root)
            missing = [s for s in task.splits if s not in present]
            state = "data: yes" if not missing else f"data missing for split(s) {', '.join(missing)} under " \
                                                    f"{task.root_path(data_root)}"
            lines.append(f"  {task.name}: {state}")
    fed = {odinw_zip_of(t.root) for t in load_registry().list()}
    lines += [f"  {stem}.zip: no task YAML reads it yet (tasks/odinw/)" for stem in sorted(stems - fed)]
    return lines


def _check_rf100vl_first(items: list[Item], roots: dict[str, Path]) -> None:
    """An RF100-VL item that cannot run (no package, no key) fails before anything else is downloaded."""
    from bench.fetch import roboflow

    for item in items:
        if item.kind == "rf100vl":
            roboflow.require(item.function, destination(item, roots), item.name)


def print_list(roots: dict[str, Path]) -> None:
    from bench.fetch.catalogue import GROUPS, ITEMS

    rows = [(name, item.kind, _shown(item, roots), item.description) for name, item in ITEMS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r[:3], widths)) + "  " + r[3])
    print("\ngroups: " + "; ".join(f"{g} ({len(m)} items)" for g, m in GROUPS.items())
          + " (ODinW-35's 35 tasks come from 32 zips)")
    print("also: an ODinW task name (odinw-aquarium) fetches its zip; "
          f"`{HF_MODEL} OWNER/NAME [--to DIR]` any transformers detector on the hub")
    print(f"weights folder {roots['weights']} (--to); data root {roots['data']} (--data-root)")


def main(args: argparse.Namespace) -> int:
    from bench.fetch import hub

    roots = _roots(args)
    if args.list:
        print_list(roots)
        return 0
    items = _items(args)
    hub.require_online()
    hub.quiet_if_asked()
    _check_rf100vl_first(items, roots)
    done: list[tuple[Item, Path]] = []
    for item in items:
        path = _fetch(item, roots, args)
        done.append((item, path))
        print(f"{item.name}: {path}")
    print("\nready:")
    for item, path in done:
        if item.kind != "odinw-zip":
            print(f"  {item.name}: {item.use.format(path=path, weights=roots['weights'], data=roots['data'])}")
    stems = {Path(i.files[0]).stem for i, _ in done if i.kind == "odinw-zip"}
    if stems:
        print(f"  ODinW ({len(stems)} zip(s)) under {roots['data'] / 'odinw'}; tasks they feed:")
        print("\n".join(_odinw_report(stems, roots["data"])))
    return 0
