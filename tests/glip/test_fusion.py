"""Deep fusion: X-MHA against a per-head re-computation, masking rules, layer-scale residual on the
normalised input, VLFuse level split, and the head's BERT layer against transformers' BertLayer."""

import math

import pytest
import torch
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertLayer

from glip.fusion import MASK_FILL, BertEncoderLayer, BiAttentionBlock, BiMultiHeadAttention, VLFuse


def reference_bi_attention(m: BiMultiHeadAttention, v, txt, mask):
    """Loop over images and heads, written from the official fuse_helper.py BiMultiHeadAttention with plain
    matrix ops."""
    h, dh = m.num_heads, m.head_dim
    out_v, out_l = [], []
    for b in range(v.shape[0]):
        q = (v[b] @ m.v_proj.weight.T + m.v_proj.bias) * dh**-0.5
        k = txt[b] @ m.l_proj.weight.T + m.l_proj.bias
        vv = v[b] @ m.values_v_proj.weight.T + m.values_v_proj.bias
        vl = txt[b] @ m.values_l_proj.weight.T + m.values_l_proj.bias
        heads_v, heads_l = [], []
        for i in range(h):
            sl = slice(i * dh, (i + 1) * dh)
            a = q[:, sl] @ k[:, sl].T  # [N, T]
            a_v = a + torch.where(mask[b] == 0, MASK_FILL, 0.0)[None, :]
            p_v = torch.exp(a_v - a_v.max(1, keepdim=True).values)
            p_v = p_v / p_v.sum(1, keepdim=True)
            at = a.T - a.T.max(1, keepdim=True).values  # [T, N], no image mask
            p_l = torch.exp(at) / torch.exp(at).sum(1, keepdim=True)
            heads_v.append(p_v @ vl[:, sl])
            heads_l.append(p_l @ vv[:, sl])
        out_v.append(torch.cat(heads_v, 1) @ m.out_v_proj.weight.T + m.out_v_proj.bias)
        out_l.append(torch.cat(heads_l, 1) @ m.out_l_proj.weight.T + m.out_l_proj.bias)
    return torch.stack(out_v), torch.stack(out_l)


@pytest.fixture
def attn():
    torch.manual_seed(0)
    m = BiMultiHeadAttention(v_dim=8, l_dim=12, embed_dim=16, num_heads=4, dropout=0.1).eval()
    for p in m.parameters():  # non-zero biases too
        torch.nn.init.normal_(p, std=0.3)
    return m


def inputs(b=2, n=7, t=5):
    torch.manual_seed(1)
    v, txt = torch.randn(b, n, 8), torch.randn(b, t, 12)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, 3:] = 0
    mask[1, 4:] = 0
    return v, txt, mask


@pytest.mark.parametrize("ordering", ["forward", "_attend_direct", "_attend_folded"])
def test_matches_per_head_recomputation(attn, ordering):
    v, txt, mask = inputs()
    got_v, got_l = getattr(attn, ordering)(v, txt, mask)
    ref_v, ref_l = reference_bi_attention(attn, v, txt, mask)
    torch.testing.assert_close(got_v, ref_v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_l, ref_l, atol=1e-5, rtol=1e-5)


