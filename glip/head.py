"""The VL DyHead (official `VLDyHead`, maskrcnn_benchmark/modeling/rpn/vldyhead.py): a tower of fusion / BERT
layer / DyConv blocks, then the
official prediction layers: box regression, centerness and the dot-product token alignment logits.

Shapes: B images, C channels, H_l x W_l level sizes, A_l = H_l*W_l anchors of level l (one per location),
T tokens, D text width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from glip.config import GLIPConfig
from glip.dyhead import DyConv
from glip.fusion import CLAMP, BertEncoderLayer, VLFuse
from glip.head_outputs import HeadOutputs

__all__ = ["HeadOutputs", "Scale", "VLDyHead", "flatten_level"]


class Scale(nn.Module):
    """A learnable scalar multiplier (official layers/scale.py; key `scales.N.scale`)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def flatten_level(x: torch.Tensor) -> torch.Tensor:
    """[B, K, H, W] -> [B, H*W, K] (row-major locations; the official permute_and_flatten with A=1)."""
    return x.flatten(2).transpose(1, 2)


class VLDyHead(nn.Module):
    """Tower + prediction layers. Module names are the official ones (`dyhead_tower.N`, `bbox_pred`, ...).

    Deep fusion: dyhead_tower = [VLFuse, BertEncoderLayer, DyConv] x num_blocks (indices 3i, 3i+1, 3i+2).
    Late fusion (GLIP-T (A)): dyhead_tower = [DyConv] x num_blocks, and the logits use the text 'embedded'.
    """

    def __init__(self, cfg: GLIPConfig) -> None:
        super().__init__()
        c, d = cfg.fpn_channels, cfg.text_hidden
        self.fusion = cfg.fusion
        tower: list[nn.Module] = []
        for _ in range(cfg.num_blocks):
            if cfg.fusion == "deep":
                tower.append(VLFuse(c, d, cfg.fusion_embed_dim, cfg.fusion_heads, cfg.fusion_dropout,
                                    cfg.layer_scale_init, cfg.fusion_text_gamma_init))
                # official: BertEncoderLayer when i < NUM_CONVS-1 or USE_FUSED_FEATURES_DOT_PRODUCT, which
                # deep fusion always sets, so every block has one (VLDyHead.__init__)
                tower.append(BertEncoderLayer(d, cfg.text_heads, cfg.text_intermediate, cfg.text_dropout))
            tower.append(DyConv(c, cfg.group_norm_groups, cfg.dyrelu_reduction, cfg.dcn_offset_init,
                                cfg.dcn_coarse_offsets))
        self.dyhead_tower = nn.ModuleList(tower)

        bias_value = -math.log((1 - cfg.prior_prob) / cfg.prior_prob)  # -4.595 for prior 0.01
        # cls_logits: frozen and unused under the dot-product loss; only its channel count matters in the
        # official inference (convert_grounding_to_od_logits), kept so official checkpoints map key for key.
        self.cls_logits = nn.Conv2d(c, cfg.num_legacy_classes, kernel_size=1)
        self.bbox_pred = nn.Conv2d(c, 4, kernel_size=1)
        self.centerness = nn.Conv2d(c, 1, kernel_size=1)
        for m in (self.cls_logits, self.bbox_pred, self.centerness):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, bias_value)
        self.cls_logits.requires_grad_(False)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(5)])
        self.dot_product_projection_text = nn.Linear(d, c)
        self.log_scale = nn.Parameter(torch.tensor([cfg.log_scale_init]))
        self.bias_lang = nn.Parameter(torch.zeros(d))
        self.bias0 = nn.Parameter(torch.tensor([bias_value]))

    @property
    def text_free_tower(self) -> bool:
        """Late fusion: the tower never sees the text, so its outputs (and the box branches) can be computed
        once per image and reused for every prompt."""
        return self.fusion == "late"

    def tower(self, feats: list[torch.Tensor], hidden: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """feats: 5 x [B,C,H_l,W_l], hidden [B,T,D], mask [B,T] -> (tower feats, fused hidden [B,T,D]).

        Deep fusion: [VLFuse, BertEncoderLayer, DyConv] x num_blocks over image and text. Late fusion:
        DyConv blocks only; `hidden` and `mask` are unused (may be None) and the fused hidden is None.
        """
        # official: maskrcnn_benchmark/modeling/rpn/vldyhead.py, VLDyHead.forward (the dyhead_tower call)
        if len(feats) != len(self.scales):
            raise ValueError(f"expected {len(self.scales)} feature levels, got {len(feats)}")
        if not self.text_free_tower and (hidden is None or mask is None):
            raise ValueError("deep fusion's tower needs the text: pass hidden [B,T,D] and mask [B,T]")
        for module in self.dyhead_tower:
            if isinstance(module, VLFuse):
                feats, hidden = module(feats, hidden, mask)
            elif isinstance(module, BertEncoderLayer):
                hidden = module(hidden, mask)
            else:
                feats = module(feats)
        return feats, (None if self.text_free_tower else hidden)

    def box_branches(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Tower feats -> (bbox_reg [B,A_l,4], centerness [B,A_l]) per level; they never see the text."""
        bbox_reg = [flatten_level(self.scales[lv](self.bbox_pred(f))) for lv, f in enumerate(feats)]
        centerness = [flatten_level(self.centerness(f)).squeeze(-1) for f in feats]
        return bbox_reg, centerness

    def token_logits(self, feat: torch.Tensor, proj_tokens: torch.Tensor, tok_bias: torch.Tensor) -> torch.Tensor:
        """feat [B,C,H,W], proj_tokens [B,T,C], tok_bias [B,T] -> logits [B, H*W, T]."""
        # official: maskrcnn_benchmark/modeling/rpn/vldyhead.py, VLDyHead.forward (dot_product_logits)
        queries = flatten_level(feat)  # [B, H*W, C]; dot_product_projection_image is Identity
        logits = torch.matmul(queries, proj_tokens.transpose(-1, -2)) / self.log_scale.exp()
        return (logits + tok_bias[:, None, :]).clamp(-CLAMP, CLAMP)  # CLAMP_DOT_PRODUCT

    def predict(self, feats: list[torch.Tensor], fused: torch.Tensor | None, embedded: torch.Tensor,
                boxes: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> HeadOutputs:
        """The prediction layers over the tower's outputs -> HeadOutputs.

        feats, fused: what `tower` returned; embedded [B,T,D]: BERT's masked output, which late fusion
        scores against (deep fusion scores against `fused`, USE_FUSED_FEATURES_DOT_PRODUCT). boxes:
        `box_branches(feats)` computed once and reused (late fusion across prompts); None computes them.
        """
        text = embedded if self.text_free_tower else fused
        if text is None:
            raise ValueError("deep fusion scores against the tower's fused hidden; got None")
        text = F.normalize(text, p=2, dim=-1)
        proj_tokens = self.dot_product_projection_text(text / 2.0)  # [B, T, C]
        tok_bias = torch.matmul(text, self.bias_lang) + self.bias0  # [B, T]
        bbox_reg, centerness = self.box_branches(feats) if boxes is None else boxes
        logits = [self.token_logits(feat, proj_tokens, tok_bias) for feat in feats]  # [B, A_l, T]
        return HeadOutputs(logits=logits, bbox_reg=list(bbox_reg), centerness=list(centerness))

    def forward(self, feats: list[torch.Tensor], hidden: torch.Tensor, embedded: torch.Tensor,
                mask: torch.Tensor) -> HeadOutputs:
        """feats: P3..P7 [B,C,H_l,W_l]; hidden, embedded [B,T,D]; mask [B,T] -> HeadOutputs
        (logits [B,A_l,T], bbox_reg [B,A_l,4], centerness [B,A_l] per level)."""
        tower_feats, fused = self.tower(feats, hidden, mask)
        return self.predict(tower_feats, fused, embedded)
