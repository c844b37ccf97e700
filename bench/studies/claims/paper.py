"""The paper's claims on the released checkpoints and real data: `glip-bench claims --plan paper --data-root D`.

A second plan beside the synthetic study's: the same verdict rule (bench.studies.claims.verdict), the paper's
figure in every row (results/reference/paper-numbers.csv), but the released GLIP-T checkpoints on COCO and
ODinW-13 instead of models pretrained on the synthetic world. The plan is data: which weights (files under
<data root>/checkpoints/, each with where to get it), which task sets, and per claim the signed arms whose
mean AP it compares. Before any compute, every missing file is listed with its source (rc 2).

An arm is one model under one regime on a task set; its value is the mean AP over the set's tasks (the
paper's ODinW-13 average). A claim's effect is the signed sum of its arms, per fine-tuning seed (a zero-shot
arm has one value, shared by every seed); its interval is the synthetic study's bootstrap over those seeds.
One released checkpoint per variant: the interval covers fine-tuning seeds only, not pretraining.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.studies.claims import stats
from bench.studies.claims.table import _row, paper_figure
from bench.studies.claims.verdict import RULE, verdict
from bench.util.errors import UserError

HUB = "https://huggingface.co/GLIPModel/GLIP/blob/main/"
CHECKPOINTS = "checkpoints"  # under the data root


@dataclass(frozen=True)
class Weights:
    """A released model: the paper's name, the preset (or "hf") it loads into, its file and where to get it."""

    name: str
    preset: str  # a GLIP preset, or "hf" for a transformers save_pretrained directory
    file: str  # relative to <data root>/checkpoints/
    source: str


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a model (key of PaperPlan.models) under a regime on a task set."""

    model: str
    regime: str
    task_set: str  # key of PaperPlan.task_sets
    shots: int | None = None  # training regimes: k shots, None = the whole training split


@dataclass(frozen=True)
class PaperClaim:
    """A claim of the paper as signed arms, the side of `threshold` it claims, and the paper's own figure."""

    id: str
    text: str
    arms: tuple[tuple[int, Arm], ...]
    direction: str
    threshold: float
    paper_terms: tuple[tuple[int, dict[str, str]], ...]
    paper_text: str
    id_note: str = ""


@dataclass(frozen=True)
class PaperPlan:
    models: Mapping[str, Weights]
    task_sets: Mapping[str, tuple[str, ...]]
    claims: tuple[PaperClaim, ...]
    seeds: tuple[int, ...] = (3, 30, 300)
    text_encoder: tuple[str, str] | None = ("bert-base-uncased", "https://huggingface.co/google-bert/bert-base-uncased "
                                                                 "(a local save_pretrained / snapshot directory)")
    overrides: Mapping[str, Any] = field(default_factory=dict)  # every run's settings (--set)

    def arms(self) -> list[Arm]:
        return list(dict.fromkeys(arm for c in self.claims for _, arm in c.arms))


ODINW13 = ("odinw-aerial-maritime-drone-large", "odinw-aquarium", "odinw-cottontail-rabbits", "odinw-egohands-generic",
           "odinw-north-america-mushrooms", "odinw-packages", "odinw-pascal-voc", "odinw-raccoon",
           "odinw-shellfish-open-images", "odinw-vehicles-open-images", "odinw-pistols", "odinw-pothole",
           "odinw-thermal-dogs-and-people")

_ODINW = ("odinw13", "avg13")
# claim 3's baseline substitution, said in the claim's row
BASELINE_NOTE = ("baseline: RT-DETRv2 (R50) from the user's COCO weights, re-headed to each set's classes and "
                 "trained on its whole train split, in place of the paper's DyHead-T (O365): DyHead is not a "
                 "transformers model (mmdetection's needs mmcv ops), RT-DETRv2 is, and loads without timm")
_TABLE_11 = "arXiv:2112.03857 (ar5iv) Table 11"  # the summary table (Table 14's per-data-set mean rounds A to 28.8)


