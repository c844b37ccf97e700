"""The claims table: one row per claim of the GLIP paper, the paper's figure, the synthetic measurement with
its two-level 95% interval, and the verdict by the rule of bench.studies.claims.verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.studies.claims import stats
from bench.studies.claims.measure import Design, row_design, run_design
from bench.studies.claims.verdict import RULE, verdict


def default_reference() -> Path:
    from bench.reports.reference import default_reference_dir

    return default_reference_dir() / "paper-numbers.csv"

NOVEL = "synth-novel"
SEEN, COMPOSITIONS = "synth-colours", "synth-compositions"

# a paper figure: signed terms, each exactly one row of results/reference/paper-numbers.csv (column -> value)
PaperTerm = tuple[int, dict[str, str]]


def _row(model: str, task: str, split: str, regime: str, shots: str, metric: str = "AP",
         pretrain_data: str | None = None) -> dict[str, str]:
    row = {"model": model, "task": task, "split": split, "regime": regime, "shots": shots, "metric": metric}
    return row if pretrain_data is None else {**row, "pretrain_data": pretrain_data}


@dataclass(frozen=True)
class Claim:
    """A claim as an experiment: what is measured, the direction and threshold it claims, the paper's number."""

    id: str
    text: str
    measured: str  # what the synthetic number is, in one line
    direction: str  # ">" or "<": the side of `threshold` the claim puts the effect on
    threshold: float
    paper_terms: tuple[PaperTerm, ...]  # empty: the paper gives no number for it
    paper_text: str  # how the paper's figure is formed


_A = ("GLIP-T (A)", "odinw13", "avg13")
_B = ("GLIP-T (B)", "odinw13", "avg13")
_COCO_ZS_B, _COCO_ZS_A = _row("GLIP-T (B)", "coco_det", "val2017", "zero-shot", ""), \
    _row("GLIP-T (A)", "coco_det", "val2017", "zero-shot", "")

CLAIMS: tuple[Claim, ...] = (
    Claim("1a", "deep fusion improves zero-shot transfer (seen classes)",
          f"zero-shot AP on {SEEN}, deep - late", ">", 0.0,
          ((+1, _COCO_ZS_B), (-1, _COCO_ZS_A)),
          "COCO zero-shot AP, GLIP-T (B) - (A)"),
    Claim("1b", "deep fusion improves zero-shot transfer (unseen compositions)",
          f"zero-shot AP on {COMPOSITIONS}, deep - late", ">", 0.0,
          ((+1, _COCO_ZS_B), (-1, _COCO_ZS_A)),
          "COCO zero-shot AP, GLIP-T (B) - (A)"),
    Claim("2a", "deep fusion closes the gap between prompt tuning and full fine-tuning",
          f"{NOVEL} {{k}}-shot: (full-ft - prompt tuning) with late minus the same with deep", ">", 0.0,
          ((+1, _row(*_A, "full-finetune", "all")), (-1, _row(*_A, "prompt-tune", "all")),
           (-1, _row(*_B, "full-finetune", "all")), (+1, _row(*_B, "prompt-tune", "all"))),
          "ODinW-13 all data: (full-ft - prompt) of GLIP-T (A) minus that of (B)"),
    Claim("2b", "with deep fusion prompt tuning nearly matches full fine-tuning (within 5 AP)",
          f"{NOVEL} {{k}}-shot, deep: prompt tuning - full-ft", ">", -5.0,
          ((+1, _row(*_B, "prompt-tune", "all")), (-1, _row(*_B, "full-finetune", "all"))),
          "ODinW-13 all data, GLIP-T (B): prompt - full-ft"),
    Claim("3", "a 1-shot GLIP matches a fully supervised detector (within 2 AP or better)",
          f"{NOVEL}: deep 1-shot full-ft - the supervised baseline (no pretraining, whole train split)", ">", -2.0,
          ((+1, _row("GLIP-L", "odinw13", "avg13", "full-finetune", "1")),
           (-1, _row("DyHead-T", "odinw13", "avg13", "full-finetune", "all", pretrain_data="O365"))),
          "ODinW-13: GLIP-L 1-shot - DyHead-O365 fully supervised"),
    Claim("4", "zero-shot grounding reaches compositions never seen together (within 5 AP of seen pairs)",
          f"deep zero-shot AP: {COMPOSITIONS} - {SEEN}", ">", -5.0, (),
          "no number (shown qualitatively)"),
    Claim("5a", "self-training: a student learns a concept its teacher was never shown with boxes",
          "AP on the untaught concept: student - teacher", ">", 0.0,
          ((+1, _row("GLIP-T", "lvis_det", "minival", "zero-shot", "", pretrain_data="O365;GoldG;Cap4M")),
           (-1, _row("GLIP-T (C)", "lvis_det", "minival", "zero-shot", ""))),
          "LVIS minival AP: GLIP-T (+Cap4M pseudo-labels) - GLIP-T (C)"),
    Claim("5b", "self-training: the gain comes from the pseudo-labels, not the extra steps",
          "AP on the untaught concept: student - control student (human data only)", ">", 0.0, (),
          "no number"),
)
MIN_PRETRAIN_SEEDS = 3  # fewer, and the interval over pretraining rests on too few samples to read as a verdict
FORGETTING_REGIMES = (("deep", "prompt-tuning"), ("deep", "linear-probe"), ("deep", "full-ft"),
                      ("late", "prompt-tuning"), ("late", "full-ft"))


