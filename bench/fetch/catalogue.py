"""What `glip-bench fetch` can download, as data: one `Item` per name, and groups of names.

Hosts and file names: the official GLIP weights and the ODinW zips are in the Hugging Face hub repo GLIPModel/GLIP
(microsoft/GLIP README model zoo and odinw/download.py, which lists 33 zips under odinw_35/; `vector` feeds no
task and is left out). bert-base-uncased is google-bert/bert-base-uncased. RF100-VL comes through the rf100vl
package's download functions (Roboflow), into the folders the rf100vl task family reads.

Destinations are relative to one of two roots: "weights" (`--to DIR`, default ./weights) or "data" (the data
root: `--data-root`, else $GLIP_BENCH_DATA, else ./data), so they land where `--checkpoint`, `--text-encoder`,
`--model hf:DIR` and the task YAMLs (`root:` under the data root) look.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.util.errors import unknown_name

GLIP_REPO = "GLIPModel/GLIP"
BERT_REPO = "google-bert/bert-base-uncased"
KINDS = ("file", "folder", "hf-model", "odinw-zip", "rf100vl")


@dataclass(frozen=True)
class Item:
    """One fetchable thing.

    kind: "file" (repo-root files into the folder `dest`), "folder" (`files` make up the folder `dest`, which
        appears only when all are in), "hf-model" (a transformers checkpoint folder: the repo's config, tokenizer,
        processor and weight files), "odinw-zip" (`files[0]` unzipped into `dest`), "rf100vl" (the rf100vl
        package's function `function`, writing one folder per data set into `dest`).
    place: "weights" or "data": the root `dest` is relative to.
    use: how to pass it to glip-bench once fetched: "{path}" is where it landed, "{weights}" and "{data}" the roots.
    """

    name: str
    kind: str
    description: str
    place: str
    dest: str
    repo: str = ""
    files: tuple[str, ...] = ()
    function: str = ""
    use: str = ""


def _checkpoint(name: str, filename: str, preset: str, what: str) -> Item:
    return Item(name, "file", f"official {what} checkpoint ({filename}, preset {preset})", "weights", ".",
                repo=GLIP_REPO, files=(filename,),
                use=f"--model {preset} --checkpoint {{path}} --text-encoder {{weights}}/bert-base-uncased")


def _hf_model(name: str, repo: str, what: str) -> Item:
    return Item(name, "hf-model", f"{what} ({repo}), transformers checkpoint", "weights", name, repo=repo,
                use="--model hf:{path}")


# zip stem under odinw_35/ -> in ODinW-13 (configs/odinw_13); all of them are ODinW-35 (configs/odinw_35/_all.json)
ODINW_ZIPS: dict[str, bool] = {
    "AerialMaritimeDrone": True, "AmericanSignLanguageLetters": False, "Aquarium": True, "BCCD": False,
    "ChessPieces": False, "CottontailRabbits": True, "DroneControl": False, "EgoHands": True,
    "HardHatWorkers": False, "MaskWearing": False, "MountainDewCommercial": False, "NorthAmericaMushrooms": True,
    "OxfordPets": False, "PKLot": False, "Packages": True, "PascalVOC": True, "Raccoon": True,
    "ShellfishOpenImages": True, "ThermalCheetah": False, "UnoCards": False, "VehiclesOpenImages": True,
    "WildfireSmoke": False, "boggleBoards": False, "brackishUnderwater": False, "dice": False,
    "openPoetryVision": False, "pistols": True, "plantdoc": False, "pothole": True, "selfdrivingCar": False,
    "thermalDogsAndPeople": True, "websiteScreenshots": False,
}
ODINW_PREFIX = "odinw:"


def odinw_item(zip_stem: str) -> Item:
    return Item(f"{ODINW_PREFIX}{zip_stem}", "odinw-zip", f"ODinW zip {GLIP_REPO}/odinw_35/{zip_stem}.zip, unzipped",
                "data", "odinw", repo=GLIP_REPO, files=(f"odinw_35/{zip_stem}.zip",),
                use="--data-root {data}")


ITEMS: dict[str, Item] = {item.name: item for item in [
    _checkpoint("glip-t-a", "glip_a_tiny_o365.pth", "glip-t-a", "GLIP-T (A), O365"),
    _checkpoint("glip-t-b", "glip_tiny_model_o365.pth", "glip-t", "GLIP-T (B), O365"),
    _checkpoint("glip-t-c", "glip_tiny_model_o365_goldg.pth", "glip-t", "GLIP-T (C), O365+GoldG"),
    _checkpoint("glip-t", "glip_tiny_model_o365_goldg_cc_sbu.pth", "glip-t", "GLIP-T, O365+GoldG+CC3M+SBU"),
    _checkpoint("glip-l", "glip_large_model.pth", "glip-l", "GLIP-L, FourODs+GoldG+CC3M+12M+SBU"),
    Item("bert-base-uncased", "folder", "the GLIP-T / GLIP-L text encoder: BERT-base weights and tokenizer",
         "weights", "bert-base-uncased", repo=BERT_REPO,
         files=("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "model.safetensors"),
         use="--text-encoder {path}"),
    _hf_model("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", "Grounding DINO-T"),
    _hf_model("grounding-dino-base", "IDEA-Research/grounding-dino-base", "Grounding DINO-B"),
    _hf_model("mm-grounding-dino-tiny", "openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det",
              "MM Grounding DINO-T"),
    _hf_model("owlv2-base", "google/owlv2-base-patch16-ensemble", "OWLv2-B/16 ensemble"),
    Item("lvis-minival-annotations", "file", "LVIS v1 minival annotations (MDETR's 5k subset) for lvis-minival",
         "data", "coco/annotations", repo=GLIP_REPO, files=("lvis_v1_minival_inserted_image_name.json",),
         use="--data-root {data} (images: COCO 2017 under {data}/coco/)"),
    Item("lvis-val-annotations", "file", "LVIS v1 val annotations (GLIP's lvis_od_val.json) for lvis-val",
         "data", "coco/annotations", repo=GLIP_REPO, files=("lvis_od_val.json",),
         use="--data-root {data} (images: COCO 2017 under {data}/coco/)"),
    *(odinw_item(stem) for stem in ODINW_ZIPS),
    Item("rf100vl", "rf100vl", "RF100-VL: 100 Roboflow data sets (needs the rf100vl package and a Roboflow key)",
         "data", "rf100vl", function="download_rf100vl", use="--data-root {data}"),
    Item("rf100vl-fsod", "rf100vl", "RF100-VL-FSOD: the fixed 10-shot variant (rf100vl package, Roboflow key)",
         "data", "rf100vl-fsod", function="download_rf100vl_fsod", use="--data-root {data}"),
    Item("rf20vl-fsod", "rf100vl", "RF20-VL-FSOD: 20 of the FSOD data sets (rf100vl package, Roboflow key)",
         "data", "rf100vl-fsod", function="download_rf20vl_fsod", use="--data-root {data}"),
]}

GROUPS: dict[str, list[str]] = {
    "glip-checkpoints": ["glip-t-a", "glip-t-b", "glip-t-c", "glip-t", "glip-l"],
    "odinw13": [f"{ODINW_PREFIX}{stem}" for stem, in13 in ODINW_ZIPS.items() if in13],
    "odinw35": [f"{ODINW_PREFIX}{stem}" for stem in ODINW_ZIPS],
}


def odinw_zip_of(task_root: str) -> str | None:
    """The ODinW zip stem a task root lives in ("odinw/Aquarium/Aquarium Combined..." -> "Aquarium")."""
    parts = task_root.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "odinw" else None


def resolve(names: list[str], task_roots: dict[str, str] | None = None) -> list[Item]:
    """Catalogue names, group names and ODinW task names (via their `root`) -> items, in order, each once.

    task_roots: task name -> root, from the task registry; a task under odinw/ fetches its zip."""
    valid = [*ITEMS, *GROUPS]
    out: dict[str, Item] = {}
    for name in names:
        if name in GROUPS:
            out.update((n, ITEMS[n]) for n in GROUPS[name])
        elif name in ITEMS:
            out[name] = ITEMS[name]
        elif task_roots and name in task_roots and odinw_zip_of(task_roots[name]) in ODINW_ZIPS:
            item = odinw_item(odinw_zip_of(task_roots[name]))
            out[item.name] = item
        else:
            raise unknown_name("fetch item (see glip-bench fetch --list)", name, valid)
    return list(out.values())
