"""GLIPConfig presets: lookup, overrides, validation, and the late/deep ablation as one replace()."""

import subprocess
import sys
from dataclasses import FrozenInstanceError, replace

import pytest

from glip.config import PRESETS, GLIPConfig, get_preset, register_preset


def test_all_presets_build_and_are_named():
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.name == name


def test_official_numbers_of_the_real_presets():
    t, ta, large = get_preset("glip-t"), get_preset("glip-t-a"), get_preset("glip-l")
    assert (t.swin_embed_dim, t.swin_depths, t.swin_num_heads, t.swin_window_size) == (96, (2, 2, 6, 2), (3, 6, 12, 24), 7)
    assert (large.swin_embed_dim, large.swin_depths, large.swin_num_heads, large.swin_window_size) == (
        192, (2, 2, 18, 2), (6, 12, 24, 48), 12)
    assert (t.num_blocks, large.num_blocks, ta.num_blocks) == (6, 8, 6)
    assert (t.fusion, ta.fusion, large.fusion) == ("deep", "late", "deep")
    assert (t.fusion_embed_dim, t.fusion_heads, t.fpn_channels, t.max_query_len) == (2048, 8, 256, 256)
    assert t.layer_scale_init == pytest.approx(1 / 6) and large.layer_scale_init == pytest.approx(1 / 8)
    assert t.pixel_mean == (103.530, 116.280, 123.675) and t.pixel_std == (57.375, 57.120, 58.395)
    assert (t.min_size, t.max_size, t.size_divisibility) == (800, 1333, 32)
    assert large.frozen_stages == 2 and t.frozen_stages == -1


@pytest.mark.parametrize("name", ["glip-t", "glip-t-a", "glip-l"])
def test_released_presets_keep_every_from_scratch_aid_off(name):
    """The aids glip-synth uses to learn from scratch must never change what an official checkpoint computes."""
    cfg = get_preset(name)
    assert (cfg.backbone, cfg.soft_token_loss_weight, cfg.dcn_offset_init, cfg.dcn_coarse_offsets,
            cfg.fusion_text_gamma_init) == ("swin", 0.0, "default", "flat", None)


def test_late_fusion_is_one_replace():
    t = get_preset("glip-t")
    late = replace(t, fusion="late")
    assert late.fusion == "late" and not late.dot_product_uses_fused_text
    assert t.dot_product_uses_fused_text
    # GLIP-T (A) differs from GLIP-T only in fusion (and its name)
    assert replace(late, name="glip-t-a") == get_preset("glip-t-a")


def test_unknown_preset_names_the_closest_and_all_valid():
    with pytest.raises(KeyError) as e:
        get_preset("glip-tt")
    msg = str(e.value)
    assert "glip-t" in msg and "Did you mean" in msg and "glip-tiny" in msg


def test_overrides_and_unknown_field():
    assert get_preset("glip-tiny", num_blocks=3).num_blocks == 3
    with pytest.raises(TypeError, match="num_blockz"):
        get_preset("glip-tiny", num_blockz=3)


@pytest.mark.parametrize("field,value,match", [
    ("fusion", "early", "fusion"),
    ("dcn_coarse_offsets", "bilinear", "dcn_coarse_offsets"),
    ("dcn_offset_init", "small", "dcn_offset_init"),
    ("num_blocks", 0, "num_blocks"),
    ("fusion_heads", 7, "fusion_embed_dim"),
    ("group_norm_groups", 24, "group_norm_groups"),
    ("max_query_len", 600, "max_query_len"),
    ("min_size", 2000, "min_size"),
])
def test_validation_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(get_preset("glip-t"), **{field: value})


def test_frozen():
    cfg = GLIPConfig()
    with pytest.raises(FrozenInstanceError):
        cfg.num_blocks = 3  # type: ignore[misc]


def test_glip_alone_ships_the_real_presets_and_the_test_toy():
    """glip knows no harness: a fresh interpreter that imports only glip sees no glip-synth."""
    out = subprocess.run([sys.executable, "-c", "import glip; print(sorted(glip.PRESETS))"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['glip-l', 'glip-t', 'glip-t-a', 'glip-tiny']"


def test_a_registered_preset_resolves_like_a_built_in_one():
    def factory():
        return replace(get_preset("glip-tiny"), name="test-registered")

    try:
        register_preset("test-registered", factory)
        register_preset("test-registered", factory)  # the same factory again: a no-op
        assert get_preset("test-registered", num_blocks=3).num_blocks == 3
        with pytest.raises(ValueError, match="already registered"):
            register_preset("test-registered", lambda: get_preset("glip-t"))
        with pytest.raises(ValueError, match="already registered"):
            register_preset("glip-t", factory)
    finally:
        PRESETS.pop("test-registered", None)