def forgetting_claims() -> tuple[Claim, ...]:
    """Claim 6, one row per (fusion, regime)."""
    return tuple(Claim(f"6{chr(ord('a') + i)}", f"fine-tuning on novel classes costs base classes ({fusion}, {regime})",
                       f"{SEEN} AP before - after {{k}}-shot {regime} on {NOVEL}", ">", 0.0, (),
                       "no number (not measured in the paper)")
                 for i, (fusion, regime) in enumerate(FORGETTING_REGIMES))


def paper_figure(claim: Claim, reference: Path | None = None) -> float:
    """The claim's number from the paper's tables (NaN when it has none); each term must match one value."""
    if not claim.paper_terms:
        return math.nan
    reference = reference or default_reference()
    ref = pd.read_csv(reference, dtype=str, keep_default_na=False)
    total = 0.0
    for sign, where in claim.paper_terms:
        hit = ref
        for column, value in where.items():
            hit = hit[hit[column] == value]
        values = set(hit.value)  # the same number quoted by several sources counts once
        if len(values) != 1:
            raise ValueError(f"{reference.name}: rows matching {where} hold {len(values)} values (need one)")
        total += sign * float(values.pop())
    return total


# ----------------------------------------------------------------------------------------- measurements
def _effects(records: list[dict], forgetting: list[dict], selftrain: list[dict], k: int) \
        -> dict[str, Callable[[], stats.Estimate]]:
    """claim id -> how its estimate is computed (a ValueError inside means it could not be measured)."""
    def zs(task: str, fusion: str) -> Design:
        return run_design(records, task=task, regime="zero-shot", fusion=fusion)

    def fs(regime: str, fusion: str, shots: int) -> Design:
        return run_design(records, task=NOVEL, regime=regime, fusion=fusion, shots=shots)

    def boot(design: Design) -> stats.Estimate:
        return stats.hierarchical_bootstrap(design)

    gap = {f: (lambda f=f: stats.paired(fs("full-ft", f, k), fs("prompt-tuning", f, k))) for f in ("deep", "late")}
    out: dict[str, Callable[[], stats.Estimate]] = {
        "1a": lambda: boot(stats.paired(zs(SEEN, "deep"), zs(SEEN, "late"))),
        "1b": lambda: boot(stats.paired(zs(COMPOSITIONS, "deep"), zs(COMPOSITIONS, "late"))),
        "2a": lambda: boot(stats.paired(gap["late"](), gap["deep"]())),
        "2b": lambda: boot(stats.paired(fs("prompt-tuning", "deep", k), fs("full-ft", "deep", k))),
        "3": lambda: stats.independent_difference(
            fs("full-ft", "deep", 1),
            run_design(records, task=NOVEL, regime="full-ft", fusion="late", shots=None, pretrained=False)),
        "4": lambda: boot(stats.paired(zs(COMPOSITIONS, "deep"), zs(SEEN, "deep"))),
        "5a": lambda: boot(row_design(selftrain, "student_minus_teacher")),
        "5b": lambda: boot(row_design(selftrain, "student_minus_control")),
    }
    for claim, (fusion, regime) in zip(forgetting_claims(), FORGETTING_REGIMES):
        out[claim.id] = (lambda f=fusion, r=regime: boot(row_design(forgetting, "forgetting (before - after)",
                                                                    fusion=f, regime=r, shots=k)))
    return out


