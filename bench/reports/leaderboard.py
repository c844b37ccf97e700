"""The leaderboard: records (and published numbers) -> one table, rendered as Markdown, CSV, LaTeX, HTML.

Rows are model x checkpoint x regime x shots x variant (prompt set, split, overrides such as
`fusion=late`); columns are tasks, then a mean and a median column per task group, then seeds and a
compact cost group. A row shows its variant as a short label (what differs between rows,
bench.reports.labels); the full hyper-parameters and checkpoint are detail columns, kept in the CSV
and the HTML row details but left out of the Markdown and LaTeX tables so those fit a page.
Missing data are shown, never averaged away: a cell over fewer seeds than expected says "(2/3 seeds)",
a group mean over fewer tasks than the group holds is starred and says "(9/13)".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from bench.reports.labels import DEFAULT_LABEL, short_labels
from bench.reports.load import REPRODUCED as REPRODUCED  # the kind of the runner's rows, lb.REPRODUCED
from bench.reports.load import regime_order, shots_order
from bench.reports.reference import HEADLINE_METRIC, reference_cells
from bench.util.errors import UserError
from bench.util.logs import get_logger

log = get_logger("reports")

# record_kind last: rows of other detectors' predictions (external) never merge with reproduced ones
ROW_KEYS = ["model", "checkpoint", "regime", "shots_label", "variant", "record_kind"]
# a group name's full size, when the records alone cannot tell (a task never run is invisible in them)
DEFAULT_GROUP_SIZES = {"odinw13": 13, "odinw35": 35}
REPORTED = "reported"
MISSING = "—"
HEAD_COLUMNS = ["kind", "model", "variant", "regime", "shots"]
COST_COLUMNS = ["trainable params", "train time / run"]
DETAIL_COLUMNS = ["checkpoint", "hparams", "pretrain data", "params", "stored params / task", "images/s", "device",
                  "source"]
# a family of task columns this wide gets abbreviated headers with a key
WIDE_FAMILY = 6
VALUE_COLUMNS = [*ROW_KEYS, "column", "kind", "group", "metric", "mean", "std", "n_seeds", "expected_seeds",
                 "n_tasks", "expected_tasks", "tasks"]


# --------------------------------------------------------------------------------------------- numbers
def task_headers(df: pd.DataFrame) -> pd.Series:
    """Column header per record: "task (AP)", or "task@v2 (AP)" when several task versions are present,
    or "task#1a2b3c4d (AP)" when records of one task version and split scored different annotation files
    (a changed test set, a re-download): numbers from different files are never averaged together. (Rows
    on different splits of a task, zero-shot on val and fine-tuned on test, still share its column.)"""
    versions = df.groupby("task")["task_version"].nunique()
    keys = ["task", "task_version", "split"]
    hashes = df.groupby(keys)["ann_sha256"].nunique() if "ann_sha256" in df else None
    labels = []
    for i, (t, v, split) in enumerate(zip(df["task"], df["task_version"], df["split"])):
        label = f"{t}@v{v}" if versions[t] > 1 else t
        if hashes is not None and hashes[(t, v, split)] > 1:
            label += f"#{df['ann_sha256'].iloc[i][:8] or 'nohash'}"
        labels.append(label)
    return pd.Series([f"{lab} ({m})" for lab, m in zip(labels, df["primary"])], index=df.index)


def domain_layout(df: pd.DataFrame) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """For a group split into domain groups (`<group>-<domain>` holding only the group's tasks, as
    rf100vl-aerial in rf100vl): (folded column -> domain, domain mean column -> domain, domain group -> group).

    Folded columns (the group's task columns and the medians of its groups and subsets) leave the Markdown
    and LaTeX tables, so 100 tasks fit a screen as 7 domain means and the group mean; the CSV keeps them,
    the HTML row details show them. A task column's domain is "" when its task is in no domain group."""
    tasks_of: dict[str, set[str]] = {}
    for column, groups in zip(task_headers(df), df["groups"]):
        for g in groups:
            tasks_of.setdefault(g, set()).add(column)
    folded: dict[str, str] = {}
    domain_cols: dict[str, str] = {}
    parents: dict[str, str] = {}
    for parent, columns in tasks_of.items():
        subs = {g: g[len(parent) + 1:] for g in tasks_of if g.startswith(parent + "-") and tasks_of[g] <= columns}
        if not subs:
            continue
        for column in columns:
            folded.setdefault(column, "")
        for g, domain in subs.items():
            domain_cols[f"{g} mean"] = domain
            parents[g] = parent
            folded[f"{g} median"] = domain
            folded.update({c: domain for c in tasks_of[g]})
        folded[f"{parent} median"] = ""
    for g, columns in tasks_of.items():  # a subset of folded tasks (rf20vl-fsod) keeps its mean only
        if g not in parents and columns <= set(folded):
            folded.setdefault(f"{g} median", "")
    return folded, domain_cols, parents


def expected_seed_sets(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> dict[tuple[str, str], frozenset]:
    """Seeds every row of a (regime, shots) should have: those given, else every seed seen for that
    regime and shots in any record (so a row with fewer seeds than its peers shows the gap)."""
    if seeds is not None:
        given = frozenset(int(s) for s in seeds)
        return {key: given for key in df.groupby(["regime", "shots_label"]).groups}
    return {key: frozenset(int(s) for s in g["seed"]) for key, g in df.groupby(["regime", "shots_label"])}


def group_sizes_from(df: pd.DataFrame, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Tasks each group should have: --group-size, else the known size (odinw13 = 13), else every task
    of that group seen in the records."""
    seen: dict[str, set[str]] = {}
    for task, groups in zip(df["task"], df["groups"]):
        for g in groups:
            seen.setdefault(g, set()).add(task)
    sizes = {g: len(tasks) for g, tasks in seen.items()}
    for g, n in {**DEFAULT_GROUP_SIZES, **(overrides or {})}.items():
        if g in sizes:
            sizes[g] = max(int(n), sizes[g])
    return sizes


def leaderboard_values(df: pd.DataFrame, seeds: Iterable[int] | None = None,
                       group_sizes: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Long numeric table: one line per (row, column) with mean, std (n-1) over seeds, seed and task counts.

    kind "task": one task; "group_mean" / "group_median": over the row's tasks in a group, each task
    first averaged over its seeds. The group mean's std is over seeds of the per-seed group mean, using
    only seeds present in every one of those tasks."""
    if df.empty:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    df = df.copy()
    expected = expected_seed_sets(df, seeds)
    if seeds is not None:
        keep = df["seed"].isin(list(seeds))
        if not keep.all():
            log.warning("leaving out %d record(s) whose seed is not in --seeds %s", int((~keep).sum()),
                        sorted(seeds))
        df = df[keep]
    df["column"] = task_headers(df)
    sizes = group_sizes_from(df, group_sizes)
    out: list[dict[str, Any]] = []
    for key, rows in df.groupby(ROW_KEYS, sort=False):
        base = dict(zip(ROW_KEYS, key))
        n_expected = len(expected[(base["regime"], base["shots_label"])])
        dup = rows.duplicated(["column", "seed"], keep=False)
        if dup.any():
            raise UserError("two records for the same row, task and seed: "
                            + ", ".join(rows.loc[dup, "file"]) + " (their overrides print alike; remove one)")
        per_task = {}
        for column, trows in rows.groupby("column", sort=True):
            values = trows["value"].astype(float)
            per_task[column] = trows
            out.append({**base, "column": column, "kind": "task", "group": "", "metric": trows["primary"].iloc[0],
                        "mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        "n_seeds": len(values), "expected_seeds": n_expected, "n_tasks": 1, "expected_tasks": 1,
                        "tasks": column})
        groups = sorted({g for gs in rows["groups"] for g in gs})
        for group in groups:
            members = rows[rows["groups"].map(lambda gs, g=group: g in gs)]
            task_means = members.groupby("column")["value"].mean()
            by_seed = members.pivot(index="seed", columns="column", values="value").dropna()
            seed_means = by_seed.mean(axis=1)
            common = dict(base, group=group, metric="/".join(sorted(set(members["primary"]))),
                          n_seeds=int(members.groupby("column")["seed"].nunique().min()),
                          expected_seeds=n_expected, n_tasks=len(task_means), expected_tasks=sizes[group],
                          tasks=", ".join(task_means.index))
            out.append({**common, "column": f"{group} mean", "kind": "group_mean", "mean": task_means.mean(),
                        "std": seed_means.std(ddof=1) if len(seed_means) > 1 else math.nan})
            out.append({**common, "column": f"{group} median", "kind": "group_median",
                        "mean": task_means.median(), "std": math.nan})
    return pd.DataFrame(out, columns=VALUE_COLUMNS)


# --------------------------------------------------------------------------------------------- text
def format_cell(mean: float, std: float = math.nan, n_seeds: int = 1, expected_seeds: int = 1,
                n_tasks: int = 1, expected_tasks: int = 1, kind: str = "task") -> str:
    """'41.2 ± 1.3 (2/3 seeds)' for a task; '28.1* ± 0.4 (9/13)' for a group over 9 of its 13 tasks."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    text = f"{mean:.1f}"
    notes = []
    if kind != "task" and n_tasks < expected_tasks:
        text += "*"
        notes.append(f"{n_tasks}/{expected_tasks}")
    if not math.isnan(std):
        text += f" ± {std:.1f}"
    if n_seeds < expected_seeds:
        notes.append(f"{n_seeds}/{expected_seeds} seeds")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _human(n: float) -> str:
    if n is None or math.isnan(n):
        return MISSING
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return MISSING
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _seeds_text(rows: pd.DataFrame, n_expected: int) -> str:
    counts = rows.groupby("task")["seed"].nunique()
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo}/{n_expected}" if lo == hi else f"{lo}-{hi}/{n_expected}"


def _row_sort_key(key: tuple) -> tuple:
    model, checkpoint, regime, shots, variant, kind = key
    return (model, checkpoint, variant, regime_order(regime), shots_order(shots), kind)


def _ordered_columns(values: pd.DataFrame, ref: pd.DataFrame, parents: Mapping[str, str] | None = None) -> list[str]:
    task_cols = sorted(set(values.loc[values["kind"] == "task", "column"]))
    group_of = values[values["kind"] == "group_mean"].set_index("column")["group"].to_dict()
    ref_cols = set(ref["column"])
    ref_tasks = [f"{t} ({m})" for t, m in HEADLINE_METRIC.items() if f"{t} ({m})" in ref_cols]
    task_cols += [c for c in ref_tasks if c not in task_cols]
    ref_groups = {c.rsplit(" ", 1)[0] for c in ref_cols if c.endswith((" mean", " median"))}
    parents = parents or {}
    # a group's domain groups right after it: rf100vl, rf100vl-aerial, ..., then rf100vl-fsod, ...
    groups = sorted(set(group_of.values()) | ref_groups, key=lambda g: (parents.get(g, g), g in parents, g))
    group_cols = [f"{g} {stat}" for g in groups for stat in ("mean", "median")]
    return task_cols + group_cols


def leaderboard_table(df: pd.DataFrame, reference: pd.DataFrame | None = None, seeds: Iterable[int] | None = None,
                      group_sizes: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The display table (strings): reproduced rows from the records, then reported rows from the
    reference numbers, each labelled with its kind and source."""
    values = leaderboard_values(df, seeds, group_sizes)
    ref = reference_cells(reference) if reference is not None and not reference.empty else \
        pd.DataFrame(columns=["model", "pretrain_data", "regime", "shots", "source", "column", "value", "std",
                              "split"])
    # reference task columns carry the headline metric in their header, as ours do
    ref = ref.assign(column=[f"{c} ({HEADLINE_METRIC[c]})" if c in HEADLINE_METRIC else c for c in ref["column"]])
    folded, domains, parents = domain_layout(df) if not df.empty else ({}, {}, {})
    columns = _ordered_columns(values, ref, parents)
    rows: list[dict[str, str]] = []
    if not values.empty:
        expected = expected_seed_sets(df, seeds)
        records = df if seeds is None else df[df["seed"].isin(list(seeds))]
        grouped_records = dict(iter(records.groupby(ROW_KEYS, sort=False)))
        ordered = sorted(values.groupby(ROW_KEYS, sort=False), key=lambda kv: _row_sort_key(kv[0]))
        labels = short_labels([(k[0], k[2], k[1], k[4]) for k, _ in ordered])
        for (key, cells), label in zip(ordered, labels):
            base = dict(zip(ROW_KEYS, key))
            runs = grouped_records[key]
            row = {"kind": base["record_kind"], "model": base["model"], "variant": label, "regime": base["regime"],
                   "shots": base["shots_label"], "checkpoint": base["checkpoint"] or MISSING,
                   "hparams": base["variant"] or DEFAULT_LABEL, "pretrain data": MISSING}
            for c in cells.to_dict("records"):
                row[c["column"]] = format_cell(c["mean"], c["std"], c["n_seeds"], c["expected_seeds"],
                                               c["n_tasks"], c["expected_tasks"], c["kind"])
            row["seeds"] = _seeds_text(runs, len(expected[(base["regime"], base["shots_label"])]))
            row["trainable params"] = _human(runs["trainable_params"].median())
            row["params"] = _human(runs["total_params"].median())
            row["stored params / task"] = _human(runs["stored_params"].median())
            row["train time / run"] = _duration(runs["train_seconds"].mean())
            ips = runs["infer_images_per_s"].mean()
            row["images/s"] = MISSING if math.isnan(ips) else f"{ips:.1f}"
            row["device"] = ", ".join(sorted(set(runs["device"]) - {""})) or MISSING
            row["source"] = f"{len(runs)} record(s)"
            rows.append(row)
    rkeys = ["model", "pretrain_data", "regime", "shots", "source"]
    for key, cells in ref.groupby(rkeys, sort=False):
        base = dict(zip(rkeys, key))
        # a published row has no hyper-parameters here; what tells it apart is its pre-training data
        row = {"kind": REPORTED, "model": base["model"], "variant": base["pretrain_data"] or MISSING,
               "regime": base["regime"],
               "shots": base["shots"] or MISSING, "checkpoint": MISSING, "hparams": MISSING,
               "pretrain data": base["pretrain_data"] or MISSING, "source": base["source"]}
        for column, cc in cells.groupby("column", sort=False):
            texts = []
            for c in cc.to_dict("records"):
                t = f"{c['value']:.1f}" + ("" if math.isnan(c["std"]) else f" ± {c['std']:.1f}")
                texts.append(t + (f" ({c['split']})" if c["split"] else ""))
            row[column] = " / ".join(texts)
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *columns, "seeds", *COST_COLUMNS, *DETAIL_COLUMNS])
    table = table.astype(object).fillna(MISSING).astype(str)
    group_cells = values[values["kind"] != "task"] if not values.empty else values
    # which task columns each group column averages (their union over rows; a row may lack some: '(n/N)')
    table.attrs["group_tasks"] = {c: sorted({t for ts in g["tasks"] for t in ts.split(", ")})
                                  for c, g in group_cells.groupby("column")}
    table.attrs["folded"] = {c: d for c, d in folded.items() if c in table.columns}
    table.attrs["domains"] = {c: d for c, d in domains.items() if c in table.columns}
    return table


# --------------------------------------------------------------------------------------------- render
def header_line(n_records: int) -> str:
    return f"Generated by `glip-bench leaderboard` from {n_records} records; do not edit (rerun the command)."


LEGEND = [
    "Cells: the task's primary metric (in the column header or the column key), mean ± sample std (n-1) over "
    "seeds. '(2/3 seeds)': fewer seeds than expected (every seed seen for that regime and shots, or --seeds).",
    "Group mean/median: over the row's tasks in the group, each first averaged over its seeds; "
    "'*' with '(9/13)': only 9 of the group's 13 tasks are present, so the number is not the group's. "
    "The ± of a group mean is the std over seeds of the per-seed group mean (seeds present in every task).",
    "Variant: the settings that differ between rows of the same model and regime (the checkpoint's name where "
    "only it differs); every hyper-parameter and the checkpoint are in leaderboard.csv and the HTML row details.",
    "Rows of kind 'run here' were measured by this harness from the records read (they reproduce no paper by "
    "themselves: compare them with the 'reported' rows of the same model).",
    "Rows of kind 'reported' are published numbers (not reproduced by this code); their variant is the "
    "pre-training data, their source is in the details (evaluation split in brackets).",
    "Rows of kind 'external' are another detector's predictions scored here under the task's protocol "
    "(`glip-bench score --task T --predictions FILE`); a cost it did not declare is blank (—).",
    "Cost: median trainable parameters and mean training time per run (all parameters, stored parameters per "
    "task, inference images/s and the device are in the details).",
]


DOMAIN_LEGEND = ("A group split into domains (RF100-VL: rf100vl-aerial ... rf100vl-sport) shows its domain means and "
                 "its mean here; every per-task value is in leaderboard.csv and the HTML row details (the HTML "
                 "filters by domain).")


def legend(table: pd.DataFrame) -> list[str]:
    """The notes under a table: LEGEND, which task columns each group column averages, and DOMAIN_LEGEND
    when columns were folded into domain means."""
    folded = table.attrs.get("folded", {})
    groups = [f"{c}: over {', '.join(ts)}" if not set(ts) <= set(folded) else
              f"{c}: {len(ts)} task column(s), in leaderboard.csv"
              for c, ts in table.attrs.get("group_tasks", {}).items() if c not in folded]
    return [*LEGEND, *([f"Group columns average these task columns: {'; '.join(groups)}."] if groups else []),
            *([DOMAIN_LEGEND] if table.attrs.get("folded") else [])]


def is_score_column(column: str) -> bool:
    """Task and group columns: the numbers a row is ranked by."""
    return column.endswith((")", " mean", " median")) and column not in HEAD_COLUMNS + COST_COLUMNS + DETAIL_COLUMNS


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table a person reads: without the detail columns (hyper-parameters, checkpoint, device...) and
    the columns folded into domain means (domain_layout)."""
    folded = table.attrs.get("folded", {})
    return table[[c for c in table.columns if c not in DETAIL_COLUMNS and c not in folded]]


def short_headers(columns: Iterable[str]) -> dict[str, str]:
    """Header abbreviations for wide families of task columns: 'synth-colours (AP)' -> 'colours' when
    WIDE_FAMILY or more task columns share the 'synth-' prefix. Only abbreviations that stay unique
    are used; the key (full name and metric) is printed under the table."""
    columns = list(columns)
    tasks = [c for c in columns if c.endswith(")") and " (" in c]
    families: dict[str, list[str]] = {}
    for c in tasks:
        name = c.rsplit(" (", 1)[0]
        if "-" in name:
            families.setdefault(name.split("-", 1)[0], []).append(c)
    out: dict[str, str] = {}
    for members in families.values():
        if len(members) < WIDE_FAMILY:
            continue
        short = {c: c.rsplit(" (", 1)[0].split("-", 1)[1] for c in members}
        if len(set(short.values())) == len(short) and not set(short.values()) & set(columns):
            out.update(short)
    return out


def header_key(columns: Iterable[str]) -> str:
    """'Columns: colours = synth-colours (AP); ...' for the abbreviated headers, '' when none are."""
    short = short_headers(columns)
    return ("Columns: " + "; ".join(f"{v} = {k}" for k, v in short.items()) + ".") if short else ""


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    shown = display_table(table)
    return shown.rename(columns=short_headers(shown.columns))


def render_markdown(table: pd.DataFrame, n_records: int) -> str:
    """A GitHub pipe table (pandas' to_markdown needs tabulate, not a dependency here)."""
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    shown = _readable(table)
    key = header_key(display_table(table).columns)
    lines = [header_line(n_records), "", *(f"- {t}" for t in legend(table)), *([f"- {key}"] if key else []), ""]
    lines.append("| " + " | ".join(cell(c) for c in shown.columns) + " |")
    lines.append("|" + "|".join("---" for _ in shown.columns) + "|")
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(cell(x) for x in row) + " |")
    return "\n".join(lines) + "\n"


def render_csv(table: pd.DataFrame) -> str:
    """Plain CSV with every column, details included (no comment line, so any CSV reader takes it as is)."""
    return table.to_csv(index=False, lineterminator="\n")


def render_latex(table: pd.DataFrame, n_records: int) -> str:
    shown = _readable(table)
    styler = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    body = styler.to_latex(hrules=True, column_format="l" * len(shown.columns))
    body = body.replace("±", r"$\pm$").replace(MISSING, "--")
    key = header_key(display_table(table).columns)
    return f"% {header_line(n_records)}\n% needs \\usepackage{{booktabs}}\n" + (f"% {key}\n" if key else "") + body


def render_html(table: pd.DataFrame, n_records: int) -> str:
    """The interactive page (bench.reports.html_page): sortable, filterable, details per row, offline."""
    from bench.reports.html_page import leaderboard_page

    return leaderboard_page(table, header_line(n_records), legend(table))


def values_to_csv(values: pd.DataFrame) -> str:
    return values.to_csv(index=False, lineterminator="\n", float_format=lambda x: f"{x:.6g}")
