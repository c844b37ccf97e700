"""Official GLIP checkpoints (maskrcnn_benchmark layout; official loader
maskrcnn_benchmark/utils/checkpoint.py and model_serialization.py) <-> this model.

Every official key maps to exactly one place in this model: a tensor of the same shape (renamed), the
three q/k/v projections of a split Swin `qkv`, or a derived buffer that is checked for equality
(`relative_position_index`, BERT `position_ids`). Unmapped, missing and mis-shaped keys are reported by
name; they raise unless explicitly allowed. Unlike the official loader, nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from glip.anchors import anchor_mismatches
from glip.config import PRESETS, GLIPConfig, get_preset

Shape = tuple[int, ...]

# official keys that a checkpoint may or may not hold (BERT's position_ids buffer; rpn.tunable_linear, prompt
# tuning only)
OPTIONAL_SUFFIXES = ("embeddings.position_ids", "rpn.tunable_linear.weight")


# ------------------------------------------------------------------------------------ official key list
def official_key_shapes(cfg: GLIPConfig) -> dict[str, Shape]:
    """Every key of an official checkpoint of this architecture with its shape, written from the official
    constructors
    independently of this package's modules (the reference the mapping is tested against)."""
    k: dict[str, Shape] = {}
    e, ws = cfg.swin_embed_dim, cfg.swin_window_size
    bb = "backbone.body."
    k[bb + "patch_embed.proj.weight"] = (e, 3, cfg.swin_patch_size, cfg.swin_patch_size)
    for n in ("patch_embed.proj.bias", "patch_embed.norm.weight", "patch_embed.norm.bias"):
        k[bb + n] = (e,)
    for s, (depth, heads) in enumerate(zip(cfg.swin_depths, cfg.swin_num_heads)):
        c = e * 2**s
        hid = int(c * cfg.swin_mlp_ratio)
        for j in range(depth):
            p = f"{bb}layers.{s}.blocks.{j}."
            k.update({p + "norm1.weight": (c,), p + "norm1.bias": (c,),
                      p + "attn.relative_position_bias_table": ((2 * ws - 1) ** 2, heads),
                      p + "attn.relative_position_index": (ws * ws, ws * ws),
                      p + "attn.qkv.weight": (3 * c, c), p + "attn.qkv.bias": (3 * c,),
                      p + "attn.proj.weight": (c, c), p + "attn.proj.bias": (c,),
                      p + "norm2.weight": (c,), p + "norm2.bias": (c,),
                      p + "mlp.fc1.weight": (hid, c), p + "mlp.fc1.bias": (hid,),
                      p + "mlp.fc2.weight": (c, hid), p + "mlp.fc2.bias": (c,)})
        if s < 3:
            p = f"{bb}layers.{s}.downsample."
            k.update({p + "reduction.weight": (2 * c, 4 * c), p + "norm.weight": (4 * c,), p + "norm.bias": (4 * c,)})
    for i in (1, 2, 3):
        k[f"{bb}norm{i}.weight"] = k[f"{bb}norm{i}.bias"] = (e * 2**i,)
    f = cfg.fpn_channels
    for i, c_in in zip((2, 3, 4), (2 * e, 4 * e, 8 * e)):
        k.update({f"backbone.fpn.fpn_inner{i}.weight": (f, c_in, 1, 1), f"backbone.fpn.fpn_inner{i}.bias": (f,),
                  f"backbone.fpn.fpn_layer{i}.weight": (f, f, 3, 3), f"backbone.fpn.fpn_layer{i}.bias": (f,)})
    for p in ("p6", "p7"):
        k[f"backbone.fpn.top_blocks.{p}.weight"] = (f, f, 3, 3)
        k[f"backbone.fpn.top_blocks.{p}.bias"] = (f,)
    d, inter = cfg.text_hidden, cfg.text_intermediate
    lb = "language_backbone.body.model."
    k.update({lb + "embeddings.word_embeddings.weight": (cfg.text_vocab_size, d),
              lb + "embeddings.position_embeddings.weight": (cfg.text_max_positions, d),
              lb + "embeddings.token_type_embeddings.weight": (2, d),
              lb + "embeddings.LayerNorm.weight": (d,), lb + "embeddings.LayerNorm.bias": (d,),
              lb + "embeddings.position_ids": (1, cfg.text_max_positions)})
    for i in range(cfg.text_layers):
        k.update(_bert_layer_keys(f"{lb}encoder.layer.{i}.", d, inter))
    h = "rpn.head."
    emb = cfg.fusion_embed_dim
    idx = 0
    for _ in range(cfg.num_blocks):
        if cfg.fusion == "deep":
            p = f"{h}dyhead_tower.{idx}.b_attn."
            k.update({p + "layer_norm_v.weight": (f,), p + "layer_norm_v.bias": (f,),
                      p + "layer_norm_l.weight": (d,), p + "layer_norm_l.bias": (d,),
                      p + "gamma_v": (f,), p + "gamma_l": (d,)})
            for name, (o, i_) in {"v_proj": (emb, f), "l_proj": (emb, d), "values_v_proj": (emb, f),
                                  "values_l_proj": (emb, d), "out_v_proj": (f, emb), "out_l_proj": (d, emb)}.items():
                k[f"{p}attn.{name}.weight"] = (o, i_)
                k[f"{p}attn.{name}.bias"] = (o,)
            k.update(_bert_layer_keys(f"{h}dyhead_tower.{idx + 1}.", d, inter))
            idx += 2
        p = f"{h}dyhead_tower.{idx}."
        for j in range(3):
            k.update({f"{p}DyConv.{j}.conv.weight": (f, f, 3, 3), f"{p}DyConv.{j}.conv.bias": (f,),
                      f"{p}DyConv.{j}.bn.weight": (f,), f"{p}DyConv.{j}.bn.bias": (f,)})
        r = f // cfg.dyrelu_reduction
        k.update({p + "AttnConv.1.weight": (1, f, 1, 1), p + "AttnConv.1.bias": (1,),
                  p + "relu.fc.0.weight": (r, f), p + "relu.fc.0.bias": (r,),
                  p + "relu.fc.2.weight": (4 * f, r), p + "relu.fc.2.bias": (4 * f,),
                  p + "offset.weight": (27, f, 3, 3), p + "offset.bias": (27,)})
        idx += 1
    n = cfg.num_legacy_classes
    k.update({h + "cls_logits.weight": (n, f, 1, 1), h + "cls_logits.bias": (n,),
              h + "bbox_pred.weight": (4, f, 1, 1), h + "bbox_pred.bias": (4,),
              h + "centerness.weight": (1, f, 1, 1), h + "centerness.bias": (1,),
              h + "dot_product_projection_text.weight": (f, d), h + "dot_product_projection_text.bias": (f,),
              h + "log_scale": (1,), h + "bias_lang": (d,), h + "bias0": (1,)})
    for i in range(5):
        k[f"{h}scales.{i}.scale"] = (1,)
        k[f"rpn.anchor_generator.cell_anchors.{i}"] = (1, 4)
    k["rpn.tunable_linear.weight"] = (cfg.prompt_offset_len, d)
    return k


