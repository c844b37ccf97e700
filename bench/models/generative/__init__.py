"""Models that answer detection prompts in text (Florence-2, PaliGemma, Kosmos-2, Qwen2.5-VL, Qwen3-VL).

A family is one module here declaring its config.json model_types, its prompts, its answer parser with
the coordinate convention written out (COORDINATES), what it refuses, and (where its processor cannot
load here) how it prepares inputs. `GenerativeAdapter` runs them all under one protocol.

    adapter = build_generative_adapter("hf:/path/to/saved")   # a save_pretrained directory, offline
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from bench.util.errors import UserError

FAMILY_MODULES = ("florence2", "paligemma", "kosmos2", "qwen2_5_vl", "qwen3_vl")


def families() -> dict[str, ModuleType]:
    """config.json model_type -> family module."""
    out: dict[str, ModuleType] = {}
    for name in FAMILY_MODULES:
        module = importlib.import_module(f"bench.models.generative.{name}")
        out.update({t: module for t in module.MODEL_TYPES})
    return out


def family_of(name: str) -> ModuleType | None:
    """The family module of an `hf:DIR` model whose config.json names a text-answering family, else None."""
    from bench.models.generative.loading import model_type
    from bench.models.hf.loading import PREFIX

    if not name.startswith(PREFIX):
        return None
    config = Path(name[len(PREFIX):]).expanduser() / "config.json"
    if not config.is_file():
        return None
    return families().get(model_type(config.parent))


def build_generative_adapter(name: str):
    from bench.models.generative.adapter import GenerativeAdapter
    from bench.models.generative.loading import load

    family = family_of(name)
    if family is None:
        raise UserError(f"--model {name}: not a text-answering model family ({sorted(families())})")
    return GenerativeAdapter(load(name, family))


def check_generative_inputs(name: str, regime: str, *, grounding: bool, infer_batch_size: int,
                            world_size: int) -> None:
    """Refuse, before any compute, what a text-answering model cannot run."""
    from bench.models.generative.adapter import refusal
    from bench.models.hf.loading import model_dir

    family = family_of(str(name))
    model_dir(name)  # the directory holds weights
    why = refusal(family, regime, grounding=grounding)
    if why:
        raise UserError(f"--model {name}: {why}")
    if infer_batch_size != 1:
        raise UserError(f"--model {name}: infer_batch_size must be 1 (one image and prompt per generation); "
                        f"got {infer_batch_size}")
    if world_size > 1:
        raise UserError(f"--model {name}: text-answering models run in one process, not under torchrun")


__all__ = ["FAMILY_MODULES", "build_generative_adapter", "check_generative_inputs", "families", "family_of"]
