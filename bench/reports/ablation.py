"""Paired ablations from the records: runs that differ only in one override (e.g. fusion=late vs deep).

A pair is two runs with the same model, checkpoint, task, regime, shots, seed, prompt set, split and
every other override, one matching side a and one side b. Differences are b - a. Confidence intervals
are bench.reports.stats.bootstrap_ci of the mean difference. The paired test is the Wilcoxon
signed-rank test (scipy.stats.wilcoxon): AP differences across tasks are bounded and skewed, and
with a handful of pairs normality (which ttest_rel needs) cannot be checked, while Wilcoxon assumes
only a symmetric difference distribution.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.reports.load import regime_order
from bench.reports.stats import N_RESAMPLES, bootstrap_ci
from bench.util.errors import UserError
from bench.util.logs import get_logger

log = get_logger("reports")

PAIR_KEYS = ["model", "checkpoint", "task", "task_version", "regime", "shots_label", "seed", "prompt_set", "split",
             "other_overrides"]
RESULT_COLUMNS = ["task", "pooled_over", "metric", "pairs", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                  "wilcoxon_p"]
OVERALL = "overall"


def parse_assignments(text: str) -> dict[str, Any]:
    """'fusion=late' or 'fusion=late,lr=0.01' -> {'fusion': 'late', 'lr': 0.01} (values read as JSON when
    they parse, so they compare equal to the numbers and booleans stored in a record's overrides)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"expected KEY=VALUE (e.g. fusion=late), got {part!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw.strip()
    if not out:
        raise UserError(f"expected KEY=VALUE (e.g. fusion=late), got {text!r}")
    return out


_MISSING = object()


def _side(overrides: Mapping[str, Any], want: Mapping[str, Any], unset: Mapping[str, Any]) -> bool:
    """Does a run with these overrides sit on the side `want`? (`unset`: the value when a key is absent.)"""
    return all(overrides.get(k, unset.get(k, _MISSING)) == v for k, v in want.items())


def pair_runs(df: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], unset_as: str | None = None,
              ignore: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, int]]:
    """Pairs of runs (a, b) equal in everything but the ablated keys -> DataFrame with value_a, value_b, diff.

    unset_as: 'a' or 'b' counts runs without the ablated key as that side (the model default);
    None requires the override to be written in the record. ignore: pairing keys that may differ between
    the sides (e.g. "checkpoint" when each side was pretrained separately, as in the synthetic demo).
    Returns (pairs, counts of unpaired runs)."""
    pair_keys = _pair_keys(PAIR_KEYS, ignore)
    if set(a) != set(b):
        raise UserError(f"--a and --b must set the same keys (got {sorted(a)} and {sorted(b)})")
    if dict(a) == dict(b):
        raise UserError("--a and --b are the same setting; nothing to compare")
    keys = set(a)
    unset = {"a": dict(a), "b": dict(b)}.get(unset_as or "", {})
    df = df.copy()
    df["other_overrides"] = df["overrides"].map(
        lambda o: json.dumps({k: v for k, v in o.items() if k not in keys}, sort_keys=True))
    is_a = df["overrides"].map(lambda o: _side(o, a, unset))
    is_b = df["overrides"].map(lambda o: _side(o, b, unset))
    sides = {}
    for name, mask in (("a", is_a), ("b", is_b)):
        side = df[mask]
        dup = side.duplicated(pair_keys, keep=False)
        if dup.any():
            raise UserError(f"several side-{name} runs for the same pair key: {', '.join(side.loc[dup, 'file'])}; "
                            "(with --unset-as, a run without the override and one that sets it to the same value "
                            "collide) remove one")
        sides[name] = side[[*pair_keys, *ignore, "value", "file"]]  # ignored keys kept as key_a / key_b
    pairs = sides["a"].merge(sides["b"], on=pair_keys, suffixes=("_a", "_b"), how="outer", indicator=True)
    counts = {"unpaired_a": int((pairs["_merge"] == "left_only").sum()),
              "unpaired_b": int((pairs["_merge"] == "right_only").sum())}
    # a canonical order, so the bootstrap (which resamples by position) depends on the records, not on
    # the order they were found in
    pairs = pairs[pairs["_merge"] == "both"].drop(columns="_merge").sort_values(pair_keys).reset_index(drop=True)
    pairs["diff"] = pairs["value_b"] - pairs["value_a"]
    pairs["metric"] = pairs["task"].map(df.drop_duplicates("task").set_index("task")["primary"])
    if counts["unpaired_a"] or counts["unpaired_b"]:
        log.warning("%d side-a and %d side-b run(s) have no partner and are left out of the ablation",
                    counts["unpaired_a"], counts["unpaired_b"])
    if pairs.empty:
        hint = ("" if unset_as else " If runs without the override use one side's value (the model default), "
                "pass --unset-as a or --unset-as b.")
        if "checkpoint" not in ignore:
            hint += " If each side has its own weights, pass --ignore checkpoint."
        raise UserError(f"no paired runs for {_text(a)} vs {_text(b)} ({int(is_a.sum())} side-a and "
                        f"{int(is_b.sum())} side-b runs found).{hint}")
    return pairs, counts


