"""glip-bench pseudo-label: a teacher grounds the noun phrases of captions; confident boxes -> grounding json.

Captions file: a JSON list or JSONL of {"file_name": path under --images, "caption": str, "id": optional
positive int}. Output: the MDETR-style grounding json the training path reads (see
bench/studies/selftrain/pseudo_label.py). An interrupted run resumes from <out>.partial.jsonl when rerun.
"""

from __future__ import annotations

import argparse

HELP = "pseudo-label image-caption pairs with a teacher GLIP (noun phrases -> boxes -> grounding json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="teacher preset (glip-t, glip-synth, ...)")
    parser.add_argument("--checkpoint", default=None, help="teacher weights (official .pth or safetensors)")
    parser.add_argument("--captions", required=True,
                        help='JSON list or JSONL of {"file_name", "caption"[, "id"]}')
    parser.add_argument("--images", required=True, help="directory the file names are relative to")
    parser.add_argument("--out", required=True, help="grounding json to write")
    parser.add_argument("--threshold", type=float, default=0.5, help="keep boxes with score >= this")
    parser.add_argument("--tokenizer", default=None, help="local tokenizer dir (bert-base-uncased for glip-t/l)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per teacher forward pass")
    parser.add_argument("--extractor", default="rule",
                        help="noun-phrase extractor: rule (built in), spacy (a locally installed English "
                             "pipeline) or spacy:<model name or dir>")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")


def main(args: argparse.Namespace) -> int:
    import json

    from bench.studies.selftrain.phrases import get_extractor
    from bench.studies.selftrain.pseudo_label import load_teacher, pseudo_label

    extractor = get_extractor(args.extractor)  # fail on a missing spaCy before building the model
    teacher, info = load_teacher(args.model, args.checkpoint, args.tokenizer, args.device)
    summary = pseudo_label(teacher, args.captions, args.images, args.out, threshold=args.threshold,
                           batch_size=args.batch_size, extractor=extractor, teacher_info=info, device=args.device)
    print(json.dumps(summary, indent=2))
    return 0
