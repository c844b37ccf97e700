"""Built models kept across the runs of a grid: one build per (model, checkpoint, overrides), reset per run.

An adapter that replaced its module or one of its parameters since it was built (a closed-set detector whose
classifier was re-sized to a task's classes, bench.models.hf.closed_set; GLIP's class-anchored prompt offsets,
bench.data.prompt_anchor) is built again: its weights no longer have the built shapes.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from bench.models import build_adapter
from bench.models.base import DetectorAdapter
from bench.models.registry import ResolvedModel


def freeze_gc_heap() -> None:
    """Move every object alive now (torch, transformers, the model: ~400k) to the collector's permanent
    generation, so the full collections that inference's bursts of detection dicts trigger walk only what
    was made since (about 0.2 s each otherwise). Called once per model build."""
    gc.collect()
    gc.freeze()


class ModelCache:
    """One built adapter per (model, checkpoint, model overrides), reset to its loaded weights for every run."""

    def __init__(self, device: str, text_encoder: str | Path | None = None) -> None:
        self.device = device
        self.text_encoder = text_encoder
        self.key: tuple | None = None
        self.adapter: DetectorAdapter | None = None
        self.state: dict[str, Any] = {}
        self.requires_grad: dict[str, bool] = {}
        self.module: Any = None  # the module as built: an adapter that replaced it (a re-sized head) is rebuilt
        self.params: dict[str, Any] = {}  # its parameters as built: one replaced (a re-sized table) rebuilds it

    def get(self, model: str, checkpoint: str | None, model_overrides: dict[str, Any], *,
            resolved: ResolvedModel | None = None) -> DetectorAdapter:
        """resolved: the run's resolved model (its config is reused, not built again)."""
        key = (model, checkpoint, repr(sorted(model_overrides.items())))
        if key != self.key or self.replaced():
            gc.unfreeze()  # the previous model's objects may sit in the permanent generation (freeze_gc_heap)
            self.adapter, self.module, self.params, self.state = None, None, {}, {}  # free the previous one first
            self.adapter = build_adapter(model, model_overrides, checkpoint, self.text_encoder, self.device,
                                         resolved=resolved)
            module = self.module = self.adapter.module
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            self.requires_grad = {n: p.requires_grad for n, p in module.named_parameters()}
            self.params = dict(module.named_parameters())
            self.key = key
            freeze_gc_heap()
        else:
            module = self.adapter.module
            with torch.no_grad():
                module.load_state_dict(self.state, strict=True)
            for n, p in module.named_parameters():
                p.requires_grad_(self.requires_grad[n])
        module.eval()
        return self.adapter

    def replaced(self) -> bool:
        """Whether the last run replaced the built module or one of its parameters."""
        module = self.adapter.module
        if module is not self.module:
            return True
        params = dict(module.named_parameters())
        return params.keys() != self.params.keys() or any(params[n] is not p for n, p in self.params.items())