def _text(setting: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in setting.items())


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; NaN when not computable (< 2 pairs or all differences 0)."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2 or np.all(diffs == 0):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's small-sample note; n is in the table
        return float(stats.wilcoxon(diffs).pvalue)


def _summary(label: str, pooled: str, g: pd.DataFrame, seed: int, n_resamples: int) -> dict[str, Any]:
    lo, hi = bootstrap_ci(g["diff"].to_numpy(), seed, n_resamples)
    metric = "/".join(sorted(set(g["metric"].dropna()))) if "metric" in g else ""
    return {"task": label, "pooled_over": pooled, "metric": metric, "pairs": len(g), "mean_a": g["value_a"].mean(),
            "mean_b": g["value_b"].mean(), "mean_diff": g["diff"].mean(), "ci_low": lo, "ci_high": hi,
            "wilcoxon_p": wilcoxon_p(g["diff"])}


def ablation_table(pairs: pd.DataFrame, seed: int = 0, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Per task (pooled over regimes, shots and seeds), per regime when there are several (pooled over
    tasks, shots and seeds), and overall (every pair): means, b - a, CI, p. The pooled_over and metric
    columns say what each row mixes; an overall over tasks of different metrics averages unlike numbers."""
    rows = [_summary(task, "regimes, shots, seeds", g, seed, n_resamples)
            for task, g in pairs.groupby("task", sort=True)]
    regimes = sorted(set(pairs["regime"]), key=regime_order) if "regime" in pairs else []
    if len(regimes) > 1:
        rows += [_summary(f"all tasks · {r}", "tasks, shots, seeds", pairs[pairs["regime"] == r], seed, n_resamples)
                 for r in regimes]
    rows.append(_summary(OVERALL, "tasks, regimes, shots, seeds", pairs, seed, n_resamples))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def pooling_note(table: pd.DataFrame) -> str:
    """What the overall row mixes, in words, for the Markdown and the log."""
    overall = table[table["task"] == OVERALL].iloc[0]
    text = (f"'{OVERALL}' pools every pair: all tasks, regimes, shots and seeds together "
            "(the per-task and 'all tasks · regime' rows split it).")
    metrics = [m for m in str(overall["metric"]).split("/") if m]
    if len(metrics) > 1:
        text += (f" It averages differences in different metrics ({', '.join(metrics)}: see the metric column), "
                 "so read it as a rough summary, not as one metric's change.")
    return text


GAP_KEYS = ["model", "checkpoint", "task", "task_version", "shots_label", "seed", "prompt_set", "split",
            "other_overrides"]
GAP_COLUMNS = ["setting", "pairs", "mean_gap", "ci_low", "ci_high", "wilcoxon_p"]


def tuning_gap(df: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], unset_as: str | None = None,
               seed: int = 0, n_resamples: int = N_RESAMPLES, ignore: Sequence[str] = ()) -> pd.DataFrame:
    """The paper's strongest ablation as a derived table: gap = full-ft - prompt-tuning, for side a and
    side b (each paired by task/shots/seed), then the change of the gap b - a (paired across sides).

    GLIP's claim (paper Sec. 5.3, Table 8 / Fig. 5): with deep fusion prompt tuning nearly matches full
    fine-tuning, without it the gap is large."""
    tuned = df[df["regime"].isin(["prompt-tuning", "full-ft"])]
    if tuned.empty:
        raise UserError("no prompt-tuning or full-ft runs; the tuning-gap table needs both regimes")
    gaps = {}
    for name in ("a", "b"):
        pt = _regime_side(tuned, "prompt-tuning", a, b, name, unset_as)
        ft = _regime_side(tuned, "full-ft", a, b, name, unset_as)
        merged = ft.merge(pt, on=GAP_KEYS, suffixes=("_ft", "_pt")).sort_values(GAP_KEYS)
        merged["gap"] = merged["value_ft"] - merged["value_pt"]
        gaps[name] = merged
    across = _pair_keys(GAP_KEYS, ignore)  # within a side every key matches; across sides `ignore` may differ
    both = gaps["a"].merge(gaps["b"], on=across, suffixes=("_a", "_b")).sort_values(across)
    rows = []
    for label, values in ((f"a: {_text(a)}", gaps["a"]["gap"]), (f"b: {_text(b)}", gaps["b"]["gap"]),
                          ("b - a (change of the gap)", both["gap_b"] - both["gap_a"])):
        v = values.to_numpy(dtype=float)
        lo, hi = bootstrap_ci(v, seed, n_resamples)
        rows.append({"setting": label, "pairs": len(v), "mean_gap": v.mean() if len(v) else math.nan,
                     "ci_low": lo, "ci_high": hi, "wilcoxon_p": wilcoxon_p(v)})
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def _pair_keys(keys: Sequence[str], ignore: Sequence[str]) -> list[str]:
    unknown = sorted(set(ignore) - set(keys))
    if unknown:
        raise UserError(f"--ignore {','.join(unknown)}: not a pairing key; valid: {', '.join(keys)}")
    return [k for k in keys if k not in ignore]


def _regime_side(df: pd.DataFrame, regime: str, a: Mapping[str, Any], b: Mapping[str, Any], name: str,
                 unset_as: str | None) -> pd.DataFrame:
    """The runs of one regime on one side of the ablation, keyed for pairing across regimes.

    An override that every run of this regime (on this side) sets alike is the regime's own setting
    (prompt tuning's lr against full fine-tuning's) and is left out of the key, so regimes whose
    settings differ by design still pair; an override that varies within the regime stays in the key."""
    keys = set(a)
    unset = {"a": dict(a), "b": dict(b)}.get(unset_as or "", {})
    setting = a if name == "a" else b
    r = df[(df["regime"] == regime) & df["overrides"].map(lambda o: _side(o, setting, unset))].copy()
    all_keys = {k for o in r["overrides"] for k in o} - keys
    varying = {k for k in all_keys if len({json.dumps(o.get(k), sort_keys=True) for o in r["overrides"]}) > 1}
    r["other_overrides"] = r["overrides"].map(
        lambda o: json.dumps({k: v for k, v in o.items() if k in varying}, sort_keys=True))
    return r[[*GAP_KEYS, "value"]]


# --------------------------------------------------------------------------------------------- output
def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers rounded for reading (the CSV keeps full precision)."""
    out = table.copy()
    for c in out.columns:
        if c == "wilcoxon_p":
            out[c] = out[c].map(lambda p: "n/a" if math.isnan(p) else f"{p:.3g}")
        elif out[c].dtype.kind == "f":
            spec = "+.2f" if ("diff" in c or "gap" in c or c.startswith("ci")) else ".2f"
            out[c] = out[c].map(lambda x, spec=spec: "n/a" if math.isnan(x) else format(x, spec))
    return out


def forest_plot(table: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], metric: str = "AP"):
    """Mean difference b - a with its 95% CI per task and overall; a vertical line marks no difference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.2 + 0.45 * len(table)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(table))[::-1]
    mean = table["mean_diff"].to_numpy(dtype=float)
    lo = np.nan_to_num(mean - table["ci_low"].to_numpy(dtype=float))
    hi = np.nan_to_num(table["ci_high"].to_numpy(dtype=float) - mean)
    overall = (table["task"] == OVERALL).to_numpy()
    regime = table["task"].str.startswith("all tasks · ").to_numpy()
    task = ~overall & ~regime
    ax.errorbar(mean[task], y[task], xerr=[lo[task], hi[task]], fmt="o", capsize=3,
                label="per task, pooled over regimes (95% bootstrap CI)")
    if regime.any():
        ax.errorbar(mean[regime], y[regime], xerr=[lo[regime], hi[regime]], fmt="s", color="tab:green", capsize=3,
                    label="per regime, pooled over tasks (95% bootstrap CI)")
    metrics = str(table.loc[overall, "metric"].iloc[0]) if overall.any() else ""
    mixed = f", mixing {metrics.replace('/', ' and ')}" if "/" in metrics else ""
    ax.errorbar(mean[overall], y[overall], xerr=[lo[overall], hi[overall]], fmt="D", color="black", capsize=3,
                label=f"overall: every pair pooled{mixed} (95% bootstrap CI)")
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=1)
    ax.set_yticks(y, [f"{t} (n={n})" for t, n in zip(table["task"], table["pairs"])])
    ax.set_xlabel(f"difference in {metric} (b − a): {_text(b)} minus {_text(a)}")
    ax.set_title(f"Ablation: {_text(b)} (b) vs {_text(a)} (a), paired runs", fontsize="medium")
    fig.legend(*ax.get_legend_handles_labels(), fontsize="small", loc="outside lower center")
    ax.grid(alpha=0.3, axis="x")
    return fig


_KEY_WORDS = {"task_version": None, "shots_label": "shots", "prompt_set": "prompt set",
              "other_overrides": "every other override"}


def _pairing_sentence(ignore: Sequence[str]) -> str:
    """'Pairs are runs equal in model, checkpoint, ...' naming only the keys actually matched."""
    words = [w for w in (_KEY_WORDS.get(k, k) for k in PAIR_KEYS if k not in ignore) if w]
    text = f"Pairs are runs equal in {', '.join(words[:-1])} and {words[-1]}" if len(words) > 1 else \
        f"Pairs are runs equal in {''.join(words)}"
    return text + (f" (allowed to differ: {', '.join(ignore)})." if ignore else ".")


def render_markdown(table: pd.DataFrame, gap: pd.DataFrame | str, a: Mapping[str, Any], b: Mapping[str, Any],
                    n_records: int, counts: Mapping[str, int], seed: int, ignore: Sequence[str] = ()) -> str:
    """Both tables with the method stated; `gap` is the gap table or the reason it could not be built.
    ignore: the pairing keys the sides were allowed to differ in (stated, so the text says what was matched)."""
    def md(t: pd.DataFrame) -> list[str]:
        t = format_table(t)
        lines = ["| " + " | ".join(map(str, t.columns)) + " |", "|" + "|".join("---" for _ in t.columns) + "|"]
        lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in t.itertuples(index=False)]
        return lines

    lines = [f"Generated by `glip-bench ablation` from {n_records} records; do not edit (rerun the command).", "",
             f"Ablation: a = `{_text(a)}`, b = `{_text(b)}`. {_pairing_sentence(ignore)} Differences are b - a.",
             f"CIs: 95% percentile bootstrap of the mean difference (scipy.stats.bootstrap, {N_RESAMPLES} "
             f"resamples, seed {seed}). p: two-sided Wilcoxon signed-rank test on the paired differences "
             "(no normality assumption; n/a below 2 pairs or when every difference is 0).",
             f"Unpaired runs left out: {counts.get('unpaired_a', 0)} on side a, {counts.get('unpaired_b', 0)} on side b.",
             "", "## Per task, per regime and overall", "", pooling_note(table), "", *md(table)]
    lines += ["", "## Prompt tuning vs full fine-tuning (the paper's Table 8 question)", "",
              "gap = full-ft - prompt-tuning, paired by task/shots/seed within each side; the last row is the "
              "change of the gap between sides (b - a), paired across sides.", ""]
    lines += md(gap) if isinstance(gap, pd.DataFrame) else [f"Not computed: {gap}"]
    return "\n".join(lines) + "\n"
