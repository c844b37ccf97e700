"""GLIP behind the DetectorAdapter seam: built by build_adapter, satisfying the protocol, refusing what it cannot do."""

from __future__ import annotations

import pytest

from bench.models import DetectorAdapter, DetectSettings, GLIPAdapter, build_adapter
from bench.models.base import detect_dicts
from bench.util.errors import UserError


def test_build_adapter_gives_a_glip_adapter_with_its_parameter_groups():
    adapter = build_adapter("glip-tiny", {"num_blocks": 1})
    assert isinstance(adapter, GLIPAdapter) and isinstance(adapter, DetectorAdapter)
    assert adapter.family == "glip" and adapter.module.config.num_blocks == 1
    assert adapter.refuses("full-ft") is None
    groups = adapter.parameter_groups()
    assert groups["prompt"] == ["prompt_offset"] and set(groups) >= {"backbone", "language", "head"}
    with pytest.raises(UserError, match="glip-tiny"):
        build_adapter("glip-tinny")
    with pytest.raises(ValueError, match="caps merged detections at the per-chunk cap"):
        detect_dicts(adapter, None, [], DetectSettings(per_chunk_cap=4, per_image_cap=3))
