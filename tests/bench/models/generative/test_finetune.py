"""PaliGemma full fine-tuning on its detect format (the suffix language-model loss) through the CLI."""

from __future__ import annotations

from safetensors.torch import load_file

from bench.models import build_adapter
from bench.models.generative.adapter import GenerativeAdapter
from bench.results import store
from bench.testing.hf import OneThread, run_cli


def test_paligemma_full_ft_lowers_the_loss_and_moves_the_weights(tiny, data_root, tmp_path, monkeypatch):
    # the few-shot val split is scored after every epoch with generation: 12 new tokens keep that short
    monkeypatch.setattr(GenerativeAdapter, "token_budget", lambda self, entries, cap: 12)
    model_dir = tiny("paligemma")
    with OneThread():
        rc, [record] = run_cli(model_dir, data_root, tmp_path / "results", "--shots", "1", "--seeds", "3",
                               "--set", "max_epochs=3", "--set", "lr=0.001", regime="full-ft")
    assert rc == 0
    losses = record["training"]["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert record["fewshot"]["train_images_with_boxes"] > 0
    assert len(record["training"]["history"]) == 3
    assert record["provenance"]["train_flip_prob"] == 0.5
    assert "suffix" in record["provenance"]["train_loss"]
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    tuned = load_file(str(run_dir / store.ADAPTER))
    base = build_adapter(f"hf:{model_dir}").module.state_dict()  # the saved model, loaded as the run loads it
    assert set(tuned) <= set(base)
    moved = [k for k, v in tuned.items() if not base[k].equal(v)]
    assert len(moved) > len(tuned) // 2


def test_the_training_answer_is_the_detect_format_of_the_boxes(tiny, data_root):
    from bench.tasks.registry import get_task

    adapter = build_adapter(f"hf:{tiny('paligemma')}")
    task = get_task("synth-shapes")
    dataset = task.load(task.finetune_split, data_root)
    [chunk] = adapter.prompt_chunks(task, dataset, "plain")
    train = adapter.training_set(dataset, chunk, seed=0)
    train.flip_prob = 0.0
    image, answer = train[0]
    image_id = train.image_ids[0]
    names = dict(zip(chunk[1], chunk[0].entries))
    boxes = [(names[c], b) for b, c in zip(dataset.boxes_xyxy(image_id).tolist(), dataset.category_ids(image_id))]
    parsed = adapter.fam.parse(answer, *image.size)
    assert parsed.unparseable == 0 and [o.label for o in parsed.objects] == [n for n, _ in boxes]
    for obj, (_, box) in zip(parsed.objects, boxes):  # bins of 1/1023 of the side: within half a bin
        assert all(abs(a - b) <= 0.5 * image.size[0] / 1023 + 1e-6 for a, b in zip(obj.box, box))
    args, inputs = train.batch([train[0], train[1]], "cpu")
    assert args == ()
    assert (inputs["labels"] != -100).sum() > 0 and inputs["input_ids"].shape == inputs["labels"].shape


def test_the_record_counts_the_eval_split_only(tiny, data_root, tmp_path, monkeypatch):
    """Few-shot val scoring during training also generates answers; the record's counts are the eval split's."""
    monkeypatch.setattr(GenerativeAdapter, "token_budget", lambda self, entries, cap: 4)
    with OneThread():
        rc, [record] = run_cli(tiny("paligemma"), data_root, tmp_path / "results", "--shots", "1", "--seeds", "3",
                               "--set", "max_epochs=1", regime="full-ft")
    assert rc == 0
    assert record["provenance"]["model_limits"]["answers"]["answers"] == record["task"]["num_images"]
