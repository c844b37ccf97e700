"""`glip-bench convert-checkpoint IN OUT`: an official GLIP .pth -> this package's safetensors (every key
mapped and reported), or back with --export-official."""

from __future__ import annotations

import argparse

HELP = "convert an official GLIP checkpoint to safetensors (or export back to the official layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="official .pth (or, with --export-official, a .safetensors)")
    parser.add_argument("output", metavar="OUT", help="output .safetensors (or .pth with --export-official)")
    parser.add_argument("--preset", default=None,
                        help="model preset (glip-t-a, glip-t, glip-l, ...); default: detected from the keys")
    parser.add_argument("--allow-missing", action="store_true", help="keep model weights the file lacks (random)")
    parser.add_argument("--allow-unexpected", action="store_true", help="ignore official keys with no place here")
    parser.add_argument("--ema", action="store_true", help="convert the checkpoint's model_ema entry")
    parser.add_argument("--export-official", action="store_true",
                        help="IN is a safetensors of this package; write the official maskrcnn_benchmark layout")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from bench.util.errors import UserError, unknown_name
    from bench.util.logs import get_logger
    from glip import GLIP
    from glip.checkpoint import (
        convert_official,
        export_official,
        guess_preset,
        load_official_file,
        read_weights,
        save_weights,
        strip_module_prefix,
    )
    from glip.config import PRESETS, GLIPConfig, get_preset

    log = get_logger("convert")
    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise UserError(f"input checkpoint not found: {src}")
    if args.preset is not None and args.preset not in PRESETS:
        raise unknown_name("preset", args.preset, PRESETS)
    try:
        if args.export_official:
            sd, meta = read_weights(src)
            if "config" in meta:
                cfg = GLIPConfig(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in json.loads(meta["config"]).items()})
            elif args.preset:
                cfg = get_preset(args.preset)
            else:
                raise UserError(f"{src} has no glip-bench config metadata: pass --preset")
            model = GLIP(cfg, tokenizer=None)
            model.load_state_dict(sd, strict=True)
            official = export_official(model)
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": official}, dst)
            log.info("wrote %d official keys (preset %s) to %s", len(official), cfg.name, dst)
            return 0
        official = strip_module_prefix(load_official_file(src, ema=args.ema))
        name = args.preset
        if name is None:
            name, score = guess_preset(official)
            if name is None or score < 0.99:
                raise UserError(f"cannot tell the preset of {src} (best match {name!r}, {score:.0%} of keys): "
                                "pass --preset")
            log.info("detected preset %s (%.1f%% of keys match)", name, 100 * score)
        cfg = get_preset(name)
        cls = official.get("rpn.head.cls_logits.weight")
        if cls is not None and cls.shape[0] != cfg.num_legacy_classes:
            log.info("cls_logits has %d channels (preset default %d): kept as in the checkpoint",
                     cls.shape[0], cfg.num_legacy_classes)
            cfg = get_preset(name, num_legacy_classes=int(cls.shape[0]))
        with torch.device("meta"):
            shapes_model = GLIP(cfg, tokenizer=None)
        state, report = convert_official(official, shapes_model, allow_missing=args.allow_missing,
                                         allow_unexpected=args.allow_unexpected)
        if report.missing:  # allowed: fill with a freshly initialised model's values
            fresh = GLIP(cfg, tokenizer=None).state_dict()
            for k in report.missing:
                state[k] = fresh[k]
        save_weights(shapes_model, dst, state)
        log.info("%s\nwrote %s", report.summary(), dst)
        return 0
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise UserError(str(e)) from e
