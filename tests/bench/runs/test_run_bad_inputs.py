"""`glip-bench run` turns bad checkpoints, text encoders and images into a clean rc-2 error naming the file."""

from __future__ import annotations

import pytest
import torch

import glip
from bench.cli import main as cli_main
from bench.testing.world import make_world
from glip.checkpoint import export_official, save_weights


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def _run(data_root, results, *extra):
    return cli_main(["run", "--model", "glip-tiny", "--tasks", "runner-shapes-a", "--regime", "zero-shot",
                     "--data-root", str(data_root), "--results", str(results), "--workers", "0", *extra])


def _tiny():
    torch.manual_seed(0)
    return glip.from_pretrained("glip-tiny")


def _safetensors(tmp_path, name, edit):
    model = _tiny()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    edit(sd)
    path = tmp_path / name
    save_weights(model, path, sd)
    return path


def _extra(sd):
    sd["an.extra.key"] = torch.zeros(1)


def _missing(sd):
    sd.pop(next(iter(sd)))


def _misshaped(sd):
    k = next(k for k, v in sd.items() if v.dim() == 2)
    sd[k] = torch.zeros(sd[k].shape[0] + 1, sd[k].shape[1])


@pytest.mark.parametrize("edit, match", [
    (_extra, "1 unexpected keys"), (_missing, "1 missing keys"), (_misshaped, "1 shape mismatches")])
def test_a_checkpoint_that_does_not_fit_is_a_clean_error(world, tmp_path, capsys, edit, match):
    path = _safetensors(tmp_path, "bad.safetensors", edit)
    assert _run(world[1], tmp_path / "results", "--checkpoint", str(path)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and match in err and "Traceback" not in err


def test_a_checkpoint_of_another_preset_names_it(world, tmp_path, capsys):
    torch.manual_seed(0)
    other = glip.from_pretrained("glip-synth")
    path = tmp_path / "synth.safetensors"
    save_weights(other, path)
    assert _run(world[1], tmp_path / "results", "--checkpoint", str(path)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "saved from preset 'glip-synth'" in err and "Traceback" not in err


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])


@pytest.mark.parametrize("kind", ["truncated.pth", "truncated.safetensors", "garbage.safetensors"])
def test_an_unreadable_checkpoint_names_the_file(world, tmp_path, capsys, kind):
    path = tmp_path / kind
    if kind.endswith(".pth"):
        torch.save({"model": export_official(_tiny())}, path)
        _truncate(path, -1000)
    elif kind.startswith("truncated"):
        save_weights(_tiny(), path)
        _truncate(path, -1000)
    else:
        path.write_bytes(b"\xff" * 64)
    assert _run(world[1], tmp_path / "results", "--checkpoint", str(path)) == 2
    err = capsys.readouterr().err
    assert f"cannot read {path}" in err and "Traceback" not in err


def test_a_text_encoder_folder_without_config_json_is_named(world, tmp_path, capsys):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    assert _run(world[1], tmp_path / "results", "--text-encoder", str(folder)) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "config.json" in err and "Traceback" not in err


def test_a_corrupt_image_under_worker_processes_is_one_line(world, tmp_path, capsys):
    _, data_root = world
    bad = data_root / "runner" / "runner-shapes-a" / "val" / "003.png"
    bad.write_bytes(b"not a png")
    assert cli_main(["run", "--model", "glip-tiny", "--tasks", "runner-shapes-a", "--regime", "zero-shot",
                     "--data-root", str(data_root), "--results", str(tmp_path / "results"), "--workers", "2",
                     "--set", "infer_batch_size=1"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read image {bad}" in err and "DataLoader worker" not in err and "Traceback" not in err
