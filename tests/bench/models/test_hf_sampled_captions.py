"""Grounding DINO fine-tuning on per-image sampled captions (OV-LVIS's train_prompt): a tiny random model
trains on the generated chunked LVIS fixture; every caption it sees holds base classes only, every box's
label points at its own class's phrase in its own caption (as transformers' label maps read it), and
batches mix captions, scored by the corrected loss."""

from __future__ import annotations

import pytest
import torch

from bench.tasks.registry import load_registry
from bench.testing.formats import chunked_lvis_categories, write_chunked_lvis
from bench.testing.hf import OneThread, save_tiny


@pytest.fixture
def ov_lvis(tmp_path):
    """The shipped ov-lvis-minival on a generated LVIS v1 train + minival: 110 base and 40 rare classes."""
    task = load_registry(reload=True).get("ov-lvis-minival")
    cats = chunked_lvis_categories()
    write_chunked_lvis(task, tmp_path / "data", "train", cats, n_images=12, first_image_id=1)
    write_chunked_lvis(task, tmp_path / "data", "minival", cats, n_images=4, first_image_id=500)
    return tmp_path / "data", {n for _, n, f in cats if f != "r"}, {n for _, n, f in cats if f == "r"}


def _spy(monkeypatch) -> dict[str, list]:
    """Each training sample with the caption drawn for it and its boxes' categories, every batch's caption
    tokens, and each use of the corrected one-hot."""
    from bench.data.od_captions import CaptionSampler
    from bench.models.hf.grounding_loss import PerImagePhraseLoss
    from bench.models.hf.training import SampledCaptionSet

    seen: dict[str, list] = {"samples": [], "batches": [], "one_hots": []}
    real_sample, real_item = CaptionSampler.sample, SampledCaptionSet.__getitem__
    real_batch, real_one_hot = SampledCaptionSet.batch, PerImagePhraseLoss._get_target_classes_one_hot
    drawn: list = []

    def sample(self, positives):
        drawn.append(real_sample(self, positives))
        return drawn[-1]

    def item(self, i):
        out = real_item(self, i)
        boxes_of = [c for c in self.dataset.category_ids(self.image_ids[i]) if c in drawn[-1].category_ids]
        seen["samples"].append((drawn[-1], out, boxes_of))
        return out

    def batch(self, samples, device):
        args, kw = real_batch(self, samples, device)
        seen["batches"].append(kw["input_ids"])
        return args, kw

    def one_hot(self, outputs, targets, indices):
        seen["one_hots"].append(len(targets))
        return real_one_hot(self, outputs, targets, indices)

    monkeypatch.setattr(CaptionSampler, "sample", sample)
    monkeypatch.setattr(SampledCaptionSet, "__getitem__", item)
    monkeypatch.setattr(SampledCaptionSet, "batch", batch)
    monkeypatch.setattr(PerImagePhraseLoss, "_get_target_classes_one_hot", one_hot)
    return seen


