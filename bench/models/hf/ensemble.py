"""Prompt-template ensembling of OWL-ViT / OWLv2's class queries: how their authors evaluate (protocol=published).

The authors' evaluator (google-research/scenic, scenic/projects/owl_vit/evaluator.py, get_predictions and
get_predict_fn) puts every class name into each prompt template, canonicalises the text
(preprocessing/label_ops.py, _canonicalize_string_tf), embeds it with the text model, applies the class head
to each template's queries and averages the class logits over the templates (jax.vmap over the templates,
then jnp.mean over that axis); the score is the sigmoid of the averaged logit. Here the same with
transformers' own modules (`image_embedder`, `class_predictor`, `box_predictor`, the base model's
`get_text_features`): the text is embedded once per class (the adapter caches it per run), the image once
per batch for every chunk, and the class head sees all templates' queries in one call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class EnsembleOutput:
    """What the adapter reads of a forward pass: class logits [B, P, C] and normalised cxcywh boxes [B, P, 4]."""

    logits: torch.Tensor
    pred_boxes: torch.Tensor


@dataclass(frozen=True)
class ImageEmbedding:
    """One batch of images embedded once: patch features [B, P, D] and the boxes predicted from them [B, P, 4]."""

    features: torch.Tensor
    pred_boxes: torch.Tensor


def canonical(text: str) -> str:
    """The authors' canonical form of a query: lower case, every character but a-z, 0-9, "-" and space made a
    space, runs of spaces and of dashes made one, stripped (label_ops._canonicalize_string_tf; its "#" marker
    for queries that take no template is not used by the evaluator and is treated as any other character)."""
    text = re.sub(r"[^a-z0-9\- ]", " ", text.lower())
    return re.sub(r"-+", "-", re.sub(r"\s+", " ", text)).strip()


def templated(entries: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every class entry in every template, template-major: [T * C] texts, text t * C + c is class c in template t."""
    return [canonical(template.format(entry)) for template in templates for entry in entries]


def text_queries(model: Any, tokens: dict[str, torch.Tensor], num_templates: int) -> torch.Tensor:
    """[T, C, d] query embeddings of the templated texts' tokens ([T * C, L]), each scaled to unit length as the
    model's own forward hands its text embeddings to the class head (Owlv2Model / OwlViTModel.forward)."""
    feats = model.base_model.get_text_features(input_ids=tokens["input_ids"],
                                               attention_mask=tokens["attention_mask"]).pooler_output
    feats = feats / torch.linalg.norm(feats, ord=2, dim=-1, keepdim=True)
    return feats.reshape(num_templates, -1, feats.shape[-1])


def embed_images(model: Any, pixel_values: torch.Tensor) -> ImageEmbedding:
    """The image side of the detector's forward, once per batch: patch features and their boxes."""
    feature_map = model.image_embedder(pixel_values=pixel_values)[0]  # [B, h, w, D]
    b, h, w, d = feature_map.shape
    features = feature_map.reshape(b, h * w, d)  # [B, P, D], P = h * w patches, as the forward flattens them
    return ImageEmbedding(features, model.box_predictor(features, feature_map))


def classify(model: Any, image: ImageEmbedding, queries: torch.Tensor) -> EnsembleOutput:
    """Class logits averaged over the templates: the class head on all T * C queries at once, [B, P, T * C]
    viewed as [B, P, T, C] and averaged over T (the mean of the per-template logits, as the authors' evaluator)."""
    t, c, d = queries.shape
    b = image.features.shape[0]
    flat = queries.reshape(1, t * c, d).expand(b, -1, -1)  # the same queries for every image of the batch
    mask = torch.ones(b, t * c, dtype=torch.bool, device=flat.device)  # no padded query, as the forward's mask
    logits, _ = model.class_predictor(image.features, flat, mask)
    return EnsembleOutput(logits.reshape(b, -1, t, c).mean(dim=2), image.pred_boxes)