def _bert_layer_keys(p: str, d: int, inter: int) -> dict[str, Shape]:
    k: dict[str, Shape] = {}
    for n in ("query", "key", "value"):
        k[f"{p}attention.self.{n}.weight"] = (d, d)
        k[f"{p}attention.self.{n}.bias"] = (d,)
    k.update({p + "attention.output.dense.weight": (d, d), p + "attention.output.dense.bias": (d,),
              p + "attention.output.LayerNorm.weight": (d,), p + "attention.output.LayerNorm.bias": (d,),
              p + "intermediate.dense.weight": (inter, d), p + "intermediate.dense.bias": (inter,),
              p + "output.dense.weight": (d, inter), p + "output.dense.bias": (d,),
              p + "output.LayerNorm.weight": (d,), p + "output.LayerNorm.bias": (d,)})
    return k


# ------------------------------------------------------------------------------------------- mapping
_SWIN = r"^backbone\.body\.layers\.(\d+)\.blocks\.(\d+)\."
_MODEL_SWIN = r"backbone.body.swin.encoder.layers.\1.blocks.\2."
# (official regex, model replacement): plain one-to-one renames, first match wins
_RENAMES: list[tuple[re.Pattern[str], str]] = [(re.compile(a), b) for a, b in [
    (r"^backbone\.body\.patch_embed\.proj\.", "backbone.body.swin.embeddings.patch_embeddings.projection."),
    (r"^backbone\.body\.patch_embed\.norm\.", "backbone.body.swin.embeddings.norm."),
    (_SWIN + r"norm1\.", _MODEL_SWIN + "layernorm_before."),
    (_SWIN + r"norm2\.", _MODEL_SWIN + "layernorm_after."),
    (_SWIN + r"attn\.relative_position_bias_table$",
     _MODEL_SWIN + "attention.relative_position_bias.relative_position_bias_table"),
    (_SWIN + r"attn\.relative_position_index$",
     _MODEL_SWIN + "attention.relative_position_bias.relative_position_index"),
    (_SWIN + r"attn\.proj\.", _MODEL_SWIN + "attention.o_proj."),
    (_SWIN + r"mlp\.(fc[12])\.", _MODEL_SWIN + r"mlp.\3."),
    (r"^backbone\.body\.layers\.(\d+)\.downsample\.", r"backbone.body.swin.encoder.layers.\1.downsample."),
    (r"^backbone\.body\.norm1\.", "backbone.body.hidden_states_norms.stage2."),
    (r"^backbone\.body\.norm2\.", "backbone.body.hidden_states_norms.stage3."),
    (r"^backbone\.body\.norm3\.", "backbone.body.hidden_states_norms.stage4."),
    (r"^backbone\.fpn\.", "backbone.fpn."),
    (r"^language_backbone\.body\.model\.", "language.model."),
    (r"^rpn\.head\.", "head."),
    (r"^rpn\.anchor_generator\.", "anchor_generator."),
    (r"^rpn\.tunable_linear\.weight$", "prompt_offset"),
]]
_QKV = re.compile(_SWIN + r"attn\.qkv\.(weight|bias)$")
# derived buffers: not in the model's state dict, checked for equality instead of loaded
_DERIVED = re.compile(r"(relative_position_index|embeddings\.position_ids)$")


