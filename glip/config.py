"""Model configuration as data: one frozen dataclass holding every architecture number, and presets.

An ablation is a one-line `dataclasses.replace`: `replace(get_preset("glip-t"), fusion="late")` is the late
fusion variant (GLIP-T (A) layout) of GLIP-T. Numbers follow the official configs
(configs/pretrain/glip_Swin_T_O365_GoldG.yaml, glip_A_Swin_T_O365.yaml, glip_Swin_L.yaml, and the defaults in
maskrcnn_benchmark/config/defaults.py); comments name the official file a number comes from.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

# The test toy's offline vocabulary (glip-tiny): a few English words so that simple prompts ("red square.
# cat") are whole-word tokens. Every character of VOCAB_CHARS is in any built-in vocabulary as well (with
# its '##' form), so any lower-case ASCII caption tokenizes, unknown words falling back to characters.
TOY_WORDS: tuple[str, ...] = (
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
    "square", "circle", "triangle", "rectangle", "star", "ring", "cross", "diamond", "heart", "shape", "box",
    "small", "large", "big", "left", "right", "top", "bottom", "next", "above", "below",
    "person", "cat", "dog", "car", "bird", "horse", "bicycle", "boat", "bus", "truck", "fish", "hand",
    "a", "an", "the", "and", "of", "on", "in", "with", "there", "is", "are", "to", "at", "by", "it",
)
VOCAB_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()/&+_"

# official defaults.py INPUT.PIXEL_MEAN: ImageNet RGB mean reversed, x255
BGR_MEAN = (103.530, 116.280, 123.675)
BGR_STD = (57.375, 57.120, 58.395)


MIN_QUERY_LEN = 3
# sizes and counts that must be >= 1 (0 builds empty layers that fail far from the setting)
_POSITIVE_INTS = ("num_blocks", "swin_embed_dim", "swin_window_size", "swin_patch_size", "fpn_channels",
                  "fpn_drop_block_size", "text_hidden", "text_layers", "text_heads", "text_intermediate",
                  "text_vocab_size", "text_max_positions", "fusion_embed_dim", "fusion_heads", "group_norm_groups",
                  "dyrelu_reduction", "num_legacy_classes", "prompt_offset_len", "min_size", "max_size",
                  "train_max_size", "pre_nms_top_n", "detections_per_img")


@dataclass(frozen=True, kw_only=True)
class GLIPConfig:
    """Every number that decides a GLIP model's structure and outputs.

    Defaults are GLIP-T (deep fusion, configs/pretrain/glip_Swin_T_O365_GoldG.yaml); presets below override
    what differs.
    """

    name: str = "custom"
    # Swin body (official maskrcnn_benchmark/modeling/backbone/swint.py)
    swin_embed_dim: int = 96
    swin_depths: tuple[int, ...] = (2, 2, 6, 2)
    swin_num_heads: tuple[int, ...] = (3, 6, 12, 24)
    swin_window_size: int = 7
    swin_mlp_ratio: float = 4.0
    swin_drop_path_rate: float = 0.2
    swin_patch_size: int = 4
    # "conv": a small GN-ReLU conv body instead of Swin, for models trained from scratch on the synthetic
    # world (Swin from scratch does not learn shapes in a CPU budget; README "The synthetic world")
    backbone: Literal["swin", "conv"] = "swin"
    frozen_stages: int = -1  # official FREEZE_CONV_BODY_AT: 2 = patch embed + stage 1 frozen
    # FPN (official maskrcnn_benchmark/modeling/backbone/fpn.py)
    fpn_channels: int = 256
    fpn_drop_block_prob: float = 0.3  # DropBlock before fpn_layer{2,3} in training; 0 disables
    fpn_drop_block_size: int = 3
    # language backbone (official maskrcnn_benchmark/modeling/language_backbone/bert_model.py): BERT-base
    text_hidden: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    text_vocab_size: int = 30522
    text_max_positions: int = 512
    text_dropout: float = 0.1
    max_query_len: int = 256
    # official PAD_MAX True pads every caption to max_query_len tokens. False pads to the longest caption of
    # the batch instead: padded tokens are masked as keys in BERT and in image->text attention and are
    # never scored, so real tokens get the same outputs (up to float summation order) at a fraction of
    # the cost; the synthetic preset uses it.
    pad_to_max_query: bool = True
    # None: the bert-base-uncased tokenizer (a local directory must be given); a tuple: build an offline
    # WordPiece vocabulary from these words plus VOCAB_CHARS.
    vocab_words: tuple[str, ...] | None = None
    # head (official maskrcnn_benchmark/modeling/rpn/vldyhead.py)
    num_blocks: int = 6
    fusion: Literal["deep", "late"] = "deep"
    fusion_embed_dim: int = 2048
    fusion_heads: int = 8
    fusion_dropout: float = 0.1
    group_norm_groups: int = 16
    dyrelu_reduction: int = 4
    num_legacy_classes: int = 80  # cls_logits out channels (DYHEAD.NUM_CLASSES - 1)
    prior_prob: float = 0.01
    log_scale_init: float = 0.0
    # From-scratch training aids, all off (= official GLIP) in the released presets; glip-synth turns them on
    # because each one was measured to unblock learning from scratch (README "The synthetic world"):
    soft_token_loss_weight: float = 0.0  # MDETR-style soft-token CE at positive anchors (glip.losses)
    dcn_offset_init: Literal["default", "zero"] = "default"  # "zero": DCN starts as a plain 3x3 conv
    # "flat": the official kernel's reinterpretation of the finer level's offsets for the coarser input
    # (csrc/cuda/deform_conv_kernel_cuda.cu); "pooled": average-pool them to the coarser size instead
    dcn_coarse_offsets: Literal["flat", "pooled"] = "flat"
    # initial text-side layer scale (gamma_l) of the fusion; None = official 1/num_blocks. From scratch, the
    # image context it adds (nearly the same for every token) drowned the words' differences
    fusion_text_gamma_init: float | None = None
    # official rpn.tunable_linear.weight rows (maskrcnn_benchmark/modeling/rpn/vldyhead.py)
    prompt_offset_len: int = 1000
    # anchors (official maskrcnn_benchmark/modeling/rpn/anchor_generator.py, make_anchor_generator_complex)
    anchor_strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    anchor_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024)
    # input (official maskrcnn_benchmark/data/transforms/build.py, build_transforms)
    min_size: int = 800
    max_size: int = 1333
    train_min_sizes: tuple[int, ...] = (480, 560, 640, 720, 800)
    train_max_size: int = 1333
    flip_prob: float = 0.5
    size_divisibility: int = 32
    pixel_mean: tuple[float, float, float] = BGR_MEAN
    pixel_std: tuple[float, float, float] = BGR_STD
    # inference (official maskrcnn_benchmark/modeling/rpn/inference.py, ATSSPostProcessor)
    pre_nms_thresh: float = 0.05
    pre_nms_top_n: int = 1000
    nms_thresh: float = 0.6
    detections_per_img: int = 100
    score_agg: str = "mean"

    def __post_init__(self) -> None:
        for name, allowed in (("fusion", ("deep", "late")), ("backbone", ("swin", "conv")),
                              ("dcn_offset_init", ("default", "zero")), ("dcn_coarse_offsets", ("flat", "pooled"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_query_len < MIN_QUERY_LEN:
            raise ValueError(f"max_query_len must be >= {MIN_QUERY_LEN} ([CLS], a token and [SEP]), got {self.max_query_len}")
        for name in ("swin_drop_path_rate", "fpn_drop_block_prob", "text_dropout", "fusion_dropout", "flip_prob",
                     "pre_nms_thresh", "nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:  # NaN fails too
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if len(self.swin_depths) != 4 or len(self.swin_num_heads) != 4:
            raise ValueError(f"swin_depths and swin_num_heads need 4 stages, got {self.swin_depths}, "
                             f"{self.swin_num_heads}")
        if self.fpn_channels % self.group_norm_groups:
            raise ValueError(f"fpn_channels ({self.fpn_channels}) must be divisible by group_norm_groups "
                             f"({self.group_norm_groups})")
        if self.fusion_embed_dim % self.fusion_heads:
            raise ValueError(f"fusion_embed_dim ({self.fusion_embed_dim}) must be divisible by fusion_heads "
                             f"({self.fusion_heads})")
        if self.text_hidden % self.text_heads:
            raise ValueError(f"text_hidden ({self.text_hidden}) must be divisible by text_heads ({self.text_heads})")
        if self.max_query_len > self.text_max_positions:
            raise ValueError(f"max_query_len ({self.max_query_len}) exceeds text_max_positions "
                             f"({self.text_max_positions})")
        if self.prompt_offset_len < self.max_query_len:
            raise ValueError(f"prompt_offset_len ({self.prompt_offset_len}) must be >= max_query_len "
                             f"({self.max_query_len})")
        if len(self.anchor_strides) != 5 or len(self.anchor_sizes) != 5:
            raise ValueError("anchor_strides and anchor_sizes need 5 levels (P3-P7)")
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) > max_size ({self.max_size})")

    @property
    def swin_stage_channels(self) -> tuple[int, int, int, int]:
        """Channels of the 4 Swin stages (C, 2C, 4C, 8C)."""
        c = self.swin_embed_dim
        return (c, 2 * c, 4 * c, 8 * c)

    @property
    def dot_product_uses_fused_text(self) -> bool:
        """Deep fusion scores against the fused text after the last tower module; late fusion against
        BERT's masked 'embedded' output (official maskrcnn_benchmark/modeling/rpn/vldyhead.py,
        VLDyHead.forward, USE_FUSED_FEATURES_DOT_PRODUCT)."""
        return self.fusion == "deep"

    @property
    def layer_scale_init(self) -> float:
        """gamma_v (and, unless fusion_text_gamma_init is set, gamma_l) init = 1/NUM_CONVS
        (official maskrcnn_benchmark/utils/fuse_helper.py, BiAttentionBlockForCheckpoint)."""
        return 1.0 / self.num_blocks


def _glip_t() -> GLIPConfig:
    return GLIPConfig(name="glip-t")


def _glip_t_a() -> GLIPConfig:
    return replace(_glip_t(), name="glip-t-a", fusion="late")


def _glip_l() -> GLIPConfig:
    # official configs/pretrain/glip_Swin_L.yaml: Swin-L 192/(2,2,18,2)/(6,12,24,48)/window 12, drop path 0.4,
    # 8 blocks, frozen_stages 2
    return replace(_glip_t(), name="glip-l", swin_embed_dim=192, swin_depths=(2, 2, 18, 2),
                   swin_num_heads=(6, 12, 24, 48), swin_window_size=12, swin_drop_path_rate=0.4,
                   num_blocks=8, frozen_stages=2)


def _glip_tiny() -> GLIPConfig:
    """For tests: every module of GLIP at toy width, built in milliseconds."""
    return GLIPConfig(
        name="glip-tiny", swin_embed_dim=16, swin_depths=(1, 1, 1, 1), swin_num_heads=(1, 1, 2, 2),
        swin_window_size=4, swin_drop_path_rate=0.0, fpn_channels=32, fpn_drop_block_prob=0.0,
        text_hidden=32, text_layers=1, text_heads=2, text_intermediate=64, text_vocab_size=512,
        text_max_positions=256, text_dropout=0.0, vocab_words=TOY_WORDS,
        num_blocks=2, fusion_embed_dim=64, fusion_heads=4, fusion_dropout=0.0, group_norm_groups=8,
        num_legacy_classes=8, min_size=64, max_size=96, train_min_sizes=(64,), train_max_size=96,
    )


PRESETS = {
    "glip-t-a": _glip_t_a,
    "glip-t": _glip_t,
    "glip-l": _glip_l,
    "glip-tiny": _glip_tiny,
}


def register_preset(name: str, factory: Callable[[], GLIPConfig]) -> None:
    """Add a preset that lives outside this package (a harness's own model), so that `get_preset`,
    `glip.from_pretrained` and checkpoint tools resolve it by name like a built-in one.

    Registering the same factory again is a no-op; another factory under a taken name is a ValueError.
    """
    if PRESETS.get(name, factory) is not factory:
        raise ValueError(f"GLIP preset {name!r} is already registered")
    PRESETS[name] = factory


def get_preset(name: str, **overrides: object) -> GLIPConfig:
    """The preset `name` with `overrides` applied (field names of GLIPConfig).

    Unknown preset -> KeyError listing the valid ones and the closest; unknown field -> TypeError naming it.
    """
    if name not in PRESETS:
        near = difflib.get_close_matches(name, list(PRESETS), n=1, cutoff=0.4)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown GLIP preset {name!r}.{hint} Valid presets: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[name]()
    if overrides:
        fields = set(GLIPConfig.__dataclass_fields__)
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown GLIPConfig field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
        cfg = replace(cfg, **overrides)
    return cfg