def test_both_orderings_agree_in_training_with_dropout(attn):
    """Same dropout masks (drawn in the same order), and the folded bias term uses the dropped rows' sums."""
    attn.train()
    v, txt, mask = inputs()
    torch.manual_seed(5)
    a_v, a_l = attn._attend_direct(v, txt, mask)
    torch.manual_seed(5)
    b_v, b_l = attn._attend_folded(v, txt, mask)
    torch.testing.assert_close(a_v, b_v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a_l, b_l, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("c,e,h,n,t,folded", [(256, 2048, 8, 1364, 150, True),  # glip-t at 256x256
                                              (64, 128, 4, 341, 100, False)])  # glip-synth
def test_forward_runs_the_cheaper_ordering(monkeypatch, c, e, h, n, t, folded):
    m = BiMultiHeadAttention(v_dim=c, l_dim=16, embed_dim=e, num_heads=h, dropout=0.0)
    called = []
    monkeypatch.setattr(m, "_attend_folded", lambda *a: called.append("folded"))
    monkeypatch.setattr(m, "_attend_direct", lambda *a: called.append("direct"))
    m(torch.zeros(1, n, c), torch.zeros(1, t, 16), None)
    assert called == ["folded" if folded else "direct"]


def test_padded_tokens_get_zero_attention_from_images(attn):
    v, txt, mask = inputs()
    out_v, _ = attn(v, txt, mask)
    l2 = txt.clone()
    l2[mask == 0] = torch.randn(int((mask == 0).sum()), 12) * 10  # change only the padded tokens
    out_v2, _ = attn(v, l2, mask)
    torch.testing.assert_close(out_v, out_v2)


def test_text_to_image_has_no_image_mask(attn):
    """Every image position (padding included) contributes to every token's update."""
    v, txt, mask = inputs()
    v = v.requires_grad_(True)
    _, out_l = attn(v, txt, mask)
    out_l[0, 0].sum().backward()
    assert (v.grad[0].abs().sum(-1) > 0).all()


def test_dropout_only_in_training(attn):
    v, txt, mask = inputs()
    a = attn(v, txt, mask)
    b = attn(v, txt, mask)
    torch.testing.assert_close(a[0], b[0])
    attn.train()
    torch.manual_seed(3)
    c = attn(v, txt, mask)
    assert not torch.allclose(a[0], c[0])


def test_clamp_keeps_huge_scores_finite(attn):
    v, txt, mask = inputs()
    with torch.no_grad():
        attn.v_proj.weight.mul_(1e6)
        attn.l_proj.weight.mul_(1e6)
    out_v, out_l = attn(v, txt, mask)
    assert torch.isfinite(out_v).all() and torch.isfinite(out_l).all()


def test_residual_is_on_the_normalised_input_with_layer_scale():
    torch.manual_seed(0)
    block = BiAttentionBlock(8, 12, 16, 4, 0.0, init_values=1 / 6).eval()
    assert torch.equal(block.gamma_v, torch.full((8,), 1 / 6)) and torch.equal(block.gamma_l, torch.full((12,), 1 / 6))
    v, txt, mask = inputs()
    new_v, new_l = block(v, txt, mask)
    nv, nl = block.layer_norm_v(v), block.layer_norm_l(txt)
    dv, dl = block.attn(nv, nl, mask)
    torch.testing.assert_close(new_v, nv + dv / 6)
    torch.testing.assert_close(new_l, nl + dl / 6)


def test_text_layer_scale_can_start_apart_from_the_image_one():
    """GLIPConfig.fusion_text_gamma_init: glip-synth starts the text side at 0.01, the image side stays 1/num_blocks."""
    torch.manual_seed(0)
    block = BiAttentionBlock(8, 12, 16, 4, 0.0, init_values=0.5, text_init_values=0.01).eval()
    assert torch.equal(block.gamma_v, torch.full((8,), 0.5)) and torch.equal(block.gamma_l, torch.full((12,), 0.01))
    v, txt, mask = inputs()
    new_v, new_l = block(v, txt, mask)
    dv, dl = block.attn(block.layer_norm_v(v), block.layer_norm_l(txt), mask)
    torch.testing.assert_close(new_l, block.layer_norm_l(txt) + 0.01 * dl)
    torch.testing.assert_close(new_v, block.layer_norm_v(v) + 0.5 * dv)


def test_vlfuse_attends_over_all_levels_jointly_and_splits_back():
    torch.manual_seed(0)
    fuse = VLFuse(8, 12, 16, 4, 0.0, 0.5).eval()
    feats = [torch.randn(2, 8, 4, 6), torch.randn(2, 8, 2, 3), torch.randn(2, 8, 1, 2), torch.randn(2, 8, 1, 1),
             torch.randn(2, 8, 1, 1)]
    _, txt, mask = inputs()
    out, new_l = fuse(feats, txt, mask)
    assert [o.shape for o in out] == [f.shape for f in feats]
    flat = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)  # [B, 24+6+2+1+1, C] row-major
    ref_v, ref_l = fuse.b_attn(flat, txt, mask)
    torch.testing.assert_close(new_l, ref_l)
    torch.testing.assert_close(out[1], ref_v[:, 24:30].transpose(1, 2).reshape(2, 8, 2, 3))


def test_bert_layer_matches_transformers_bert_layer():
    torch.manual_seed(0)
    ours = BertEncoderLayer(hidden=32, heads=4, intermediate=64, dropout=0.1).eval()
    cfg = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, attn_implementation="eager")
    ref = BertLayer(cfg).eval()
    missing, unexpected = ref.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and not [k for k in missing if "crossattention" not in k]
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    ext = (1.0 - mask[:, None, None, :].float()) * -10000.0
    expected = ref(x, attention_mask=ext)
    expected = expected[0] if isinstance(expected, tuple) else expected
    torch.testing.assert_close(ours(x, mask), expected, atol=1e-5, rtol=1e-5)
    assert math.isclose(float(BertEncoderLayer.extended_mask(mask, torch.float32)[0, 0, 0, 5]), -10000.0)
