"""A generative detector's folder loads only if its weights match its config (bench.models.hf.loading.load_complete)."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from bench.models import build_adapter
from bench.util.errors import UserError


def test_a_missing_weight_is_refused_by_name(tiny, tmp_path):
    import shutil

    d = tmp_path / "kosmos"
    shutil.copytree(tiny("kosmos-2"), d)
    state = load_file(d / "model.safetensors")
    dropped = sorted(state)[-1]
    save_file({k: v for k, v in state.items() if k != dropped}, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match=rf"{d / 'model.safetensors'} do not match its config.json: 1 weights missing"):
        build_adapter(f"hf:{d}")