def official_buffer(key: str, shape: Shape) -> torch.Tensor:
    """The value a derived buffer must have: Swin's relative_position_index for a window of
    sqrt(shape[0]) (computed as in the official swint.py), or BERT's position_ids arange."""
    if key.endswith("position_ids"):
        return torch.arange(shape[-1]).view(*shape)
    ws = int(round(shape[0] ** 0.5))
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)  # [2, ws*ws]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [ws*ws, ws*ws, 2]
    return (rel[..., 0] + ws - 1) * (2 * ws - 1) + (rel[..., 1] + ws - 1)


def model_targets(official_key: str) -> list[str]:
    """The model key(s) an official key maps to ([] when unmapped); qkv maps to three."""
    m = _QKV.match(official_key)
    if m:
        base = f"backbone.body.swin.encoder.layers.{m[1]}.blocks.{m[2]}.attention."
        return [f"{base}{p}_proj.{m[3]}" for p in ("q", "k", "v")]
    for pattern, repl in _RENAMES:
        if pattern.search(official_key):
            return [pattern.sub(repl, official_key)]
    return []


@dataclass
class ConversionReport:
    """What happened to every key. `ok` when nothing is unmapped, missing or mis-shaped."""

    mapped: int = 0
    unexpected: list[str] = field(default_factory=list)  # official keys with no place in this model
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint did not provide
    mismatched: list[str] = field(default_factory=list)  # "key: checkpoint shape vs model shape"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.mismatched)

    def summary(self, limit: int = 20) -> str:
        parts = [f"{self.mapped} tensors mapped"]
        for name, items in (("unmapped official keys", self.unexpected), ("missing model keys", self.missing),
                            ("shape mismatches", self.mismatched)):
            if items:
                shown = "\n    ".join(items[:limit])
                more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
                parts.append(f"{len(items)} {name}:\n    {shown}{more}")
        parts.extend(self.notes)
        return "\n  ".join(parts)


