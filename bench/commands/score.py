"""`glip-bench score`: metrics from saved predictions, no inference.

Three uses: rescore the harness's own runs (`--run DIR` / `--results DIR`); score another detector's
predictions file under a task's protocol and keep it as an external record (`--task T --predictions F`);
score a bare pair of files and print the numbers (`--annotations GT --predictions DT --metric M`).
`--metric` also names extra metrics (bench.metrics.extras: nms-ap, f1, tide, per-class): with `--run` /
`--results` they are added to finished runs' records from the saved predictions, without inference.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.results.records import REGIMES
from bench.runs.external import REQUIRED_COST
from bench.util.errors import UserError

HELP = ("recompute runs' metrics from their saved predictions, or score another detector's predictions file "
        "(under a task's protocol, as an external record; or against a bare annotations file)")
COST_HELP = ", ".join(REQUIRED_COST)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_argument_group("rescore the harness's runs")
    mode.add_argument("--run", default=None, help="one run folder (holding record.json and predictions)")
    mode.add_argument("--results", default=None,
                      help="rescore every run folder under this results folder; with --task: the results folder "
                           "the external record goes to (default: results)")
    ext = parser.add_argument_group("score another detector's predictions")
    ext.add_argument("--predictions", default=None, metavar="FILE",
                     help="a COCO results file (.json or .json.gz; grounding tasks: the harness's grounding format), "
                          "or an ODinW challenge file {dataset: [...]} / {dataset: {seed: [...]}}")
    ext.add_argument("--task", default=None, help="score FILE with this task's metric and write an external record")
    ext.add_argument("--split", default=None,
                     help="split of --task (default: its eval split, or its fine-tune split for a training regime)")
    ext.add_argument("--model-name", default=None,
                     help="the row name of the external model (default: the predictions file's name)")
    ext.add_argument("--regime", default=None, choices=list(REGIMES),
                     help="how the external model was adapted to the task, its leaderboard row (default: zero-shot)")
    ext.add_argument("--shots", default=None, help="shots per class it was trained on (a number, or 'all'); "
                                                   "needed with a training regime")
    ext.add_argument("--seed", type=int, default=None,
                     help="few-shot seed: with a {dataset: {seed: [...]}} file, score only this seed (default: "
                          "every seed, one record each); with a plain list, the seed it was trained with")
    ext.add_argument("--dataset", default=None, metavar="KEY",
                     help="the entry of an ODinW challenge file to score (default: the key naming --task)")
    ext.add_argument("--cost", action="append", default=None, metavar="KEY=VALUE",
                     help=f"a cost field of the external model that you know ({COST_HELP}); the others stay null")
    ext.add_argument("--annotations", default=None, metavar="GT.json",
                     help="score FILE against this annotations file and print the metrics (no record)")
    ext.add_argument("--metric", default=None, metavar="M[,M...]",
                     help="with --annotations: coco, lvis, lvis-fixed or flickr (COCO box AP, LVIS AP, LVIS Fixed AP, "
                          "Flickr30K recall@k) and/or extra metrics (nms-ap, f1, tide, per-class), comma-separated; "
                          "with --run / --results: extra metrics to add to the records")
    ext.add_argument("--json", action="store_true", help="with --annotations: print the metrics as JSON")
    op = parser.add_argument_group("f1's operating point (default: score 0.5; F1max50 is the oracle's best)")
    op.add_argument("--f1-threshold", type=float, default=None, metavar="T",
                    help="score f1's P/R/F1 at this detection score (0-1)")
    op.add_argument("--f1-threshold-from", default=None, metavar="RUN",
                    help="with --run: at the best-F1 score (IoU 0.5) of RUN, a finished run of the same model on "
                         "another split (e.g. val) of the same classes")
    parser.add_argument("--data-root", default=None, help="data root (default: $GLIP_BENCH_DATA, else ./data)")
    parser.add_argument("--metric-backend", default=None, choices=["hotcoco", "pycocotools", "lvis"],
                        help="metric implementation (default: the one each record was made with; for a "
                             "predictions file: hotcoco)")


def main(args: argparse.Namespace) -> int:
    if args.f1_threshold_from is not None and args.run is None:
        raise UserError("--f1-threshold-from RUN sets the threshold of one run: pass it with --run DIR")
    if args.f1_threshold is not None and args.task is not None:
        raise UserError("--f1-threshold goes with --run / --results (extra metrics) or --annotations, not --task")
    if args.predictions is not None or args.task is not None or args.annotations is not None:
        if args.run is not None:
            raise UserError("--run rescores a harness run; it does not combine with --predictions, --task or "
                            "--annotations")
        if args.predictions is None:
            raise UserError("--task and --annotations score a predictions file: pass --predictions FILE")
        if (args.task is None) == (args.annotations is None):
            raise UserError("--predictions needs exactly one of --task T (score under the task's protocol and "
                            "write an external record) or --annotations GT.json --metric M (print the metrics)")
        return score_pair_main(args) if args.annotations is not None else score_task_main(args)
    for name in ("split", "model_name", "regime", "shots", "seed", "dataset", "cost", "json"):
        if getattr(args, name) not in (None, [], False):
            raise UserError(f"--{name.replace('_', '-')} goes with --predictions FILE")
    if (args.run is None) == (args.results is None):
        raise UserError("pass one of --run DIR or --results DIR (rescore runs), or --predictions FILE with --task T "
                        "or --annotations GT.json")
    return rescore_main(args)


# ------------------------------------------------------------------------------------------ rescore
def rescore_main(args: argparse.Namespace) -> int:
    import json
    import math
    from pathlib import Path

    from bench.results import store
    from bench.runs.runner import rescore_run
    from bench.runs.scoring import add_extra_metrics

    extras = parse_extras(args.metric) if args.metric is not None else None
    if (args.f1_threshold is not None or args.f1_threshold_from is not None) and "f1" not in (extras or []):
        raise UserError("--f1-threshold / --f1-threshold-from set f1's operating point: add --metric f1")
    if args.run is not None:
        folders = [Path(args.run)]
        if not (folders[0] / store.RECORD).is_file():
            raise UserError(f"{args.run} is not a run folder: no {store.RECORD} in it")
    else:
        folders = list(store.iter_run_dirs(args.results))
        if not folders:
            raise UserError(f"no run folders (with {store.RECORD}) under {args.results}")
    # every record is read (and validated: an invalid one is a UserError naming it) before any is rewritten
    befores = {folder: store.load_record(folder / store.RECORD) for folder in folders}
    changed, failed = 0, []
    for folder in folders:
        before = befores[folder]
        try:
            if extras:
                record = add_extra_metrics(folder, extras, args.data_root, args.metric_backend,
                                           f1_threshold=args.f1_threshold, f1_threshold_from=args.f1_threshold_from)
                print_extras(folder.name, record["metrics"]["extra"], extras)
                if "tide" in extras:  # the run's TIDE chart beside its record
                    from bench.reports.tide_chart import write_tide_chart

                    chart = write_tide_chart(record["metrics"]["extra"]["tide"], folder / "tide.png", folder.name)
                    print(f"{folder.name}: TIDE chart -> {chart}")
                continue
            record = rescore_run(folder, args.data_root, args.metric_backend)
        except UserError as err:  # this run's record stays as it was; the others are still rescored
            failed.append(str(err) if folder.name in str(err) else f"{folder.name}: {err}")
            print(f"{folder.name}: FAILED")
            continue
        same = before is not None and json.dumps(before["metrics"]) == json.dumps(record["metrics"])
        changed += not same
        m = record["metrics"]
        v = m["values"][m["primary"]]
        print(f"{folder.name}: {m['primary']} {'nan' if math.isnan(v) else f'{v:.2f}'}"
              f"{'' if same else ' (changed)'}")
    what = f"added {', '.join(extras)} to" if extras else "rescored"
    print(f"{what} {len(folders) - len(failed)} runs" + ("" if extras else f", {changed} changed"))
    if failed:
        raise UserError(f"{len(failed)} of {len(folders)} runs could not be rescored (their records are "
                        "unchanged):\n  " + "\n  ".join(failed))
    return 0


def parse_extras(text: str) -> list[str]:
    """--metric with --run / --results: extra metric names only (the run's own metric is its task's)."""
    from bench.metrics.extras import parse_list
    from bench.runs.external import BARE_METRICS

    names = [n.strip() for n in text.split(",")]
    base = [n for n in names if n in BARE_METRICS]
    if base:
        raise UserError(f"--metric {', '.join(base)}: a run is scored with its task's metric (rescore it without "
                        "--metric); with --run / --results, --metric names extra metrics to add")
    return parse_list(text)


def print_extras(run: str, extra: dict[str, Any], names: list[str]) -> None:
    import math

    for name in names:
        values = extra[name]["values"]
        shown = list(values.items())[:8]
        text = ", ".join(f"{k} {'nan' if math.isnan(v) else f'{v:.2f}'}" for k, v in shown)
        print(f"{run}: {name}: {text}{' ...' if len(values) > len(shown) else ''}")


# --------------------------------------------------------------------------------- external record
def parse_shots(text: str | None, regime: str) -> int | None:
    """--shots for the external record's spec: 0 for zero-shot, k or None ('all') for a training regime."""
    if regime == "zero-shot":
        if text is not None:
            raise UserError("zero-shot predictions take no --shots; drop it or pass --regime")
        return 0
    if text is None:
        raise UserError(f"--regime {regime} needs --shots K (shots per class it was trained on) or --shots all")
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"--shots takes a number >= 1 or 'all' (got {text!r})")
    return int(text)


