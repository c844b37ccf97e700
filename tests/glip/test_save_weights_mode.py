"""save_weights gives its file the mode the umask says, as every other file the project writes."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from glip.checkpoint import save_weights


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))
        self.config = None


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_file_mode_follows_the_umask(tmp_path, monkeypatch, mask, mode):
    import glip.checkpoint as ck

    monkeypatch.setattr(ck, "config_metadata", lambda cfg: {})
    old = os.umask(mask)
    try:
        save_weights(_Tiny(), tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == mode
