"""Anchors: detectron cell anchors, grid shifts, official buffer names."""

import pytest
import torch

from glip.anchors import AnchorGenerator


def test_cell_anchors_official_values():
    gen = AnchorGenerator()
    cells = [getattr(gen.cell_anchors, str(i)) for i in range(5)]
    assert cells[0].tolist() == [[-28.0, -28.0, 35.0, 35.0]]
    assert cells[1].tolist() == [[-56.0, -56.0, 71.0, 71.0]]
    assert cells[2].tolist() == [[-112.0, -112.0, 143.0, 143.0]]
    for s, cell in zip((8, 16, 32, 64, 128), cells):
        # side 8 x stride under +1 (x2 - x1 + 1 = 8s), centred on the base window [0, 0, s-1, s-1]
        assert cell[0, 2] - cell[0, 0] + 1 == 8 * s
        assert (cell[0, 0] + cell[0, 2]) / 2 == (s - 1) / 2


def test_state_dict_names_match_official():
    keys = set(AnchorGenerator().state_dict())
    assert keys == {f"cell_anchors.{i}" for i in range(5)}


def test_grid_shifts_row_major():
    gen = AnchorGenerator()
    shapes = [(3, 4), (2, 2), (1, 3), (1, 1), (1, 1)]
    anchors = gen(shapes)
    assert [a.shape for a in anchors] == [(12, 4), (4, 4), (3, 4), (1, 4), (1, 4)]
    cell = torch.tensor([-28.0, -28.0, 35.0, 35.0])
    for y in range(3):
        for x in range(4):
            shift = torch.tensor([x * 8.0, y * 8.0, x * 8.0, y * 8.0])
            assert anchors[0][y * 4 + x].tolist() == (cell + shift).tolist()
    assert anchors[2][2].tolist() == [-112.0 + 64, -112.0, 143.0 + 64, 143.0]


def test_follows_module_device_and_dtype():
    gen = AnchorGenerator().double()
    assert gen([(1, 1)] * 5)[0].dtype == torch.float64


def test_wrong_number_of_levels():
    with pytest.raises(ValueError, match="expected 5 feature shapes"):
        AnchorGenerator()([(2, 2)])


def _tiny():
    import glip

    torch.manual_seed(0)
    return glip.from_pretrained("glip-tiny")


def test_official_checkpoint_with_other_anchor_buffers_is_refused_by_name():
    from glip.checkpoint import convert_official, export_official

    model = _tiny()
    official = export_official(model)
    convert_official(official, model)  # the standard buffers load
    official["rpn.anchor_generator.cell_anchors.0"] = official["rpn.anchor_generator.cell_anchors.0"] + 8
    with pytest.raises(ValueError, match=r"rpn\.anchor_generator\.cell_anchors\.0: .* but stride 8, size 64 give "
                                         r"\[-28\.0, -28\.0, 35\.0, 35\.0\]"):
        convert_official(official, model)


def test_safetensors_with_other_anchor_buffers_is_refused_by_name(tmp_path):
    from glip.checkpoint import load_weights, save_weights

    model = _tiny()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["anchor_generator.cell_anchors.2"] = sd["anchor_generator.cell_anchors.2"] * 2
    save_weights(model, tmp_path / "w.safetensors", sd)
    with pytest.raises(ValueError, match=r"stored anchors differ .*\n  anchor_generator\.cell_anchors\.2: "):
        load_weights(_tiny(), tmp_path / "w.safetensors")
