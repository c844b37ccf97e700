"""ODinW-35: the group is the 35 data sets of GLIP's configs/odinw_35/_all.json, each a valid task whose
classes, eval split and layout are the official config's, and whose prompts build for every prompt set."""

from __future__ import annotations

import pytest

from bench.data.types import DetectionDataset
from bench.tasks.prompts import task_prompt_chunks
from bench.tasks.registry import TaskRegistry, load_registry
from bench.tasks.task_file import prompt_key
from bench.testing.formats import ODINW13
from glip.language import build_wordpiece_tokenizer

# task -> (number of classes, first name, last name, DATASETS.TEST, root), read off configs/odinw_35/<config>.yaml
ODINW35_ONLY = {
    "odinw-aerial-maritime-drone-tiled": (5, "boat", "lift", "val", "odinw/AerialMaritimeDrone/tiled"),
    "odinw-american-sign-language-letters": (26, "A", "Z", "val", "odinw/AmericanSignLanguageLetters/American Sign Language Letters.v1-v1.coco"),
    "odinw-bccd": (3, "Platelets", "WBC", "val", "odinw/BCCD/BCCD.v3-raw.coco"),
    "odinw-chess-pieces": (13, "  ", "white rook", "val", "odinw/ChessPieces/Chess Pieces.v23-raw.coco"),
    "odinw-drone-control": (8, "follow", "takeoff-hand", "minival", "odinw/DroneControl/Drone Control.v3-raw.coco"),
    "odinw-egohands-specific": (4, "myleft", "yourright", "minival", "odinw/EgoHands/specific"),
    "odinw-hard-hat-workers": (3, "head", "person", "val", "odinw/HardHatWorkers/raw"),
    "odinw-mask-wearing": (2, "mask", "no-mask", "val", "odinw/MaskWearing/raw"),
    "odinw-mountain-dew-commercial": (1, "bottle", "bottle", "val", "odinw/MountainDewCommercial"),
    "odinw-oxford-pets-by-breed": (37, "cat-Abyssinian", "dog-yorkshire_terrier", "minival", "odinw/OxfordPets/by-breed"),
    "odinw-oxford-pets-by-species": (2, "cat", "dog", "minival", "odinw/OxfordPets/by-species"),
    "odinw-pklot": (2, "space-empty", "space-occupied", "minival", "odinw/PKLot/640"),
    "odinw-thermal-cheetah": (2, "cheetah", "human", "val", "odinw/ThermalCheetah"),
    "odinw-uno-cards": (15, "0", "14", "minival", "odinw/UnoCards/raw"),
    "odinw-wildfire-smoke": (1, "smoke", "smoke", "val", "odinw/WildfireSmoke"),
    "odinw-boggle-boards": (36, "Q", "z", "val", "odinw/boggleBoards/416x416AutoOrient/export"),
    "odinw-brackish-underwater": (6, "crab", "starfish", "minival", "odinw/brackishUnderwater/960x540"),
    "odinw-dice": (6, "1", "6", "val", "odinw/dice/mediumColor/export"),
    "odinw-open-poetry-vision": (43, "American Typewriter", "Verdana", "minival", "odinw/openPoetryVision/512x512"),
    "odinw-plantdoc": (30, "Apple Scab Leaf", "grape leaf black rot", "val", "odinw/plantdoc/416x416"),
    "odinw-selfdriving-car": (11, "biker", "truck", "val", "odinw/selfdrivingCar/fixedLarge/export"),
    "odinw-website-screenshots": (8, "button", "text", "minival", "odinw/websiteScreenshots"),
}


@pytest.fixture(scope="module")
def reg() -> TaskRegistry:
    return load_registry(reload=True)


def test_odinw35_names_35_defined_tasks_and_odinw13_is_a_subset(reg):
    members = reg.group_members("odinw35")
    assert len(members) == 35 and all(ok for _, ok in members)
    names = {t.name for t in reg.resolve("odinw35")}
    assert len(names) == 35
    assert set(ODINW13) < names and {t.name for t in reg.resolve("odinw13")} < names
    assert names == set(ODINW13) | set(ODINW35_ONLY)


@pytest.mark.parametrize("name", sorted(ODINW35_ONLY))
def test_odinw35_task_follows_its_official_config(reg, name, tmp_path):
    n, first, last, split, root = ODINW35_ONLY[name]
    t = reg.get(name)
    assert (len(t.classes), t.classes[0], t.classes[-1], t.eval_split, t.root) == (n, first, last, split, root)
    assert t.groups == ("odinw35",) and t.metric == "coco_bbox" and t.finetune_split == "test"
    val = t.ann_path(split, tmp_path)
    if root.endswith("/export"):  # flat layout: split-prefixed files beside the images
        assert val == tmp_path / root / "val_annotations_without_background.json"
        assert t.images_path("train", tmp_path) == tmp_path / root
    else:
        folder = {"val": "valid", "minival": "mini_val"}[split]
        assert val == tmp_path / root / folder / "annotations_without_background.json"
        assert t.images_path(split, tmp_path) == tmp_path / root / folder


@pytest.mark.parametrize("name", sorted(ODINW35_ONLY) + sorted(ODINW13))
def test_every_prompt_set_of_every_odinw35_task_builds(reg, name):
    """Every class gets a phrase that maps to tokens (the blank ChessPieces name is the one renamed)."""
    t = reg.get(name)
    cats = [{"id": i + 1, "name": c, "prompt_name": c} for i, c in enumerate(t.classes)]
    data = DetectionDataset(name, t.eval_split, t.ann_path(t.eval_split, "x"), [], cats, {},
                            {"images": [], "annotations": [], "categories": cats})
    for pset in t.prompt_sets:
        names, pre, suf = t.prompt_names(pset)
        words = sorted({w for s in names + pre + suf for w in s.lower().replace(".", " ").replace(",", " ").split()})
        chunks = task_prompt_chunks(t, data, build_wordpiece_tokenizer(words), pset)
        assert sorted(i for _, ids in chunks for i in ids) == list(range(1, len(t.classes) + 1))


def test_boggle_keeps_the_official_colliding_names_and_others_may_not(reg):
    t = reg.get("odinw-boggle-boards")
    keys = [prompt_key(c) for c in t.classes]
    assert keys.count("q") == 2 and keys.count("o") == 2
    for other in reg.list("odinw35"):
        if other.name != t.name:
            ks = [prompt_key(c) for c in other.classes]
            assert len(ks) == len(set(ks)), other.name
