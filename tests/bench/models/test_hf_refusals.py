"""What an hf:DIR model cannot do is refused before any compute, by name and reason; grounding where it can."""

from __future__ import annotations

import json
import sys

import pytest

from bench.models.hf.loading import check_loadable, detect_family
from bench.testing.hf import OneThread, make_data, run_cli, save_tiny
from bench.util.errors import UserError


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-models")
    return {f: save_tiny(f, root / f) for f in ("grounding-dino", "owlv2")}


@pytest.mark.parametrize(("family", "task", "regime", "message"), [
    ("owlv2", "synth-shapes", "full-ft",
     "owlv2 cannot run full-ft: its transformers class computes no training loss from labels; only zero-shot"),
    ("grounding-dino", "synth-shapes", "linear-probe",
     "grounding-dino cannot run linear-probe: only full-ft is defined for transformers detectors"),
    ("owlv2", "synth-grounding", "zero-shot", "owlv2 cannot run phrase grounding: its text input is one independent "
     "query per class"),
])
def test_refused_before_any_compute(family, task, regime, message, models, data_root, tmp_path, capsys):
    extra = () if regime == "zero-shot" else ("--shots", "1", "--seeds", "3")
    rc, records = run_cli(models[family], data_root, tmp_path / "results", *extra, task=task, regime=regime)
    assert rc == 2 and records == []
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists()


def test_settings_a_transformers_model_has_not_are_refused(models, data_root, tmp_path, capsys):
    rc, _ = run_cli(models["owlv2"], data_root, tmp_path / "r", "--set", "fusion=late")
    assert rc == 2 and "GLIP model fields ['fusion'] do not apply to a transformers detector" in capsys.readouterr().err
    rc, _ = run_cli(models["grounding-dino"], data_root, tmp_path / "r", "--set", "infer_batch_size=2")
    assert rc == 2 and "infer_batch_size must be 1 for grounding-dino" in capsys.readouterr().err


def test_unknown_family_names_the_file_and_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "owlv3"}))
    with pytest.raises(UserError, match=r"config\.json.*'owlv3'.*owlv2"):
        detect_family(tmp_path)


def test_missing_directory_says_how_to_make_one(data_root, tmp_path, capsys):
    rc, _ = run_cli(tmp_path / "nowhere", data_root, tmp_path / "r")
    err = capsys.readouterr().err
    assert rc == 2 and "no such directory" in err and "save_pretrained" in err


def test_timm_backbone_is_refused_when_timm_cannot_load(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "omdet-turbo", "use_timm_backbone": True,
                                                      "backbone": "swin_tiny_patch4_window7_224"}))
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError, as here
    with pytest.raises(UserError, match="swin_tiny_patch4_window7_224.*torchvision"):
        check_loadable(tmp_path, detect_family(tmp_path))


def test_grounding_dino_grounds_the_synthetic_captions(models, data_root, tmp_path):
    with OneThread():
        rc, records = run_cli(models["grounding-dino"], data_root, tmp_path / "results", task="synth-grounding")
    assert rc == 0
    [record] = records
    assert record["task"]["metric"] == "flickr_recall"
    assert set(record["metrics"]["values"]) >= {"R@1", "R@5", "R@10"}
    assert record["provenance"]["num_prompt_chunks"] is None


def test_a_center_crop_that_cuts_the_image_is_refused():
    from types import SimpleNamespace

    from bench.models.hf.loading import check_crop

    check_crop("hf:x", SimpleNamespace(do_center_crop=True, size={"height": 768, "width": 768},
                                       crop_size={"height": 768, "width": 768}))
    check_crop("hf:x", SimpleNamespace(do_center_crop=False, size={"shortest_edge": 768}, crop_size=None))
    with pytest.raises(UserError, match="center-crops"):
        check_crop("hf:x", SimpleNamespace(do_center_crop=True, size={"shortest_edge": 768},
                                           crop_size={"height": 768, "width": 768}))
