"""transformers' zero-shot detectors (Grounding DINO, MM Grounding DINO, OWLv2, OWL-ViT, OmDet-Turbo) as adapters.

    adapter = build_hf_adapter("hf:/path/to/saved")   # a save_pretrained directory, loaded offline
"""

from __future__ import annotations

from bench.models.hf.loading import PREFIX, is_hf_model


def build_hf_adapter(name: str):
    """The HFAdapter of an `hf:DIR` model name (bad directory or unsupported family -> UserError)."""
    from bench.models.hf.adapter import HFAdapter
    from bench.models.hf.loading import load

    return HFAdapter(load(name))


def check_hf_inputs(name: str, regime: str, *, grounding: bool, infer_batch_size: int, world_size: int) -> None:
    """An hf:DIR run's own checks, before any compute: the directory, the family's regimes, its settings."""
    from bench.models.hf.adapter import refusal
    from bench.models.hf.loading import detect_family, model_dir
    from bench.util.errors import UserError

    why = refusal(detect_family(model_dir(name)), regime, grounding=grounding)
    if why:
        raise UserError(f"--model {name}: {why}")
    if infer_batch_size != 1:
        raise UserError(f"--model {name}: infer_batch_size must be 1 (one image per pass: batching pads "
                        f"images, which moves the numbers); got {infer_batch_size}")
    if world_size > 1:
        raise UserError(f"--model {name}: transformers detectors run in one process, not under torchrun")


__all__ = ["PREFIX", "build_hf_adapter", "check_hf_inputs", "is_hf_model"]
