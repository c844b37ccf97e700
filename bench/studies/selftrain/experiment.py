"""Does a student trained on a teacher's pseudo-labels learn a concept the teacher was never taught?

GLIP's argument (section 3.3): given "a red hexagon left of a blue star", a teacher that knows "red" and
"star" but never saw a hexagon can still guess the hexagon's box from the context; a student trained
on those guesses then grounds "hexagon" on its own. In the synthetic world:

1. teacher: a glip-synth trained on base concepts only (the demo's pretrained checkpoint, or a short
   pretraining here on freshly drawn base-concept grounding scenes when none is given);
2. unlabelled data: scenes with one object of the novel shape in a colour no other object has, next to
   base shapes, captioned "a red hexagon left of a blue star" (words the teacher knows around the novel one);
3. `glip-bench pseudo-label`'s own code grounds the captions' noun phrases with the teacher;
4. student: the teacher's weights trained further on human (base-concept grounding) + pseudo data
   (GLIP trains its student from scratch on far more data; in a CPU budget continued training is the
   form that fits); a control student gets the same steps on the human data alone (`Budget.control`);
5. zero-shot AP of the prompt "hexagon" (the shape word alone, no colour) on held-out scenes, per seed,
   with scipy bootstrap confidence intervals over seeds; a table (pandas) and a figure (PNG).

Seeds vary the unlabelled scenes, the human subset and the student's training order; the evaluation
scenes and the teacher are shared, so the per-seed differences are paired.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.coco import build_detection_dataset
from bench.models import GLIPAdapter
from bench.reports.stats import bootstrap_ci
from bench.runs.hparams import InferenceHParams
from bench.runs.predict import EvalTask, detect_settings, evaluate_split
from bench.runs.scoring import DEFAULT_BACKEND
from bench.util.errors import UserError
from bench.util.io import atomic_write_json, sha256_file
from bench.util.logs import get_logger, progress
from glip.prompts import PromptChunk, positive_map

log = get_logger("selftrain.experiment")
# resamples of the seed CIs: the count results/ holds them for (another count moves the endpoints)
CI_RESAMPLES = 2000


@dataclass(frozen=True)
class Budget:
    """Every number that sets the experiment's cost (configuration as data)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    unlabelled_images: int = 24  # per seed, pseudo-labelled by the teacher
    human_per_pseudo: float = 1.0  # human (base-concept) entries mixed in per pseudo-labelled entry
    eval_images: int = 32  # shared by every model
    student_iters: int = 8
    batch_size: int = 4
    lr: float = 5e-4
    lang_lr: float = 5e-4  # the novel word's embedding must move within a few steps
    student_frozen_groups: tuple[str, ...] = ("backbone_stem", "backbone")
    # below the CLI's 0.5: a phrase's score is the mean over its tokens (official SCORE_AGG MEAN,
    # maskrcnn_benchmark/modeling/rpn/inference.py), so a box found through the context ("red") is
    # diluted by the unknown word's token
    threshold: float = 0.3
    control: bool = True  # also train a student on the human data alone (same steps)
    teacher_iters: int = 12  # only when no teacher checkpoint is given
    teacher_images: int = 48
    infer_batch_size: int = 16


BUDGETS: dict[str, Budget] = {
    # measured: "quick" with a 12-step teacher trained here took 103 s of CPU time (2 torch threads, glip-synth)
    # on a shared 2-core machine, i.e. under 1.5 min of 2-core wall; "full" is ~2.5x that (~3 min)
    # the demo's --quick (also run by the test suite): one of every step, not a measurement
    "quick": Budget(seeds=(0, 1), unlabelled_images=8, eval_images=16, student_iters=4, control=False),
    "full": Budget(),
}


def get_budget(budget: str | Budget) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        from bench.util.errors import unknown_name

        raise unknown_name("self-training budget", budget, BUDGETS)
    return BUDGETS[budget]


