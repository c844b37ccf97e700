"""SAM 3 through `hf:DIR`: a tiny random Sam3Model saved here runs zero-shot through the CLI, and its detections
are transformers' own SAM 3 post-processing of the model's own outputs (one full forward per class); the
pre-processing arithmetic is checked against the processor's code (imported with torchvision's NMS stubbed:
the module imports it at the top, the detection path never calls it)."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest
import torch

from bench.models.sam3 import processing
from bench.results import store
from bench.tasks.registry import get_task
from bench.testing.hf import TASK, OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("sam3-data"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny("sam3", tmp_path_factory.mktemp("sam3") / "sam3")


@pytest.fixture
def sam3_image_processing(monkeypatch):
    """transformers' image_processing_sam3 module, importable without torchvision."""
    import transformers.image_processing_backends  # noqa: F401  (decides torchvision is absent before the stub)

    def no_nms(*args, **kwargs):
        raise AssertionError("the detection path runs no NMS")

    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = no_nms
    ops = types.ModuleType("torchvision.ops")
    ops.boxes = boxes
    vision = types.ModuleType("torchvision")
    vision.ops = ops
    for name, module in (("torchvision", vision), ("torchvision.ops", ops), ("torchvision.ops.boxes", boxes)):
        monkeypatch.setitem(sys.modules, name, module)
    name = "transformers.models.sam3.image_processing_sam3"
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def _reference(model_dir, data_root, cap):
    """Per image: every class through one full `model(pixel_values, input_ids)` and transformers'
    post_process_object_detection (threshold below every score), then the task's cap -> COCO dicts."""
    from transformers import AutoModel, AutoTokenizer

    from bench.models.hf.prompts import query_chunks

    image_processing = sys.modules["transformers.models.sam3.image_processing_sam3"]
    task = get_task(TASK)
    dataset = task.load(task.eval_split, data_root)
    model = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    settings = processing.PixelSettings.from_folder(model_dir)
    [(chunk, cat_ids)] = query_chunks(task, dataset, "plain")
    out = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        pixels = processing.pixel_values([image], settings)
        rows = []
        for entry, cat in zip(chunk.entries, cat_ids):
            text = tokenizer([entry], padding="max_length", max_length=32, return_tensors="pt")
            with torch.no_grad():
                outputs = model(pixel_values=pixels, **text)
            [det] = image_processing.Sam3ImageProcessor.post_process_object_detection(
                None, outputs, threshold=-1.0, target_sizes=[(image.height, image.width)])
            rows += [(s, b, cat) for s, b in zip(det["scores"].tolist(), det["boxes"].tolist())]
        rows.sort(key=lambda r: -r[0])
        out += [{"image_id": image_id, "category_id": c, "score": s, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
                for s, b, c in rows[:cap]]
    return out


def _assert_same(preds, ref, box_tol=1e-3, score_tol=1e-6):
    assert len(preds) == len(ref) > 0
    key = lambda p: (p["image_id"], -p["score"])  # noqa: E731
    for p, r in zip(sorted(preds, key=key), sorted(ref, key=key)):
        assert p["image_id"] == r["image_id"] and p["category_id"] == r["category_id"]
        assert abs(p["score"] - r["score"]) < score_tol
        assert max(abs(a - b) for a, b in zip(p["bbox"], r["bbox"])) < box_tol


def test_zero_shot_detections_are_transformers_post_processing(model_dir, data_root, tmp_path, sam3_image_processing):
    with OneThread():
        rc, records = run_cli(model_dir, data_root, tmp_path / "results")
    assert rc == 0
    [record] = records
    assert record["model"]["family"] == "sam3"
    limits = record["provenance"]["model_limits"]
    assert limits["model_class"] == "Sam3Model" and limits["pixels"]["size"] == [112, 112]
    assert limits["box_clipping"] is False and limits["infer_batch_size"] == 1
    assert record["cost"]["trainable_params"] == 0
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    preds = store.read_predictions(run_dir)
    cap = get_task(TASK).detections_per_image
    _assert_same(preds, _reference(model_dir, data_root, cap))
    assert any(p["bbox"][0] + p["bbox"][2] > 0 for p in preds)


def test_a_batch_of_4_gives_the_detections_of_batch_1(model_dir, data_root, tmp_path):
    with OneThread():
        rc1, [one] = run_cli(model_dir, data_root, tmp_path / "one")
        rc4, [four] = run_cli(model_dir, data_root, tmp_path / "four", "--set", "infer_batch_size=4")
    assert rc1 == rc4 == 0
    assert four["provenance"]["model_limits"]["infer_batch_size"] == 4 and four["hparams"]["infer_batch_size"] == 4
    p1, p4 = (store.read_predictions(next((tmp_path / d / "runs").iterdir())) for d in ("one", "four"))
    _assert_same(p4, p1, box_tol=1e-3, score_tol=1e-5)


@pytest.mark.parametrize(("task", "regime", "message"), [
    ("synth-shapes", "full-ft", "sam3 cannot run full-ft: transformers' Sam3Model computes no detection loss"),
    ("synth-grounding", "zero-shot", "sam3 cannot run phrase grounding: it takes one short concept per forward"),
])
def test_training_and_grounding_are_refused_with_the_reason(task, regime, message, model_dir, data_root, tmp_path,
                                                            capsys):
    extra = () if regime == "zero-shot" else ("--shots", "1", "--seeds", "3")
    rc, records = run_cli(model_dir, data_root, tmp_path / "results", *extra, task=task, regime=regime)
    assert rc == 2 and records == []
    assert message in capsys.readouterr().err


def test_the_pixel_settings_are_the_processors_defaults(sam3_image_processing, tmp_path):
    """No preprocessor_config.json: the class defaults, which must be Sam3ImageProcessor's."""
    from transformers.image_processing_utils import BaseImageProcessor

    cls = sam3_image_processing.Sam3ImageProcessor
    s = processing.PixelSettings.from_folder(tmp_path)
    assert (s.height, s.width) == (cls.size["height"], cls.size["width"]) == (1008, 1008)
    assert list(s.mean) == list(cls.image_mean) and list(s.std) == list(cls.image_std) == [0.5, 0.5, 0.5]
    assert s.rescale_factor == BaseImageProcessor.rescale_factor
    assert int(cls.resample) == processing.BILINEAR
    assert cls.do_resize and cls.do_rescale and cls.do_normalize and cls.do_convert_rgb and not cls.do_pad


def test_normalisation_is_the_processors_fused_rescale_and_normalise(sam3_image_processing):
    """TorchvisionBackend fuses the rescale into mean and std (_fuse_mean_std_and_rescale_factor), then
    normalizes in float32: the same numbers as pixel_values' arithmetic."""
    from PIL import Image
    from transformers.image_processing_backends import TorchvisionBackend

    s = processing.PixelSettings(8, 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1 / 255)
    image = Image.fromarray((torch.arange(8 * 8 * 3) % 256).to(torch.uint8).reshape(8, 8, 3).numpy())
    mean, std, rescale = TorchvisionBackend._fuse_mean_std_and_rescale_factor.__wrapped__(
        None, do_normalize=True, image_mean=s.mean, image_std=s.std, do_rescale=True, rescale_factor=s.rescale_factor)
    assert rescale is False
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()  # [3, 8, 8]: 8 x 8 needs no resize
    expected = (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)  # tvF.normalize: sub mean, div std
    assert torch.equal(processing.pixel_values([image], s)[0], expected)


def test_text_is_padded_to_32_tokens_as_the_processor_does(model_dir):
    from transformers import AutoTokenizer
    from transformers.models.sam3.processing_sam3 import Sam3Processor

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    fake = types.SimpleNamespace(tokenizer=tokenizer)
    fake._resolve_text_prompts = lambda text, boxes: Sam3Processor._resolve_text_prompts(fake, text, boxes)
    theirs = Sam3Processor.__call__(fake, text=["red circle"], return_tensors="pt")
    ours = tokenizer(["red circle"], padding="max_length", max_length=processing.TEXT_LENGTH, truncation=True,
                     return_tensors="pt")
    assert theirs["input_ids"].shape[-1] == processing.TEXT_LENGTH == 32
    assert torch.equal(theirs["input_ids"], ours["input_ids"])
    assert torch.equal(theirs["attention_mask"], ours["attention_mask"])


def test_resize_keeps_torchvisions_rounding_on_either_path(monkeypatch):
    """The float path (no AVX2) rounds back to uint8; both paths stay within one grey level of each other."""
    image = (torch.arange(3 * 20 * 30) % 251).to(torch.uint8).reshape(3, 20, 30)
    native = processing.resize_uint8(image, 12, 12)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    cast = processing.resize_uint8(image, 12, 12)
    assert native.dtype == cast.dtype == torch.uint8 and native.shape == (3, 12, 12)
    assert (native.int() - cast.int()).abs().max() <= 1
