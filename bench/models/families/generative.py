"""Models that answer in text (bench.models.generative): Florence-2, PaliGemma, Kosmos-2, Qwen2.5-VL, Qwen3-VL."""

from bench.models.generative import FAMILIES

__all__ = ["FAMILIES"]