def _claims() -> tuple[PaperClaim, ...]:
    a, b, t = "A", "B", "T"
    return (
        PaperClaim("1a", "deep fusion improves zero-shot transfer (COCO)",
                   ((+1, Arm(b, "zero-shot", "coco")), (-1, Arm(a, "zero-shot", "coco"))), ">", 0.0,
                   ((+1, _row("GLIP-T (B)", "coco_det", "val2017", "zero-shot", "")),
                    (-1, _row("GLIP-T (A)", "coco_det", "val2017", "zero-shot", ""))),
                   "COCO val2017 zero-shot AP, GLIP-T (B) - (A)"),
        PaperClaim("1b", "deep fusion improves zero-shot transfer (ODinW-13)",
                   ((+1, Arm(b, "zero-shot", "odinw13")), (-1, Arm(a, "zero-shot", "odinw13"))), ">", 0.0,
                   ((+1, {**_row("GLIP-T (B)", *_ODINW, "zero-shot", "0"), "source": _TABLE_11}),
                    (-1, {**_row("GLIP-T (A)", *_ODINW, "zero-shot", "0"), "source": _TABLE_11})),
                   "ODinW-13 zero-shot AP (Table 11), GLIP-T (B) - (A)"),
        PaperClaim("2a", "deep fusion closes the gap between prompt tuning and full fine-tuning (ODinW-13, all data)",
                   ((+1, Arm(a, "full-ft", "odinw13")), (-1, Arm(a, "prompt-tuning", "odinw13")),
                    (-1, Arm(b, "full-ft", "odinw13")), (+1, Arm(b, "prompt-tuning", "odinw13"))), ">", 0.0,
                   ((+1, _row("GLIP-T (A)", *_ODINW, "full-finetune", "all")),
                    (-1, _row("GLIP-T (A)", *_ODINW, "prompt-tune", "all")),
                    (-1, _row("GLIP-T (B)", *_ODINW, "full-finetune", "all")),
                    (+1, _row("GLIP-T (B)", *_ODINW, "prompt-tune", "all"))),
                   "ODinW-13 all data: (full-ft - prompt) of GLIP-T (A) minus that of (B)"),
        PaperClaim("2b", "with deep fusion prompt tuning nearly matches full fine-tuning (within 5 AP)",
                   ((+1, Arm(b, "prompt-tuning", "odinw13")), (-1, Arm(b, "full-ft", "odinw13"))), ">", -5.0,
                   ((+1, _row("GLIP-T (B)", *_ODINW, "prompt-tune", "all")),
                    (-1, _row("GLIP-T (B)", *_ODINW, "full-finetune", "all"))),
                   "ODinW-13 all data, GLIP-T (B): prompt - full-ft"),
        PaperClaim("3", "a 1-shot GLIP matches a fully supervised detector (within 2 AP or better)",
                   ((+1, Arm(t, "full-ft", "odinw13", shots=1)), (-1, Arm("supervised", "full-ft", "odinw13"))),
                   ">", -2.0,
                   ((+1, _row("GLIP-T", *_ODINW, "full-finetune", "1", pretrain_data="O365;GoldG;Cap4M")),
                    (-1, _row("DyHead-T", *_ODINW, "full-finetune", "all", pretrain_data="O365"))),
                   "ODinW-13: GLIP-T (Cap4M) 1-shot - DyHead-T (O365) on all data; the headline's GLIP-L is not run",
                   "the released GLIP-T was pretrained on CC3M+SBU, the paper's row on Cap4M; " + BASELINE_NOTE),
    )


PAPER = PaperPlan(
    models={
        "A": Weights("GLIP-T (A)", "glip-t-a", "glip_a_tiny_o365.pth", HUB + "glip_a_tiny_o365.pth"),
        "B": Weights("GLIP-T (B)", "glip-t", "glip_tiny_model_o365.pth", HUB + "glip_tiny_model_o365.pth"),
        "T": Weights("GLIP-T", "glip-t", "glip_tiny_model_o365_goldg_cc_sbu.pth",
                     HUB + "glip_tiny_model_o365_goldg_cc_sbu.pth"),
        # the paper's baseline is DyHead-T (O365) trained on each data set's full data; this plan's is a
        # closed-set transformers detector (bench/models/families/closed_set.py) from its COCO weights, trained
        # with full-ft on each set's whole train split (BASELINE_NOTE; docs/finetuning.md)
        "supervised": Weights("RT-DETRv2 (R50, COCO)", "hf", "rtdetr_v2_r50vd",
                              "https://huggingface.co/PekingU/rtdetr_v2_r50vd (a local save_pretrained directory)"),
    },
    task_sets={"coco": ("coco",), "odinw13": ODINW13},
    claims=_claims(),
)


