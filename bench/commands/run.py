"""`glip-bench run`: a grid of models x tasks x regimes x shots x seeds -> one record per run."""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from bench.util.errors import UserError

HELP = "run a grid of tasks x regimes x shots x seeds (resumable; one record per run)"
REGIMES = ("zero-shot", "linear-probe", "prompt-tuning", "full-ft")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model preset(s), comma-separated (e.g. glip-t, glip-synth)")
    parser.add_argument("--checkpoint", default=None, help="weights to start from (official .pth or safetensors)")
    parser.add_argument("--text-encoder", default=None, metavar="DIR",
                        help="local bert-base-uncased directory (tokenizer + weights) for glip-t / glip-l")
    parser.add_argument("--tasks", required=True, help="task names and/or groups, comma-separated (e.g. odinw13)")
    parser.add_argument("--regime", required=True,
                        help=f"regime(s), comma-separated: {', '.join(REGIMES)}")
    parser.add_argument("--shots", default=None,
                        help="training shots, comma-separated; 'all' = the full training set (default 1,3,5,10; "
                             "not for zero-shot)")
    parser.add_argument("--seeds", default=None, help="few-shot seeds, comma-separated (default 3,30,300)")
    parser.add_argument("--prompt-set", default="plain", help="the tasks' prompt set (plain, official, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="model field (fusion=late) or regime setting (lr=0.01, max_epochs=2); repeatable")
    parser.add_argument("--data-root", default=None, help="data root (default: $GLIP_BENCH_DATA, else ./data)")
    parser.add_argument("--results", default="results", help="results folder (runs/<run>/record.json)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run")
    parser.add_argument("--metric-backend", default="hotcoco", choices=["hotcoco", "pycocotools", "lvis"],
                        help="metric implementation (hotcoco, or the official libraries)")
    parser.add_argument("--rescore", action="store_true", help="recompute the metrics of finished runs only")
    parser.add_argument("--shard", default=None, metavar="i/N",
                        help="run the i-th (from 0) of N disjoint parts of the grid (split by spec hash)")
    parser.add_argument("--workers", type=int, default=None,
                        help="image-decoding worker processes for inference (default: auto: up to 4 on a GPU, none on "
                             "CPU, where a background thread decodes the next batch when a core is free; no effect on "
                             "any number)")
    parser.add_argument("--no-adapter", action="store_true",
                        help="do not keep training runs' stored tensors (adapter.safetensors; full-ft: all weights)")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs, compute nothing")


def parse_value(text: str) -> Any:
    """'1e-4' -> 0.0001, 'true' -> True, 'none' -> None, '[1,2]' -> [1, 2], 'late' -> 'late'."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            pass
    return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set takes KEY=VALUE (e.g. --set fusion=late), got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def parse_int_list(text: str | None, what: str, allow_all: bool = False) -> list[int | None] | None:
    if text is None:
        return None
    out: list[int | None] = []
    for tok in text.split(","):
        tok = tok.strip()
        if allow_all and tok == "all":
            out.append(None)
            continue
        try:
            out.append(int(tok))
        except ValueError:
            raise UserError(f"--{what} takes comma-separated integers{' or all' if allow_all else ''}, got {tok!r}") from None
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    i, sep, n = text.partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        raise UserError(f"--shard takes i/N (e.g. 0/4), got {text!r}") from None
    if not sep or count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < N (i counts from 0)")
    return index, count


def check_results_dir(results: str) -> None:
    """--results must be a folder (or not exist yet): a file there would fail at the first write."""
    from pathlib import Path

    path = Path(results)
    if path.exists() and not path.is_dir():
        raise UserError(f"--results {results} is a file, not a folder: pass the folder the records go into")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--results {results}: {parent} is a file, not a folder")


def build_specs(args: argparse.Namespace) -> list:
    from bench.runs.spec import expand_grid

    regimes = [r.strip() for r in args.regime.split(",") if r.strip()]
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    for flag, names, example in (("--model", models, "glip-tiny"), ("--regime", regimes, "zero-shot")):
        if not names:
            raise UserError(f"{flag} {getattr(args, flag[2:])!r} names nothing; give one or more, comma-separated "
                            f"(e.g. {flag} {example})")
    shots = parse_int_list(args.shots, "shots", allow_all=True)
    seeds = parse_int_list(args.seeds, "seeds")
    if regimes and all(r == "zero-shot" for r in regimes) and (shots is not None or seeds is not None):
        raise UserError("zero-shot runs take no --shots or --seeds; drop them or add a training regime")
    return expand_grid(models=models, tasks=args.tasks,
                       regimes=regimes, shots=shots, seeds=seeds, prompt_set=args.prompt_set,
                       overrides=parse_overrides(args.overrides), checkpoint=args.checkpoint)


def main(args: argparse.Namespace) -> int:
    """Run the grid; under `python -m torch.distributed.run --nproc_per_node N -m bench.cli run ...` every
    process joins the group, predicts its shards of each split, and rank 0 scores and prints."""
    import math

    from bench.dist import comm as dist
    from bench.results.records import primary_value
    from bench.runs.runner import run_grid
    from bench.runs.spec import RunContext, shard_specs, validate_specs
    from bench.util.logs import get_logger

    log = get_logger("run")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda, but torch sees no CUDA device; use --device cpu")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers takes a count >= 0, got {args.workers}")
    check_results_dir(args.results)
    specs = build_specs(args)
    for model in sorted({s.model for s in specs if s.checkpoint is None and not s.model.startswith("hf:")}):
        log.warning("--model %s without --checkpoint: random weights (training regimes start from them too); "
                    "zero-shot numbers of random weights mean nothing. Pass --checkpoint FILE", model)
    shard = parse_shard(args.shard)
    if args.dry_run:
        chosen = shard_specs(specs, *shard) if shard else specs
        validate_specs(chosen, args.data_root, text_encoder=args.text_encoder)
        for s in chosen:
            print(s.run_name)
        return 0
    dist.init_from_env("nccl" if args.device == "cuda" else "gloo")  # a no-op outside torchrun
    main_rank = dist.is_main()
    try:
        ctx = RunContext(data_root=args.data_root, results_dir=args.results, device=dist.local_device(args.device),
                         metric_backend=args.metric_backend, num_workers=args.workers,
                         text_encoder=args.text_encoder, save_adapter=not args.no_adapter)
        records = run_grid(specs, ctx, rescore=args.rescore, shard=shard)
    finally:
        dist.destroy()
    if not main_rank:  # the records live on rank 0
        return 0
    for r in records:
        v = primary_value(r)
        print(f"{r['spec']['task']:<32} {r['spec']['regime']:<14} {r['spec']['shots']!s:>4} shot  seed "
              f"{r['spec']['seed']:<4} {r['metrics']['primary']} {'nan' if math.isnan(v) else f'{v:.2f}'}")
    log.info("%d runs in %s", len(records), args.results)
    return 0