def _phrase_of_each_label(tokenizer, drawn, sample) -> list[str]:
    """The caption text of the phrase each box's label selects in transformers' label maps of its tokens."""
    from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

    ids = torch.tensor([sample[3]["input_ids"]])
    [label_map] = build_label_maps(torch.zeros(1, 1, ids.shape[1]), ids)
    offsets = tokenizer(drawn.caption + ".", return_offsets_mapping=True)["offset_mapping"]
    assert len(label_map) == len(drawn.category_ids)  # one phrase per sampled class
    phrases = []
    for label in sample[2].tolist():
        tokens = label_map[label].nonzero().flatten().tolist()
        phrases.append((drawn.caption + ".")[offsets[tokens[0]][0]:offsets[tokens[-1]][1]])
    return phrases


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_fine_tuning_on_sampled_captions_sees_base_classes_only_and_labels_its_own_phrases(family, ov_lvis, tmp_path,
                                                                                          monkeypatch):
    from transformers import AutoTokenizer

    from bench.results.records import RunSpec
    from bench.runs.spec import RunContext
    from bench.runs.stages import run_one

    data_root, base, novel = ov_lvis
    model_dir = save_tiny(family, tmp_path / family)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seen = _spy(monkeypatch)
    spec = RunSpec(model=f"hf:{model_dir}", task="ov-lvis-minival", regime="full-ft", shots=1, seed=3,
                   split="minival", overrides={"max_iters": 2})
    with OneThread():
        record = run_one(spec, RunContext(data_root=data_root, results_dir=tmp_path / "results", num_workers=0))
    assert record["training"]["iters"] == 2
    assert record["cost"]["trainable_params"] == record["cost"]["total_params"] > 0
    drawn = record["provenance"]["train_prompt"]
    assert drawn["rule"] == "sampled" and drawn["separator"] == ". " and drawn["vocabulary"] == len(base)
    assert drawn["token_budget"] == 30  # the tiny model's max_text_len 32 - [CLS] - [SEP]
    assert drawn["drawn"]["captions"] == record["training"]["images_seen"] == len(seen["samples"]) > 0
    assert record["model"]["family"] == family and record["provenance"]["model_limits"]["max_text_len"] == 32
    phrases = [p for d, _, _ in seen["samples"] for p in d.caption.split(". ")]
    assert phrases and set(phrases) <= base and not set(phrases) & novel
    names = {i: n for i, n, _ in chunked_lvis_categories()}
    for d, sample, box_classes in seen["samples"]:  # each box's label selects its own class's name
        assert box_classes and _phrase_of_each_label(tokenizer, d, sample) == [names[c] for c in box_classes]
        assert len(tokenizer(d.caption + ".")["input_ids"]) <= 32
    assert len({d.caption for d, _, _ in seen["samples"]}) > 1  # a caption per image
    assert any(len(ids) > 1 and len({tuple(r.tolist()) for r in ids}) > 1 for ids in seen["batches"])
    assert seen["one_hots"] and max(seen["one_hots"]) > 1  # the corrected loss scored mixed batches


def test_a_class_prompt_with_a_phrase_delimiter_is_refused_by_name(tmp_path):
    """transformers splits a caption's phrases at "." and "?": an entry holding one would shift every later
    phrase off its class, so the sampled set refuses it, naming the entry."""
    from bench.data.od_captions import TrainPrompt
    from bench.models.hf import build_hf_adapter
    from bench.util.errors import UserError

    adapter = build_hf_adapter(f"hf:{save_tiny('grounding-dino', tmp_path / 'gd')}")
    entries = {1: ("", "red circle", ""), 2: ("a photo of ", "blue square", "?")}
    with pytest.raises(UserError, match=r"phrase boundary.*a photo of blue square\?"):
        adapter.sampled_training_set(None, entries, ". ", TrainPrompt(), seed=0)


def test_a_caption_padded_to_the_batch_s_longest_scores_as_it_does_alone(tmp_path):
    """Padding is inert in transformers' Grounding DINO (pad tokens are outside every phrase block of its text
    self-attention and masked in its cross-attention): an image's logits over its caption's tokens and its
    boxes are those of the caption alone, and the pad positions score -inf."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoTokenizer

    folder = save_tiny("grounding-dino", tmp_path / "gd")
    model = AutoModelForZeroShotObjectDetection.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    short, longer = "red circle. blue square.", "star. ring. cross. green triangle. yellow star."
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        alone = model(pixel_values=pixels, **tokenizer([short], return_tensors="pt"))
        padded = model(pixel_values=pixels.repeat(2, 1, 1, 1), **tokenizer([short, longer], padding=True,
                                                                             return_tensors="pt"))
    n = len(tokenizer(short)["input_ids"])
    assert n < len(tokenizer(longer)["input_ids"])
    assert torch.allclose(padded.logits[0, :, :n], alone.logits[0, :, :n], atol=1e-4)
    assert torch.allclose(padded.pred_boxes[0], alone.pred_boxes[0], atol=1e-5)
    assert torch.isinf(padded.logits[0, :, n:]).all()
