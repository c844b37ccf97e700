"""The synthetic world's model preset, `glip-synth` (bench/__init__.py registers it with glip's presets).

It lives here, not in glip/, because it is the demo's model: its vocabulary is the world's
(concepts.TOKENIZER_WORDS) and its from-scratch training aids were chosen on this world. Registered, it
is found by every name lookup (`glip.get_preset`, `glip.from_pretrained`, `--model glip-synth`).
"""

from __future__ import annotations

from bench.synthetic.concepts import TOKENIZER_WORDS
from glip.config import GLIPConfig

NAME = "glip-synth"


def glip_synth() -> GLIPConfig:
    """The synthetic world's model: 128-px images, ~1-2 M parameters, trains on 2 CPU cores.

    It learns from scratch, so it turns on the from-scratch aids (conv body, soft-token loss, zero-init
    DCN offsets pooled for the coarser input, text-side fusion layer scale 0.01); each was measured to
    help (README "The synthetic world"). swin_embed_dim is the conv body's base width here.
    """
    return GLIPConfig(
        name=NAME, backbone="conv", soft_token_loss_weight=1.0, dcn_offset_init="zero",
        dcn_coarse_offsets="pooled", fusion_text_gamma_init=0.01,
        swin_embed_dim=24, swin_depths=(1, 1, 2, 1), swin_num_heads=(1, 2, 3, 6),
        swin_window_size=4, swin_drop_path_rate=0.0, fpn_channels=64, fpn_drop_block_prob=0.0,
        text_hidden=64, text_layers=2, text_heads=2, text_intermediate=128, text_vocab_size=512,
        text_max_positions=256, text_dropout=0.0, vocab_words=TOKENIZER_WORDS, pad_to_max_query=False,
        num_blocks=2, fusion_embed_dim=128, fusion_heads=4, fusion_dropout=0.0, group_norm_groups=16,
        num_legacy_classes=8, min_size=128, max_size=128, train_min_sizes=(128,), train_max_size=128,
        # objects are 10-60 px in 128-px images: anchors of 4 x stride instead of the official 8 x stride
        anchor_sizes=(32, 64, 128, 256, 512),
    )

