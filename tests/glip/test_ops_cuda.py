"""CUDA parity of the ops, ATSS, losses and post-processing with their CPU results (needs a GPU)."""

import pytest
import torch

from glip.anchors import AnchorGenerator
from glip.head_outputs import HeadOutputs
from glip.losses import GLIPLoss
from glip.ops.dcn import ModulatedDeformConv2d
from glip.ops.nms import batched_nms, nms
from glip.postprocess import PostProcessor
from glip.structures import TrainTarget

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_dcn_cuda_matches_cpu_forward_and_backward():
    gen = torch.Generator().manual_seed(0)
    conv = ModulatedDeformConv2d(8, 6)
    x = torch.randn(2, 8, 6, 7, generator=gen)
    offset = torch.randn(2, 18, 12, 14, generator=gen)  # a finer level's plane: the official reuse
    mask = torch.rand(2, 9, 12, 14, generator=gen)
    outs, grads = [], []
    for dev in ("cpu", "cuda"):
        c = ModulatedDeformConv2d(8, 6).to(dev)
        c.load_state_dict(conv.state_dict())
        xi = x.to(dev).requires_grad_()
        out = c(xi, offset.to(dev), mask.to(dev))
        out.square().sum().backward()
        outs.append(out.detach().cpu())
        grads.append(xi.grad.cpu())
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)


def test_nms_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(1)
    n = 900
    xy = torch.rand(n, 2, generator=gen) * 300
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 80 + 5], dim=1)
    scores = torch.randperm(n, generator=gen).float() / n
    labels = torch.randint(0, 5, (n,), generator=gen)
    assert nms(boxes.cuda(), scores.cuda(), 0.5).cpu().tolist() == nms(boxes, scores, 0.5).tolist()
    got = batched_nms(boxes.cuda(), scores.cuda(), labels.cuda(), 0.5).cpu().tolist()
    assert got == batched_nms(boxes, scores, labels, 0.5).tolist()


def test_loss_and_postprocess_cuda_match_cpu():
    gen = torch.Generator().manual_seed(2)
    shapes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    t = 16
    heads = HeadOutputs(
        logits=[torch.randn(2, h * w, t, generator=gen) for h, w in shapes],
        bbox_reg=[torch.randn(2, h * w, 4, generator=gen) * 0.5 for h, w in shapes],
        centerness=[torch.randn(2, h * w, generator=gen) for h, w in shapes],
    )
    pmap = torch.zeros(2, t)
    pmap[0, 1:3] = 1
    pmap[1, 4] = 1
    targets = [TrainTarget(torch.tensor([[10.0, 12.0, 40.0, 50.0]]), pmap[:1]),
               TrainTarget(torch.tensor([[5.0, 5.0, 60.0, 30.0], [30.0, 30.0, 63.0, 63.0]]), pmap)]
    text_mask = torch.zeros(2, t)
    text_mask[:, :6] = 1
    results = []
    for dev in ("cpu", "cuda"):
        anchors = AnchorGenerator().to(dev)(shapes)
        h = HeadOutputs(*[[x.to(dev) for x in field] for field in (heads.logits, heads.bbox_reg, heads.centerness)])
        tg = [TrainTarget(x.boxes_xyxy.to(dev), x.positive_map.to(dev)) for x in targets]
        losses = GLIPLoss()(h, anchors, tg, text_mask.to(dev))
        dets = PostProcessor()(h, anchors, pmap.to(dev), [(64, 64)] * 2, [(128, 96)] * 2)
        results.append(({k: v.item() for k, v in losses.items()}, [(d.boxes_xyxy.cpu(), d.scores.cpu()) for d in dets]))
    (l_cpu, d_cpu), (l_gpu, d_gpu) = results
    assert l_cpu == pytest.approx(l_gpu, rel=1e-4)
    for (b0, s0), (b1, s1) in zip(d_cpu, d_gpu):
        torch.testing.assert_close(b1, b0, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(s1, s0, atol=1e-5, rtol=1e-4)