def strip_module_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DistributedDataParallel `module.` prefix when ALL keys carry it (as the official loader)."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def guess_preset(official: Mapping[str, torch.Tensor]) -> tuple[str | None, float]:
    """The preset whose official key/shape table best matches a checkpoint, and the matching fraction."""
    have = {k: tuple(v.shape) for k, v in official.items()}
    best, score = None, 0.0
    for name in PRESETS:
        want = official_key_shapes(get_preset(name))
        union = set(have) | {k for k in want if not k.endswith(OPTIONAL_SUFFIXES)}
        s = sum(1 for k, shp in have.items() if want.get(k) == shp) / max(len(union), 1)
        if s > score:
            best, score = name, s
    return best, score


def convert_official(official: Mapping[str, torch.Tensor], model: nn.Module, allow_missing: bool = False,
                     allow_unexpected: bool = False) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Official state dict -> this model's state dict (+ report). Raises ValueError naming every bad key
    (and the preset the checkpoint looks like) unless the problems are allowed. Mis-shaped keys always raise.
    """
    official = strip_module_prefix(official)
    expected = model.state_dict()  # works on the meta device: only shapes are read
    buffers = dict(model.named_buffers())
    out: dict[str, torch.Tensor] = {}
    rep = ConversionReport()
    for key, tensor in official.items():
        targets = model_targets(key)
        if not targets:
            rep.unexpected.append(key)
            continue
        if _DERIVED.search(key):  # derived buffer: checked, not loaded
            mine = buffers.get(targets[0])
            if mine is None:
                rep.unexpected.append(f"{key} (-> {targets[0]}, not in this model)")
            elif mine.numel() != tensor.numel():
                rep.mismatched.append(f"{key}: {tuple(tensor.shape)} vs model {targets[0]} {tuple(mine.shape)}")
            elif not tensor.is_meta and not torch.equal(tensor.reshape(-1).long(), official_buffer(key, tensor.shape).reshape(-1)):
                rep.mismatched.append(f"{key}: values differ from the official derived buffer")
            else:
                rep.mapped += 1
            continue
        pieces = list(tensor.chunk(3, dim=0)) if len(targets) == 3 else [tensor]
        for target, piece in zip(targets, pieces):
            if target not in expected:
                rep.unexpected.append(f"{key} (-> {target}, not in this model)")
                continue
            if tuple(piece.shape) != tuple(expected[target].shape):
                rep.mismatched.append(f"{key}: {tuple(piece.shape)} vs model {target} {tuple(expected[target].shape)}")
                continue
            out[target] = piece.contiguous().clone()
            rep.mapped += 1
    generator = getattr(model, "anchor_generator", None)
    if generator is not None:
        rep.mismatched += [f"rpn.{m}" for m in anchor_mismatches(generator, out, "anchor_generator.")]
    for target in expected:
        if target not in out:
            if target == "prompt_offset":
                out[target] = torch.zeros(expected[target].shape, dtype=torch.float32)
                rep.notes.append("no rpn.tunable_linear.weight: prompt_offset set to zero (official default)")
            else:
                rep.missing.append(target)
    problems = rep.mismatched or (rep.missing and not allow_missing) or (rep.unexpected and not allow_unexpected)
    if problems:
        cfg = getattr(model, "config", None)
        guess, score = guess_preset(official)
        hint = ""
        if cfg is not None and guess is not None and guess != cfg.name and score > 0.5:
            hint = (f"\n  This checkpoint looks like preset {guess!r} ({score:.0%} of its keys match), not "
                    f"{cfg.name!r}: build the model with preset {guess!r}.")
        raise ValueError(f"checkpoint does not fit the model{f' {cfg.name!r}' if cfg else ''}:\n  "
                         f"{rep.summary()}{hint}")
    return out, rep


def export_official(model: nn.Module, include_prompt_offset: bool | None = None,
                    include_position_ids: bool = True) -> dict[str, torch.Tensor]:
    """This model -> an official-layout state dict (maskrcnn_benchmark names; Swin q/k/v merged into qkv).

    include_prompt_offset: write rpn.tunable_linear.weight (default: only when it is non-zero).
    """
    cfg: GLIPConfig = model.config  # type: ignore[assignment]
    sd = model.state_dict()
    buffers = dict(model.named_buffers())
    if sd["prompt_offset"].shape[0] != cfg.prompt_offset_len:
        raise ValueError(f"prompt_offset has {sd['prompt_offset'].shape[0]} class-anchored rows, not the official "
                         f"per-position {cfg.prompt_offset_len}: it has no official layout (rpn.tunable_linear)")
    if include_prompt_offset is None:
        include_prompt_offset = bool(sd["prompt_offset"].any())
    out: dict[str, torch.Tensor] = {}
    for key, shape in official_key_shapes(cfg).items():
        if key == "rpn.tunable_linear.weight" and not include_prompt_offset:
            continue
        if key.endswith("embeddings.position_ids") and not include_position_ids:
            continue
        targets = model_targets(key)
        if _DERIVED.search(key):
            value = buffers[targets[0]].reshape(shape)
        elif len(targets) == 3:
            value = torch.cat([sd[t] for t in targets], dim=0)
        else:
            value = sd[targets[0]]
        out[key] = value.detach().clone().contiguous()
    return out


# ----------------------------------------------------------------------------------------- files
def load_official_file(path: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """Read an official .pth: its `model` entry (or `model_ema` with ema=True), or a bare state dict.

    Uses torch.load(weights_only=True): tensors and plain containers only, no arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the reason and what to do
        raise ValueError(f"cannot read {path} as a weights-only torch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); re-save its 'model' state dict with "
                         "plain tensors") from e
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    entry = "model_ema" if ema else "model"
    if entry in obj and isinstance(obj[entry], Mapping):
        obj = obj[entry]
    elif ema:
        raise ValueError(f"{path} has no 'model_ema' entry; top-level entries: {sorted(obj)[:10]}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} contains no tensors under 'model' or at the top level; entries: {sorted(obj)[:10]}")
    if len(tensors) != len(obj):
        others = sorted(k for k in obj if k not in tensors)
        raise ValueError(f"{path}: entries that are not tensors where a state dict was expected: {others[:10]}")
    return tensors


