"""Published (reported, not reproduced) numbers from the reference CSVs, mapped onto leaderboard columns.

Both CSVs share the header `model,pretrain_data,task,split,regime,shots,metric,value,std,source,note`
(results/reference/README.md). Only the headline metric of each benchmark becomes a table cell:
COCO AP, LVIS AP (Fixed AP), Flickr30K R@1, the ODinW-13 / ODinW-35 mean (and median), the RF100-VL
group and domain means (task rf100vl, rf100vl-<domain>, rf100vl-fsod..., rf20vl-fsod; metric AP); OV-COCO
novel AP50, OV-LVIS APr, RefCOCO/+/g Acc@0.5 and gRefCOCO Pr@F1=1.
Per-dataset ODinW rows and compute rows stay in the CSV; the curves do not use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bench.util.errors import UserError
from bench.util.shipped import shipped_dir

REFERENCE_COLUMNS = ("model", "pretrain_data", "task", "split", "regime", "shots", "metric", "value", "std",
                     "source", "note")
# the CSVs of results/reference/ a leaderboard reads when no --reference is given (paper-numbers.csv and
# protocol-numbers.csv are passed by hand: they add many columns a plain table does not need)
DEFAULT_REFERENCE_FILES = ("reported-numbers.csv", "rf100vl-numbers.csv")
# reference task name -> benchmark; (benchmark, split) -> our task name (tasks/*.yaml); splits not
# listed (e.g. COCO test-dev) land in the benchmark's main column with the split in brackets
TASK_ALIASES = {"coco_det": "coco", "lvis_det": "lvis", "flickr30k_grounding": "flickr30k"}
SPLIT_TASKS = {("lvis", "minival"): "lvis-minival", ("lvis", "val"): "lvis-val", ("lvis", "val_v1.0"): "lvis-val",
               ("flickr30k", "val"): "flickr30k-val", ("flickr30k", "test"): "flickr30k-test",
               # open-vocabulary and referring-expression protocols (results/reference/protocol-numbers.csv)
               ("ov_coco", "val2017"): "ov-coco", ("ov_lvis", "minival"): "ov-lvis-minival", ("ov_lvis", "val"): "ov-lvis-val",
               **{(ref, split): f"{name}-{split.lower()}" for ref, name in (("refcoco", "refcoco"), ("refcoco+", "refcocoplus"))
                  for split in ("val", "testA", "testB")},
               ("refcocog", "val"): "refcocog-val", ("refcocog", "test"): "refcocog-test",
               **{("grefcoco", split): f"grefcoco-{split.lower()}" for split in ("val", "testA", "testB")}}
MAIN_TASK = {"coco": "coco", "lvis": "lvis-minival", "flickr30k": "flickr30k-val", "ov_coco": "ov-coco",
             "ov_lvis": "ov-lvis-minival", "refcoco": "refcoco-val", "refcoco+": "refcocoplus-val",
             "refcocog": "refcocog-val", "grefcoco": "grefcoco-val"}
# our task name -> its headline (primary) metric, in column order
HEADLINE_METRIC = {"coco": "AP", "lvis-minival": "AP", "lvis-val": "AP", "flickr30k-val": "R@1",
                   "flickr30k-test": "R@1", "ov-coco": "AP50_novel", "ov-lvis-minival": "APr", "ov-lvis-val": "APr",
                   **{f"{name}-{split}": "Acc@0.5" for name in ("refcoco", "refcocoplus") for split in ("val", "testa", "testb")},
                   "refcocog-val": "Acc@0.5", "refcocog-test": "Acc@0.5",
                   **{f"grefcoco-{split}": "Pr@F1=1" for split in ("val", "testa", "testb")}}
# task families reported as a mean over their data sets: `task` is the group (rf100vl, rf100vl-aerial,
# rf100vl-fsod, rf20vl-fsod, ...), `split` the test set it was scored on
FAMILY_GROUPS = ("rf100vl", "rf20vl")
# reference regime -> bench regime; others ("pretrain-eval", "supervised", ...) are kept as written
REGIME_ALIASES = {"full-finetune": "full-ft", "fine-tune": "full-ft", "prompt-tune": "prompt-tuning",
                  "linear-probe": "linear-probe", "zero-shot": "zero-shot"}
# paper Tables 14-16 repeat the ODinW-13 averages of Tables 11-13 ("Avg" column): keep one copy
DUPLICATE_SOURCES = ("Table 14", "Table 15", "Table 16")


def default_reference_dir() -> Path:
    """The reported numbers: the checkout's results/reference/, else the installed bench/reference_numbers."""
    return shipped_dir("results/reference", "reference_numbers")


def load_reference(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read reference CSVs -> one DataFrame with the shared columns plus `file` (which CSV)."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reference CSV not found: {path} (pass --reference CSV or --no-reference)")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise UserError(f"reference CSV {path} lacks columns {missing}; expected {list(REFERENCE_COLUMNS)}")
        frame = frame[list(REFERENCE_COLUMNS)].copy()
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
        frame["std"] = pd.to_numeric(frame["std"], errors="coerce")
        bad = frame["value"].isna()
        if bad.any():
            raise UserError(f"reference CSV {path}: non-numeric value on data line(s) "
                            f"{[int(i) + 2 for i in frame.index[bad]]}")
        frame["file"] = path.name
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*REFERENCE_COLUMNS, "file"])
    return pd.concat(frames, ignore_index=True)


def reference_column(task: str, split: str, metric: str) -> str | None:
    """The leaderboard column a reference number belongs in, or None if it is not a headline number."""
    task = TASK_ALIASES.get(task, task)
    if task == "odinw13" and (metric == "AP_mean" or (metric == "AP" and split == "avg13")):
        return "odinw13 mean"
    if task == "odinw35" and metric == "AP":
        return {"avg35": "odinw35 mean", "median35": "odinw35 median"}.get(split)
    if task.startswith(FAMILY_GROUPS) and metric == "AP":  # RF100-VL: the group or domain mean over data sets
        return f"{task} mean"
    if task not in MAIN_TASK:
        return None
    ours = SPLIT_TASKS.get((task, split), MAIN_TASK[task])
    return ours if HEADLINE_METRIC[ours] == metric else None


def reference_cells(reference: pd.DataFrame) -> pd.DataFrame:
    """Headline reference numbers, one per (row, column): columns model, pretrain_data, regime, shots,
    source, column, value, std, split. Rows the tables do not use (per-dataset, compute) are dropped."""
    out = []
    for rec in reference.to_dict("records"):
        column = reference_column(rec["task"], rec["split"], rec["metric"])
        if column is None:
            continue
        if rec["split"] == "avg13" and any(s in rec["source"] for s in DUPLICATE_SOURCES):
            continue
        out.append({
            "model": rec["model"], "pretrain_data": rec["pretrain_data"],
            "regime": REGIME_ALIASES.get(rec["regime"], rec["regime"]),
            "shots": rec["shots"] or "", "source": rec["source"], "column": column,
            "value": float(rec["value"]), "std": float(rec["std"]),
            "split": "" if rec["split"] in ("avg13", "avg35", "median35") else rec["split"],
        })
    return pd.DataFrame(out, columns=["model", "pretrain_data", "regime", "shots", "source", "column", "value",
                                      "std", "split"])
