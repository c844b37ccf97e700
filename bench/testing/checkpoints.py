"""Random checkpoints in the official GLIP file layout (`{"model": {"module.<official key>": tensor}}`).

Every official key of a config gets a random tensor; derived buffers (relative position indices, position
ids, cell anchors) get their official values, as the real files hold them. For tests that exercise the
plumbing from an official .pth to a record; a model loaded from one is random, not a finding.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glip.anchors import cell_anchor
from glip.checkpoint import official_buffer, official_key_shapes
from glip.config import GLIPConfig

DERIVED = ("relative_position_index", "position_ids")


def write_official_checkpoint(cfg: GLIPConfig, path: str | Path, seed: int = 0) -> Path:
    """A random official-layout .pth for `cfg` at `path`."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_key_shapes(cfg).items():
        if key.endswith(DERIVED):
            state[key] = official_buffer(key, shape)
        elif key.startswith("rpn.anchor_generator.cell_anchors."):
            i = int(key.rsplit(".", 1)[1])
            state[key] = cell_anchor(cfg.anchor_strides[i], cfg.anchor_sizes[i])
        else:
            state[key] = 0.02 * torch.randn(shape, generator=g)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"module." + k: v for k, v in state.items()}, "iteration": 0}, path)
    return path
