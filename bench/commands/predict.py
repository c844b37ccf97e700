"""`glip-bench predict`: detect the phrases of a prompt in one image; boxes as JSON and drawn on a PNG."""

from __future__ import annotations

import argparse

HELP = "detect a prompt's phrases in one image (boxes as JSON, optionally drawn on a PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="preset: glip-t-a, glip-t, glip-l, glip-tiny, glip-synth")
    parser.add_argument("--checkpoint", help="official GLIP .pth or a .safetensors of this package "
                        "(default: random weights)")
    parser.add_argument("--text-encoder", help="local bert-base-uncased directory (presets using BERT-base)")
    parser.add_argument("--image", required=True, help="image file (grayscale/RGBA are converted to RGB)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="caption whose phrases are separated by '.', e.g. 'cat. dog'")
    group.add_argument("--classes", help="comma-separated class names, e.g. cat,dog")
    parser.add_argument("--threshold", type=float, default=0.3, help="keep detections with score >= this")
    parser.add_argument("--out-json", help="write detections here (default: print to stdout)")
    parser.add_argument("--out-png", help="write the image with the boxes drawn here (upscaled to at least 512 px "
                        "on its short side; the JSON keeps original pixels)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])


def unknown_words(tokenizer, phrases: list[str]) -> list[str]:
    """The words of `phrases` the tokenizer can only encode as its unknown token."""
    unk = tokenizer.unk_token_id
    return [w for p in phrases for w in p.split()
            if unk in tokenizer(w, add_special_tokens=False)["input_ids"]]


def warn_unknown_words(tokenizer, phrases: list[str]) -> None:
    from bench.util.logs import get_logger

    words = unknown_words(tokenizer, phrases)
    if words:
        get_logger("predict").warning(
            "words not in the model's vocabulary, encoded as %s (the model cannot tell them apart): %s",
            tokenizer.unk_token, ", ".join(repr(w) for w in dict.fromkeys(words)))


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    import glip
    from bench.data.types import load_image_file
    from bench.util.errors import UserError, unknown_name
    from bench.util.logs import get_logger
    from glip.config import PRESETS
    from glip.prompts import phrase_spans

    log = get_logger("predict")
    if args.model not in PRESETS:
        raise unknown_name("model", args.model, PRESETS)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu")
    path = Path(args.image)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    image = load_image_file(path)  # rc 2 naming it: unreadable, a decompression bomb, 1:100 past; 16-bit scaled
    if args.classes is not None:
        prompt: str | list[str] = [c.strip() for c in args.classes.split(",")]
        phrases = prompt
        if not any(phrases) or not all(phrases):
            raise UserError(f"--classes {args.classes!r} has an empty class name; give e.g. --classes cat,dog")
    else:
        prompt = args.prompt
        phrases = [prompt[s:e] for s, e in phrase_spans(prompt)]
        if not phrases:
            raise UserError("--prompt is empty; give phrases separated by '.', e.g. --prompt 'cat. dog'")
        empty = sum(not seg.strip() for seg in prompt.rstrip().rstrip(".").split("."))
        if empty:
            log.warning("--prompt %r: %d empty phrase(s) between '.'s dropped; the phrases are %s",
                        prompt, empty, phrases)
    try:
        model = glip.from_pretrained(args.model, checkpoint=args.checkpoint, text_encoder=args.text_encoder)
        model.to(args.device)
        warn_unknown_words(model.tokenizer, phrases)
        result = model.predict(image, prompt, threshold=args.threshold)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise UserError(str(e)) from e
    if args.checkpoint is None:
        log.warning("no --checkpoint: the model has random weights, detections are meaningless")
    dets = [{"box_xyxy": [round(float(v), 2) for v in box], "score": round(float(score), 4), "label": int(label),
             "phrase": phrases[int(label)]}
            for box, score, label in zip(result.boxes_xyxy.tolist(), result.scores.tolist(), result.labels.tolist())]
    payload = {"image": str(path), "width": image.width, "height": image.height, "model": args.model,
               "checkpoint": args.checkpoint, "phrases": phrases, "threshold": args.threshold,
               "box_format": "xyxy, original image pixels (official +1 width convention)", "detections": dets}
    text = json.dumps(payload, indent=2)
    if args.out_json:
        Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out_json).write_text(text + "\n")
        log.info("%d detections -> %s", len(dets), args.out_json)
    else:
        print(text)
    if args.out_png:
        Path(args.out_png).parent.mkdir(parents=True, exist_ok=True)
        from bench.reports.drawing import draw_detections

        scale = draw_detections(image, dets, args.out_png)
        log.info("drawn on %s (%.3gx the image's size, so the labels are readable)", args.out_png, scale)
    return 0
