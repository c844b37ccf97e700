"""The family registry: every family is one module of bench/models/families/, found by name or model_type,
and a run's model config is built once (resolve), then checked and built from what the run carries."""

from __future__ import annotations

import json
import sys

import pytest

import bench.models.families
from bench.models import all_families, build_adapter, resolve_model
from bench.models.base import DetectorAdapter, ModelFamily
from bench.models.registry import family_of
from bench.testing.hf import FAMILIES as HF_FAMILIES
from bench.testing.hf import save_tiny
from bench.util.errors import UserError


def test_every_family_satisfies_the_protocol_and_declares_its_regimes():
    found = all_families()
    assert {f.name for f in found} >= {"glip", *HF_FAMILIES}
    for family in found:
        assert isinstance(family, ModelFamily)
        assert set(family.regimes) <= {"detection", "grounding"}
        for kind, regimes in family.regimes.items():  # what it declares it can run, it does not refuse
            assert all(family.refusal(r, kind) is None for r in regimes), family.name


def test_presets_go_to_glip_and_hf_directories_by_model_type(tmp_path):
    assert family_of("glip-tiny").name == "glip"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "owlvit"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert family_of(f"hf:{tmp_path}").name == "owlvit"


def test_a_new_family_is_one_module(tmp_path, monkeypatch):
    """A module added to bench.models.families is found with nothing else edited."""
    (tmp_path / "toy.py").write_text(
        "class Toy:\n    name = 'toy'\n    model_types = ('toy-detector',)\n    takes_presets = False\n"
        "    regimes = {'detection': ('zero-shot',)}\n"
        "    def model_config(self, model, overrides, checkpoint): return {'built': model}\n"
        "    def refusal(self, regime, task_kind): return None if regime == 'zero-shot' else 'toy: zero-shot only'\n"
        "    def check_run(self, config, **settings): pass\n"
        "    def build(self, config, checkpoint, text_encoder): raise NotImplementedError\n"
        "FAMILIES = (Toy(),)\n")
    monkeypatch.setattr(bench.models.families, "__path__", [*bench.models.families.__path__, str(tmp_path)])
    all_families.cache_clear()
    try:
        model_dir = tmp_path / "m"
        model_dir.mkdir()
        (model_dir / "config.json").write_text(json.dumps({"model_type": "toy-detector"}))
        (model_dir / "model.safetensors").write_bytes(b"")
        model = resolve_model(f"hf:{model_dir}")
        assert model.family.name == "toy" and model.config == {"built": f"hf:{model_dir}"}
        with pytest.raises(UserError, match="toy: zero-shot only"):
            model.check(regime="full-ft", task_kind="detection")
    finally:
        sys.modules.pop("bench.models.families.toy", None)
        all_families.cache_clear()


def test_unknown_model_type_lists_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "owlv3"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"config\.json.*'owlv3'.*owlv2"):
        resolve_model(f"hf:{tmp_path}")


def test_the_config_is_built_once_per_run(tmp_path, monkeypatch):
    """resolve builds the config; the checks and the build read the resolved one (no rebuild)."""
    import bench.models.families.glip as glip_family
    from bench.results.records import RunSpec
    from bench.runs.spec import resolve

    calls = []
    real = glip_family.model_config
    monkeypatch.setattr(glip_family, "model_config", lambda *a: calls.append(a) or real(*a))
    spec = RunSpec(model="glip-tiny", task="synth-shapes", regime="zero-shot", overrides={"num_blocks": 1})
    run = resolve(spec, check_data=False)
    run.model.check(regime="zero-shot", task_kind="detection")
    adapter = build_adapter("glip-tiny", resolved=run.model)
    assert len(calls) == 1 and adapter.module.config.num_blocks == 1
    assert isinstance(adapter, DetectorAdapter)


def test_hf_adapters_satisfy_the_protocol(tmp_path):
    adapter = resolve_model(f"hf:{save_tiny('owlvit', tmp_path / 'owl')}").build()
    assert isinstance(adapter, DetectorAdapter) and adapter.family == "owlvit"
