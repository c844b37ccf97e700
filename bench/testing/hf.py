"""Tiny random transformers detectors saved with `save_pretrained`, for tests: every family, offline.

Each model gets a tokenizer written here (a BERT vocab.txt, or a CLIP vocab.json + merges.txt) and a
processor whose images are small, so a forward pass on CPU takes milliseconds. The BERT vocabulary
puts [CLS], [SEP], "." and "?" at bert-base-uncased's ids (101, 102, 1012, 1029): transformers'
Grounding DINO loss finds the class phrases of a caption by those ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

FAMILIES = ("grounding-dino", "mm-grounding-dino", "owlv2", "owlvit", "omdet-turbo")
WORDS = ("a", "an", "the", "of", "photo", "red", "green", "blue", "yellow", "circle", "square", "triangle", "star",
         "shape", "object", "ring", "cross", "and", "on", "left", "right")


def write_bert_vocab(folder: Path) -> Path:
    """vocab.txt with the special tokens at bert-base-uncased's ids and WORDS after them."""
    tokens = [f"[unused{i}]" for i in range(1030)]
    tokens[0], tokens[100], tokens[101], tokens[102], tokens[103] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    tokens[1012], tokens[1029], tokens[1010] = ".", "?", ","
    tokens += list(WORDS)
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def write_clip_vocab(folder: Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt of a byte-level BPE that knows WORDS as whole tokens."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    base = list(bytes_to_unicode().values())
    vocab = base + [b + "</w>" for b in base]
    merges: list[str] = []
    for word in WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            if pieces[0] not in vocab:
                vocab.append(pieces[0])
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    ids = {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}
    (folder / "vocab.json").write_text(json.dumps(ids))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def _bert_text_config(vocab_size: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)


def _swin(out_features: list[str]):
    from transformers import SwinConfig

    return SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
                      out_features=out_features)


def _grounding_dino(folder: Path, mm: bool) -> None:
    from transformers import BertTokenizerFast, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    if mm:
        from transformers import MMGroundingDinoConfig as Config
        from transformers import MMGroundingDinoForObjectDetection as Model
    else:
        from transformers import GroundingDinoConfig as Config
        from transformers import GroundingDinoForObjectDetection as Model
    tokenizer = BertTokenizerFast(vocab=str(write_bert_vocab(folder)))
    config = Config(backbone_config=_swin(["stage2", "stage3", "stage4"]), text_config=_bert_text_config(len(tokenizer)),
                    d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                    encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30, num_feature_levels=4,
                    max_text_len=32, encoder_n_points=2, decoder_n_points=2)
    Model(config).save_pretrained(folder)
    images = GroundingDinoImageProcessorPil(size={"shortest_edge": 96, "longest_edge": 128})
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)


def _owl(folder: Path, v2: bool) -> None:
    from transformers import CLIPTokenizer

    if v2:
        from transformers import Owlv2Config as Config
        from transformers import Owlv2ForObjectDetection as Model
        from transformers import Owlv2Processor as Processor
        from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil as Images
    else:
        from transformers import OwlViTConfig as Config
        from transformers import OwlViTForObjectDetection as Model
        from transformers import OwlViTProcessor as Processor
        from transformers.models.owlvit.image_processing_pil_owlvit import OwlViTImageProcessorPil as Images
    vocab, merges = write_clip_vocab(folder)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="!")
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    text = dict(**special, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=16)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64,
                  patch_size=16)
    Model(Config(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(folder)
    size = {"height": 64, "width": 64}
    images = Images(size=size) if v2 else Images(size=size, crop_size=size, do_center_crop=False)
    Processor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)


def _omdet(folder: Path) -> None:
    from transformers import CLIPTextConfig, CLIPTokenizer, OmDetTurboConfig, OmDetTurboForObjectDetection
    from transformers.models.detr.image_processing_pil_detr import DetrImageProcessorPil

    vocab, merges = write_clip_vocab(folder)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="!")
    text = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer), hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=32)
    config = OmDetTurboConfig(
        text_config=text, backbone_config=_swin(["stage2", "stage3", "stage4"]), use_timm_backbone=False,
        image_size=64, apply_layernorm_after_vision_backbone=False, text_projection_in_dim=48, text_projection_out_dim=48, task_encoder_hidden_dim=48,
        class_embed_dim=48, num_queries=20, encoder_hidden_dim=32, vision_features_channels=[32, 32, 32],
        encoder_in_channels=[32, 64, 128], encoder_attention_heads=2, encoder_dim_feedforward=32,
        decoder_hidden_dim=32, decoder_num_heads=2, decoder_num_layers=1, decoder_dim_feedforward=32,
        decoder_num_points=2, cache_size=8)
    OmDetTurboForObjectDetection(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    DetrImageProcessorPil(size={"height": 64, "width": 64}, do_pad=False).save_pretrained(folder)


def _sam3(folder: Path, lite: bool = False) -> None:
    """A tiny Sam3Model (lite: Sam3LiteTextModel, its MobileCLIP-style text encoder) (112 px square input,
    10 queries) with a CLIP tokenizer and the processor's settings written as preprocessor_config.json
    (Sam3Processor itself cannot be imported without torchvision)."""
    from transformers import CLIPTokenizer, Sam3Config, Sam3LiteTextConfig, Sam3LiteTextModel, Sam3Model

    vocab, merges = write_clip_vocab(folder)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="!")
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=112, patch_size=14, window_size=4, global_attn_indexes=[1],
               pretrain_image_size=56)
    layers = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, projection_dim=32,
                num_hidden_layers=1 if not lite else 3, num_attention_heads=2, max_position_embeddings=32)
    text |= dict(repmixer_kernel_size=3) if lite else dict(
        model_type="clip_text_model", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    Config, Model = (Sam3LiteTextConfig, Sam3LiteTextModel) if lite else (Sam3Config, Sam3Model)
    config = Config(
        vision_config=dict(backbone_config=vit, fpn_hidden_size=32, backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]]),
        text_config=text,
        geometry_encoder_config=dict(num_layers=1, **layers), detr_encoder_config=dict(num_layers=1, **layers),
        detr_decoder_config=dict(num_layers=2, num_queries=10, **layers),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2))
    Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Sam3ImageProcessor", "size": {"height": 112, "width": 112}, "resample": 2,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "do_resize": True,
        "do_rescale": True, "do_normalize": True, "do_convert_rgb": True}))


