"""Timed script: SAM 3's detection with the image's vision features computed once (and each class's text
features once) against the naive loop (one full forward per image and class). Random weights, CPU.

    PYTHONPATH=. python benchmarks/sam3_vision_reuse.py [--images 3] [--classes 8] [--size 336]

Prints both times, their ratio, and the largest score difference between the two paths.
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image


def build(size: int):
    from transformers import Sam3Config, Sam3Model

    torch.manual_seed(0)
    vit = dict(model_type="sam3_vit_model", hidden_size=256, intermediate_size=1024, num_hidden_layers=8,
               num_attention_heads=8, image_size=size, patch_size=14, window_size=8, global_attn_indexes=[3, 7],
               pretrain_image_size=224)
    side = size // 14
    layers = dict(hidden_size=128, num_attention_heads=4, intermediate_size=512)
    cfg = Sam3Config(
        vision_config=dict(backbone_config=vit, fpn_hidden_size=128,
                           backbone_feature_sizes=[[side * 4, side * 4], [side * 2, side * 2], [side, side]]),
        text_config=dict(model_type="clip_text_model", vocab_size=1000, hidden_size=256, intermediate_size=1024,
                         projection_dim=128, num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=32,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0),
        geometry_encoder_config=dict(num_layers=1, **layers), detr_encoder_config=dict(num_layers=3, **layers),
        detr_decoder_config=dict(num_layers=3, num_queries=100, **layers),
        mask_decoder_config=dict(hidden_size=128, num_attention_heads=4))
    return Sam3Model(cfg).eval()


class Tokens:
    """A tokenizer stand-in: word -> id, padded to the length asked for (what the timing needs of one)."""

    def __call__(self, texts, padding=None, max_length=None, truncation=False, return_tensors=None):
        texts = [texts] if isinstance(texts, str) else texts
        ids = [[1, *(3 + hash(w) % 900 for w in t.split()), 2] for t in texts]
        if padding != "max_length":
            return {"input_ids": ids}
        ids = [(i + [0] * max_length)[:max_length] for i in ids]
        mask = [[int(t != 0) for t in i] for i in ids]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


class Images:
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = {i + 1: Image.fromarray(torch.randint(0, 256, (300 + 20 * i, 400, 3), generator=g,
                                                            dtype=torch.uint8).numpy()) for i in range(n)}
        self.image_ids = list(self.images)

    def load_image(self, i: int) -> Image.Image:
        return self.images[i]


def main() -> None:
    from bench.models.base import DetectSettings
    from bench.models.hf.prompts import TextChunk
    from bench.models.sam3 import processing
    from bench.models.sam3.adapter import Loaded, Sam3Adapter

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--size", type=int, default=336)
    args = ap.parse_args()
    model, tokens, data = build(args.size), Tokens(), Images(args.images)
    pixels = processing.PixelSettings(args.size, args.size, (0.5,) * 3, (0.5,) * 3, 1 / 255)
    names = [f"class {k}" for k in range(args.classes)]
    adapter = Sam3Adapter(Loaded(None, model, tokens, pixels), "sam3")
    settings = DetectSettings(per_chunk_cap=100, per_image_cap=100)

    start = time.perf_counter()
    naive = []
    for i in data.image_ids:
        pv = processing.pixel_values([data.load_image(i)], pixels)
        for name in names:
            with torch.no_grad():
                out = model(pixel_values=pv, **tokens([name], padding="max_length", max_length=32))
            naive.append((out.pred_logits.sigmoid() * out.presence_logits.sigmoid()).flatten())
    t_naive = time.perf_counter() - start

    start = time.perf_counter()
    got = list(adapter.detect_instances(data, [(TextChunk(tuple(names)), list(range(args.classes)))], settings,
                                        masks=False))
    t_reuse = time.perf_counter() - start
    top = torch.cat(naive).reshape(args.images, -1).sort(dim=1, descending=True).values[:, :100]
    diff = max((top[k] - inst["scores"]).abs().max().item() for k, (_, inst) in enumerate(got))
    print(f"{args.images} images x {args.classes} classes, {args.size} px, {torch.get_num_threads()} threads")
    print(f"naive loop (full forward per image and class): {t_naive:.2f} s")
    print(f"vision once per image, text once per class:    {t_reuse:.2f} s")
    print(f"ratio naive / reuse: {t_naive / t_reuse:.2f}x; largest top-100 score difference {diff:.2e}")


if __name__ == "__main__":
    main()
