"""GLIP: Swin + FPN image encoder, BERT text encoder, VL DyHead with deep (or late) fusion, ATSS loss,
official post-processing (official: maskrcnn_benchmark/modeling/detector/generalized_vl_rcnn.py,
GeneralizedVLRCNN). Images + prompt in, boxes or losses out.

Shapes: B images, L levels, A_l anchors of level l, T tokens (max_query_len), P phrases, C channels,
D text width.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import nn
from transformers import BertConfig, PreTrainedTokenizerBase

from glip.anchors import AnchorGenerator
from glip.backbone import SwinFPN
from glip.config import VOCAB_CHARS, GLIPConfig
from glip.fusion import BertEncoderLayer, VLFuse
from glip.head import HeadOutputs, VLDyHead
from glip.language import LanguageBackbone, TextFeatures, build_wordpiece_tokenizer, tokenize
from glip.losses import GLIPLoss
from glip.postprocess import PostProcessor
from glip.prompts import build_prompt_chunks, fit_positive_map, phrase_spans, positive_map
from glip.structures import Detections, ImageBatch, TrainTarget
from glip.transforms import ImageLike, resize_and_pad

Prompt = str | Sequence[str] | tuple[str, Sequence]
PARAMETER_GROUPS = ("backbone_stem", "backbone", "fpn", "language", "fusion", "head", "prompt")


def bert_config(cfg: GLIPConfig) -> BertConfig:
    """The BertConfig of the language backbone described by `cfg` (bert-base-uncased for the real presets)."""
    return BertConfig(
        vocab_size=cfg.text_vocab_size, hidden_size=cfg.text_hidden, num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads, intermediate_size=cfg.text_intermediate, hidden_act="gelu",
        hidden_dropout_prob=cfg.text_dropout, attention_probs_dropout_prob=cfg.text_dropout,
        max_position_embeddings=cfg.text_max_positions, type_vocab_size=2, layer_norm_eps=1e-12,
        pad_token_id=0,
    )


def builtin_tokenizer(cfg: GLIPConfig) -> PreTrainedTokenizerBase:
    """The offline WordPiece tokenizer of a preset with `vocab_words` (all of VOCAB_CHARS included)."""
    if cfg.vocab_words is None:
        raise ValueError(f"preset {cfg.name!r} uses the bert-base-uncased tokenizer; give a local directory")
    return build_wordpiece_tokenizer(list(cfg.vocab_words) + list(VOCAB_CHARS))


class GLIP(nn.Module):
    """The grounded detector. Build with `GLIP(config)` (random weights) or `glip.from_pretrained`."""

    def __init__(self, config: GLIPConfig, tokenizer: PreTrainedTokenizerBase | None = None,
                 language: LanguageBackbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = SwinFPN(config)
        if language is None:
            language = LanguageBackbone.from_config(bert_config(config), max_len=config.max_query_len)
        self.language = language
        self.head = VLDyHead(config)
        # official rpn.tunable_linear.weight: zero-init per-position offset added to the BERT output
        # (maskrcnn_benchmark/modeling/rpn/vldyhead.py, VLDyHeadModule: prompt tuning)
        self.prompt_offset = nn.Parameter(torch.zeros(config.prompt_offset_len, config.text_hidden))
        self.anchor_generator = AnchorGenerator(config.anchor_strides, config.anchor_sizes)
        self.postprocessor = PostProcessor(config.pre_nms_thresh, config.pre_nms_top_n, config.nms_thresh,
                                           config.detections_per_img, config.score_agg)
        self.loss = GLIPLoss(soft_token_weight=config.soft_token_loss_weight)
        if tokenizer is None and config.vocab_words is not None:
            tokenizer = builtin_tokenizer(config)
        if tokenizer is not None and len(tokenizer) > config.text_vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the text encoder only "
                             f"{config.text_vocab_size} embeddings (text_vocab_size)")
        self.tokenizer = tokenizer

    # ----------------------------------------------------------------------------------------- encoders
    def encode_images(self, images: ImageBatch) -> list[torch.Tensor]:
        """ImageBatch [B,3,H,W] -> P3..P7, each [B, C, H/s, W/s]."""
        return self.backbone(images.tensor.to(self.prompt_offset.device))

    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> input_ids, attention_mask [B, T] padded to max_query_len (ValueError if longer)."""
        if self.tokenizer is None:
            raise ValueError(f"model {self.config.name!r} has no tokenizer: pass text_encoder=<local "
                             "bert-base-uncased dir> or tokenizer=... to glip.from_pretrained")
        if isinstance(captions, str):
            raise TypeError("captions must be a list of strings (one per image), not a single string")
        for i, c in enumerate(captions):
            if not c or not c.strip():
                raise ValueError(f"caption {i} is empty: give at least one phrase to ground")
        return tokenize(self.tokenizer, list(captions), self.config.max_query_len)

    def encode_text(self, captions: Sequence[str], trim_padding: bool | None = None,
                    offset_rows: torch.Tensor | None = None) -> TextFeatures:
        """captions -> TextFeatures (hidden, embedded [B,T,D]) with a prompt offset added to both (official
        tunable_linear, maskrcnn_benchmark/modeling/rpn/vldyhead.py, VLDyHeadModule).

        trim_padding: pad only to the longest caption instead of max_query_len; None = the config's
        choice (not pad_to_max_query). Inference always trims: padded tokens are masked everywhere, so
        real tokens get the same outputs up to float summation order, and a short ODinW prompt no longer
        pays for 256 tokens in every fusion and BERT layer.
        offset_rows: [B, >= T] long, the row of `prompt_offset` each token adds (-1: none). None: the
        official per-position rows 0..T-1. A class-anchored table (bench.data.prompt_anchor, whose rows
        follow class names rather than positions) has no positions, so it needs them.
        """
        ids, mask = self.tokenize(captions)  # [B, max_query_len]
        if trim_padding is None:
            trim_padding = not self.config.pad_to_max_query
        if trim_padding:  # pad only to the longest caption (see GLIPConfig)
            n = int(mask.sum(1).max())
            ids, mask = ids[:, :n], mask[:, :n]  # [B, T]
        device = self.prompt_offset.device
        text = self.language(ids.to(device), mask.to(device))
        offset = self._prompt_offsets(ids.shape, offset_rows)  # [1 or B, T, D]
        return TextFeatures(input_ids=text.input_ids, attention_mask=text.attention_mask,
                            hidden=text.hidden + offset, embedded=text.embedded + offset)

    def _prompt_offsets(self, ids_shape: torch.Size, offset_rows: torch.Tensor | None) -> torch.Tensor:
        """The offsets to add to [B, T] tokens: rows 0..T-1 ([1, T, D]) or the given rows ([B, T, D])."""
        b, t = ids_shape
        table = self.prompt_offset  # [R, D]
        if offset_rows is None:
            if table.shape[0] != self.config.prompt_offset_len:
                raise ValueError(f"prompt_offset has {table.shape[0]} rows, not the official per-position "
                                 f"{self.config.prompt_offset_len}: pass offset_rows (the row of each token)")
            return table[:t].unsqueeze(0)
        if offset_rows.shape[0] != b or offset_rows.shape[1] < t:
            raise ValueError(f"offset_rows {tuple(offset_rows.shape)} do not cover the captions' {b} x {t} tokens")
        rows = offset_rows[:, :t].to(table.device, torch.long)  # [B, T]
        if int(rows.min()) < -1 or int(rows.max()) >= table.shape[0]:
            raise ValueError(f"offset_rows outside -1..{table.shape[0] - 1} (-1: no offset)")
        padded = nn.functional.pad(table, (0, 0, 1, 0))  # [R + 1, D], row 0 = zeros for -1
        return padded[rows + 1]  # [B, T, D]

    def forward_head(self, features: list[torch.Tensor], text: TextFeatures) -> HeadOutputs:
        return self.head(features, text.hidden, text.embedded, text.attention_mask)

    def anchors(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """P3..P7 -> anchors per level [A_l, 4] legacy xyxy in model-input pixels."""
        return self.anchor_generator([tuple(f.shape[-2:]) for f in features])

    # ------------------------------------------------------------------------------------ train / detect
    def forward(self, images: ImageBatch, captions: Sequence[str], targets: Sequence[TrainTarget] | None = None,
                offset_rows: torch.Tensor | None = None) -> dict[str, torch.Tensor] | HeadOutputs:
        """Losses {"loss_token", "loss_reg", "loss_centerness"} when targets are given, else HeadOutputs.

        offset_rows: the prompt-offset row of each token (encode_text)."""
        if len(captions) != len(images):
            raise ValueError(f"{len(images)} images but {len(captions)} captions (one caption per image)")
        features = self.encode_images(images)
        text = self.encode_text(captions, offset_rows=offset_rows)
        outputs = self.forward_head(features, text)
        if targets is None:
            return outputs
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        t = text.input_ids.shape[1]
        device = self.prompt_offset.device
        fitted = [TrainTarget(tg.boxes_xyxy.to(device, torch.float32),
                              fit_positive_map(tg.positive_map.to(device, torch.float32), t, f"targets[{i}].positive_map"))
                  for i, tg in enumerate(targets)]
        return self.loss(outputs, self.anchors(features), fitted, text.attention_mask)

    @contextmanager
    def _eval_mode(self):
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def detect(self, images: ImageBatch, captions: Sequence[str], positive_maps: Sequence[torch.Tensor],
               detections_per_img: int | None = None) -> list[Detections]:
        """One caption and one positive map [P, T] per image -> Detections in original image pixels,
        labels = phrase index (row of the positive map). Eval mode, no gradients.

        detections_per_img: the cap per image for this call (None: the config's detections_per_img)."""
        if not (len(images) == len(captions) == len(positive_maps)):
            raise ValueError(f"need one caption and one positive map per image: {len(images)} images, "
                             f"{len(captions)} captions, {len(positive_maps)} maps")
        with self._eval_mode(), torch.no_grad():
            features = self.encode_images(images)
            text = self.encode_text(captions, trim_padding=True)
            outputs = self.forward_head(features, text)
            t = text.input_ids.shape[1]
            maps = [fit_positive_map(pm.to(self.prompt_offset.device, torch.float32), t, f"positive_maps[{i}]")
                    for i, pm in enumerate(positive_maps)]
            return self.postprocessor(outputs, self.anchors(features), maps, images.image_sizes,
                                      images.original_sizes, detections_per_img=detections_per_img)

    def preprocess(self, images: Sequence[ImageLike]) -> ImageBatch:
        """PIL images / arrays (any of RGB, grayscale, RGBA) -> ImageBatch.

        official: maskrcnn_benchmark/data/transforms/build.py (resize, normalise) and
        maskrcnn_benchmark/structures/image_list.py, to_image_list (padding to size_divisibility)."""
        if isinstance(images, ImageLike):
            images = [images]
        c = self.config
        return resize_and_pad(list(images), c.min_size, c.max_size, c.pixel_mean, c.pixel_std,
                              c.size_divisibility)

    def _prompt_chunks(self, prompt: Prompt) -> list[tuple[str, torch.Tensor, list[int]]]:
        """prompt -> [(caption, positive map [P, T], phrase indices into the prompt's phrase list)]."""
        if self.tokenizer is None:
            self.tokenize([" "])  # raises the no-tokenizer error
        t = self.config.max_query_len
        if isinstance(prompt, tuple) and len(prompt) == 2 and isinstance(prompt[0], str):
            caption, spans = prompt
            if not caption.strip() or len(spans) == 0:
                raise ValueError("empty prompt: the caption and its list of phrase spans must be non-empty")
            spans = [[tuple(s)] if isinstance(s[0], int) else [tuple(x) for x in s] for s in spans]
            return [(caption, positive_map(self.tokenizer, caption, spans, max_len=t), list(range(len(spans))))]
        if isinstance(prompt, str):
            # a caption whose phrases are separated by '.'; each phrase span covers its stripped text
            spans = phrase_spans(prompt)
            if not spans:
                raise ValueError("empty prompt: give at least one phrase, e.g. 'cat. dog'")
            if len(self.tokenizer(prompt)["input_ids"]) <= t:
                pm = positive_map(self.tokenizer, prompt, [[s] for s in spans], max_len=t)
                return [(prompt, pm, list(range(len(spans))))]
            prompt = [prompt[s:e] for s, e in spans]  # too long for one pass: chunk the phrases as names
        names = [str(n) for n in prompt]
        if not names or any(not n.strip() for n in names):
            raise ValueError(f"empty prompt or empty class name in {names!r}")
        chunks = build_prompt_chunks(self.tokenizer, names, separator=". ", max_len=t)
        return [(ch.caption, ch.positive_map, list(ch.phrase_indices)) for ch in chunks]

    def predict(self, image: ImageLike, prompt: Prompt, threshold: float = 0.0) -> Detections:
        """Detect the prompt's phrases in one image.

        prompt: a list of names (joined with ". "), a caption string whose phrases are separated by '.',
        or (caption, spans) with one (start, end) character span (or a list of them) per phrase. Prompts
        longer than max_query_len tokens are chunked and the detections of all chunks concatenated.
        Returns Detections in the image's own pixels, labels indexing the phrase list, score >= threshold.
        """
        batch = self.preprocess([image])
        parts = []
        for caption, pm, indices in self._prompt_chunks(prompt):
            det = self.detect(batch, [caption], [pm])[0]
            lookup = torch.tensor(indices, dtype=torch.long, device=det.labels.device)
            parts.append(Detections(det.boxes_xyxy, det.scores, lookup[det.labels]))
        boxes = torch.cat([p.boxes_xyxy for p in parts])
        scores = torch.cat([p.scores for p in parts])
        labels = torch.cat([p.labels for p in parts])
        order = torch.argsort(scores, descending=True)
        order = order[scores[order] >= threshold]
        return Detections(boxes[order].cpu(), scores[order].cpu(), labels[order].cpu())

    # ------------------------------------------------------------------------------------- bookkeeping
    def stem_module_names(self) -> list[str]:
        """Submodules of the "backbone_stem" parameter group (full fine-tuning freezes and evals them)."""
        if self.config.backbone == "conv":
            return ["backbone.body.stem"]
        return ["backbone.body.swin.embeddings", "backbone.body.swin.encoder.layers.0"]

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by role; every parameter is in exactly one group.

        backbone_stem: patch embedding + Swin stage 1, or the conv body's stem (official
        FREEZE_CONV_BODY_AT 2, frozen in full fine-tuning); backbone: the rest of the body; fpn; language: BERT; fusion: VLFuse + the head's BERT
        layers; head: DyConv blocks and prediction layers (cls_logits included, always frozen);
        prompt: prompt_offset (official tunable_linear).
        """
        fusion_prefixes = tuple(f"head.dyhead_tower.{i}." for i, m in enumerate(self.head.dyhead_tower)
                                if isinstance(m, VLFuse | BertEncoderLayer))
        stem_prefixes = tuple(f"{m}." for m in self.stem_module_names())
        groups: dict[str, list[str]] = {g: [] for g in PARAMETER_GROUPS}
        for name, _ in self.named_parameters():
            if name.startswith(stem_prefixes):
                g = "backbone_stem"
            elif name.startswith("backbone.body."):
                g = "backbone"
            elif name.startswith("backbone.fpn."):
                g = "fpn"
            elif name.startswith("language."):
                g = "language"
            elif name.startswith(fusion_prefixes):
                g = "fusion"
            elif name.startswith("head."):
                g = "head"
            elif name == "prompt_offset":
                g = "prompt"
            else:  # a new submodule must be given a group here
                raise RuntimeError(f"parameter {name!r} has no parameter group")
            groups[g].append(name)
        return groups
