"""Data-set loaders in the real formats: COCO / Roboflow ODinW json, LVIS v1 json, MDETR Flickr30K
json + Flickr30K Entities files, MDETR referring-expression json (RefCOCO/+/g, gRefCOCO). Use `bench.tasks.registry.get_task(name).load(split, data_root)`; the
functions here are the format-level pieces it calls."""

from bench.data.coco import load_coco, read_ann_json, validate_coco
from bench.data.flickr import load_mdetr_flickr, parse_annotation_xml, parse_sentences
from bench.data.lvis import load_lvis, validate_lvis
from bench.data.refexp import load_mdetr_refexp
from bench.data.types import DetectionDataset, GroundingDataset, GroundingSample, ImageInfo, Phrase

__all__ = [
    "DetectionDataset",
    "GroundingDataset",
    "GroundingSample",
    "ImageInfo",
    "Phrase",
    "load_coco",
    "load_lvis",
    "load_mdetr_flickr",
    "load_mdetr_refexp",
    "parse_annotation_xml",
    "parse_sentences",
    "read_ann_json",
    "validate_coco",
    "validate_lvis",
]