# ------------------------------------------------------------------------------------------- data
def _relation(a: Any, b: Any) -> str:
    """Where object a lies relative to b, in the world's relation words (y grows downwards)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(ax - bx) >= abs(ay - by):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def draw_unlabelled(concept: str, n: int, seed: int, out_dir: Path) -> tuple[Path, Path, dict[int, list[float]]]:
    """n scenes, each with one `concept` object whose colour is unique in the scene, captioned with a base
    object: "a red hexagon left of a blue star". Returns (captions jsonl, image dir, id -> true xyxy)."""
    from bench.synthetic.concepts import BASE_PAIRS, COLOURS
    from bench.synthetic.scenes import ScenePlan, sample_scene
    from bench.synthetic.writers import write_png

    plan = ScenePlan(targets=tuple((c, concept) for c in COLOURS), num_objects=(2, 4), distractors=BASE_PAIRS,
                     distractor_prob=1.0, min_targets=1)
    rng = np.random.default_rng([seed, 1])
    img_dir = out_dir / "images"
    records, truth = [], {}
    while len(records) < n:
        scene = sample_scene(plan, rng)
        novel = [o for o in scene.objects if o.shape == concept]
        base = [o for o in scene.objects if o.shape != concept]
        if len(novel) != 1 or not base or any(o.colour == novel[0].colour for o in base):
            continue  # the caption must single the novel object out by a known word (its colour)
        other = base[int(rng.integers(len(base)))]
        art = ("a", "the")[int(rng.integers(2))]
        caption = f"{art} {novel[0].colour} {concept} {_relation(novel[0], other)} a {other.colour} {other.shape}"
        rid = len(records) + 1
        write_png(img_dir / f"{rid:05d}.png", scene.image)
        records.append({"id": rid, "file_name": f"{rid:05d}.png", "caption": caption})
        truth[rid] = [float(v) for v in novel[0].xyxy]
    path = out_dir / "captions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, img_dir, truth


def draw_human(n: int, seed: int, out_dir: Path) -> tuple[Path, Path]:
    """n base-concept grounding scenes (the pretraining distribution: no novel shape anywhere) as MDETR json."""
    from bench.synthetic import specs
    from bench.synthetic.captions import grounding_caption
    from bench.synthetic.scenes import IMAGE_SIZE, sample_scene
    from bench.synthetic.writers import mdetr_dict, write_png

    rng = np.random.default_rng([seed, 2])
    entries = []
    while len(entries) < n:
        scene = sample_scene(specs.PRETRAIN_PLAN, rng)
        caption, phrases = grounding_caption(scene.objects, rng)
        if not phrases:
            continue
        k = len(entries) + 1
        write_png(out_dir / "images" / f"{k:05d}.png", scene.image)
        entries.append({"id": k, "original_img_id": k, "sentence_id": 0, "file_name": f"{k:05d}.png",
                        "height": IMAGE_SIZE, "width": IMAGE_SIZE, "caption": caption,
                        "phrases": [{"spans": [list(p.span)], "boxes": [list(scene.objects[j].bbox) for j in p.objects],
                                     "areas": [scene.objects[j].area for j in p.objects], "type": "base"}
                                    for p in phrases]})
    path = out_dir / "human.json"
    data = mdetr_dict(entries)
    for img in data["images"]:
        img["source"] = "grounding"
    atomic_write_json(path, data, indent=None)
    return path, out_dir / "images"


def draw_eval(concept: str, n: int, seed: int, out_dir: Path) -> tuple[dict, list[Path]]:
    """Held-out scenes with 1-2 `concept` objects of any colour among base shapes: COCO gt (one class)."""
    from bench.synthetic.concepts import BASE_PAIRS, COLOURS
    from bench.synthetic.scenes import IMAGE_SIZE, ScenePlan, sample_scene
    from bench.synthetic.writers import write_png

    plan = ScenePlan(targets=tuple((c, concept) for c in COLOURS), num_objects=(2, 5), distractors=BASE_PAIRS,
                     distractor_prob=0.6, min_targets=1)
    rng = np.random.default_rng([seed, 3])
    images, anns, paths = [], [], []
    for i in range(1, n + 1):
        scene = sample_scene(plan, rng)
        paths.append(out_dir / f"{i:05d}.png")
        write_png(paths[-1], scene.image)
        images.append({"id": i, "file_name": paths[-1].name, "height": IMAGE_SIZE, "width": IMAGE_SIZE})
        for o in scene.objects:
            if o.shape == concept:
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "bbox": list(o.bbox),
                             "area": o.area, "iscrowd": 0})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": concept}]}
    return coco, paths


# ----------------------------------------------------------------------------------------- models
def zero_shot_ap(model: Any, concept: str, coco: dict, paths: list[Path], batch_size: int, device: str) -> float:
    """COCO AP (0-100) of the one-phrase prompt `concept` on the evaluation scenes, scored as the benchmark scores.

    The caption is the bare concept (one phrase spanning it); detections are capped at the model's own
    per-image cap, one class, so no chunk merging happens.
    """
    images_dir = paths[0].parent
    dataset = build_detection_dataset(coco, images_dir / "coco.json", images_dir, name="selftrain-eval", split="eval")
    spans = [[(0, len(concept))]]
    chunk = PromptChunk(caption=concept, spans=spans, phrase_indices=[0],
                        positive_map=positive_map(model.tokenizer, concept, spans, max_len=model.config.max_query_len))
    task = EvalTask(metric="coco_bbox", format="coco", detections_per_image=model.postprocessor.detections_per_img)
    settings = detect_settings(task, InferenceHParams(infer_batch_size=batch_size), device)
    return evaluate_split(GLIPAdapter(model), task, dataset, settings, backend=DEFAULT_BACKEND,
                          chunks=[(chunk, [1])]).primary


def pseudo_quality(pseudo_json: Path, truth: dict[int, list[float]]) -> dict[str, float]:
    """How good the teacher's guesses for the novel phrase (phrase 0 of every caption) were.

    precision: kept novel-phrase boxes with IoU >= 0.5 to the true novel object / kept novel-phrase boxes;
    recall: captions whose novel phrase kept such a box / captions.
    """
    import torch

    from glip.ops.boxes import box_iou

    data = json.loads(Path(pseudo_json).read_text())
    first_span = {img["id"]: img["phrase_spans"][0] if img["phrase_spans"] else None for img in data["images"]}
    hits, kept, found = 0, 0, set()
    for a in data["annotations"]:
        if first_span[a["image_id"]] != a["tokens_positive"][0]:
            continue
        kept += 1
        x, y, w, h = a["bbox"]
        iou = box_iou(torch.tensor([[x, y, x + w - 1, y + h - 1]]), torch.tensor([truth[a["image_id"]]]))
        if float(iou[0, 0]) >= 0.5:
            hits += 1
            found.add(a["image_id"])
    return {"novel_boxes": kept, "novel_precision": hits / kept if kept else float("nan"),
            "novel_recall": len(found) / len(truth)}


def _subset_json(src: Path, n: int, seed: int, out: Path) -> Path:
    """n random image records (with their annotations) of a grounding json."""
    data = json.loads(Path(src).read_text())
    rng = np.random.default_rng([seed, 4])
    ids = {data["images"][int(i)]["id"] for i in rng.permutation(len(data["images"]))[:n]}
    sub = {**data, "images": [im for im in data["images"] if im["id"] in ids],
           "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    atomic_write_json(out, sub, indent=None)
    return out


def train_student(teacher: Any, train_json: Path, image_root: Path, budget: Budget, seed: int, device: str) -> Any:
    """A copy of the teacher trained further on `train_json` for budget.student_iters steps."""
    from bench.runs.train import pretrain

    student = copy.deepcopy(teacher)
    pretrain(student, [train_json], [image_root], max_iters=budget.student_iters, max_epochs=10**6, device=device,
             seed=seed, frozen_groups=budget.student_frozen_groups, batch_size=budget.batch_size, lr=budget.lr,
             lang_lr=budget.lang_lr)
    return student.eval()


def _teacher(preset: str, checkpoint: str | Path | None, budget: Budget, work: Path, device: str
             ) -> tuple[Any, Path, bool]:
    """(teacher, its checkpoint file, trained here?). Without a checkpoint: a short base-concept pretraining."""
    import torch

    from bench.runs.train import pretrain, save_adapter
    from bench.studies.selftrain.pseudo_label import load_teacher

    if checkpoint is not None:
        model, _ = load_teacher(preset, checkpoint, device=device)
        return model, Path(checkpoint), False
    log.warning("no teacher checkpoint given: pretraining one for %d steps here (a weak teacher; pass the "
                "demo's pretrained checkpoint for a meaningful comparison)", budget.teacher_iters)
    torch.manual_seed(budget.seeds[0])
    model, _ = load_teacher(preset, None, device=device)
    human, root = draw_human(budget.teacher_images, 10_000, work / "teacher_data")
    pretrain(model, [human], [root], max_iters=budget.teacher_iters, max_epochs=10**6, device=device,
             seed=budget.seeds[0], batch_size=budget.batch_size)
    path = save_adapter(model, work / "teacher.safetensors")
    return model.eval(), path, True


# ------------------------------------------------------------------------------------------ report
def seed_summary(table: Any) -> Any:
    """One row per model (and the paired differences): mean and bootstrap CI over seeds."""
    import pandas as pd

    rows = []
    cols = [c for c in ("teacher_ap", "student_ap", "control_ap", "student_minus_teacher", "student_minus_control")
            if c in table]
    for c in cols:
        values = table[c].astype(float).tolist()
        low, high = bootstrap_ci([v for v in values if np.isfinite(v)], n_resamples=CI_RESAMPLES)
        rows.append({"quantity": c, "mean": float(np.nanmean(values)), "ci95_low": low, "ci95_high": high,
                     "seeds": len(values)})
    return pd.DataFrame(rows)


def plot(table: Any, summary: Any, concept: str, path: Path) -> Path:
    """Per-seed AP of teacher / control / student with the mean and its bootstrap CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [c for c in ("teacher_ap", "control_ap", "student_ap") if c in table]
    labels = {"teacher_ap": "teacher", "control_ap": "student (human only)", "student_ap": "student (human + pseudo)"}
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, c in enumerate(models):
        ys = table[c].astype(float).to_numpy()
        ax.scatter(np.full(len(ys), i) + np.linspace(-0.12, 0.12, len(ys)), ys, color="0.45", s=18, zorder=3)
        row = summary[summary["quantity"] == c].iloc[0]
        err = None
        if np.isfinite(row["ci95_low"]):
            err = [[row["mean"] - row["ci95_low"]], [row["ci95_high"] - row["mean"]]]
        ax.errorbar([i + 0.28], [row["mean"]], yerr=err, fmt="o", color="C0", capsize=4, zorder=4)
    ax.set_xticks(range(len(models)), [labels[c] for c in models], fontsize=8)
    ax.set_ylabel(f'zero-shot AP, prompt "{concept}"')
    ax.set_title(f"Self-training on a novel shape ({len(table)} seeds; mean, 95% bootstrap CI)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------- driver
def run_experiment(
    results_dir: str | Path,
    *,
    teacher_checkpoint: str | Path | None = None,
    preset: str = "glip-synth",
    concept: str = "hexagon",
    budget: str | Budget = "quick",
    device: str = "cpu",
    work_dir: str | Path | None = None,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Run the experiment; writes selftrain.csv, selftrain_summary.csv, selftrain.json and selftrain.png
    into `results_dir` and returns {"table", "summary" (pandas), "figure", "provenance", "seconds", ...}.

    data_root: where the synthetic pretraining set was written (bench.synthetic.generate); its grounding
    json is then the human data mixed into the student's training. None: freshly drawn base-concept
    grounding scenes of the same distribution.
    provenance: per seed, the teacher checkpoint sha256 and the pseudo-label file sha256 (what a student
    record's provenance carries; bench.runs.train.pretrain takes no provenance argument, so it is returned).
    """
    import pandas as pd

    from bench.studies.selftrain.pseudo_label import merge_grounding, pseudo_label, self_training_provenance
    from bench.synthetic.concepts import NOVEL_SHAPES

    if concept not in NOVEL_SHAPES:
        raise UserError(f"concept {concept!r} is not a novel shape of the synthetic world; pick one of {NOVEL_SHAPES}")
    b = get_budget(budget)
    human_source = None
    if data_root is not None:
        from bench.synthetic.generate import pretraining_paths

        human_source = pretraining_paths(data_root)
    start = time.perf_counter()
    results_dir = Path(results_dir)
    work = Path(work_dir) if work_dir is not None else results_dir / "selftrain_work"
    teacher, ckpt, trained_here = _teacher(preset, teacher_checkpoint, b, work, device)
    info = {"preset": preset, "checkpoint": str(ckpt), "checkpoint_sha256": sha256_file(ckpt)}
    coco, eval_paths = draw_eval(concept, b.eval_images, 20_000, work / "eval")
    teacher_ap = zero_shot_ap(teacher, concept, coco, eval_paths, b.infer_batch_size, device)
    log.info("teacher zero-shot AP on %r: %.2f", concept, teacher_ap)

    rows, provenance = [], {}
    for seed in progress(b.seeds, desc="self-training seeds", total=len(b.seeds), leave=True):
        sdir = work / f"seed{seed}"
        captions, img_dir, truth = draw_unlabelled(concept, b.unlabelled_images, seed, sdir / "unlabelled")
        pseudo = sdir / "pseudo.json"
        summary = pseudo_label(teacher, captions, img_dir, pseudo, threshold=b.threshold,
                               batch_size=b.infer_batch_size, teacher_info=info, device=device)
        quality = pseudo_quality(pseudo, truth)
        n_human = max(1, round(b.human_per_pseudo * b.unlabelled_images))
        if human_source is not None:  # the teacher's own pretraining data
            human, human_root = _subset_json(human_source[0], n_human, seed, sdir / "human.json"), human_source[1]
        else:
            human, human_root = draw_human(n_human, seed, sdir / "human")
        merged, root = merge_grounding([(human, human_root, "human"), (pseudo, img_dir, "pseudo")],
                                       sdir / "train.json")
        student = train_student(teacher, merged, root, b, seed, device)
        row = {"seed": seed, "teacher_ap": teacher_ap,
               "student_ap": zero_shot_ap(student, concept, coco, eval_paths, b.infer_batch_size, device)}
        del student
        if b.control:
            control = train_student(teacher, human, human_root, b, seed, device)
            row["control_ap"] = zero_shot_ap(control, concept, coco, eval_paths, b.infer_batch_size, device)
            row["student_minus_control"] = row["student_ap"] - row["control_ap"]
            del control
        row["student_minus_teacher"] = row["student_ap"] - teacher_ap
        row.update(pseudo_boxes=summary["boxes"], pseudo_phrases_with_boxes=summary["phrases_with_boxes"], **quality)
        rows.append(row)
        provenance[f"seed{seed}"] = self_training_provenance(pseudo)["self_training"]
        log.info("seed %d: student AP %.2f (teacher %.2f), novel pseudo-box precision %.2f", seed,
                 row["student_ap"], teacher_ap, quality["novel_precision"])

    table = pd.DataFrame(rows)
    summ = seed_summary(table)
    results_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(results_dir / "selftrain.csv", index=False)
    summ.to_csv(results_dir / "selftrain_summary.csv", index=False)
    figure = plot(table, summ, concept, results_dir / "selftrain.png")
    seconds = time.perf_counter() - start
    out = {"concept": concept, "preset": preset, "budget": asdict(b), "teacher": {**info, "trained_here": trained_here},
           "rows": rows, "summary": summ.to_dict(orient="records"), "provenance": provenance, "seconds": seconds,
           "figure": str(figure)}
    atomic_write_json(results_dir / "selftrain.json", out)
    log.info("self-training experiment: %.0f s", seconds)
    return {**out, "table": table, "summary": summ, "figure": figure}


__all__ = ["BUDGETS", "Budget", "get_budget", "run_experiment"]
