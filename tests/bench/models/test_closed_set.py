"""The fully supervised baseline: a closed-set transformers detector (tiny random RT-DETRv2 / D-FINE, saved with
save_pretrained) trained with full-ft on a task's whole train split through the CLI, shown on the leaderboard;
its detections equal transformers' own post-processing; what needs a prompt is refused before any compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main as cli_main
from bench.models.base import DetectSettings, detect_dicts
from bench.models.cache import ModelCache
from bench.models.hf.closed_set import ClassHead, head_columns
from bench.models.registry import resolve_model
from bench.tasks.registry import get_task
from bench.testing.hf import CLOSED_SET, OneThread, make_data, run_cli, save_tiny

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart")  # synth-shapes' classes
BUDGET = ("--set", "max_epochs=3", "--set", "lr=0.001")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


@pytest.fixture(scope="module")
def rtdetr(tmp_path_factory):
    return save_tiny("rt_detr_v2", tmp_path_factory.mktemp("rtdetr") / "m")


@pytest.mark.parametrize("model_type", CLOSED_SET)
def test_full_ft_on_the_whole_train_split_writes_a_record_the_leaderboard_shows(model_type, data_root, tmp_path,
                                                                                 capsys):
    model_dir = save_tiny(model_type, tmp_path / model_type)
    with OneThread():
        rc, records = run_cli(model_dir, data_root, tmp_path / "results", "--shots", "all", "--seeds", "3", *BUDGET,
                              regime="full-ft")
    assert rc == 0
    [record] = records
    assert record["model"]["family"] == "closed-set" and record["spec"]["shots"] is None
    assert record["fewshot"]["train_source"] == "full"
    train = get_task("synth-shapes").load("train", data_root)
    assert record["fewshot"]["train_image_ids"] == sorted(train.image_ids)  # the whole split
    losses = record["training"]["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert len(record["training"]["history"]) == 3  # early stopping scored the val split every epoch
    assert record["cost"]["trainable_params"] == record["cost"]["total_params"]
    head = record["provenance"]["classifier"]  # the checkpoint's labels a, b, c do not fit: re-headed, said so
    assert head["kept_from_checkpoint"] is False and head["task_classes"] == len(SHAPES)
    assert head["checkpoint_classes"] == 3 and head["seed"] == 0
    assert head["reinitialised"] and all("class" in k or "score_head" in k for k in head["reinitialised"])
    assert record["provenance"]["captions"] == [list(SHAPES)]
    capsys.readouterr()
    assert cli_main(["leaderboard", "--results", str(tmp_path / "results")]) == 0
    board = (tmp_path / "results" / "LEADERBOARD.md").read_text()
    [row] = [line for line in board.splitlines() if f"hf:{model_dir}" in line]
    assert "| full-ft | all |" in row


def test_a_grid_rebuilds_the_re_headed_model_so_every_run_starts_the_same(rtdetr, data_root, tmp_path):
    """Two seeds in one process (the model cache rebuilds the re-headed model) give the records of each seed
    run alone."""
    with OneThread():
        rc, both = run_cli(rtdetr, data_root, tmp_path / "both", "--shots", "all", "--seeds", "3,30", *BUDGET,
                           regime="full-ft")
        assert rc == 0
        for record in both:
            rc, [alone] = run_cli(rtdetr, data_root, tmp_path / f"alone{record['spec']['seed']}", "--shots", "all",
                                  "--seeds", str(record["spec"]["seed"]), *BUDGET, regime="full-ft")
            assert rc == 0
            assert alone["training"]["epoch_losses"] == record["training"]["epoch_losses"]
            assert alone["metrics"]["values"] == record["metrics"]["values"]


def test_the_model_cache_keeps_an_adapter_whose_module_is_unchanged(rtdetr):
    cache = ModelCache("cpu")
    name = f"hf:{rtdetr}"
    first = cache.get(name, None, {})
    assert cache.get(name, None, {}) is first  # nothing replaced: reset in place
    first.module = type(first.module)(first.model)  # what re-heading does
    assert cache.get(name, None, {}) is not first


def test_a_checkpoint_whose_labels_cover_the_task_keeps_its_classifier(data_root, tmp_path):
    labels = ("Heart", "dog", *reversed(SHAPES[:-1]))  # every class, other order and case, and one more
    model_dir = save_tiny("rt_detr_v2", tmp_path / "fits", labels=labels)
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results", "--shots", "1", "--seeds", "3",
                               "--set", "max_epochs=1", regime="full-ft")
    assert rc == 0
    assert record["provenance"]["classifier"] == {"kept_from_checkpoint": True}
    assert head_columns(SHAPES, dict(enumerate(labels))) == (8, 7, 6, 5, 4, 3, 2, 0)
    assert head_columns(SHAPES, {0: "circle"}) is None
    assert head_columns(["a"], {0: "a", 1: "A"}) is None  # ambiguous labels do not fit


class Images:
    """Two random images of different sizes (the boxes scale per image)."""

    image_ids = [1, 2]
    sizes = {1: (90, 60), 2: (50, 80)}

    def load_image(self, image_id: int) -> Image.Image:
        rng = np.random.default_rng(image_id)
        w, h = self.sizes[image_id]
        return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_detections_equal_transformers_post_processing(rtdetr, monkeypatch):
    """Top num_queries (query, class) pairs with sigmoid scores, boxes in pixels: transformers'
    post_process_object_detection(threshold=0) on the same outputs, then clipped to the image. Three boxes
    of every image are moved across its border, so the clipping is exercised."""
    adapter = resolve_model(f"hf:{rtdetr}").build()
    forward = adapter.model.forward

    def crossing(**inputs):
        out = forward(**inputs)
        out.pred_boxes[:, :3] = torch.tensor([[0.02, 0.5, 0.2, 0.3], [0.9, 0.95, 0.4, 0.3], [0.5, 0.5, 1.2, 0.2]])
        return out

    monkeypatch.setattr(adapter.model, "forward", crossing)
    queries, ids = adapter.model.config.num_queries, [11, 12, 13]
    chunk = (ClassHead(("a", "b", "c"), (0, 1, 2)), ids)
    data = Images()
    ours = detect_dicts(adapter, data, [chunk], DetectSettings(per_chunk_cap=queries, per_image_cap=queries, batch_size=2))
    images = [data.load_image(i) for i in data.image_ids]
    with torch.no_grad():
        out = adapter.model(**adapter.pixel_inputs(images))
    theirs = adapter.image_processor.post_process_object_detection(
        out, threshold=0.0, target_sizes=[(im.height, im.width) for im in images])
    for image_id, image, ref in zip(data.image_ids, images, theirs):
        mine = [p for p in ours if p["image_id"] == image_id]
        assert len(mine) == len(ref["scores"]) == queries
        boxes = ref["boxes"].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.height)
        xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (p["bbox"] for p in mine)])
        assert torch.allclose(torch.tensor([p["score"] for p in mine]), ref["scores"], atol=1e-6)
        assert [p["category_id"] for p in mine] == [ids[int(c)] for c in ref["labels"]]
        assert torch.allclose(xyxy, boxes, atol=1e-4)
        assert (boxes != ref["boxes"]).any()  # clipping moved a box


@pytest.mark.parametrize(("task", "regime", "message"), [
    ("synth-shapes", "zero-shot", "closed-set cannot run zero-shot: a closed-set detector cannot read a prompt"),
    ("synth-shapes", "prompt-tuning", "closed-set cannot run prompt-tuning: a closed-set detector cannot read a prompt"),
    ("synth-shapes", "linear-probe", "closed-set cannot run linear-probe: a closed-set detector cannot read a prompt"),
    ("synth-grounding", "zero-shot", "closed-set cannot run phrase grounding: a closed-set detector cannot read"),
])
def test_what_needs_a_prompt_is_refused_before_any_compute(task, regime, message, rtdetr, data_root, tmp_path,
                                                           capsys):
    extra = () if regime == "zero-shot" else ("--shots", "1", "--seeds", "3")
    rc, records = run_cli(rtdetr, data_root, tmp_path / "results", *extra, task=task, regime=regime)
    assert rc == 2 and records == []
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists()


def test_model_settings_it_has_not_are_refused(rtdetr, data_root, tmp_path, capsys):
    rc, _ = run_cli(rtdetr, data_root, tmp_path / "r", "--shots", "1", "--seeds", "3", "--set", "fusion=late",
                    regime="full-ft")
    assert rc == 2 and "GLIP model fields ['fusion'] do not apply" in capsys.readouterr().err
    rc, _ = run_cli(rtdetr, data_root, tmp_path / "r", "--shots", "1", "--seeds", "3", "--set", "protocol=published",
                    regime="full-ft")
    assert rc == 2 and "closed-set has no protocol=published" in capsys.readouterr().err


def test_a_task_that_trains_on_sampled_captions_is_refused_by_name(rtdetr):
    """OV-LVIS trains on per-image sampled captions (train_prompt); the closed-set adapter builds none."""
    from bench.results.records import RunSpec
    from bench.runs.spec import resolve
    from bench.util.errors import UserError

    spec = RunSpec(model=f"hf:{rtdetr}", task="ov-lvis-minival", regime="full-ft", shots=1, seed=3, split="minival")
    with pytest.raises(UserError, match="closed-set cannot train on task ov-lvis-minival.*reads no captions"):
        resolve(spec, check_data=False)