def parse_cost(items: list[str] | None) -> dict[str, Any]:
    """--cost total_params=172e6 --cost device="A100" -> {"total_params": 172000000.0, "device": "A100"}."""
    from bench.util.errors import unknown_name

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise UserError(f"--cost takes KEY=VALUE such as total_params=172000000 (got {item!r})")
        if key not in REQUIRED_COST:
            raise unknown_name("--cost field", key, REQUIRED_COST)
        if key == "device":
            out[key] = value
            continue
        try:
            out[key] = float(value)
        except ValueError:
            raise UserError(f"--cost {key} takes a number (got {value!r})") from None
    return out


def score_task_main(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from bench.results.records import RunSpec
    from bench.results.store import RECORD
    from bench.runs import external
    from bench.tasks.registry import get_task

    if args.metric is not None or args.json:
        raise UserError("--metric and --json go with --annotations; with --task the task's metric is used")
    task = get_task(args.task)
    regime = args.regime or "zero-shot"
    shots = parse_shots(args.shots, regime)
    cost = parse_cost(args.cost)
    data = external.read_predictions_file(args.predictions)
    selections = external.select_entries(data, task, args.predictions, dataset=args.dataset, seed=args.seed)
    if regime == "zero-shot" and isinstance(data, list) and args.seed is not None:
        raise UserError("zero-shot predictions take no --seed; drop it or pass the regime they were trained with")
    if regime == "zero-shot" and any(s.seed is not None for s in selections):
        raise UserError(f"{args.predictions} holds few-shot seeds; pass the regime they were trained with "
                        "(--regime full-ft, prompt-tuning or linear-probe) and --shots K")
    if regime != "zero-shot" and selections[0].seed is None:
        raise UserError(f"--regime {regime}: pass --seed S, the few-shot seed these predictions were trained with")
    results = args.results or "results"
    name = args.model_name or Path(args.predictions).name.split(".")[0]
    for sel in selections:
        record = external.score_external(
            task, sel, model_name=name, source=args.predictions, results_dir=results, regime=regime,
            shots=shots, split=args.split, data_root=args.data_root, metric_backend=args.metric_backend or "hotcoco",
            cost=cost)
        m = record["metrics"]
        v = m["values"][m["primary"]]
        folder = external.external_dir(results, RunSpec.from_dict(record["spec"]))
        dropped = record["external"]["protocol"]["dropped_by_cap"]
        note = f" ({dropped} detections over the per-image cap dropped)" if dropped else ""
        print(f"{name} on {task.name} {record['task']['split']}"
              f"{'' if sel.seed is None else f' seed {sel.seed}'}: {m['primary']} "
              f"{'nan' if math.isnan(v) else f'{v:.2f}'}{note} -> {folder / RECORD}")
    return 0


# ------------------------------------------------------------------------------------------ bare pair
def score_pair_main(args: argparse.Namespace) -> int:
    import json

    from bench.runs import external

    if args.metric is None:
        raise UserError("--annotations needs --metric coco, lvis, lvis-fixed or flickr (and/or extra metrics: "
                        "nms-ap, f1, tide, per-class)")
    names = parse_pair_metrics(args.metric)
    extra = [f"--{n.replace('_', '-')}" for n in ("results", "split", "model_name", "regime", "shots", "cost")
             if getattr(args, n) not in (None, [])]
    if args.f1_threshold is not None and "f1" not in names:
        raise UserError("--f1-threshold sets f1's operating point: add f1 to --metric")
    if extra:
        raise UserError(f"{', '.join(extra)}: a bare pair of files writes no record; drop them or use --task")
    data = external.read_predictions_file(args.predictions)
    (sel, *more) = external.select_entries(data, None, args.predictions, dataset=args.dataset, seed=args.seed)
    if more:
        raise UserError(f"{args.predictions}, entry {sel.dataset!r} holds several seeds "
                        f"({', '.join(str(s.seed) for s in (sel, *more))}); pass --seed S")
    backend = args.metric_backend or "hotcoco"
    options = {"f1": {"score_threshold": args.f1_threshold}} if args.f1_threshold is not None else {}
    outputs = [pair_output(name, args.annotations, sel, args.predictions, backend, options.get(name))
               for name in names]
    if args.json:
        print(json.dumps(outputs[0] if len(outputs) == 1 else outputs, indent=2))
        return 0
    for out in outputs:
        if len(outputs) > 1:
            print(f"[{out['metric']}]")
        width = max(len(k) for k in out["values"])
        for k, v in out["values"].items():
            print(f"{k:<{width}}  {'nan' if v is None else f'{v:.2f}'}")
    return 0


def parse_pair_metrics(text: str) -> list[str]:
    """--metric with --annotations: bare metric names (coco, lvis, ...) and extra metric names, checked."""
    from bench.metrics.extras import EXTRA_METRICS
    from bench.runs.external import BARE_METRICS
    from bench.util.errors import unknown_name

    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for n in names:
        if n not in BARE_METRICS and n not in EXTRA_METRICS:
            raise unknown_name("--metric", n, (*BARE_METRICS, *EXTRA_METRICS))
    if not names:
        raise UserError("--metric needs a name (coco, lvis, lvis-fixed, flickr, nms-ap, f1, tide, per-class)")
    return names


def pair_output(name: str, annotations: str, sel: Any, source: str, backend: str,
                options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One metric of a bare pair as printed: metric, primary, values, per_class, backend, library (+ definition)."""
    import math

    from bench.runs import external

    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    if name in external.BARE_METRICS:
        result = external.score_pair(annotations, sel.predictions, name, backend, where=sel.where(source)).to_dict()
        metric = external.BARE_METRICS[name]
    else:
        result = external.score_pair_extra(annotations, sel.predictions, name, backend, where=sel.where(source),
                                           options=options)
        metric = name
    out = {"metric": metric, "primary": result["primary"],
           "values": {k: finite(v) for k, v in result["values"].items()},
           "per_class": {k: finite(v) for k, v in result["per_class"].items()},
           "backend": result["backend"], "library": result["library"]}
    for key in ("definition", "options"):
        if key in result:
            out[key] = result[key]
    return out
