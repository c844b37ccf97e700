"""Deep fusion: bi-directional image-text cross-attention (X-MHA, official `VLFuse` type MHA-B) and the new
BERT layers the head adds on the text side (official maskrcnn_benchmark/utils/fuse_helper.py and
maskrcnn_benchmark/modeling/rpn/modeling_bert.py).

Shapes: B images, N = sum over the 5 levels of H_l*W_l visual positions, T text tokens, C visual channels,
D text width, E fusion embed dim, h heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CLAMP = 50000.0  # official CLAMP_*_FOR_UNDERFLOW/OVERFLOW: keep fp16 finite (fuse_helper.py)
MASK_FILL = -9e15  # official image->text fill value for masked tokens (fuse_helper.py, BiMultiHeadAttention)


class BiMultiHeadAttention(nn.Module):
    """One joint attention map A = (W_v v)(W_l l)^T used in both directions (official BiMultiHeadAttention).

    image->text: softmax over tokens with padded tokens filled with -9e15;
    text->image: softmax over image positions of A^T after subtracting its row max, with NO image mask.
    """

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.embed_dim = embed_dim
        self.scale = self.head_dim**-0.5
        self.dropout = dropout
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        for m in (self.v_proj, self.l_proj, self.values_v_proj, self.values_l_proj, self.out_v_proj,
                  self.out_l_proj):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, E] -> [B*h, S, E/h]"""
        b, s, _ = x.shape
        return x.view(b, s, self.num_heads, self.head_dim).transpose(1, 2).reshape(b * self.num_heads, s, -1)

    def _merge(self, x: torch.Tensor, b: int) -> torch.Tensor:
        """[B*h, S, E/h] -> [B, S, E]"""
        s = x.shape[1]
        return x.view(b, self.num_heads, s, self.head_dim).transpose(1, 2).reshape(b, s, self.embed_dim)

    def forward(self, v: torch.Tensor, text: torch.Tensor, mask_l: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """v [B,N,C], text [B,T,D], mask_l [B,T] (1 = real token) -> (delta_v [B,N,C], delta_l [B,T,D]).

        Two exact orderings of the same products; the cheaper one for these sizes runs. "direct" projects
        every image position to the embed dim, as the official code; "folded" moves the three image-side
        projections (v_proj, values_v_proj, out_v_proj) onto the text side, where T << N tokens pay for
        them (glip-t at 256x256 and 150 tokens: 1.5 instead of 3.4 GMAC per block).
        """
        b, n, c = v.shape
        t, e = text.shape[1], self.embed_dim
        direct = 3 * n * c * e + 3 * n * t * e  # multiply-adds per image of each ordering
        folded = 3 * t * e * c + 3 * n * t * c * self.num_heads
        attend = self._attend_folded if folded < direct else self._attend_direct
        return attend(v, text, mask_l)

    def _probs(self, attn: torch.Tensor, mask_l: torch.Tensor | None, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores [B*h, N, T] -> (image->text probs [B*h, N, T], text->image probs [B*h, T, N]) (official
        fuse_helper.py,
        BiMultiHeadAttention.forward)."""
        attn = attn.clamp(-CLAMP, CLAMP)
        n = attn.shape[1]
        # text -> image: A^T minus its row max, clamped, softmax over image positions, no image mask.
        # The max is taken over A's dim 1 in A's own layout (a reduction along a strided axis of A^T is slow)
        shifted = (attn - attn.max(dim=1, keepdim=True).values).clamp(-CLAMP, CLAMP)  # [B*h, N, T]
        probs_l = shifted.transpose(1, 2).contiguous().softmax(dim=-1)  # [B*h, T, N]
        # image -> text: padded tokens get -9e15 so they receive zero attention
        if mask_l is not None:
            fill = torch.zeros_like(mask_l, dtype=attn.dtype).masked_fill(mask_l == 0, MASK_FILL)  # [B,T]
            attn = (attn.view(b, self.num_heads, n, -1) + fill[:, None, None, :]).view(b * self.num_heads, n, -1)
        probs_v = attn.softmax(dim=-1)  # [B*h, N, T]
        probs_v = F.dropout(probs_v, p=self.dropout, training=self.training)
        probs_l = F.dropout(probs_l, p=self.dropout, training=self.training)
        return probs_v, probs_l

    def _attend_direct(self, v: torch.Tensor, text: torch.Tensor, mask_l: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        b = v.shape[0]
        q = self._heads(self.v_proj(v) * self.scale)  # [B*h, N, E/h]
        k = self._heads(self.l_proj(text))  # [B*h, T, E/h]
        val_v = self._heads(self.values_v_proj(v))  # [B*h, N, E/h]
        val_l = self._heads(self.values_l_proj(text))  # [B*h, T, E/h]
        probs_v, probs_l = self._probs(torch.bmm(q, k.transpose(1, 2)), mask_l, b)  # scores [B*h, N, T]
        out_v = self.out_v_proj(self._merge(torch.bmm(probs_v, val_l), b))  # [B, N, C]
        out_l = self.out_l_proj(self._merge(torch.bmm(probs_l, val_v), b))  # [B, T, D]
        return out_v, out_l

    def _attend_folded(self, v: torch.Tensor, text: torch.Tensor, mask_l: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """direct's products re-associated; W_h below is head h's [E/h, C] slice of a projection:
        scores_h = (v Wq_h^T + bq_h) k_h^T = v (k_h Wq_h)^T + k_h bq_h;
        probs_l_h (v Wv_h^T + bv_h) = (probs_l_h v) Wv_h^T + rowsum(probs_l_h) bv_h;
        out_v = sum_h probs_v_h (val_l_h Wo_h^T) + bo, with Wo_h the [C, E/h] column block of out_v_proj."""
        b, n, c = v.shape
        h, d = self.num_heads, self.head_dim
        k = self.l_proj(text).view(b, -1, h, d).transpose(1, 2)  # [B, h, T, d]
        wq = self.v_proj.weight.view(h, d, c)  # [h, d, C]
        kq = torch.matmul(k, wq) * self.scale  # [B, h, T, C]
        kb = torch.matmul(k, self.v_proj.bias.view(h, d, 1)).squeeze(-1) * self.scale  # [B, h, T]
        scores = torch.matmul(v[:, None], kq.transpose(-1, -2)) + kb[:, :, None, :]  # [B, h, N, T]
        probs_v, probs_l = self._probs(scores.reshape(b * h, n, -1), mask_l, b)

        # text side: [B*h, T, N] @ [B, N, C] per head -> [B, h, T, C] -> values_v_proj per head -> [B, T, E]
        pv = torch.matmul(probs_l.view(b, h, -1, n), v[:, None])  # [B, h, T, C]
        wv = self.values_v_proj.weight.view(h, d, c)  # [h, d, C]
        ctx_l = torch.matmul(pv, wv.transpose(-1, -2))  # [B, h, T, d]
        ctx_l = ctx_l + probs_l.view(b, h, -1, n).sum(-1, keepdim=True) * self.values_v_proj.bias.view(h, 1, d)
        out_l = self.out_l_proj(ctx_l.transpose(1, 2).reshape(b, -1, self.embed_dim))  # [B, T, D]

        # image side: one bmm over (head, token) pairs: [B, N, h*T] @ [B, h*T, C]
        val_l = self.values_l_proj(text).view(b, -1, h, d).transpose(1, 2)  # [B, h, T, d]
        wo = self.out_v_proj.weight.view(c, h, d).transpose(0, 1)  # [h, C, d]
        vo = torch.matmul(val_l, wo.transpose(-1, -2))  # [B, h, T, C]
        t = text.shape[1]
        pv_img = probs_v.view(b, h, n, t).transpose(1, 2).reshape(b, n, h * t)  # [B, N, h*T]
        out_v = torch.bmm(pv_img, vo.reshape(b, h * t, c)) + self.out_v_proj.bias  # [B, N, C]
        return out_v, out_l


class BiAttentionBlock(nn.Module):
    """LayerNorm both inputs, attend, residual on the NORMALISED inputs with layer scale (official
    BiAttentionBlockForCheckpoint, maskrcnn_benchmark/utils/fuse_helper.py)."""

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float,
                 init_values: float, text_init_values: float | None = None) -> None:
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim, num_heads, dropout)
        self.gamma_v = nn.Parameter(torch.full((v_dim,), init_values))
        text_init = init_values if text_init_values is None else text_init_values
        self.gamma_l = nn.Parameter(torch.full((l_dim,), text_init))

    def forward(self, v: torch.Tensor, text: torch.Tensor, mask_l: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """v [B,N,C], text [B,T,D] -> same shapes."""
        v = self.layer_norm_v(v)
        text = self.layer_norm_l(text)
        delta_v, delta_l = self.attn(v, text, mask_l)
        return v + self.gamma_v * delta_v, text + self.gamma_l * delta_l


class VLFuse(nn.Module):
    """Fuse all 5 levels at once: flatten P3..P7 row-major, concatenate, attend, split back
    (official maskrcnn_benchmark/modeling/rpn/vldyhead.py, VLFuse.forward)."""

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float,
                 init_values: float, text_init_values: float | None = None) -> None:
        super().__init__()
        self.b_attn = BiAttentionBlock(v_dim, l_dim, embed_dim, num_heads, dropout, init_values, text_init_values)

    def forward(self, feats: list[torch.Tensor], hidden: torch.Tensor, mask: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """feats: L x [B,C,H_l,W_l], hidden [B,T,D], mask [B,T] -> (L x [B,C,H_l,W_l], [B,T,D])."""
        sizes = [f.shape[-2:] for f in feats]
        v = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], dim=1)  # [B, N, C]
        new_v, new_l = self.b_attn(v, hidden, mask)
        new_v = new_v.transpose(1, 2)  # [B, C, N]
        out, start = [], 0
        for h, w in sizes:
            out.append(new_v[:, :, start:start + h * w].reshape(new_v.shape[0], -1, h, w))
            start += h * w
        return out, new_l


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
        """x [B,T,D], ext_mask [B,1,1,T] additive -> [B,T,D]"""
        b, t, d = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:  # [B,T,D] -> [B,h,T,D/h]
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # [B,h,T,T]
        # official CLAMP_BERTATTN_* before the mask (modeling_bert.py)
        scores = scores.clamp(-CLAMP, CLAMP) + ext_mask
        probs = self.dropout(scores.softmax(dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, dropout)
        self.output = BertSelfOutput(hidden, dropout, eps)

    def forward(self, x: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, ext_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # official modeling_bert.BertIntermediate clamps before and after the activation
        return F.gelu(self.dense(x).clamp(-CLAMP, CLAMP)).clamp(-CLAMP, CLAMP)


class BertOutput(nn.Module):
    def __init__(self, hidden: int, intermediate: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.dense(x)).clamp(-CLAMP, CLAMP)
        return self.LayerNorm(x + residual).clamp(-CLAMP, CLAMP)


class BertEncoderLayer(nn.Module):
    """A full post-LN BERT layer with its own weights, run on the fused text (official BertEncoderLayer).

    State-dict names match HF/official BERT: attention.self.{query,key,value}, attention.output.{dense,
    LayerNorm}, intermediate.dense, output.{dense,LayerNorm}.
    """

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float, eps: float = 1e-12) -> None:
        super().__init__()
        self.attention = BertAttention(hidden, heads, dropout, eps)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertOutput(hidden, intermediate, dropout, eps)
        for m in self.modules():  # BERT init: N(0, 0.02) weights, zero bias
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @staticmethod
    def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B,T] {0,1} -> additive [B,1,1,T]: 0 for tokens, -10000 for padding (HF get_extended_attention_mask
        of GLIP's transformers era)."""
        return (1.0 - mask[:, None, None, :].to(dtype)) * -10000.0

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden [B,T,D], mask [B,T] -> [B,T,D]"""
        attn = self.attention(hidden, self.extended_mask(mask, hidden.dtype))
        return self.output(self.intermediate(attn), attn)
