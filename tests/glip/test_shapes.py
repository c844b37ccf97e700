"""The documented shapes of every module output, on glip-tiny (letters as in the docstrings):
B images, L = 5 levels, A_l = H_l*W_l anchors of level l, T tokens, P phrases, C channels, D text width."""

from dataclasses import replace

import torch

from glip.config import get_preset
from glip.model import GLIP
from glip.structures import Detections, TrainTarget

B, H, W = 2, 64, 96  # padded input size (multiples of 32)
C, D, T = 32, 32, 256  # glip-tiny: FPN channels, text width; official PAD_MAX: T = max_query_len
STRIDES = (8, 16, 32, 64, 128)
LEVELS = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]  # (H_l, W_l): ceil-halving from H/8, W/8 by stride-2 convs


def test_every_module_output_shape():
    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny")).eval()
    imgs = [torch.randint(0, 255, (60, 90, 3), dtype=torch.uint8).numpy(),
            torch.randint(0, 255, (40, 70, 3), dtype=torch.uint8).numpy()]
    batch = model.preprocess(imgs)
    assert batch.tensor.shape == (B, 3, H, W)  # [B,3,H,W] resized to shorter side 64 (max 96), padded to 32
    assert batch.image_sizes == [(64, 96), (55, 96)] and batch.original_sizes == [(60, 90), (40, 70)]

    with torch.no_grad():
        c3, c4, c5 = model.backbone.body(batch.tensor).feature_maps  # Swin stages 2-4, strides 8/16/32
        assert [tuple(x.shape) for x in (c3, c4, c5)] == [(B, 32, 8, 12), (B, 64, 4, 6), (B, 128, 2, 3)]
        feats = model.encode_images(batch)  # P3..P7: L x [B, C, H_l, W_l]
        assert [tuple(f.shape) for f in feats] == [(B, C, h, w) for h, w in LEVELS]

        captions = ["red square. blue circle", "cat"]
        text = model.encode_text(captions)  # TextFeatures
        assert text.input_ids.shape == text.attention_mask.shape == (B, T)
        assert text.hidden.shape == text.embedded.shape == (B, T, D)

        tower = model.head.dyhead_tower  # [VLFuse, BertEncoderLayer, DyConv] x 2
        fused, hidden = tower[0](feats, text.hidden, text.attention_mask)  # L x [B,C,H_l,W_l], [B,T,D]
        assert [f.shape for f in fused] == [f.shape for f in feats] and hidden.shape == (B, T, D)
        assert tower[1](hidden, text.attention_mask).shape == (B, T, D)
        assert [f.shape for f in tower[2](fused)] == [f.shape for f in feats]

        out = model.forward_head(feats, text)  # HeadOutputs, per level
        a = [h * w for h, w in LEVELS]  # A_l
        assert [tuple(x.shape) for x in out.logits] == [(B, n, T) for n in a]
        assert [tuple(x.shape) for x in out.bbox_reg] == [(B, n, 4) for n in a]
        assert [tuple(x.shape) for x in out.centerness] == [(B, n) for n in a]

        anchors = model.anchors(feats)  # L x [A_l, 4] legacy xyxy
        assert [tuple(x.shape) for x in anchors] == [(n, 4) for n in a]
        assert anchors[0][1].tolist() == [-28 + STRIDES[0], -28, 35 + STRIDES[0], 35]  # official cell anchor + shift

    pm = torch.zeros(2, T)  # positive map [P, T]
    pm[0, 1:3] = 1
    pm[1, 4:6] = 1
    dets = model.detect(batch, captions, [pm, pm[:1]])  # B x Detections
    assert len(dets) == B and all(isinstance(d, Detections) for d in dets)
    for d in dets:
        n = len(d)
        assert d.boxes_xyxy.shape == (n, 4) and d.scores.shape == (n,) and d.labels.shape == (n,)

    model.train()
    targets = [TrainTarget(torch.tensor([[4.0, 4.0, 40.0, 30.0]]), pm[:1]),
               TrainTarget(torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 20.0, 20.0]]), pm)]  # [N,4], [N,T]
    losses = model(batch, captions, targets)
    assert {k: tuple(v.shape) for k, v in losses.items()} == {"loss_token": (), "loss_reg": (), "loss_centerness": ()}


def test_dynamic_padding_gives_the_same_outputs_for_real_tokens():
    """pad_to_max_query=False (glip-synth) pads to the longest caption: T shrinks, real tokens unchanged."""
    torch.manual_seed(0)
    full = GLIP(get_preset("glip-tiny")).eval()
    short = GLIP(replace(full.config, pad_to_max_query=False), tokenizer=full.tokenizer).eval()
    short.load_state_dict(full.state_dict())
    batch = full.preprocess([torch.randint(0, 255, (64, 96, 3), dtype=torch.uint8).numpy()] * 2)
    captions = ["red square. blue circle", "cat"]
    with torch.no_grad():
        a = full(batch, captions)
        b = short(batch, captions)
    t = b.logits[0].shape[-1]
    assert t == len(full.tokenizer("red square. blue circle")["input_ids"]) < T
    mask = full.encode_text(captions).attention_mask[:, :t].bool()  # [B, t]
    for la, lb in zip(a.logits, b.logits):
        torch.testing.assert_close(la[:, :, :t][mask[:, None, :].expand_as(lb)], lb[mask[:, None, :].expand_as(lb)],
                                   atol=1e-4, rtol=1e-4)
    for ra, rb in zip(a.bbox_reg + a.centerness, b.bbox_reg + b.centerness):
        torch.testing.assert_close(ra, rb, atol=1e-4, rtol=1e-4)


def test_detect_trims_text_padding_with_the_same_detections():
    """Inference drops padded tokens even when the config pads to 256 (official): same detections as padded."""
    torch.manual_seed(0)
    model = GLIP(get_preset("glip-tiny", pre_nms_thresh=0.0)).eval()
    assert model.config.pad_to_max_query
    batch = model.preprocess([torch.randint(0, 255, (64, 96, 3), dtype=torch.uint8).numpy()])
    caption = "red square. blue circle"
    pm = model._prompt_chunks(caption)[0][1]
    trimmed = model.detect(batch, [caption], [pm])[0]
    with torch.no_grad():
        feats = model.encode_images(batch)
        text = model.encode_text([caption])  # padded to max_query_len
        assert text.input_ids.shape[1] == T
        padded = model.postprocessor(model.forward_head(feats, text), model.anchors(feats), [pm.float()],
                                     batch.image_sizes, batch.original_sizes)[0]
    assert len(trimmed) == len(padded) > 0
    torch.testing.assert_close(trimmed.scores, padded.scores, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(trimmed.boxes_xyxy, padded.boxes_xyxy, atol=1e-3, rtol=1e-4)
    assert torch.equal(trimmed.labels, padded.labels)
