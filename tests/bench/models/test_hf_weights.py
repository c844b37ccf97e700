"""An hf:DIR model loads only if its weights match its config: missing, unexpected, truncated or pickled
weights are refused by name before any compute."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
from safetensors.torch import load_file

from bench.models.hf.loading import load
from bench.testing.hf import save_tiny
from bench.util.errors import UserError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-models")
    return {f: save_tiny(f, root / f) for f in ("grounding-dino", "owlv2")}


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_a_matching_folder_loads(models):
    assert load(f"hf:{models['owlv2']}").model is not None


def test_another_models_weights_are_refused_with_the_counts(models, tmp_path):
    """A Grounding DINO folder holding OWLv2's weights (the issue's probe)."""
    d = _copy(models["grounding-dino"], tmp_path / "mixed")
    shutil.copy(models["owlv2"] / "model.safetensors", d / "model.safetensors")
    with pytest.raises(UserError) as e:
        load(f"hf:{d}")
    msg = str(e.value)
    assert f"{d / 'model.safetensors'} do not match its config.json" in msg and "random weights" in msg, msg
    n_owl = len(load_file(models["owlv2"] / "model.safetensors"))
    assert f"{n_owl} unexpected" in msg and "weights missing" in msg


def test_a_truncated_safetensors_is_refused_by_name(models, tmp_path):
    d = _copy(models["owlv2"], tmp_path / "cut")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match=rf"cannot load its weights from {d / 'model.safetensors'} \(SafetensorError"):
        load(f"hf:{d}")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickle_payload_bin_is_refused_and_not_run(models, tmp_path):
    d = _copy(models["owlv2"], tmp_path / "pickle")
    marker = tmp_path / "RAN"
    state = dict(load_file(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({**state, "payload": _Payload(marker)}, f)
    with pytest.raises(UserError, match=rf"cannot load its weights from {d / 'pytorch_model.bin'} \(UnpicklingError"):
        load(f"hf:{d}")
    assert not marker.exists()