CLOSED_SET = ("rt_detr_v2", "d_fine")  # closed-set detectors (bench/models/families/closed_set.py)
# the closed-set detectors' shared sizes: 3 feature levels of 32 channels, 20 queries, 2 decoder layers
_CLOSED = dict(encoder_hidden_dim=32, feat_strides=[8, 16, 32], encoder_ffn_dim=32, encoder_attention_heads=2,
               d_model=32, num_queries=20, decoder_in_channels=[32, 32, 32], decoder_ffn_dim=32, decoder_layers=2,
               decoder_attention_heads=2, decoder_n_points=2, num_denoising=10, use_timm_backbone=False)


def _closed_set(folder: Path, model_type: str, labels: tuple[str, ...]) -> None:
    """A tiny RT-DETRv2 (transformers' ResNet backbone) or D-FINE (HGNetV2 backbone) whose classifier has
    `labels`, with RT-DETR's image processor at 64 x 64."""
    from transformers import (
        DFineConfig,
        DFineForObjectDetection,
        HGNetV2Config,
        RTDetrResNetConfig,
        RTDetrV2Config,
        RTDetrV2ForObjectDetection,
    )
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    out = ["stage2", "stage3", "stage4"]
    labels_kw = dict(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    if model_type == "rt_detr_v2":
        backbone = RTDetrResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                      layer_type="basic", out_features=out)
        model = RTDetrV2ForObjectDetection(RTDetrV2Config(backbone_config=backbone, encoder_in_channels=[32, 64, 128],
                                                          **_CLOSED, **labels_kw))
    else:
        backbone = HGNetV2Config(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1],
                                 stem_channels=[3, 16, 16], stage_in_channels=[16, 32, 64, 128],
                                 stage_mid_channels=[16, 16, 32, 64], stage_out_channels=[32, 64, 128, 256],
                                 stage_num_blocks=[1, 1, 1, 1], stage_downsample=[False, True, True, True],
                                 stage_light_block=[False, False, True, True], stage_kernel_size=[3, 3, 5, 5],
                                 stage_numb_of_layers=[1, 1, 1, 1], out_features=out)
        model = DFineForObjectDetection(DFineConfig(backbone_config=backbone, encoder_in_channels=[64, 128, 256],
                                                    **_CLOSED, **labels_kw))
    model.save_pretrained(folder)
    RTDetrImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)


def save_tiny(family: str, folder: str | Path, seed: int = 0, labels: tuple[str, ...] = ("a", "b", "c")) -> Path:
    """A random tiny `family` detector + processor saved into `folder` (made if missing); returns it.

    family: a zero-shot family (FAMILIES), sam3 / sam3_lite_text, or a closed-set model type (CLOSED_SET),
    whose classifier gets `labels`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    builders = {"grounding-dino": lambda: _grounding_dino(folder, mm=False),
                "mm-grounding-dino": lambda: _grounding_dino(folder, mm=True),
                "owlv2": lambda: _owl(folder, v2=True), "owlvit": lambda: _owl(folder, v2=False),
                "omdet-turbo": lambda: _omdet(folder), "sam3": lambda: _sam3(folder),
                "sam3_lite_text": lambda: _sam3(folder, lite=True),
                **{t: lambda t=t: _closed_set(folder, t, labels) for t in CLOSED_SET}}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        builders[family]()
    return folder


# ------------------------------------------------------------------ running one through the CLI
TASK = "synth-shapes"


def make_data(root: Path) -> Path:
    """synth-shapes and synth-grounding at the smallest scale (8 images per split) under `root`."""
    from bench.synthetic.generate import generate

    generate(root, scale=0.01, tasks=[TASK, "synth-grounding"])
    return root


def run_cli(model_dir: Path, data_root: Path, results: Path, *extra: str, task: str = TASK,
            regime: str = "zero-shot") -> tuple[int, list[dict]]:
    """`glip-bench run --model hf:DIR ...` in this process: (exit code, the records written)."""
    from bench.cli import main

    rc = main(["run", "--model", f"hf:{model_dir}", "--tasks", task, "--regime", regime, "--data-root",
               str(data_root), "--results", str(results), *extra])
    records = [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/record.json"))]
    return rc, records


class OneThread:
    """torch on one thread for the block: tiny models spend most of their time in thread hand-offs otherwise."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)
