"""The RF100-VL task family (tasks/rf100vl/_family.yaml, bench.tasks.family) on a generated folder in the
layout the rf100vl package downloads (bench.testing.rf100vl): discovery, cleaning, groups, the FSOD shot
rule, prompts, a zero-shot and a 10-shot run end to end, and the leaderboard's domain columns."""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from bench.tasks.family import FamilyTask, slug
from bench.tasks.registry import load_registry
from bench.tasks.roboflow import clean_roboflow_coco
from bench.testing.rf100vl import FSOD_SHOTS, make_rf100vl_folder
from bench.util.errors import UserError

# the paper's domain sizes (arXiv:2505.20612, Sec. 3: Aerial 11, Document 10, Flora & Fauna 23,
# Industrial 22, Medical 13, Sports 6, Other 15), checked against the shipped list
PAPER_DOMAIN_SIZES = {"aerial": 11, "document": 10, "flora-fauna": 23, "industrial": 22, "lab-imaging": 13,
                      "sport": 6, "misc": 15}


@pytest.fixture(scope="module")
def reg():
    return load_registry(reload=True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_rf100vl_folder(tmp_path_factory.mktemp("rf100vl-data"))


def _package_clean(data: dict) -> dict:
    """The cleaning rf100vl's get_clean_ann_data performs, restated for the test: drop id 0, ids - 1."""
    if data["categories"][0]["supercategory"] != "none":
        return data
    out = copy.deepcopy(data)
    out["categories"] = [{**c, "id": c["id"] - 1} for c in data["categories"] if c["id"] != 0]
    shift = 1 - min(a["id"] for a in data["annotations"])
    for a in out["annotations"]:
        a["category_id"] -= 1
        a["id"] += shift
    return out


# ---- discovery and groups -----------------------------------------------------------------------
def test_family_declares_100_tasks_per_variant_in_the_papers_7_domains(reg):
    groups = reg.groups()
    for prefix in ("rf100vl", "rf100vl-fsod"):
        members = groups[prefix]
        assert len(members) == len(set(members)) == 100
        sizes = {d: len(groups[f"{prefix}-{d}"]) for d in PAPER_DOMAIN_SIZES}
        assert sizes == PAPER_DOMAIN_SIZES
        assert sorted(m for d in PAPER_DOMAIN_SIZES for m in groups[f"{prefix}-{d}"]) == sorted(members)
    assert len(groups["rf20vl-fsod"]) == 20 and set(groups["rf20vl-fsod"]) <= set(groups["rf100vl-fsod"])
    assert "download_rf20vl_fsod" in reg.get("rf100vl-fsod-actions").how_to_get  # an RF20-VL-FSOD member
    assert "download_rf20vl_fsod" not in reg.get("rf100vl-fsod-deeppcb").how_to_get
    task = reg.get("rf100vl-grccs")  # the folder is "-grccs"
    assert isinstance(task, FamilyTask) and task.dataset_dir == "-grccs" and task.domain == "industrial"
    assert task.root == "rf100vl/-grccs" and task.eval_split == "test" and task.finetune_split == "test"
    assert task.ann_path("val", "/d") == Path("/d/rf100vl/-grccs/valid/_annotations.coco.json")
    assert reg.get("rf100vl-varroa-mites").dataset_dir == "varroa-mites-detection--test-set"
    assert max(len(n) for n in groups["rf100vl-fsod"]) <= 40  # short names, like the ODinW ones


def test_a_misspelt_task_name_gets_the_closest(reg):
    with pytest.raises(UserError, match="rf100vl-aquarium-combined"):
        reg.get("rf100vl-aquarium-combine")


def test_slug_makes_folder_names_task_names():
    assert slug("-grccs") == "grccs" and slug("varroa-mites-detection--test-set") == "varroa-mites-detection-test-set"


def test_tasks_group_lists_domain_presence_instructions_and_how(capsys, data_root):
    assert cli_main(["tasks", "--group", "rf100vl", "--json", "--data-root", str(data_root)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 100
    assert rows["rf100vl-aquarium-combined"]["data"] == "yes" and rows["rf100vl-aquarium-combined"]["instructions"]
    assert rows["rf100vl-actions"]["prompt_sets"] == ["plain"] and rows["rf100vl-actions"]["domain"] == "sport"
    how = rows["rf100vl-deeppcb"]["how_to_get"]
    assert rows["rf100vl-deeppcb"]["data"] == "no"
    assert all(s in how for s in ("pip install rf100vl", "ROBOFLOW_API_KEY", "rf100vl.download_rf100vl(path=",
                                  "<data root>/rf100vl", "--data-root", "<data root>/rf100vl/deeppcb"))
    assert cli_main(["tasks", "--group", "rf100vl-sport", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["task", "domain"] and "6 tasks" in out
    assert "To get it: pip install rf100vl" in out


# ---- loading: cleaning, missing images, prompts -----------------------------------------------
def test_cleaning_is_the_packages(data_root):
    raw = json.loads((data_root / "rf100vl/aquarium-combined/test/_annotations.coco.json").read_text())
    cleaned, note = clean_roboflow_coco(raw)
    assert "dummy category 0" in note and "shifted by -1" in note
    expected = _package_clean(raw)
    assert cleaned["categories"] == expected["categories"] and cleaned["annotations"] == expected["annotations"]
    assert [c["name"] for c in cleaned["categories"]] == ["fish", "jelly_fish"]
    assert raw["categories"][0]["id"] == 0  # the loaded dict is cleaned, not the input
    already, none = clean_roboflow_coco(cleaned)
    assert none is None and already is cleaned
    boxed = copy.deepcopy(raw)
    boxed["annotations"].append({**raw["annotations"][0], "id": 999, "category_id": 0})
    dropped, note = clean_roboflow_coco(boxed)
    assert len(dropped["annotations"]) == len(raw["annotations"]) and "1 annotation(s) on category 0" in note


def test_load_cleans_and_the_record_notes_say_so(reg, data_root):
    task = reg.get("rf100vl-aquarium-combined")
    ds = task.load("test", data_root)
    assert [(c["id"], c["name"]) for c in ds.categories] == [(0, "fish"), (1, "jelly_fish")]
    notes = task.provenance_notes(["test", "train", "val"], data_root)
    assert all("dummy category 0 'aquarium-combined'" in notes["annotation_cleaning"][s] for s in ("test", "train", "val"))
    assert notes["domain"] == "flora-fauna" and "clean_name" in notes["class_names"]
    plain = reg.get("rf100vl-actions").provenance_notes(["test"], data_root)
    assert plain["annotation_cleaning"]["test"].startswith("no Roboflow dummy category")


def test_an_image_listed_but_missing_is_named(reg, data_root):
    ann = json.loads((data_root / "rf100vl/bees/test/_annotations.coco.json").read_text())
    missing = ann["images"][0]["file_name"]
    with pytest.raises(UserError, match=f"1 image\\(s\\) listed in .* are missing .*{missing}"):
        reg.get("rf100vl-bees").load("test", data_root)
    assert len(reg.get("rf100vl-bees").load("train", data_root)) == 6


def test_instructions_prompt_set_from_the_annotator_instructions(reg, data_root):
    task = reg.get("rf100vl-aquarium-combined")
    ds = task.load("test", data_root)
    names = [c["name"] for c in ds.categories]
    assert task.prompt_names("plain", names) == (["fish", "jelly fish"], ["", ""], ["", ""])
    assert task.prompt_names("instructions", names)[2] == [", A fish seen through aquarium glass", ""]
    other = reg.get("rf100vl-actions")
    other.load("test", data_root)
    with pytest.raises(UserError, match="needs the annotator instructions README.dataset.txt"):
        other.prompt_names("instructions", ["ball", "player"])


# ---- the shot rule ------------------------------------------------------------------------------
def test_fsod_train_split_is_used_as_is_and_other_shots_are_refused(reg, data_root):
    from bench.tasks.fewshot import categories_by_image, check_shots, fewshot_subset

    task = reg.get("rf100vl-fsod-actions")
    train = task.load("train", data_root)
    per_class = {}
    for cats in categories_by_image(train.coco).values():
        for c in set(cats):
            per_class[c] = per_class.get(c, 0) + 1
    assert per_class == {0: FSOD_SHOTS, 1: FSOD_SHOTS}
    for seed in (3, 30):
        split = fewshot_subset(task, "train", FSOD_SHOTS, seed, data_root)
        assert sorted(split.image_ids) == sorted(img.id for img in train.images)
        assert "fixed 10-shot sample, used as is" in split.source
    for shots in (1, 5, None):
        with pytest.raises(UserError, match="fixed 10-shot sample"):
            check_shots(task, "train", shots, 3, data_root)
    full = reg.get("rf100vl-actions")  # the full variant samples with the project's sampler
    one = fewshot_subset(full, "train", 1, 3, data_root)
    assert one.source == "sampled" and len(one.image_ids) < len(full.load("train", data_root))


# ---- end to end -----------------------------------------------------------------------------------
def _pycocotools(gt: dict, dets: list[dict]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    return {k: (math.nan if v < 0 else 100 * v) for k, v in zip(keys, ev.stats)}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    """A zero-shot run on two full-variant tasks and a 10-shot run on the FSOD task (glip-tiny, 1 step)."""
    results = tmp_path_factory.mktemp("rf100vl-results")
    base = ["run", "--model", "glip-tiny", "--data-root", str(data_root), "--results", str(results),
            "--metric-backend", "pycocotools", "--set", "pre_nms_thresh=0.0"]
    assert cli_main([*base, "--tasks", "rf100vl-aquarium-combined,rf100vl-actions", "--regime", "zero-shot"]) == 0
    assert cli_main([*base, "--tasks", "rf100vl-fsod-actions", "--regime", "full-ft", "--shots", "10",
                     "--seeds", "3", "--set", "max_iters=1"]) == 0
    return results


def test_runs_write_records_whose_metrics_are_pycocotools_on_the_cleaned_annotations(runs, data_root):
    records = {json.loads(p.read_text())["task"]["name"]: (p, json.loads(p.read_text()))
               for p in runs.glob("runs/*/record.json")}
    assert sorted(records) == ["rf100vl-actions", "rf100vl-aquarium-combined", "rf100vl-fsod-actions"]
    for name, (path, rec) in records.items():
        folder = "rf100vl-fsod/actions" if "fsod" in name else f"rf100vl/{name.removeprefix('rf100vl-')}"
        gt = _package_clean(json.loads((data_root / folder / "test/_annotations.coco.json").read_text()))
        dets = json.loads(gzip.open(path.parent / "predictions.json.gz").read())
        assert dets and {d["category_id"] for d in dets} <= {c["id"] for c in gt["categories"]}
        ref = _pycocotools(gt, dets)
        got = rec["metrics"]["values"]
        assert all(_same(got[k], ref[k]) for k in ref), (name, got, ref)
        assert rec["task"]["split"] == "test" and rec["provenance"]["annotation_cleaning"]
    fsod = records["rf100vl-fsod-actions"][1]
    assert "used as is" in fsod["fewshot"]["train_source"] and fsod["provenance"]["fewshot_train"]
    assert len(fsod["fewshot"]["train_image_ids"]) == 2 * FSOD_SHOTS
    assert "dummy category 0" in records["rf100vl-aquarium-combined"][1]["provenance"]["annotation_cleaning"]["test"]


def test_scoring_uses_the_cleaned_category_ids(reg, data_root):
    """Predictions in the cleaned ids, scored on the task-loaded data set with the task's metric, give what
    pycocotools gives on the package-cleaned file; the same boxes in the raw export's ids (fish = 1) would
    not, so a wrong shift could not pass."""
    from bench.metrics import evaluate

    raw = json.loads((data_root / "rf100vl/aquarium-combined/test/_annotations.coco.json").read_text())
    gt = _package_clean(raw)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"] if i % 3 else 1 - a["category_id"],
             "bbox": [v + (i % 2) for v in a["bbox"]], "score": 0.9 - 0.01 * i} for i, a in enumerate(gt["annotations"])]
    task = reg.get("rf100vl-aquarium-combined")
    got = evaluate(task.metric, task.load("test", data_root), dets, backend="pycocotools").values
    ref = _pycocotools(gt, dets)
    assert 0 < ref["AP"] < 100 and all(_same(got[k], ref[k]) for k in ref)
    shifted = [{**d, "category_id": d["category_id"] + 1} for d in dets]
    assert _pycocotools(gt, [d for d in shifted if d["category_id"] < 2])["AP"] != ref["AP"]


def test_leaderboard_shows_domain_means_and_keeps_every_task(runs, tmp_path):
    out = tmp_path / "lb"
    assert cli_main(["leaderboard", "--results", str(runs), "--out", str(out), "--no-reference"]) == 0
    md = (out / "LEADERBOARD.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| kind"))
    for col in ("rf100vl mean", "rf100vl-flora-fauna mean", "rf100vl-sport mean", "rf100vl-fsod mean",
                "rf100vl-fsod-sport mean", "rf20vl-fsod mean"):
        assert f"| {col} |" in header
    assert "(AP)" not in header and "median" not in header  # per-task columns folded into the domain means
    ap = {json.loads(p.read_text())["task"]["name"]: json.loads(p.read_text())["metrics"]["values"]["AP"]
          for p in runs.glob("runs/*/record.json")}
    cols = [c.strip() for c in header.strip("|").split("|")]
    zero = next([c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if "| zero-shot |" in line)
    cell = dict(zip(cols, zero))
    # group sizes come from the registry (100 tasks, 23 flora/fauna, 6 sport); '*': not the whole group yet
    mean = (ap["rf100vl-actions"] + ap["rf100vl-aquarium-combined"]) / 2
    assert cell["rf100vl mean"] == f"{mean:.1f}* (2/100)"
    assert cell["rf100vl-sport mean"] == f"{ap['rf100vl-actions']:.1f}* (1/6)"
    assert cell["rf100vl-flora-fauna mean"] == f"{ap['rf100vl-aquarium-combined']:.1f}* (1/23)"
    assert cell["rf100vl-fsod mean"] == "—"  # a full-test number never lands in a FSOD column
    csv_header = (out / "leaderboard.csv").read_text().splitlines()[0]
    assert all(f"{t} (AP)" in csv_header for t in ("rf100vl-actions", "rf100vl-aquarium-combined",
                                                   "rf100vl-fsod-actions"))
    page = (out / "leaderboard.html").read_text()
    assert '<select id="domain">' in page and '<option value="sport">' in page
    assert 'data-domain="flora-fauna">rf100vl-aquarium-combined (AP) [flora-fauna]' in page


def test_a_users_own_roboflow_export_is_one_folder_and_one_small_file(tmp_path, monkeypatch, capsys):
    """docs/rf100vl.md "Adding a task": the export folder as Roboflow writes it, plus a 7-line _family.yaml."""
    data = make_rf100vl_folder(tmp_path / "data")
    (data / "rf100vl" / "aquarium-combined").rename(data / "widget-factory")  # a raw export with category 0
    tasks = tmp_path / "tasks" / "mine"
    tasks.mkdir(parents=True)
    (tasks / "_family.yaml").write_text(
        "family: mine\nkind: roboflow-coco\nversion: 1\ndescription: my widgets\n"
        "source: my Roboflow export (workspace acme, project widget-factory, version 3)\n"
        "variants: {full: {root: '.', task_prefix: mine}}\ndatasets: {widget-factory: Industrial}\n")
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tmp_path / "tasks"))
    reg = load_registry(tmp_path / "tasks", reload=True)
    task = reg.get("mine-widget-factory")
    assert task.groups == ("mine", "mine-industrial") and task.eval_split == "test"
    ds = task.load("test", data)
    assert [c["name"] for c in ds.categories] == ["fish", "jelly_fish"] and ds.categories[0]["id"] == 0
    assert cli_main(["tasks", "--group", "mine", "--data-root", str(data)]) == 0
    assert "mine-widget-factory  industrial  test" in capsys.readouterr().out
