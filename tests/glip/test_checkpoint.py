"""Official checkpoint <-> model: every official key (the names the official constructors give) maps,
tensors round-trip exactly, export reproduces the official file, and bad files fail with named keys."""

from dataclasses import replace

import pytest
import torch

import glip
from glip.anchors import cell_anchor
from glip.checkpoint import (
    convert_official,
    export_official,
    guess_preset,
    load_official_file,
    model_targets,
    official_buffer,
    official_key_shapes,
    read_weights,
    save_weights,
)
from glip.config import get_preset
from glip.model import GLIP

DERIVED = ("relative_position_index", "position_ids")


def fake_official(cfg, device="cpu", seed=0):
    """Random tensors for every official key of `cfg` (derived buffers get their official values)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_key_shapes(cfg).items():
        if device == "meta":
            sd[k] = torch.empty(shape, device="meta")
        elif k.endswith(DERIVED):
            sd[k] = official_buffer(k, shape)
        else:
            sd[k] = torch.randn(shape, generator=g)
        if k.startswith("rpn.anchor_generator.cell_anchors.") and device != "meta":  # checked against the config
            i = int(k.rsplit(".", 1)[1])
            sd[k] = cell_anchor(cfg.anchor_strides[i], cfg.anchor_sizes[i])
    return sd


def small(structure: str):
    """A tiny-width config with the same key structure as a real preset (depths, blocks, text layers)."""
    base = get_preset("glip-tiny")
    if structure == "glip-t":
        return replace(base, name="small-t", swin_depths=(2, 2, 6, 2), num_blocks=6, text_layers=12)
    if structure == "glip-t-a":
        return replace(base, name="small-t-a", swin_depths=(2, 2, 6, 2), num_blocks=6, text_layers=12, fusion="late")
    return replace(base, name="small-l", swin_depths=(2, 2, 18, 2), num_blocks=8, text_layers=12, swin_window_size=12)


@pytest.mark.parametrize("preset,n_params", [("glip-t-a", 151.4e6), ("glip-t", 231.8e6), ("glip-l", 430.4e6)])
def test_every_official_key_maps_at_full_size(preset, n_params):
    """On the meta device: the generated official key set covers the model exactly, shapes agree."""
    cfg = get_preset(preset)
    official = fake_official(cfg, device="meta")
    with torch.device("meta"):
        model = GLIP(cfg)
    state, report = convert_official(official, model)
    assert report.ok and not report.notes
    assert set(state) == set(model.state_dict())
    n_qkv = sum(1 for k in official if ".attn.qkv." in k)
    assert report.mapped == len(official) + 2 * n_qkv
    # official totals (prompt tuning's tunable_linear excluded) from the official shapes alone
    n = sum(torch.Size(s).numel() for k, s in official_key_shapes(cfg).items()
            if not k.endswith(DERIVED) and "cell_anchors" not in k and "tunable_linear" not in k)
    assert n == pytest.approx(n_params, rel=5e-3)


@pytest.mark.parametrize("structure", ["glip-t", "glip-t-a", "glip-l"])
def test_round_trip_tensors_exactly(tmp_path, structure):
    cfg = small(structure)
    official = fake_official(cfg, seed=1)
    path = tmp_path / "official.pth"
    torch.save({"model": {"module." + k: v for k, v in official.items()}, "iteration": 7,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}, path)
    model = glip.from_pretrained(cfg, checkpoint=path)
    sd = model.state_dict()
    buffers = dict(model.named_buffers())
    for key, tensor in official.items():
        targets = model_targets(key)
        assert targets, key
        if key.endswith(DERIVED):
            assert torch.equal(buffers[targets[0]].reshape(tensor.shape), tensor), key
        elif len(targets) == 3:
            assert torch.equal(torch.cat([sd[t] for t in targets]), tensor), key
        else:
            assert torch.equal(sd[targets[0]], tensor), key
    exported = export_official(model)
    assert set(exported) == set(official)
    for key, tensor in official.items():
        assert torch.equal(exported[key], tensor), key
    # and through our safetensors file
    st = tmp_path / "w.safetensors"
    save_weights(model, st)
    again = glip.from_pretrained(cfg, checkpoint=st)
    for k, v in again.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_without_tunable_linear_prompt_offset_is_zero_and_export_omits_it(tmp_path):
    cfg = small("glip-t-a")
    official = fake_official(cfg)
    del official["rpn.tunable_linear.weight"]
    del official["language_backbone.body.model.embeddings.position_ids"]
    with torch.device("meta"):
        meta_model = GLIP(cfg)
    state, report = convert_official(official, meta_model)
    assert not state["prompt_offset"].any() and any("tunable_linear" in n for n in report.notes)
    model = GLIP(cfg)
    model.load_state_dict(state)
    assert set(export_official(model, include_position_ids=False)) == set(official)
    model.prompt_offset = torch.nn.Parameter(torch.ones(7, cfg.text_hidden))  # class-anchored (bench.data.prompt_anchor)
    with pytest.raises(ValueError, match="7 class-anchored rows"):
        export_official(model)


def test_ema_entry_and_bare_state_dict(tmp_path):
    cfg = small("glip-t-a")
    official, ema = fake_official(cfg, seed=1), fake_official(cfg, seed=2)
    torch.save({"model": official, "model_ema": ema}, tmp_path / "a.pth")
    torch.save(official, tmp_path / "b.pth")
    assert torch.equal(load_official_file(tmp_path / "a.pth", ema=True)["rpn.head.bias0"], ema["rpn.head.bias0"])
    assert torch.equal(load_official_file(tmp_path / "b.pth")["rpn.head.bias0"], official["rpn.head.bias0"])
    with pytest.raises(ValueError, match="model_ema"):
        load_official_file(tmp_path / "b.pth", ema=True)
    with pytest.raises(FileNotFoundError):
        load_official_file(tmp_path / "nope.pth")


def test_unmapped_missing_and_misshaped_keys_are_named():
    cfg = small("glip-t-a")
    model = GLIP(cfg)
    official = fake_official(cfg)
    official["rpn.head.token_logits.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match="token_logits"):
        convert_official(official, model)
    convert_official(official, model, allow_unexpected=True)
    del official["rpn.head.token_logits.weight"]
    del official["rpn.head.bbox_pred.bias"]
    with pytest.raises(ValueError, match="head.bbox_pred.bias"):
        convert_official(official, model)
    state, rep = convert_official(official, model, allow_missing=True)
    assert rep.missing == ["head.bbox_pred.bias"]
    official["rpn.head.bbox_pred.bias"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"bbox_pred.bias: \(5,\)"):
        convert_official(official, model, allow_missing=True, allow_unexpected=True)
    # a tower index beyond this model's blocks has no place here
    official["rpn.head.bbox_pred.bias"] = torch.zeros(4)
    official["rpn.head.dyhead_tower.9.offset.bias"] = torch.zeros(27)
    with pytest.raises(ValueError, match=r"dyhead_tower.9.offset.bias \(-> head.dyhead_tower.9.offset.bias"):
        convert_official(official, model)


def test_wrong_relative_position_index_values_are_rejected():
    cfg = small("glip-t-a")
    official = fake_official(cfg)
    key = next(k for k in official if k.endswith("relative_position_index"))
    official[key] = official[key].flip(0)
    with pytest.raises(ValueError, match="values differ"):
        convert_official(official, GLIP(cfg))


def test_checkpoint_of_another_preset_says_which_it_looks_like():
    official_l = fake_official(get_preset("glip-l"), device="meta")
    assert guess_preset(official_l) == ("glip-l", 1.0)
    assert guess_preset(fake_official(get_preset("glip-t-a"), device="meta"))[0] == "glip-t-a"
    with torch.device("meta"):
        model_t = GLIP(get_preset("glip-t"))
    with pytest.raises(ValueError, match="looks like preset 'glip-l'"):
        convert_official(official_l, model_t)


def test_safetensors_for_another_preset_is_rejected(tmp_path):
    tiny = GLIP(get_preset("glip-tiny"))
    save_weights(tiny, tmp_path / "tiny.safetensors")
    _, meta = read_weights(tmp_path / "tiny.safetensors")
    assert meta["preset"] == "glip-tiny"
    with pytest.raises(ValueError, match="saved from preset 'glip-tiny'"):
        glip.from_pretrained("glip-tiny", checkpoint=tmp_path / "tiny.safetensors", num_blocks=3)


def test_cls_logits_channel_count_follows_the_checkpoint(tmp_path):
    cfg = small("glip-t-a")
    official = fake_official(cfg)
    official["rpn.head.cls_logits.weight"] = torch.randn(1203, cfg.fpn_channels, 1, 1)
    official["rpn.head.cls_logits.bias"] = torch.randn(1203)
    torch.save({"model": official}, tmp_path / "c.pth")
    model = glip.from_pretrained(cfg, checkpoint=tmp_path / "c.pth")
    assert model.config.num_legacy_classes == 1203
    assert torch.equal(model.head.cls_logits.bias, official["rpn.head.cls_logits.bias"])


def test_cli_convert_and_export(tmp_path):
    from bench.cli import main

    cfg = get_preset("glip-tiny")
    official = fake_official(cfg, seed=3)
    torch.save({"model": official}, tmp_path / "in.pth")
    assert main(["convert-checkpoint", str(tmp_path / "in.pth"), str(tmp_path / "out.safetensors")]) == 0
    model = glip.from_pretrained("glip-tiny", checkpoint=tmp_path / "out.safetensors")
    assert torch.equal(model.head.bias_lang, official["rpn.head.bias_lang"])
    assert main(["convert-checkpoint", str(tmp_path / "out.safetensors"), str(tmp_path / "back.pth"),
                 "--export-official"]) == 0
    back = torch.load(tmp_path / "back.pth", weights_only=True)["model"]
    assert set(back) == set(official) and all(torch.equal(back[k], v) for k, v in official.items())
    official["rpn.head.extra"] = torch.zeros(1)
    torch.save({"model": official}, tmp_path / "bad.pth")
    assert main(["convert-checkpoint", str(tmp_path / "bad.pth"), str(tmp_path / "x.safetensors"),
                 "--preset", "glip-tiny"]) == 2
    assert main(["convert-checkpoint", str(tmp_path / "bad.pth"), str(tmp_path / "x.safetensors"),
                 "--preset", "glip-tiny", "--allow-unexpected"]) == 0
