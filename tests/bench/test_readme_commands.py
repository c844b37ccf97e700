"""Every command the README shows, run as printed on the synthetic world (or on a named stand-in).

The README's fenced bash and python blocks are parsed: each command must be either run here (as printed, or
with the stand-ins named next to it: glip-tiny / glip-synth for the glip-t weights and BERT that cannot be
downloaded, a synthetic image for street.jpg) or listed in NOT_RUNNABLE with the reason. A new README
command fails this test until it is one or the other. The reports commands of "The command line" run as
printed in a working directory whose results/ holds zero-shot records of both fusions.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from bench.cli import main as cli

pytestmark = pytest.mark.slow  # a small synthetic world, four zero-shot runs and the reports: about a minute

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")

FETCH_TESTS = ("downloads from the internet; tests/bench/test_fetch.py runs fetch for a checkpoint, BERT, an ODinW zip, "
               "a transformers checkpoint and RF100-VL against a stand-in hub on 127.0.0.1")
NOT_RUNNABLE = {
    "glip-bench fetch glip-t bert-base-uncased": FETCH_TESTS,
    "glip-bench fetch odinw13": FETCH_TESTS,
    "glip-bench fetch grounding-dino-tiny": FETCH_TESTS,
    "ROBOFLOW_API_KEY=<key> glip-bench fetch rf100vl": FETCH_TESTS,
    "pip install nox && nox -s demo":
        "creates a virtualenv from PyPI and runs the full 14-minute demo; the `glip-bench demo --quick` it wraps "
        "is tests/bench/studies/test_demo.py::test_quick_demo_runs_every_stage",
    "nox -s tests": "runs this test suite itself",
    "source .nox/shared-py3.11/bin/activate":
        "puts the venv `nox -s demo` made on the PATH; this test runs inside that environment's interpreter",
    "torchrun --nproc_per_node 8 -m bench.cli run --model glip-t --checkpoint glip-t.safetensors "
    "--text-encoder bert-base-uncased --tasks odinw13 --regime full-ft --device cuda --data-root /data":
        "needs 8 GPUs, the glip-t weights, BERT and the ODinW data; two CPU processes on the synthetic world are "
        "tests/bench/distributed/test_run_torchrun.py",
    "glip-bench run --model hf:gdino-t --tasks odinw13 --regime full-ft --shots 1,3,5,10 --seeds 3,30,300":
        "12 fine-tuning runs of a real Grounding DINO on the ODinW data; one shot of a tiny saved Grounding DINO "
        "on the synthetic world is tests/bench/models/test_hf_finetune.py",
}
# python blocks that cannot run here, by a line they hold
NOT_RUNNABLE_PYTHON = {
    "AutoModelForZeroShotObjectDetection.from_pretrained(name)":
        "downloads from the Hugging Face Hub; the world fixture saves a tiny random Grounding DINO the same way "
        "(bench.testing.hf.save_tiny), and the hf: commands run on it",
}
# README command -> what replaces what in it here (official weights, BERT and a street photo cannot be fetched)
STAND_INS = {
    "glip-bench convert-checkpoint glip_tiny_model_o365_goldg.pth glip-t.safetensors --preset glip-t":
        {"glip_tiny_model_o365_goldg.pth": "official-tiny.pth", "--preset glip-t": "--preset glip-tiny"},
    "glip-bench predict --model glip-t --checkpoint glip-t.safetensors --text-encoder bert-base-uncased "
    "--image street.jpg --prompt \"person. bicycle. car\" --out-json dets.json --out-png dets.png":
        {"--model glip-t": "--model glip-tiny", " --text-encoder bert-base-uncased": "", "street.jpg": "street.png"},
    # the hf: records go to their own folder: results/ holds exactly the records the reports test expects
    "glip-bench run --model hf:gdino-t --tasks coco,lvis-minival,odinw13 --regime zero-shot":
        {"coco,lvis-minival,odinw13": "synth-shapes --results hf-results"},
    "glip-bench leaderboard": {"leaderboard": "leaderboard --results hf-results --out hf-board"},
}
PYTHON_STAND_INS = {'"glip-t"': '"glip-tiny"', 'text_encoder="bert-base-uncased"': "text_encoder=None"}


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def bash_commands() -> list[str]:
    """One string per command: continuation lines joined, comments dropped."""
    out = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = " ".join(line.split("#")[0].split())
            if command:
                out.append(command)
    return out


def _substitute(command: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in command, (old, command)
        command = command.replace(old, new)
    return command


def _glip_bench(command: str) -> int:
    """The command as a shell runs it: words split, a word with * expanded to the one file it matches."""
    argv = []
    for word in shlex.split(command):
        matches = sorted(glob.glob(word)) if "*" in word else [word]
        assert len(matches) == 1, (word, matches)
        argv.append(matches[0])
    assert argv[0] == "glip-bench", command
    return cli(argv[1:])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A working directory with the synthetic world in data/ and zero-shot records of both fusions in results/."""
    import torch

    import glip
    from bench.runs.train import save_adapter
    from bench.synthetic.generate import generate
    from bench.testing.hf import save_tiny

    root = tmp_path_factory.mktemp("readme")
    generate(root / "data", seed=0, scale="quick", tasks=["synth-shapes", "synth-grounding"])
    for fusion in ("deep", "late"):
        torch.manual_seed(0)
        save_adapter(glip.from_pretrained(glip.get_preset("glip-synth", fusion=fusion)), root / f"{fusion}.safetensors")
    torch.manual_seed(0)
    save_adapter(glip.from_pretrained("glip-tiny"), root / "tiny.safetensors")
    save_tiny("grounding-dino", root / "gdino-t")  # what the README's save_pretrained block writes, tiny
    return root