# ------------------------------------------------------------------------------------- requirements
def model_name(plan: PaperPlan, key: str, data_root: Path) -> tuple[str, str | None]:
    """(the run's --model, its --checkpoint) for a plan model."""
    w = plan.models[key]
    path = data_root / CHECKPOINTS / w.file
    return (f"hf:{path}", None) if w.preset == "hf" else (w.preset, str(path))


def text_encoder_dir(plan: PaperPlan, data_root: Path) -> Path | None:
    return None if plan.text_encoder is None else data_root / CHECKPOINTS / plan.text_encoder[0]


def missing_files(plan: PaperPlan, data_root: Path) -> list[str]:
    """One line per file or data split the plan needs and the data root lacks, with where to get it."""
    from bench.tasks.registry import get_task

    lines = []
    for key in dict.fromkeys(arm.model for arm in plan.arms()):
        w = plan.models[key]
        path = data_root / CHECKPOINTS / w.file
        if not (path.is_dir() if w.preset == "hf" else path.is_file()):
            lines.append(f"{w.name}: {path} -- get it from {w.source}")
    encoder = text_encoder_dir(plan, data_root)
    if encoder is not None and not (encoder / "vocab.txt").is_file():
        lines.append(f"text encoder: {encoder} (with vocab.txt) -- get it from {plan.text_encoder[1]}")
    needed: dict[str, set[str]] = {}
    for arm in plan.arms():
        for name in plan.task_sets[arm.task_set]:
            task = get_task(name)
            splits = {task.eval_split} if arm.regime == "zero-shot" else set(task.splits)
            needed.setdefault(name, set()).update(splits)
    for name, splits in needed.items():
        task = get_task(name)
        absent = sorted(s for s in splits if not task.data_present(data_root, s))
        if absent:
            lines.append(f"task {name}: split(s) {', '.join(absent)} not under {task.root_path(data_root)} -- "
                         f"get it from {task.source}")
    return lines


def unrunnable(plan: PaperPlan, data_root: Path) -> list[str]:
    """One line per arm whose model cannot run its regime (e.g. a transformers family this build lacks)."""
    from bench.models.registry import resolve_model

    lines = []
    for arm in plan.arms():
        model, checkpoint = model_name(plan, arm.model, data_root)
        try:
            resolve_model(model, {}, checkpoint).check(regime=arm.regime, task_kind="detection",
                                                       text_encoder=text_encoder_dir(plan, data_root))
        except UserError as e:
            lines.append(f"{plan.models[arm.model].name} ({arm.regime}): {e}")
    return list(dict.fromkeys(lines))


def check_plan(plan: PaperPlan, data_root: Path) -> None:
    """Refuse, before any compute, a plan whose files are not all there (UserError listing every one), or
    whose models cannot run their regimes."""
    lines = missing_files(plan, data_root) or unrunnable(plan, data_root)
    if lines:
        raise UserError(f"the paper plan cannot run: {len(lines)} problem(s) under --data-root {data_root}:\n  "
                        + "\n  ".join(lines))


# ------------------------------------------------------------------------------------------ runs
def plan_specs(plan: PaperPlan, data_root: Path) -> list:
    """Every arm's runs: zero-shot once per task, training regimes once per task x fine-tuning seed."""
    from bench.runs.spec import expand_grid, overrides_for

    regimes = sorted({arm.regime for arm in plan.arms()})
    specs = []
    for arm in plan.arms():
        model, checkpoint = model_name(plan, arm.model, data_root)
        trains = arm.regime != "zero-shot"
        # the plan's settings that apply to this regime (training budgets are dropped for zero-shot)
        over = overrides_for(dict(plan.overrides), arm.regime, regimes)
        specs += expand_grid(models=[model], tasks=list(plan.task_sets[arm.task_set]), regimes=[arm.regime],
                             shots=[arm.shots] if trains else None, seeds=list(plan.seeds) if trains else None,
                             overrides=over, checkpoint=checkpoint)
    return list({s.hash: s for s in specs}.values())


