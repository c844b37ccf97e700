"""The built-in synthetic grounding world: 128-px scenes of coloured shapes with exact boxes and captions.

No weights or data sets can be downloaded, so glip-bench proves itself here: a small GLIP
(`glip-synth`) pretrains on BASE concepts and is then tested zero-shot and few-shot on held-out
colour-shape COMPOSITIONS and NOVEL shapes (concepts.py has the split). Everything is written in the
real formats so the real loaders and metrics run on it.

Public API:
    glip-synth                         the world's model preset (preset.py; bench/__init__.py registers it)
    generate(data_root, seed=0, scale=1.0 | "quick", tasks=None) -> dict   (idempotent; see generate.py)
    vocabulary() -> list[str]          every word a caption or prompt can use (offline tokenizer)
    pretraining_entries(seed=0, scale=1.0) -> list[dict]
    pretraining_paths(data_root) -> (json path, image root)   what bench.runs.train.pretrain reads
    TASKS                              the task names generate() knows ("pretrain" included)

Layout under <data_root>/synthetic/ (paths match tasks/synthetic/*.yaml):

    concepts.json                                   the concept split
    <task>/manifest.json                            config hash + sha256 of every json (written last)
    synth-{shapes,colours,compositions,novel,crowded}/     Roboflow / ODinW export
        {train,valid,test}/NNNNNN.png + annotations_without_background.json (COCO, category ids 1..K)
        train/fewshot_train_shot{k}_seed{s}.json, valid/fewshot_val_shot{k}_seed{s}.json
            (k in 1,3,5,10; s in 3,30,300; the official greedy image-level quota, writers.fewshot_coco)
    synth-grounding/                                Flickr30K-style grounding
        flickr30k-images/<original_img_id>.png
        mdetr_annotations/final_flickr_separateGT_{train,val,test}.json   (MDETR json)
        mdetr_annotations/flickr_recall_gt_{split}.json   (docs/formats.md section 2)
        flickr30k_entities/{Sentences,Annotations}/<original_img_id>.{txt,xml}, {split}.txt
    synth-lvis/                                     LVIS-style federated set, 96 classes "red_circle"...
        images/{train,val,test}/NNNNNN.png, annotations/lvis_{train,val,test}.json
    pretrain/
        images/NNNNNN.png
        mdetr_annotations/final_synth_pretrain.json    the pretraining set (below)
        detection_train.json                           the same images as O365-style COCO detection
                                                       (56 base colour-shape classes)

Pretraining json (MDETR style, one `images` record per (image, caption)):
    images: {"id", "file_name" (under pretrain/images), "height", "width", "caption",
             "source": "grounding" | "detection", "original_img_id", "sentence_id",
             "tokens_positive_eval": [[[s, e]], ...] one span list per phrase, "tokens_negative", "dataset_name"}
    annotations: {"id", "image_id" (the caption record), "bbox": [x, y, w, h], "area", "iscrowd": 0,
                  "category_id": 1, "tokens_positive": [[s, e]], "phrase_ids": phrase index}
    "grounding" records carry a caption ("a small red star left of a blue ring"); "detection" records
    carry GLIP's detection-as-grounding prompt: present class names plus sampled negatives, shuffled,
    joined with ". " ("star. heart. ring" or "red star. blue ring. ..."), each span on a name, negatives
    without boxes (maskrcnn_benchmark/data/datasets/od_to_grounding.py). Base concepts only: no held-out
    pair is ever drawn and no novel-shape word ever appears.

Boxes everywhere are pixel-inclusive COCO xywh with the official +1 convention: an object covering pixel
columns x1..x2 has w = x2 - x1 + 1 (legacy xyxy [x1, y1, x2, y2]); recall gt and Entities XML use that
inclusive xyxy. Detection annotations also carry "attributes": {"colour", "shape", "size"}.
"""

from bench.synthetic.concepts import vocabulary
from bench.synthetic.generate import generate, pretraining_entries, pretraining_paths
from bench.synthetic.specs import ALL_TASKS as TASKS

__all__ = ["TASKS", "generate", "pretraining_entries", "pretraining_paths", "vocabulary"]