def test_every_readme_command_is_run_or_says_why_not(world, monkeypatch):
    monkeypatch.chdir(world)
    commands = set(bash_commands()) - set(first_runs_commands()) | {"glip-bench leaderboard"}  # (also in the hf block)
    assert commands == set(NOT_RUNNABLE) | set(STAND_INS), "a README command is neither run nor excused here"
    # stand-ins for what cannot be downloaded: an official-layout glip-tiny file and a scene of the synthetic world
    assert cli(["convert-checkpoint", "tiny.safetensors", "official-tiny.pth", "--export-official", "--preset",
                "glip-tiny"]) == 0
    shutil.copy(next((world / "data").rglob("synth-shapes/test/*.png")), world / "street.png")
    for command, replacements in STAND_INS.items():
        assert _glip_bench(_substitute(command, replacements)) == 0, command
    assert (world / "glip-t.safetensors").stat().st_size > 0
    assert "hf:gdino-t" in (world / "hf-board" / "LEADERBOARD.md").read_text()
    dets = json.loads((world / "dets.json").read_text())
    assert dets["phrases"] == ["person", "bicycle", "car"] and (world / "dets.png").stat().st_size > 0
    [python] = [b for b in readme_blocks("python") if not any(line in b for line in NOT_RUNNABLE_PYTHON)]
    image = __import__("PIL.Image", fromlist=["Image"]).open(world / "street.png")
    scope = {"image": image}
    exec(compile(_substitute(python, PYTHON_STAND_INS), "README.md", "exec"), scope)
    assert {"boxes_xyxy", "scores", "labels"} <= set(dir(scope["dets"]))


FIRST_RUNS = "## Your first runs"


def first_runs_commands() -> list[str]:
    """The commands of the README's "Your first runs" block, as printed."""
    section = README[README.index(FIRST_RUNS):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [" ".join(line.split("#")[0].split()) for line in block.splitlines() if line.split("#")[0].strip()]


def test_first_runs_work_as_printed(world, monkeypatch):
    """After the demo (its models in results/demo/models, its world in the default data root ./data), a
    newcomer's commands run exactly as printed, write where the README says, and the report commands read the
    user's own results set, not the demo's records beside it."""
    monkeypatch.chdir(world)
    monkeypatch.delenv("GLIP_BENCH_DATA", raising=False)
    models = world / "results" / "demo" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for fusion in ("deep", "late"):
        shutil.copy(world / f"{fusion}.safetensors", models / f"glip-synth-{fusion}-0123456789ab.safetensors")
    commands = first_runs_commands()
    assert [c.split()[1] for c in commands] == ["tasks", "run", "run", "leaderboard", "ablation", "curves"]
    for command in commands:
        assert _glip_bench(command) == 0, command
    assert len(list(Path("results/runs").glob("*/record.json"))) == 2
    assert Path("results/LEADERBOARD.md").is_file() and Path("results/plots").is_dir()
    md = Path("results/ablation/ablation.md").read_text()
    assert re.search(r"^\| overall \|[^\n]*\| 1 \|", md, flags=re.M), md  # the one pair (synth-shapes)
    session = re.search(r'_cli\("fusion_ablation", (.*?), doc=', (REPO / "noxfile.py").read_text()).group(1)
    nox_argv = [a.strip().strip('"') for a in session.split(",")]
    assert "`fusion_ablation`" in README
    assert cli([*nox_argv, "--out", "results/nox-ablation"]) == 0  # what `nox -s fusion_ablation` runs
    assert Path("results/nox-ablation/ablation.csv").is_file()


def test_adding_a_task_as_documented(tmp_path, monkeypatch, capsys):
    """README "Adding a task": copy aquarium.yaml into a folder of your own, set `_base_: odinw/_base.yaml`, change
    name, root, splits, classes and prompt sets, add `groups: []`, check with `glip-bench --tasks-dir DIR tasks`:
    the task is listed beside the shipped ones."""
    text = " ".join(README.split())
    assert "add `groups: []`" in text and "`_base_: odinw/_base.yaml`" in text
    mine = tmp_path / "mine"
    mine.mkdir()
    text = (REPO / "tasks" / "odinw" / "aquarium.yaml").read_text()
    assert "_base_: ./_base.yaml" in text
    text = text.replace("_base_: ./_base.yaml", "_base_: odinw/_base.yaml")
    text = text.replace("name: odinw-aquarium", "name: odinw-bees").replace(
        'root: "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco"', 'root: "odinw/Bees"').replace(
        'classes: ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]', 'classes: ["bee"]')
    text = text[:text.index("prompt_sets:")] + "prompt_sets:\n  plain: {}\ngroups: []\n"
    (mine / "bees.yaml").write_text(text)
    monkeypatch.setenv("GLIP_BENCH_TASKS", "")  # recorded, so the value the CLI sets is undone after the test
    assert cli(["--tasks-dir", str(mine), "tasks", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert {"odinw-bees", "odinw-aquarium", "synth-shapes"} <= names


def test_the_readme_stays_a_newcomers_page():
    """What it is, the two commands, data and weights, models, tasks, the architecture: under 250 lines; results
    and history live in results/README.md and docs/, and every docs/ page it links exists."""
    assert len(README.splitlines()) < 250
    for page in set(re.findall(r"\((docs/[a-z0-9-]+\.md)\)", README)):
        assert (REPO / page).is_file(), page