def build_table(records: list[dict], forgetting: list[dict], selftrain: list[dict], plan: Any,
                reference: Path | None = None) -> pd.DataFrame:
    """One row per claim: text, paper figure, measurement with its interval, seeds behind it, verdict."""
    k = max(plan.demo.shots)
    effects = _effects(records, forgetting, selftrain, k)
    rows = []
    for claim in (*CLAIMS, *forgetting_claims()):
        note = ""
        try:
            est = effects[claim.id]()
        except ValueError as e:  # a design the runs could not fill: say so in the row
            est, note = stats.Estimate.missing(), f"not measured: {e}"
        if 0 < est.n_pretrain < MIN_PRETRAIN_SEEDS:
            note = f"only {est.n_pretrain} pretraining seed(s), fewer than {MIN_PRETRAIN_SEEDS}: a check, not a finding"
        rows.append({
            "claim": claim.id, "statement": claim.text, "measured": claim.measured.format(k=k),
            "paper": paper_figure(claim, reference), "paper_source": claim.paper_text,
            "effect": est.mean, "ci_low": est.low, "ci_high": est.high,
            "claimed": f"{claim.direction} {claim.threshold:g}",
            "pretrain_seeds": est.n_pretrain, "finetune_seeds": est.n_finetune,
            "verdict": verdict(est.low, est.high, claim.direction, claim.threshold), "note": note,
        })
    return pd.DataFrame(rows)


def _num(x: float, signed: bool = True) -> str:
    return "–" if math.isnan(x) else (f"{x:+.1f}" if signed else f"{x:.1f}")


def table_markdown(table: pd.DataFrame, plan: Any, timings: dict[str, float],
                   reused: dict[str, int] | None = None) -> str:
    """CLAIMS.md: the rule first, then the table, then what the numbers are made of."""
    seeds = ", ".join(map(str, plan.pretrain_seeds))
    lines = [
        "# The GLIP paper's claims on the synthetic world", "",
        f"Verdict rule: {RULE}. Intervals: two-level bootstrap (pretraining seeds, then fine-tuning seeds within "
        f"each; {stats.N_RESAMPLES} resamples; bench/studies/claims/stats.py), paired by pretraining and fine-tuning "
        "seed wherever both sides share them. Effects in AP points (COCO AP@[.5:.95] x 100).", "",
        f"Pretraining seeds {seeds} per fusion variant ({plan.demo.pretrain_iters} steps of {plan.demo.pretrain_batch} "
        f"images each), fine-tuning seeds {', '.join(map(str, plan.demo.seeds))}, shots "
        f"{', '.join(map(str, plan.demo.shots))}; the paper's figures from results/reference/paper-numbers.csv.", "",
        "| claim | statement | measured | paper | synthetic (95% CI) | claimed | seeds (pretrain x ft) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        measured = (f"{_num(r.effect)} [{_num(r.ci_low)}, {_num(r.ci_high)}]" if not math.isnan(r.effect)
                    else r.note or "not measured")
        paper = f"{_num(r.paper)} ({r.paper_source})" if not math.isnan(r.paper) else r.paper_source
        flag = " (too few seeds)" if 0 < r.pretrain_seeds < MIN_PRETRAIN_SEEDS else ""
        lines.append(f"| {r.claim} | {r.statement} | {r.measured} | {paper} | {measured} | {r.claimed} | "
                     f"{r.pretrain_seeds} x {r.finetune_seeds}{flag} | {r.verdict} |")
    lines += ["", "Claim 3's baseline: glip-synth with late fusion from random init (no pretraining of any kind), "
              "fine-tuned on the whole training split; its class prompt is constant, so without fusion the text side "
              "is a learned classifier over the task's classes. Claim 5: the self-training experiment "
              "(bench/studies/selftrain) with each pretraining seed's deep model as the teacher; claim 6: the demo's "
              "forgetting probe per pretraining seed.", "",
              "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    if reused and (reused.get("runs") or reused.get("models")):
        lines += [f"Resumed: {reused['models']} of {reused['of_models']} pretrained models and {reused['runs']} of "
                  f"{reused['of_runs']} runs were reused from an earlier run into this folder, so their time is not "
                  "in the line above.", ""]
    return "\n".join(lines)