def arm_values(plan: PaperPlan, arm: Arm, records: Sequence[dict], data_root: Path) -> dict[int, float]:
    """fine-tuning seed -> the arm's mean primary metric over its task set; zero-shot: every seed."""
    from bench.results.records import primary_value

    model, checkpoint = model_name(plan, arm.model, data_root)
    tasks = plan.task_sets[arm.task_set]
    by: dict[int, dict[str, float]] = {}
    for r in records:
        s = r["spec"]
        same_run = (s["model"], s["checkpoint"], s["regime"]) == (model, checkpoint, arm.regime)
        if not same_run or s["task"] not in tasks or (arm.regime != "zero-shot" and s["shots"] != arm.shots):
            continue
        by.setdefault(int(s["seed"] or 0), {})[s["task"]] = primary_value(r)  # AP points, as the records hold
    complete = {seed: sum(v.values()) / len(tasks) for seed, v in by.items() if set(v) == set(tasks)}
    if not complete:
        raise ValueError(f"no complete run set for {plan.models[arm.model].name} {arm.regime} on {arm.task_set}")
    return {seed: complete[0] for seed in plan.seeds} if arm.regime == "zero-shot" else complete


def claim_estimate(plan: PaperPlan, claim: PaperClaim, records: Sequence[dict], data_root: Path) -> stats.Estimate:
    """The signed sum of the claim's arms per fine-tuning seed, and its bootstrap interval over those seeds."""
    values = [(sign, arm_values(plan, arm, records, data_root)) for sign, arm in claim.arms]
    seeds = sorted(set.intersection(*(set(v) for _, v in values)))
    if not seeds:
        raise ValueError("its arms share no fine-tuning seed")
    design = {0: {seed: sum(sign * v[seed] for sign, v in values) for seed in seeds}}  # one released checkpoint
    return stats.hierarchical_bootstrap(design)


def build_paper_table(plan: PaperPlan, records: Sequence[dict], data_root: Path,
                      reference: Path | None = None) -> pd.DataFrame:
    rows = []
    for claim in plan.claims:
        note = claim.id_note
        try:
            est = claim_estimate(plan, claim, records, data_root)
        except ValueError as e:
            est, note = stats.Estimate.missing(), f"not measured: {e}"
        rows.append({"claim": claim.id, "statement": claim.text, "paper": paper_figure(claim, reference),
                     "paper_source": claim.paper_text, "effect": est.mean, "ci_low": est.low, "ci_high": est.high,
                     "claimed": f"{claim.direction} {claim.threshold:g}", "finetune_seeds": est.n_finetune,
                     "verdict": verdict(est.low, est.high, claim.direction, claim.threshold), "note": note})
    return pd.DataFrame(rows)


def paper_markdown(plan: PaperPlan, table: pd.DataFrame) -> str:
    lines = ["# The GLIP paper's claims on the released checkpoints", "",
             f"Verdict rule: {RULE}. One released checkpoint per variant: intervals are bootstrapped over the "
             f"fine-tuning seeds ({', '.join(map(str, plan.seeds))}) only; a zero-shot-only claim is one number. "
             "Effects in AP points; ODinW-13 = the mean over its 13 data sets.", "",
             "Models: " + "; ".join(f"{w.name} = {w.file}" for w in plan.models.values()), "",
             "| claim | statement | paper | measured (95% CI) | claimed | ft seeds | verdict | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        measured = "–" if pd.isna(r.effect) else f"{r.effect:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
        paper = f"{r.paper:+.1f} ({r.paper_source})" if not pd.isna(r.paper) else r.paper_source
        lines.append(f"| {r.claim} | {r.statement} | {paper} | {measured} | {r.claimed} | {r.finetune_seeds} | "
                     f"{r.verdict} | {r.note} |")
    return "\n".join(lines) + "\n"


def run_paper(plan: PaperPlan, data_root: str | Path, out: str | Path, device: str = "cpu") -> pd.DataFrame:
    """Check every file, run every arm (resumable: finished runs are skipped), write claims.csv and CLAIMS.md."""
    from bench.runs.runner import run_grid
    from bench.runs.spec import RunContext
    from bench.util.io import atomic_write_text

    data_root, out = Path(data_root), Path(out)
    check_plan(plan, data_root)
    specs = plan_specs(plan, data_root)
    ctx = RunContext(data_root=data_root, results_dir=out, device=device,
                     text_encoder=text_encoder_dir(plan, data_root))
    records = run_grid(specs, ctx)
    table = build_paper_table(plan, records, data_root)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "claims.csv", table.to_csv(index=False))
    atomic_write_text(out / "CLAIMS.md", paper_markdown(plan, table))
    return table
