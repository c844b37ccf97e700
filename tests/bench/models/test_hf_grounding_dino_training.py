"""Grounding DINO fine-tuning: refused by name when the tokenizer lacks bert-base-uncased's special-token ids
(transformers finds phrases by them), zero-shot still runs; and what transformers' full-ft leaves untrained."""

from __future__ import annotations

import pytest
import torch

from bench.testing.hf import WORDS, OneThread, make_data, run_cli, save_tiny


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hf-data"))


def _other_tokenizer(folder):
    """The same number of tokens, but [CLS], [SEP], "." and "?" at ids other than bert-base-uncased's."""
    from transformers import BertTokenizerFast

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", ","]
    tokens += [f"[unused{i}]" for i in range(1030 - len(tokens))] + list(WORDS)
    vocab = folder / "other-vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n")
    BertTokenizerFast(vocab=str(vocab)).save_pretrained(folder)


def test_full_ft_is_refused_by_name_without_bert_ids_and_zero_shot_runs(data_root, tmp_path, capsys):
    model_dir = save_tiny("grounding-dino", tmp_path / "gd")
    _other_tokenizer(model_dir)
    rc, records = run_cli(model_dir, data_root, tmp_path / "ft", "--shots", "1", "--seeds", "3", regime="full-ft")
    err = capsys.readouterr().err
    assert rc == 2 and records == []
    assert "grounding-dino cannot be fine-tuned with this tokenizer" in err
    assert "'[CLS]': 2" in err and "Traceback" not in err
    with OneThread():
        rc, records = run_cli(model_dir, data_root, tmp_path / "zs")
    assert rc == 0 and len(records) == 1


def test_transformers_full_ft_leaves_the_encoder_proposals_untrained(tmp_path):
    """transformers' Grounding DINO detaches its encoder's top-k proposals (modeling_grounding_dino.py,
    GroundingDinoModel.forward: topk_coords_logits.detach()) and its loss has no encoder term: after a
    full-ft backward, enc_output* and encoder_output_bbox_embed get no gradient; the decoder's heads do."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoTokenizer

    model_dir = save_tiny("grounding-dino", tmp_path / "gd")
    model = AutoModelForZeroShotObjectDetection.from_pretrained(model_dir).train()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    text = tokenizer(["red circle. blue square."], return_tensors="pt")
    labels = [{"class_labels": torch.tensor([0, 1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]])}]
    torch.manual_seed(0)
    model(pixel_values=torch.randn(1, 3, 96, 96), labels=labels, **text).loss.backward()
    untrained = {n for n, p in model.named_parameters() if p.grad is None}
    encoder_proposals = {n for n, _ in model.named_parameters()
                         if ".enc_output" in n or "encoder_output_bbox_embed" in n}
    assert encoder_proposals and encoder_proposals <= untrained
    assert any(p.grad is not None for n, p in model.named_parameters() if "bbox_embed" in n
               and "encoder_output" not in n)
