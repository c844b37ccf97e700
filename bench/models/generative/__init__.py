"""Models that answer detection prompts in text (Florence-2, PaliGemma, Kosmos-2, Qwen2.5-VL, Qwen3-VL).

A family is one module here declaring its config.json model_types, its prompts, its answer parser with
the coordinate convention written out (COORDINATES), what it refuses and why, and (where its processor
cannot load here) how it prepares inputs. `GenerativeAdapter` runs them all under one protocol;
`FAMILIES` registers them with bench.models.registry (through bench/models/families/generative.py).
"""

from __future__ import annotations

import importlib

from bench.models.generative.family import GenerativeFamily

FAMILY_MODULES = ("florence2", "paligemma", "kosmos2", "qwen2_5_vl", "qwen3_vl")

FAMILIES: tuple[GenerativeFamily, ...] = tuple(
    GenerativeFamily(importlib.import_module(f"bench.models.generative.{name}")) for name in FAMILY_MODULES)

__all__ = ["FAMILIES", "FAMILY_MODULES", "GenerativeFamily"]
