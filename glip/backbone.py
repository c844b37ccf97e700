"""Visual backbone: transformers' Swin (random init from a SwinConfig) + the official FPN with P6/P7.

Module names keep the official layout where it matters for checkpoints: `body` (Swin; its per-stage output
LayerNorms are transformers' `hidden_states_norms.stage{2,3,4}` = official `norm{1,2,3}`) and `fpn`
(`fpn_inner{2,3,4}`, `fpn_layer{2,3,4}`, `top_blocks.p6/p7`), official
maskrcnn_benchmark/modeling/backbone/swint.py and fpn.py (key names: their state dicts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SwinBackbone, SwinConfig

from glip.config import GLIPConfig
from glip.conv_body import ConvBody

# transformers' stage names of the three Swin stages that reach the FPN (strides 8, 16, 32;
# official maskrcnn_benchmark/modeling/backbone/__init__.py, build_retinanet_swint_fpn_backbone)
OUT_STAGES = ("stage2", "stage3", "stage4")


def swin_config(cfg: GLIPConfig) -> SwinConfig:
    """The transformers SwinConfig of the official detection Swin (patch 4, qkv bias, no APE)."""
    return SwinConfig(
        image_size=224, patch_size=cfg.swin_patch_size, num_channels=3, embed_dim=cfg.swin_embed_dim,
        depths=list(cfg.swin_depths), num_heads=list(cfg.swin_num_heads), window_size=cfg.swin_window_size,
        mlp_ratio=cfg.swin_mlp_ratio, qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        drop_path_rate=cfg.swin_drop_path_rate, hidden_act="gelu", use_absolute_embeddings=False,
        layer_norm_eps=1e-5, out_features=list(OUT_STAGES),
    )


def build_swin(cfg: GLIPConfig) -> SwinBackbone:
    body = SwinBackbone(swin_config(cfg))
    # SwinModel's final LayerNorm only feeds its pooled/last_hidden_state output, which the detector never
    # reads; the official body has no such layer, so drop it (no parameters without an official key).
    body.swin.layernorm = nn.Identity()
    return body


class DropBlock2D(nn.Module):
    """DropBlock (official maskrcnn_benchmark/layers/dropblock.py): zero random size x size blocks,
    rescale by kept fraction. Parameter-free and a no-op in eval mode or with prob 0."""

    def __init__(self, drop_prob: float, block_size: int) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,C,H,W] -> [B,C,H,W]
        if not self.training or self.drop_prob == 0.0:
            return x
        gamma = self.drop_prob / (self.block_size**2)
        seeds = (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) < gamma).to(x.dtype)  # [B,1,H,W]
        block = F.max_pool2d(seeds, self.block_size, stride=1, padding=self.block_size // 2)
        if self.block_size % 2 == 0:
            block = block[:, :, :-1, :-1]
        keep = 1.0 - block
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5), P7 = conv3x3/2(relu(P6)); P6 reads the FPN output P5 (official use_P5)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)
        for m in (self.p6, self.p7):
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.zeros_(m.bias)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPN(nn.Module):
    """Lateral 1x1 + output 3x3 convs (with bias, no norm/activation), nearest top-down, then P6/P7.

    Indices 2..4 follow the official names (index 1 would be the skipped stride-4 stage).
    """

    def __init__(self, in_channels: tuple[int, int, int], channels: int, drop_block: DropBlock2D | None) -> None:
        super().__init__()
        for idx, c_in in zip((2, 3, 4), in_channels):
            inner = nn.Conv2d(c_in, channels, 1)
            layer = nn.Conv2d(channels, channels, 3, padding=1)
            for m in (inner, layer):  # official conv_with_kaiming_uniform
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
            self.add_module(f"fpn_inner{idx}", inner)
            self.add_module(f"fpn_layer{idx}", layer)
        self.top_blocks = LastLevelP6P7(channels)
        self.drop_block = drop_block

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats: C3, C4, C5 [B,C_i,H_i,W_i] -> P3..P7 [B,C,H_l,W_l] (strides 8..128)."""
        last = self.fpn_inner4(feats[2])
        results = [self.fpn_layer4(last)]
        for feat, inner, layer in ((feats[1], self.fpn_inner3, self.fpn_layer3),
                                   (feats[0], self.fpn_inner2, self.fpn_layer2)):
            lateral = inner(feat)
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            # official maskrcnn_benchmark/modeling/backbone/fpn.py, FPN.forward: DropBlock on the merged map
            # before fpn_layer{2,3}, never on the top level
            merged = self.drop_block(last) if self.drop_block is not None else last
            results.insert(0, layer(merged))
        return results + self.top_blocks(results[-1])


class SwinFPN(nn.Module):
    """Images [B,3,H,W] (H, W multiples of 32) -> P3..P7, each [B, fpn_channels, H/s, W/s].

    The body is Swin, or glip.conv_body.ConvBody for backbone="conv" (same outputs, same FPN)."""

    def __init__(self, cfg: GLIPConfig) -> None:
        super().__init__()
        self.body = build_swin(cfg) if cfg.backbone == "swin" else ConvBody(cfg.swin_embed_dim)
        drop = DropBlock2D(cfg.fpn_drop_block_prob, cfg.fpn_drop_block_size) if cfg.fpn_drop_block_prob > 0 else None
        self.fpn = FPN(cfg.swin_stage_channels[1:], cfg.fpn_channels, drop)
        self.frozen_stages = cfg.frozen_stages
        self._freeze()

    def stem_modules(self) -> list[nn.Module]:
        """The modules official `frozen_stages` freezes: patch embed (>= 0), then stages 1.. (>= 2)."""
        mods: list[nn.Module] = []
        if isinstance(self.body, ConvBody):
            return [self.body.stem] if self.frozen_stages >= 0 else []
        if self.frozen_stages >= 0:
            mods.append(self.body.swin.embeddings)
        for i in range(0, max(self.frozen_stages - 1, 0)):
            mods.append(self.body.swin.encoder.layers[i])
        return mods

    def _freeze(self) -> None:
        for m in self.stem_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> SwinFPN:
        super().train(mode)
        for m in self.stem_modules():  # official _freeze_stages keeps frozen stages in eval mode
            m.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(f"image tensor must be padded to a multiple of 32, got {tuple(images.shape)}")
        out = self.body(images)
        return self.fpn(list(out.feature_maps))  # C3, C4, C5 already normalised by hidden_states_norms
