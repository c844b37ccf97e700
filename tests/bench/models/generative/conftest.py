"""Tiny random text-answering models saved with save_pretrained (a byte-level tokenizer with each family's
special tokens), and the synthetic data the CLI tests run on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

WORDS = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart", "detect")


def byte_tokenizer(special: list[str], *, bos: str, eos: str, pad: str, unk: str = "<unk>",
                   extra: dict[str, str] | None = None):
    """A byte-level BPE (every byte a token, no merges) with the synthetic class names as whole tokens and
    the family's special tokens: decodes back to exactly the text it encoded."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    base = [pad, bos, eos, unk, *bytes_to_unicode().values()]
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(base)}, merges=[], unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad,
                                  unk_token=unk, extra_special_tokens=extra or {})
    tok.add_tokens(list(WORDS))
    tok.add_tokens([AddedToken(s, special=True, normalized=False) for s in special], special_tokens=True)
    return tok


def _florence2(folder: Path) -> None:
    from transformers import (
        BartConfig,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = byte_tokenizer([f"<loc_{i}>" for i in range(1000)], bos="<s>", eos="</s>", pad="<pad>",
                         extra={"image_token": "<image>"})
    text = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                      decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=tok.bos_token_id)
    vision = dict(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                  patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[1, 2], num_groups=[1, 2], window_size=2,
                  projection_dim=32, max_position_embeddings=8)
    Florence2ForConditionalGeneration(Florence2Config(text_config=text, vision_config=vision,
                                                      image_token_id=tok.image_token_id)).save_pretrained(folder)
    size = {"height": 64, "width": 64}
    images = CLIPImageProcessorPil(size=size, crop_size=size, do_center_crop=False)
    images.image_seq_length = 65  # 64 x 64 -> 8 x 8 DaViT tokens + 1
    parse_tasks = {"description_with_bboxes_or_polygons": {}, "description_with_bboxes": {}, "phrase_grounding": {}}
    Florence2Processor(image_processor=images, tokenizer=tok, post_processor_config=parse_tasks).save_pretrained(folder)


def _paligemma(folder: Path) -> None:
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = byte_tokenizer([f"<loc{i:04d}>" for i in range(1024)], bos="<bos>", eos="<eos>", pad="<pad>",
                         extra={"image_token": "<image>"})
    text = GemmaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=8, projection_dim=32)
    config = PaliGemmaConfig(text_config=text, vision_config=vision, image_token_index=tok.image_token_id,
                             projection_dim=32, vocab_size=len(tok))
    PaliGemmaForConditionalGeneration(config).save_pretrained(folder)
    images = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    images.image_seq_length = 16  # (32 / 8) ** 2 patches
    PaliGemmaProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)


def _kosmos2(folder: Path) -> None:
    from transformers import Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = byte_tokenizer([], bos="<s>", eos="</s>", pad="<pad>")
    size = {"height": 32, "width": 32}
    images = CLIPImageProcessorPil(size=size, crop_size=size, do_center_crop=False)
    processor = Kosmos2Processor(image_processor=images, tokenizer=tok)  # adds the tag and patch-index tokens
    text = dict(vocab_size=len(processor.tokenizer), embed_dim=32, layers=1, ffn_dim=64, attention_heads=2,
                max_position_embeddings=2048, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    Kosmos2ForConditionalGeneration(Kosmos2Config(text_config=text, vision_config=vision,
                                                  latent_query_num=64)).save_pretrained(folder)
    processor.save_pretrained(folder)


QWEN_SPECIAL = ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _qwen(folder: Path, version: str) -> None:
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = byte_tokenizer(QWEN_SPECIAL, bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>", unk="<|unk|>")
    ids = {s: tok.convert_tokens_to_ids(s) for s in QWEN_SPECIAL}
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, rope_parameters=rope, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if version == "2.5":
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                      fullatt_block_indexes=[0], window_size=56)
        model = transformers.Qwen2_5_VLForConditionalGeneration(
            transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens))
        patch = 14
    else:
        text["head_dim"] = 16
        rope["mrope_interleaved"] = True
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                      num_position_embeddings=16, deepstack_visual_indexes=[0])
        model = transformers.Qwen3VLForConditionalGeneration(
            transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **tokens))
        patch = 16
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    factor = 2 * patch  # 128 x 128 images -> 140 x 140 (2.5: multiples of 28) or 128 x 128 (3: of 32)
    Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2,
                             size={"shortest_edge": factor * factor, "longest_edge": 100 * factor * factor}
                             ).save_pretrained(folder)


BUILDERS = {"florence-2": _florence2, "paligemma": _paligemma, "kosmos-2": _kosmos2,
            "qwen2.5-vl": lambda folder: _qwen(folder, "2.5"), "qwen3-vl": lambda folder: _qwen(folder, "3")}


def save_tiny(family: str, folder: Path, seed: int = 0) -> Path:
    """A random tiny `family` model + processor saved into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BUILDERS[family](folder)
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from bench.testing.hf import make_data

    return make_data(tmp_path_factory.mktemp("generative-data"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> its tiny model's folder, built once per module."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = save_tiny(family, tmp_path_factory.mktemp(family))
        return made[family]
    return get


# ------------------------------------------------------------------ scripted answers
MODEL_CLASSES = {"florence-2": "Florence2ForConditionalGeneration", "paligemma": "PaliGemmaForConditionalGeneration",
                 "kosmos-2": "Kosmos2ForConditionalGeneration", "qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration",
                 "qwen3-vl": "Qwen3VLForConditionalGeneration"}


def scripted_generate(script, tokenizer):
    """A stand-in for `generate`: the scripted answer's tokens, each given probability p by its logits."""
    def generate(self, input_ids=None, generation_config=None, **kwargs):
        prompt = tokenizer.decode(input_ids[0], skip_special_tokens=False)
        text, p = script(prompt)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        vocab = self.get_output_embeddings().weight.shape[0]
        logits = []
        for t in ids:  # the token and round(1/p) - 1 others share the mass: p each
            row = torch.full((1, vocab), -1e4)
            n = round(1 / p)
            row[0, [(t + k) % vocab for k in range(n)]] = 0.0
            logits.append(row)
        prefix = input_ids[0].tolist() if not self.config.is_encoder_decoder else [0]
        return SimpleNamespace(sequences=torch.tensor([prefix + ids]), logits=tuple(logits))
    return generate



@pytest.fixture
def scripted(tiny, monkeypatch):
    """(family, script) -> the tiny model's folder, its class's `generate` answering `script(prompt)`."""
    import transformers

    def make(family: str, script) -> Path:
        folder = tiny(family)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        monkeypatch.setattr(getattr(transformers, MODEL_CLASSES[family]), "generate",
                            scripted_generate(script, tokenizer))
        return folder
    return make
