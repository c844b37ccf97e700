"""The registry of model families: a model name -> its family -> its config (once per spec) -> its adapter.

Adding a family is adding one module to bench/models/families/ that defines

    FAMILIES: tuple[ModelFamily, ...]   # bench.models.base.ModelFamily: name, model_types, regimes, ...

The registry imports every module of that package, so nothing else changes: no list to extend, no branch
on the family anywhere. A name with the `hf:` prefix names a save_pretrained directory; its family is the
one declaring config.json's `model_type`. Any other name is a preset of the family with `takes_presets`
(GLIP). `resolve_model` builds the model's config once; the resolved run carries it, its checks and its
build read it.

    model = resolve_model("hf:/models/owlv2", {}, None)   # family + config; bad input -> UserError
    model.check(regime="zero-shot", task_kind="detection", text_encoder=None, infer_batch_size=1, world_size=1)
    adapter = model.build(text_encoder=None, device="cuda")
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.models.base import INIT_SEED, DetectorAdapter, ModelFamily
from bench.models.hf.loading import is_hf_model, model_dir
from bench.util.errors import UserError, unknown_name


@functools.cache
def all_families() -> tuple[ModelFamily, ...]:
    """Every family declared in bench/models/families/, in module-name order; duplicates are an error."""
    import bench.models.families as package

    found: list[ModelFamily] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += list(getattr(module, "FAMILIES", ()))
    names = [f.name for f in found]
    types = [t for f in found for t in f.model_types]
    if len(set(names)) != len(names) or len(set(types)) != len(types):
        raise RuntimeError(f"two model families share a name or a model_type: {names}, {types}")
    if sum(f.takes_presets for f in found) > 1:
        raise RuntimeError("more than one model family takes preset names")
    return tuple(found)


def family_of_type(model_type: Any, where: Path) -> ModelFamily:
    """The family declaring config.json's `model_type` (unknown -> UserError listing the supported ones)."""
    for family in all_families():
        if model_type in family.model_types:
            return family
    supported = [t for f in all_families() for t in f.model_types]
    raise unknown_name(f"transformers detector family (model_type in {where})", str(model_type), supported)


def read_model_type(folder: Path) -> Any:
    """config.json's model_type of a save_pretrained directory."""
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{folder / 'config.json'}: unreadable ({e})") from None


def family_of(model: str) -> ModelFamily:
    """The family of a model name: an hf:DIR by its config.json model_type, anything else a preset."""
    if is_hf_model(model):
        folder = model_dir(model)
        return family_of_type(read_model_type(folder), folder / "config.json")
    return next(f for f in all_families() if f.takes_presets)


@dataclass(frozen=True)
class ResolvedModel:
    """A model name looked up: its family and its config, built once; everything later reads this."""

    name: str
    family: ModelFamily
    config: Any
    overrides: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None

    def check(self, *, regime: str, task_kind: str, text_encoder: str | Path | None = None,
              infer_batch_size: int = 1, world_size: int = 1) -> None:
        """Refuse, before any compute, what this model cannot run (UserError naming the model and why)."""
        why = self.family.refusal(regime, task_kind)
        if why:
            raise UserError(f"--model {self.name}: {why}")
        self.family.check_run(self.config, text_encoder=text_encoder, infer_batch_size=infer_batch_size,
                              world_size=world_size)

    def build(self, text_encoder: str | Path | None = None, device: str = "cpu") -> DetectorAdapter:
        """The adapter, its random init (where no weights set it) the same in every process and run."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            adapter = self.family.build(self.config, self.checkpoint, text_encoder)
        adapter.module.to(device)
        return adapter


def resolve_model(name: str, overrides: Mapping[str, Any] | None = None, checkpoint: str | None = None
                  ) -> ResolvedModel:
    """`name`'s family and config (a bad name, override or checkpoint -> UserError); no weights are read."""
    family = family_of(name)
    overrides = dict(overrides or {})
    return ResolvedModel(name, family, family.model_config(name, overrides, checkpoint), overrides, checkpoint)
