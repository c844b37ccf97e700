"""transformers' zero-shot detectors (Grounding DINO, MM Grounding DINO, OWLv2, OWL-ViT, OmDet-Turbo) as adapters.

Their families (what each can run, its refusals) are declared in bench/models/families/; this package
is the shared machinery: loading (loading.py), prompts, outputs, the adapter and training.

    adapter = build_hf_adapter("hf:/path/to/saved")   # a save_pretrained directory, loaded offline
"""

from __future__ import annotations

from bench.models.hf.loading import PREFIX, is_hf_model


def build_hf_adapter(name: str):
    """The HFAdapter of an `hf:DIR` model name (bad directory or unsupported family -> UserError)."""
    from bench.models.hf.adapter import HFAdapter
    from bench.models.hf.loading import load

    return HFAdapter(load(name))


__all__ = ["PREFIX", "build_hf_adapter", "is_hf_model"]
