"""Swin + FPN: output levels and strides, official parameter counts, FPN arithmetic, DropBlock, freezing."""

import pytest
import torch
import torch.nn.functional as F

from glip.backbone import DropBlock2D, SwinFPN
from glip.config import get_preset


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SwinFPN(get_preset("glip-tiny")).eval()


def test_five_levels_with_strides_8_to_128(tiny):
    x = torch.randn(2, 3, 64, 96)
    feats = tiny(x)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 12), (2, 32, 4, 6), (2, 32, 2, 3), (2, 32, 1, 2),
                                               (2, 32, 1, 1)]


def test_unpadded_input_is_rejected(tiny):
    with pytest.raises(ValueError, match="multiple of 32"):
        tiny(torch.randn(1, 3, 60, 96))


@pytest.mark.parametrize("preset,body,fpn", [("glip-t", 27.52e6, 3.30e6), ("glip-l", 195.2e6, 3.64e6)])
def test_official_parameter_counts(preset, body, fpn):
    with torch.device("meta"):
        m = SwinFPN(get_preset(preset))
    n_body = sum(p.numel() for p in m.body.parameters())
    n_fpn = sum(p.numel() for p in m.fpn.parameters())
    # counted from the official shapes: Swin-T 27.52 M, Swin-L 195.2 M
    assert n_body == pytest.approx(body, rel=2e-3)
    assert n_fpn == pytest.approx(fpn, rel=2e-3)  # FPN (T) 3.30 M


def test_fpn_matches_a_direct_recomputation(tiny):
    """Lateral 1x1, nearest top-down, 3x3 outputs, P6 = conv(P5 output), P7 = conv(relu(P6))."""
    torch.manual_seed(1)
    fpn = tiny.fpn
    c3, c4, c5 = torch.randn(1, 32, 8, 12), torch.randn(1, 64, 4, 6), torch.randn(1, 128, 2, 3)
    p3, p4, p5, p6, p7 = fpn([c3, c4, c5])
    i5 = F.conv2d(c5, fpn.fpn_inner4.weight, fpn.fpn_inner4.bias)
    i4 = F.conv2d(c4, fpn.fpn_inner3.weight, fpn.fpn_inner3.bias) + i5.repeat_interleave(2, 2).repeat_interleave(2, 3)
    i3 = F.conv2d(c3, fpn.fpn_inner2.weight, fpn.fpn_inner2.bias) + i4.repeat_interleave(2, 2).repeat_interleave(2, 3)
    ref5 = F.conv2d(i5, fpn.fpn_layer4.weight, fpn.fpn_layer4.bias, padding=1)
    torch.testing.assert_close(p5, ref5)
    torch.testing.assert_close(p4, F.conv2d(i4, fpn.fpn_layer3.weight, fpn.fpn_layer3.bias, padding=1))
    torch.testing.assert_close(p3, F.conv2d(i3, fpn.fpn_layer2.weight, fpn.fpn_layer2.bias, padding=1))
    ref6 = F.conv2d(ref5, fpn.top_blocks.p6.weight, fpn.top_blocks.p6.bias, stride=2, padding=1)
    torch.testing.assert_close(p6, ref6)
    torch.testing.assert_close(p7, F.conv2d(F.relu(ref6), fpn.top_blocks.p7.weight, fpn.top_blocks.p7.bias,
                                            stride=2, padding=1))


def test_stage_outputs_pass_the_official_output_norms(tiny):
    """C3..C5 are Swin stage outputs (before downsampling) through LayerNorms norm1..norm3."""
    x = torch.randn(1, 3, 64, 96)
    body = tiny.body
    out = body(x).feature_maps
    assert [f.shape[1] for f in out] == [32, 64, 128]
    assert set(body.hidden_states_norms.keys()) == {"stage2", "stage3", "stage4"}
    # a LayerNorm output has zero mean over channels when its affine params are identity (fresh init)
    for f in out:
        torch.testing.assert_close(f.mean(1), torch.zeros_like(f.mean(1)), atol=1e-5, rtol=0)


def test_dropblock_is_identity_in_eval_and_rescales_in_train():
    db = DropBlock2D(0.3, 3)
    x = torch.ones(2, 4, 16, 16)
    db.eval()
    assert torch.equal(db(x), x)
    db.train()
    torch.manual_seed(0)
    y = db(x)
    dropped = (y == 0).float().mean()
    assert 0.05 < dropped < 0.6
    assert (y[:, 0] == y[:, 1]).all()  # same block mask for every channel
    kept = y[y > 0]
    torch.testing.assert_close(kept, torch.full_like(kept, float(1 / (1 - dropped))))


def test_glip_l_freezes_patch_embed_and_stage1():
    with torch.device("meta"):
        m = SwinFPN(get_preset("glip-l"))
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("body.swin.embeddings.", "body.swin.encoder.layers.0.")) for n in frozen)
    assert any(n.startswith("body.swin.encoder.layers.0.downsample") for n in frozen)
    m.train()
    assert not m.body.swin.embeddings.training and m.body.swin.encoder.layers[1].training


def test_conv_body_keeps_the_swin_contract():
    """backbone="conv": same five FPN levels and strides; frozen_stages freezes (and evals) its stem only."""
    torch.manual_seed(0)
    m = SwinFPN(get_preset("glip-tiny", backbone="conv", frozen_stages=0))
    feats = m(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 12), (2, 32, 4, 6), (2, 32, 2, 3), (2, 32, 1, 2),
                                               (2, 32, 1, 1)]
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("body.stem.") for n in frozen)
    m.train()
    assert not m.body.stem.training and m.body.stage2.training


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError, match="backbone must be one of"):
        get_preset("glip-tiny", backbone="resnet")
