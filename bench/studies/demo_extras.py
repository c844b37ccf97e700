"""The demo's own measurements beyond the run grid: forgetting of base concepts, and the closing summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.models import build_adapter
from bench.results import store
from bench.results.records import RunSpec, primary_value
from bench.runs.hparams import InferenceHParams
from bench.runs.predict import detect_settings, evaluate_split
from bench.runs.scoring import DEFAULT_BACKEND
from bench.runs.spec import resolve
from bench.runs.train import load_adapter
from bench.tasks.registry import get_task
from bench.util.io import atomic_write_text
from bench.util.logs import get_logger, progress

log = get_logger("demo")
BASE_TASK = "synth-colours"
# what the full demo aims for (COCO AP@[.5:.95] x 100), as set by the brief for the synthetic world
TARGETS_SOURCE = "the project's brief for the synthetic world (tracker item 6)"
TARGETS = {
    "seen concepts (synth-colours, zero-shot, deep)": 70.0,
    "unseen compositions (synth-compositions, zero-shot, deep)": 45.0,
    "novel shapes (synth-novel, 10-shot full-ft, deep)": 50.0,
}


def _fusion(record: dict) -> str:
    return record["spec"]["overrides"].get("fusion", "deep")


def _max_shots(records: list[dict]) -> int | None:
    shots = [r["spec"]["shots"] for r in records if r["spec"]["regime"] != "zero-shot" and r["spec"]["shots"]]
    return max(shots) if shots else None


def forgetting(records: list[dict], data_root: Path, results_dir: Path, infer_batch_size: int = 8,
               device: str = "cpu") -> pd.DataFrame:
    """AP on the base task before (zero-shot) and after each largest-shot fine-tuning run.

    Needs the run's trained tensors (runs/<run>/adapter.safetensors, written by the runner) on top of the
    pretrained checkpoint; the base task's test split is scored by `evaluate_split`, as a zero-shot run's is.
    """
    k = _max_shots(records)
    before = {(r["spec"]["checkpoint"], _fusion(r)): primary_value(r) for r in records
              if r["spec"]["task"] == BASE_TASK and r["spec"]["regime"] == "zero-shot"}
    task = get_task(BASE_TASK)
    dataset = task.load(task.eval_split, data_root)
    settings = detect_settings(task, InferenceHParams(infer_batch_size=infer_batch_size), device)
    rows = []
    tuned = [r for r in records if r["spec"]["regime"] != "zero-shot" and r["spec"]["shots"] == k]
    for r in progress(tuned, desc="forgetting", total=len(tuned), leave=True):
        spec = RunSpec.from_dict(r["spec"])
        run = resolve(spec, data_root, check_data=False)
        adapter = build_adapter(spec.model, run.model_overrides, spec.checkpoint, device=device)
        load_adapter(adapter.module, store.run_dir(results_dir, spec) / store.ADAPTER, strict=True)
        adapter.module.eval()
        after = evaluate_split(adapter, task, dataset, settings, backend=DEFAULT_BACKEND,
                               prompt_set=spec.prompt_set).primary
        base = before.get((spec.checkpoint, _fusion(r)), math.nan)
        rows.append({"fusion": _fusion(r), "regime": spec.regime, "shots": spec.shots, "seed": spec.seed,
                     "fine-tuned on": spec.task, "novel AP": primary_value(r), f"{BASE_TASK} AP before": base,
                     f"{BASE_TASK} AP after": after, "forgetting (before - after)": base - after})
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["fusion", "regime", "seed"]).reset_index(drop=True)
        atomic_write_text(results_dir / "forgetting.csv", table.to_csv(index=False, lineterminator="\n"))
    return table


def diagnose_runs(records: list[dict], data_root: Path, results_dir: Path) -> pd.DataFrame:
    """Class-agnostic AP and label accuracy (bench.studies.diagnosis) of the zero-shot and largest-shot
    detection runs, from their saved predictions: does low AP come from finding objects or from naming them?"""
    from bench.studies.diagnosis import diagnose

    k = _max_shots(records)
    rows, truth = [], {}
    for r in records:
        spec = RunSpec.from_dict(r["spec"])
        if spec.shots not in (0, k):
            continue
        task = get_task(spec.task)
        if task.metric != "coco_bbox":
            continue
        if spec.task not in truth:
            truth[spec.task] = task.load(task.eval_split, data_root).coco
        d = diagnose(truth[spec.task], store.read_predictions(store.run_dir(results_dir, spec)))
        rows.append({"task": spec.task, "fusion": _fusion(r), "regime": spec.regime, "shots": spec.shots,
                     "seed": spec.seed, "AP": primary_value(r), "class-agnostic AP": d["class_agnostic_ap"],
                     "label accuracy": d["label_accuracy"], "chance": d["label_chance"]})
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["task", "fusion", "regime", "seed"]).reset_index(drop=True)
        atomic_write_text(results_dir / "diagnosis.csv", table.round(4).to_csv(index=False, lineterminator="\n"))
    return table


def _diagnosis_lines(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    g = (table.groupby(["task", "fusion", "regime", "shots"])[["AP", "class-agnostic AP", "label accuracy", "chance"]]
         .mean().reset_index())
    lines = ["", "## What limits AP: finding objects or naming them", "",
             "Class-agnostic AP merges all classes (best box per location); label accuracy is the share of found "
             "objects whose best box carries the right label (bench/studies/diagnosis.py; means over seeds).", "",
             "| task | fusion | regime | shots | AP | class-agnostic AP | label accuracy | chance |",
             "|---|---|---|---|---|---|---|---|"]
    for _, row in g.iterrows():
        lines.append(f"| {row.task} | {row.fusion} | {row.regime} | {row.shots} | {row.AP:.1f} | "
                     f"{row['class-agnostic AP']:.1f} | {row['label accuracy']:.2f} | {row.chance:.2f} |")
    return lines


def markdown_table(table: pd.DataFrame, digits: int = 1) -> list[str]:
    """A DataFrame as the lines of a Markdown table, floats rounded to `digits` (pandas' to_markdown needs
    the tabulate package for the same thing)."""
    def cell(x: Any) -> str:
        if isinstance(x, float):
            text = "n/a" if math.isnan(x) else f"{x:.{digits}f}"
        else:
            text = str(x)
        return text.replace("|", "\\|")

    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rows = ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return [head, "|" + "---|" * len(table.columns), *rows]


def _forgetting_lines(table: pd.DataFrame) -> list[str]:
    """Base-task AP lost after fine-tuning, per fusion and regime (mean, std and count over seeds)."""
    if table.empty:
        return []
    g = (table.groupby(["fusion", "regime"])[table.columns[-1]].agg(["mean", "std", "count"]).reset_index()
         .rename(columns={"mean": "AP lost (mean)", "std": "std", "count": "seeds"}))
    return ["", "## Forgetting of base concepts after fine-tuning on novel shapes", "",
            f"{BASE_TASK} AP before (zero-shot) minus after each largest-shot fine-tuning run.", "",
            *markdown_table(g)]


def _reuse_lines(reused: dict[str, int]) -> list[str]:
    """Say when the wall times above exclude work reused from an earlier demo in the same folder."""
    stages = reused.get("stages") or []
    if not reused.get("runs") and not reused.get("models") and not stages:
        return []
    also = f", and the {' and '.join(stages)} stage{'s' if len(stages) > 1 else ''}" if stages else ""
    return [f"Resumed: {reused['runs']} of {reused['of_runs']} runs and {reused['models']} of {reused['of_models']} "
            f"pretrained models{also} were reused from an earlier demo in this folder, so their time is not in the "
            "line above (a fresh clone's full demo: see README).", ""]


def _mean_std(values: list[float]) -> str:
    s = pd.Series(values, dtype=float)
    return f"{s.mean():.1f}" if len(s) == 1 else f"{s.mean():.1f} ± {s.std():.1f} (n={len(s)})"


def demo_summary(records: list[dict], forgetting_table: pd.DataFrame, selftrain: dict[str, Any], plan: Any,
              timings: dict[str, float], diagnosis: pd.DataFrame | None = None,
              reused: dict[str, int] | None = None) -> dict[str, Any]:
    """The numbers a reader wants first, as Markdown (printed at the end of the demo) and as data."""
    rows = [{"task": r["spec"]["task"], "fusion": _fusion(r), "regime": r["spec"]["regime"],
             "shots": r["spec"]["shots"], "seed": r["spec"]["seed"], "value": primary_value(r),
             "metric": r["metrics"]["primary"]} for r in records]
    df = pd.DataFrame(rows)
    zs = df[df.regime == "zero-shot"].pivot_table(index="task", columns="fusion", values="value", aggfunc="mean")
    fs = df[df.regime != "zero-shot"]
    lines = ["# glip-bench demo summary", "",
             "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), "",
             *_reuse_lines(reused or {}),
             "One pretraining run per fusion variant: one sample. Its intervals cover fine-tuning seeds only; the "
             "claims study (`glip-bench claims`, results/claims/CLAIMS.md) repeats pretraining over seeds and gives "
             "each of the paper's claims an interval that counts them.", "",
             "## Zero-shot (pretrained on base concepts only)", "",
             "| task | metric | deep | late |", "|---|---|---|---|"]
    metric_of = dict(zip(df.task, df.metric))
    for task, row in zs.iterrows():
        lines.append(f"| {task} | {metric_of[task]} | {row.get('deep', math.nan):.1f} | {row.get('late', math.nan):.1f} |")
    lines += ["", "## Few-shot (test AP, mean ± std over seeds)", "", "| fusion | regime | " +
              " | ".join(f"{k}-shot" for k in plan.shots) + " |", "|---|---|" + "---|" * len(plan.shots)]
    for (fusion, regime), g in fs.groupby(["fusion", "regime"]):
        cells = [_mean_std(g[g.shots == k].value.tolist()) if (g.shots == k).any() else "–" for k in plan.shots]
        lines.append(f"| {fusion} | {regime} | " + " | ".join(cells) + " |")
    checks = {}

    def pick(task: str, regime: str, shots: int, fusion: str = "deep") -> float:
        sel = df[(df.task == task) & (df.regime == regime) & (df.shots == shots) & (df.fusion == fusion)]
        return float(sel.value.mean()) if len(sel) else math.nan

    k = max(plan.shots)
    reached = {
        "seen concepts (synth-colours, zero-shot, deep)": pick("synth-colours", "zero-shot", 0),
        "unseen compositions (synth-compositions, zero-shot, deep)": pick("synth-compositions", "zero-shot", 0),
        f"novel shapes (synth-novel, {k}-shot full-ft, deep)": pick("synth-novel", "full-ft", k),
    }
    lines += ["", "## Targets (full demo)", "",
              f"COCO AP@[.5:.95] x 100 on the named task's test split; targets from {TARGETS_SOURCE}.", "",
              "| measure | reached | target | verdict |", "|---|---|---|---|"]
    for (name, value), target in zip(reached.items(), TARGETS.values()):
        verdict = "not run" if math.isnan(value) else ("met" if value >= target else "missed")
        checks[name] = {"reached": value, "target": target, "verdict": verdict, "source": TARGETS_SOURCE}
        lines.append(f"| {name} | {value:.1f} | >= {target:.0f} | {verdict} |")
    lines.append(f"| novel shapes zero-shot (chance level, deep) | {pick('synth-novel', 'zero-shot', 0):.1f} | – | – |")
    lines += _diagnosis_lines(diagnosis if diagnosis is not None else pd.DataFrame())
    lines += _forgetting_lines(forgetting_table)
    if selftrain.get("summary") is not None:
        lines += ["", "## Self-training", "",
                  "AP on the never-taught concept, mean and 95% CI over seeds "
                  "(bench/studies/selftrain/experiment.py).", "",
                  *markdown_table(selftrain["summary"])]
    return {"markdown": "\n".join(lines) + "\n", "targets": checks, "timings": timings, "reused": reused or {},
            "zero_shot": zs.reset_index().to_dict(orient="records")}
