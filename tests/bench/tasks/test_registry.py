"""The shipped task YAMLs and the registry: schema validation, groups, lookups, paths."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from bench.tasks.registry import TaskRegistry, _validate, load_registry, resolve_data_root
from bench.testing.formats import GOOD_TASK_YAML as GOOD
from bench.testing.formats import ODINW13
from bench.util.errors import UserError


@pytest.fixture(scope="module")
def reg() -> TaskRegistry:
    return load_registry(reload=True)


def test_every_shipped_yaml_loads_and_validates(reg):
    tasks_dir = Path(reg.directory)
    files = [p for p in tasks_dir.rglob("*.yaml") if not p.name.startswith("_")]
    assert files, "no task YAMLs found"
    names = {t.name for t in reg.list()}
    from bench.tasks.family import FamilyTask

    # one task per non-base file (the synthetic engineer's files are included when present); task
    # families (tasks/*/_family.yaml, bench.tasks.family) add theirs on top
    assert len({t.name for t in reg.list() if not isinstance(t, FamilyTask)}) == len(files)
    for t in reg.list():
        assert t.version >= 1 and t.source and t.description
        assert "plain" in t.prompt_sets
        assert t.eval_split in t.splits and t.finetune_split in t.splits
    for name in ["coco", "lvis-minival", "lvis-val", "flickr30k-val", "flickr30k-test", *ODINW13]:
        assert name in names


def test_odinw13_group_is_exactly_the_13(reg):
    assert sorted(t.name for t in reg.list("odinw13")) == sorted(ODINW13)
    assert sorted(reg.groups()["odinw13"]) == sorted(ODINW13)


def test_odinw_classes_splits_and_paths_follow_the_official_configs(reg, tmp_path):
    for name, (classes, eval_split) in ODINW13.items():
        t = reg.get(name)
        assert list(t.classes) == classes, name
        assert t.eval_split == eval_split, name
        assert t.finetune_split == "test" and t.metric == "coco_bbox" and t.detections_per_image == 100
        assert set(t.groups) == {"odinw13", "odinw35"}
    d = tmp_path
    aq = reg.get("odinw-aquarium")
    assert aq.ann_path("val", d) == d / "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco/valid/annotations_without_background.json"
    ego = reg.get("odinw-egohands-generic")
    assert ego.ann_path("minival", d) == d / "odinw/EgoHands/generic/mini_val/annotations_without_background.json"
    assert ego.images_path("minival", d) == d / "odinw/EgoHands/generic/mini_val"
    veh = reg.get("odinw-vehicles-open-images")
    assert veh.ann_path("minival", d) == d / "odinw/VehiclesOpenImages/416x416/mini_val/annotations_without_background.json"
    voc = reg.get("odinw-pascal-voc")  # official quirk: test -> valid
    assert voc.ann_path("test", d) == voc.ann_path("val", d) == d / "odinw/PascalVOC/valid/annotations_without_background.json"
    pis = reg.get("odinw-pistols")  # flat layout
    assert pis.ann_path("val", d) == d / "odinw/pistols/export/val_annotations_without_background.json"
    assert pis.images_path("train", d) == pis.images_path("test", d) == d / "odinw/pistols/export"
    assert reg.get("odinw-cottontail-rabbits").root == "odinw/CottontailRabbits"


def test_odinw35_group_lists_35_names_and_which_are_defined(reg):
    members = reg.group_members("odinw35")
    assert len(members) == 35 and len({m for m, _ in members}) == 35
    defined = {m for m, ok in members if ok}
    assert set(ODINW13) <= defined and len(defined) == 35  # all defined (tests/bench/tasks/test_odinw35.py)


def test_official_prompt_sets_are_the_odinw35_caption_prompts(reg):
    names, pre, suf = reg.get("odinw-aquarium").prompt_names("official")
    assert names == ODINW13["odinw-aquarium"][0]
    assert pre == [" ", "", "", "", "", "", ""]
    assert suf == ["", "", " , which is black and white", " with orange beaks ", "", "", " which is flat and round"]
    assert reg.get("odinw-pothole").prompt_names("official") == (["holes"], ["there are some "], [" on the road"])
    assert reg.get("odinw-packages").prompt_names("official") == (["package"], ["there is a "], [" on the porch"])
    assert reg.get("odinw-egohands-generic").prompt_names("official") == (["hand"], [" "], [" of a person"])
    assert reg.get("odinw-cottontail-rabbits").prompt_names("official")[0] == ["rabbit"]
    assert reg.get("odinw-cottontail-rabbits").prompt_names("plain")[0] == ["Cottontail-Rabbit"]
    assert reg.get("odinw-north-america-mushrooms").prompt_names("official")[0] == ["flat mushroom", "yellow mushroom"]
    assert reg.get("odinw-raccoon").prompt_names("official") == (["raccoon"], [""], [""])
    with pytest.raises(UserError, match="prompt set"):
        reg.get("odinw-raccoon").prompt_names("fancy")


def test_coco_and_lvis_take_names_from_the_file(reg):
    coco, lvis = reg.get("coco"), reg.get("lvis-minival")
    assert coco.classes is None and lvis.classes is None
    assert lvis.chunk_size == 40 and lvis.detections_per_image == 300 and lvis.metric == "lvis_fixed_ap"
    assert lvis.ann_path("minival", "D") == Path("D/coco/annotations/lvis_v1_minival_inserted_image_name.json")
    with pytest.raises(UserError, match="annotation file"):
        coco.prompt_names("plain")
    # official clean_name on file names (maskrcnn_benchmark/data/datasets/od_to_grounding.py)
    assert lvis.prompt_names("plain", ["bow_(weapon)", "baseball_bat"])[0] == ["bow ", "baseball bat"]


def test_unknown_task_suggests_the_closest(reg):
    with pytest.raises(UserError) as e:
        reg.get("odinw-aquarim")
    assert "Did you mean 'odinw-aquarium'" in str(e.value) and "coco" in str(e.value)
    with pytest.raises(UserError, match="Did you mean 'odinw13'"):
        reg.resolve("odinw12")


def test_resolve_expands_groups_and_keeps_order(reg):
    tasks = reg.resolve("coco, odinw13, odinw-aquarium")
    assert [t.name for t in tasks][0] == "coco"
    assert len(tasks) == 14 and len({t.name for t in tasks}) == 14


def test_registering_twice_raises(reg):
    with pytest.raises(UserError, match="defined twice"):
        reg.register(reg.get("coco"))


def test_a_users_folder_adds_tasks_and_replaces_a_shipped_one_by_name(tmp_path, monkeypatch):
    """--tasks-dir / GLIP_BENCH_TASKS add to the shipped tasks; a user's task of a shipped name replaces it
    (the record names the file it came from), and a folder that is a copy of the shipped tree is no error."""
    from bench.tasks.registry import shipped_tasks_dir

    shutil.copytree(shipped_tasks_dir(), tmp_path / "copy")
    text = (tmp_path / "copy" / "coco.yaml").read_text()
    (tmp_path / "copy" / "coco.yaml").write_text(text.replace("\nversion: 1\n", "\nversion: 7\n"))
    monkeypatch.setenv("GLIP_BENCH_TASKS", str(tmp_path / "copy"))
    reg = load_registry(reload=True)
    assert reg.get("coco").version == 7 and Path(reg.get("coco").file).is_relative_to(tmp_path)
    assert reg.get("odinw-aquarium") and len(reg.groups()["odinw13"]) == 13
    with pytest.raises(UserError, match="defined twice"):  # twice in the same folder stays an error
        reg.register(reg.get("coco"))


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("GLIP_BENCH_DATA", raising=False)
    assert resolve_data_root() == Path("data")
    monkeypatch.setenv("GLIP_BENCH_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root("x") == Path("x")


# ---- validation on a scratch tasks directory ----------------------------------------------------


def _write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def _load(d: Path) -> TaskRegistry:
    return load_registry(d, reload=True)


def test_good_file_and_base_inheritance(tmp_path):
    _write(tmp_path, "_base.yaml", "format: coco\nmetric: coco_bbox\nprompt_sets: {plain: {}}\ndetections_per_image: 7\n")
    child = """\
    _base_: ../_base.yaml
    name: toy
    version: 2
    description: a toy task
    source: made by the test
    root: toy
    splits: {val: {ann: val.json, images: val}}
    eval_split: val
    classes: [cat, dog]
    prompt_sets: {official: {suffix: {dog: " that barks"}}}
    """
    _write(tmp_path, "sub/toy.yaml", child)
    t = _load(tmp_path).get("toy")
    assert t.version == 2 and t.metric == "coco_bbox" and t.detections_per_image == 7
    assert t.finetune_split == "val" and t.separator == ". "
    assert t.prompt_sets == {"plain": {}, "official": {"suffix": {"dog": " that barks"}}}


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda s: s + "colour: blue\n", "colour"),                                   # unknown key
        (lambda s: s.replace("source: made by the test\n", ""), "source"),           # missing key
        (lambda s: s.replace("version: 1", "version: '1'"), "version"),             # wrong type
        (lambda s: s.replace("classes: [cat, dog]", "classes: cat"), "classes"),     # wrong type
        (lambda s: s.replace("metric: coco_bbox", "metric: flickr_recall"), "metric"),
        (lambda s: s.replace("eval_split: val", "eval_split: test"), "eval_split"),
        (lambda s: s.replace('{dog: " that barks"}', '{wolf: " that howls"}'), "prompt_sets.official.suffix"),
        (lambda s: s.replace("name: toy", "name: Toy_Task"), "name"),
        (lambda s: s.replace("format: coco", "format: voc"), "format"),
        (lambda s: s + "fewshot: {val: few.json}\n", "fewshot.val"),
        (lambda s: s + "chunk_size: 0\n", "chunk_size"),
        (lambda s: s.replace("{ann: val.json, images: val}", "{ann: val.json}"), "splits.val.images"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, edit, key):
    p = _write(tmp_path, "toy.yaml", edit(GOOD))
    with pytest.raises(UserError) as e:
        _load(tmp_path)
    msg = str(e.value)
    assert str(p) in msg and key in msg, msg


def test_duplicate_names_across_files(tmp_path):
    a = _write(tmp_path, "a.yaml", GOOD)
    b = _write(tmp_path, "b/b.yaml", GOOD)
    with pytest.raises(UserError) as e:
        _load(tmp_path)
    assert "defined twice" in str(e.value) and str(a) in str(e.value) and str(b) in str(e.value)


def test_group_file_consistency(tmp_path):
    _write(tmp_path, "toy.yaml", GOOD + "groups: [pets]\n")
    _write(tmp_path, "_groups.yaml", "groups:\n  pets:\n    members: [toy, other]\n")
    reg = _load(tmp_path)
    assert reg.group_members("pets") == [("toy", True), ("other", False)]
    _write(tmp_path, "toy.yaml", GOOD)  # listed in pets but does not say so
    with pytest.raises(UserError, match="add 'pets' to its groups"):
        _load(tmp_path)
    _write(tmp_path, "toy.yaml", GOOD + "groups: [pets]\n")
    _write(tmp_path, "_groups.yaml", "groups:\n  pets:\n    members: [other]\n")
    with pytest.raises(UserError, match="does not list it"):
        _load(tmp_path)


def test_malformed_yaml_names_the_file(tmp_path):
    p = _write(tmp_path, "toy.yaml", "name: [unclosed\n")
    with pytest.raises(UserError, match=str(p)):
        _load(tmp_path)


def test_validate_returns_a_task_with_defaults(tmp_path):
    import yaml

    t = _validate(yaml.safe_load(GOOD), tmp_path / "toy.yaml")
    assert t.chunk_size is None and t.ann_sha256 == {} and t.fewshot == {} and t.groups == ()
    assert t.prompt_names("official") == (["cat", "dog"], ["", ""], ["", " that barks"])


def test_readme_recipe_for_a_new_task_loads(tmp_path):
    """README "Adding a task": a copy of aquarium.yaml with a new name, root and classes, and `groups: []`."""
    import shutil

    repo_tasks = Path(__file__).resolve().parents[3] / "tasks"
    shutil.copytree(repo_tasks, tmp_path / "tasks")
    text = (repo_tasks / "odinw" / "aquarium.yaml").read_text()
    text = text.replace("name: odinw-aquarium", "name: odinw-bees").replace(
        'root: "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco"', 'root: "odinw/Bees"')
    text = text.replace('classes: ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]',
                        'classes: ["bee", "wasp"]')
    text = text[:text.index("prompt_sets:")] + "prompt_sets:\n  plain: {}\n"
    copy = tmp_path / "tasks" / "odinw" / "bees.yaml"
    copy.write_text(text)
    with pytest.raises(UserError, match=r"set `groups: \[\]` in bees.yaml"):
        TaskRegistry(tmp_path / "tasks")
    copy.write_text(text + "groups: []\n")
    task = TaskRegistry(tmp_path / "tasks").get("odinw-bees")
    assert task.classes == ("bee", "wasp") and task.groups == () and task.root == "odinw/Bees"


def test_a_key_given_twice_is_an_error_naming_the_file_and_line(tmp_path):
    p = _write(tmp_path, "toy.yaml", GOOD + "detections_per_image: 100\ndetections_per_image: 3\n")
    line = len(GOOD.splitlines()) + 2
    with pytest.raises(UserError) as e:
        _load(tmp_path)
    assert f"{p}:{line}: key 'detections_per_image' is given twice (first on line {line - 1})" in str(e.value)
    nested = GOOD.replace("  plain: {}\n", "  plain: {}\n  plain: {names: {cat: kitty}}\n")
    p = _write(tmp_path, "toy.yaml", nested)
    with pytest.raises(UserError, match=f"{p}:\\d+: key 'plain' is given twice"):
        _load(tmp_path)


@pytest.mark.parametrize("second", ["Circle", "circle_", "circle  "])
def test_classes_with_the_same_prompt_are_an_error_naming_the_file_and_line(tmp_path, second):
    text = GOOD.replace("classes: [cat, dog]", f"classes:\n  - circle\n  - square\n  - '{second}'")
    p = _write(tmp_path, "toy.yaml", text)
    line = text.splitlines().index(f"  - '{second}'") + 1
    with pytest.raises(UserError) as e:
        _load(tmp_path)
    assert f"{p}:{line}: key 'classes': 'circle' and {second!r} give the same prompt 'circle'" in str(e.value)