def config_metadata(cfg: GLIPConfig) -> dict[str, str]:
    return {"format": "glip-bench", "preset": cfg.name, "config": json.dumps(asdict(cfg))}


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """The one weights writer: tensors (cloned to CPU: tied tensors are fine) as safetensors, atomically.

    Written to a temporary file beside `path`, flushed, then renamed over it: a reader sees the old file or
    the whole new one, never a part (a run stopped mid-write leaves no truncated weights behind).
    """
    import tempfile

    from safetensors.torch import save

    data = save({k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()},
                metadata=dict(metadata) if metadata else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # what open() would give (mkstemp's own mode is 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_weights(model: nn.Module, path: str | Path, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
    """Save this model's weights as safetensors, with its config in the metadata."""
    sd = state_dict if state_dict is not None else model.state_dict()
    write_safetensors(path, sd, metadata=config_metadata(model.config))  # type: ignore[arg-type]


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, metadata) of a safetensors file written by save_weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except Exception as e:  # noqa: BLE001 - safetensors' own error names no file
        raise ValueError(f"cannot read {path} as a safetensors file ({type(e).__name__}: {e}); "
                         "it is truncated or not a safetensors file: write it again") from e


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors file of this package into `model`; a file for another preset or architecture
    raises ValueError saying which preset it was saved from."""
    sd, meta = read_weights(path)
    cfg: GLIPConfig = model.config  # type: ignore[assignment]
    saved = meta.get("preset")
    expected = model.state_dict()
    bad_shape = [k for k in sd if k in expected and tuple(sd[k].shape) != tuple(expected[k].shape)]
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if bad_shape or missing or unexpected:
        who = f" (saved from preset {saved!r})" if saved else ""
        raise ValueError(
            f"{path}{who} does not fit model {cfg.name!r}: {len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}, {len(bad_shape)} shape mismatches "
            f"{bad_shape[:5]}" + (f"; build the model with preset {saved!r}" if saved and saved != cfg.name else ""))
    generator = getattr(model, "anchor_generator", None)
    anchors = anchor_mismatches(generator, sd, "anchor_generator.") if generator is not None else []
    if anchors:
        fix = (f"it was saved from preset {saved!r}: build the model with preset {saved!r}"
               if saved and saved != cfg.name else "fix the file or the anchor_strides / anchor_sizes of the config")
        raise ValueError(f"{path}: stored anchors differ from those model {cfg.name!r} generates:\n  "
                         + "\n  ".join(anchors) + f"\n  (they would move every box; {fix})")
    model.load_state_dict(sd, strict=True)
