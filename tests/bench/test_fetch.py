"""`glip-bench fetch` against a stand-in for the Hugging Face hub on the loopback: the files land where
`--checkpoint`, `--text-encoder`, `--model hf:DIR` and the task registry read them, are checked against the
hub's checksums, and are not downloaded twice."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bench.cli import main
from bench.fetch import catalogue

COMMIT = "c0ffee" * 6 + "c0fe"  # 40 hex digits, as the hub's X-Repo-Commit
LFS_FROM = 1024  # files this big get a sha256 ETag (the hub's LFS files); smaller ones a git blob sha1


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if len(data) >= LFS_FROM else _git_sha1(data)


class FakeHub:
    """The hub's file endpoint (HEAD/GET /{repo}/resolve/{revision}/{path}, with Range) and tree listing
    (GET /api/models/{repo}/tree/{revision}), serving in-memory files. It records every request."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.served: dict[tuple[str, str], bytes] = {}  # what GET sends instead of the true bytes (a corrupt mirror)
        self.cut_once: set[tuple[str, str]] = set()  # GETs that stop half way once (a dropped connection)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, repo: str, path: str, data: bytes) -> None:
        self.files[(repo, path)] = data

    def gets(self, path_part: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET" and path_part in r[1]]

    def answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path, h.headers.get("Range")))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path):
            entries = [{"type": "file", "path": p, "size": len(d), "oid": _git_sha1(d)}
                       for (repo, p), d in sorted(self.files.items()) if repo == m[1]]
            return self._send(h, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        key = (m[1], m[3]) if m else None
        if key not in self.files:
            code = "EntryNotFound" if m and any(r == m[1] for r, _ in self.files) else "RepoNotFound"
            return self._send(h, 404, b"not found", {"X-Error-Code": code}, body)
        data = self.files[key]
        headers = {"ETag": f'"{_etag(data)}"', "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
        sent = self.served.get(key, data)
        start = int(re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", "bytes=0-"))[1])
        status = 206 if start else 200
        if body and key in self.cut_once:
            self.cut_once.discard(key)
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(sent) - start)}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(sent[start:start + (len(sent) - start) // 2])
            h.wfile.flush()
            h.close_connection = True
            return None
        return self._send(h, status, sent[start:], headers, body)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        h.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(data))}.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A FakeHub on 127.0.0.1 that huggingface_hub talks to (HF_ENDPOINT), with offline mode lifted for the test."""
    from huggingface_hub import constants

    fake = FakeHub()
    fake.thread.start()
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "ROBOFLOW_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read when huggingface_hub was imported
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(timeout=5)


def fetch(*argv: str) -> int:
    return main(["fetch", *argv])


# ------------------------------------------------------------------ the catalogue


def test_list_shows_each_item_with_its_destination_offline(tmp_path, capsys):
    assert fetch("--list", "--to", str(tmp_path / "w"), "--data-root", str(tmp_path / "d")) == 0
    out = capsys.readouterr().out
    for expected in (f"{tmp_path}/w/glip_tiny_model_o365_goldg.pth", f"{tmp_path}/w/glip_large_model.pth",
                     f"{tmp_path}/w/bert-base-uncased", f"{tmp_path}/w/grounding-dino-tiny",
                     f"{tmp_path}/d/odinw/Aquarium", f"{tmp_path}/d/rf100vl",
                     f"{tmp_path}/d/coco/annotations/lvis_v1_minival_inserted_image_name.json"):
        assert expected in out
    assert not (tmp_path / "w").exists() and not (tmp_path / "d").exists()


def test_every_odinw_task_has_its_zip_in_the_catalogue():
    from bench.tasks.registry import load_registry

    reg = load_registry()
    odinw = [t for t in reg.list() if t.root.startswith("odinw/")]
    assert odinw
    for task in odinw:
        stem = catalogue.odinw_zip_of(task.root)
        assert stem in catalogue.ODINW_ZIPS, task.name
        assert f"odinw:{stem}" in catalogue.GROUPS["odinw35"]
        if "odinw13" in task.groups:
            assert f"odinw:{stem}" in catalogue.GROUPS["odinw13"], task.name
    assert {catalogue.odinw_zip_of(t.root) for t in reg.list("odinw13")} == {
        n.removeprefix("odinw:") for n in catalogue.GROUPS["odinw13"]}


def test_hub_file_items_name_repo_top_level_files():
    """local_dir downloads keep the repo path, so a file item must be at the repo's top level to land in dest."""
    for item in catalogue.ITEMS.values():
        assert item.kind in catalogue.KINDS
        if item.kind in ("file", "folder"):
            assert item.files and all("/" not in f for f in item.files), item.name


def test_unknown_name_is_refused_with_the_closest(capsys):
    assert fetch("glip-q") == 2
    assert "Did you mean 'glip-t'" in capsys.readouterr().err


# ------------------------------------------------------------------ refusals before any download


def test_offline_mode_is_refused_naming_the_variable(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch("glip-t", "--to", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE=1" in err and "env -u HF_HUB_OFFLINE" in err
    assert not any(tmp_path.iterdir())


def test_a_network_error_names_the_url(hub, monkeypatch, tmp_path, capsys):
    hub.server.shutdown()
    hub.server.server_close()  # nothing listens on that port any more
    assert fetch("glip-t", "--to", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"could not download {hub.url}/GLIPModel/GLIP/resolve/main/glip_tiny_model_o365_goldg_cc_sbu.pth" in err


def test_rf100vl_without_package_or_key_says_what_to_do(hub, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "rf100vl", None)  # import fails as if not installed
    assert fetch("glip-t", "rf100vl", "--to", str(tmp_path / "w"), "--data-root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "pip install rf100vl" in err and "export ROBOFLOW_API_KEY=<key>" in err
    assert not hub.requests, "nothing is downloaded before the RF100-VL check"


def test_rf100vl_calls_the_package_into_the_family_folder(hub, monkeypatch, tmp_path, capsys):
    calls = []
    fake = types.ModuleType("rf100vl")
    fake.download_rf100vl_fsod = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "rf100vl", fake)
    monkeypatch.setenv("ROBOFLOW_API_KEY", "k123")
    assert fetch("rf100vl-fsod", "--data-root", str(tmp_path)) == 0
    assert calls == [{"path": str(tmp_path / "rf100vl-fsod"), "overwrite": False, "api_key": "k123"}]
    assert fetch("rf100vl", "--data-root", str(tmp_path)) == 2  # this fake has no download_rf100vl
    assert "upgrade rf100vl" in capsys.readouterr().err


# ------------------------------------------------------------------ downloads


def test_checkpoint_lands_where_checkpoint_reads_and_is_not_downloaded_twice(hub, tmp_path, capsys):
    import torch

    import glip
    from bench.models import check_model_config
    from glip.checkpoint import export_official

    model = glip.from_pretrained("glip-tiny")  # random weights, saved in the official .pth layout
    buf = io.BytesIO()
    torch.save({"model": export_official(model)}, buf)
    hub.add("GLIPModel/GLIP", "glip_tiny_model_o365_goldg.pth", buf.getvalue())
    weights = tmp_path / "weights"
    assert fetch("glip-t-c", "--to", str(weights)) == 0
    path = weights / "glip_tiny_model_o365_goldg.pth"
    check_model_config("glip-tiny", {}, str(path))  # what `run --checkpoint` checks first
    loaded = glip.from_pretrained("glip-tiny", checkpoint=path)  # what `--checkpoint` then loads
    for (name, want), got in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(want, got), name
    assert f"--model glip-t --checkpoint {path} --text-encoder {weights}/bert-base-uncased" in capsys.readouterr().out
    assert len(hub.gets(".pth")) == 1
    assert fetch("glip-t-c", "--to", str(weights)) == 0
    assert len(hub.gets(".pth")) == 1, "a present file with the hub's ETag is not fetched again"


def test_a_corrupt_download_is_deleted_and_refused(hub, tmp_path, capsys):
    data = b"x" * 2048
    hub.add("GLIPModel/GLIP", "glip_large_model.pth", data)
    hub.served[("GLIPModel/GLIP", "glip_large_model.pth")] = b"y" * 2048  # same size, other bytes
    assert fetch("glip-l", "--to", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"the hub says {hashlib.sha256(data).hexdigest()}" in err
    assert not (tmp_path / "glip_large_model.pth").exists()


def test_verify_rehashes_a_present_file(hub, tmp_path, capsys):
    import os

    hub.add("GLIPModel/GLIP", "glip_large_model.pth", b"z" * 2048)
    assert fetch("glip-l", "--to", str(tmp_path)) == 0
    path = tmp_path / "glip_large_model.pth"
    st = path.stat()
    path.write_bytes(b"q" * 2048)  # damaged on disk, same size and time: nothing but a hash can tell
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fetch("glip-l", "--to", str(tmp_path)) == 0 and len(hub.gets(".pth")) == 1
    assert fetch("glip-l", "--to", str(tmp_path), "--verify") == 2
    assert f"{path} is sha256" in capsys.readouterr().err and not path.exists()
    assert fetch("glip-l", "--to", str(tmp_path)) == 0 and path.read_bytes() == b"z" * 2048


def test_a_dropped_connection_resumes_with_a_range_request(hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 512)  # so the half that arrived is written before the cut
    data = bytes(range(256)) * 16
    hub.add("GLIPModel/GLIP", "glip_a_tiny_o365.pth", data)
    hub.cut_once.add(("GLIPModel/GLIP", "glip_a_tiny_o365.pth"))
    assert fetch("glip-t-a", "--to", str(tmp_path)) == 0
    assert (tmp_path / "glip_a_tiny_o365.pth").read_bytes() == data
    assert [r[2] for r in hub.gets(".pth")] == [None, f"bytes={len(data) // 2}-"]


def _tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from bench.testing.hf import write_bert_vocab

    folder.mkdir(parents=True)
    BertModel(BertConfig(vocab_size=1051, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64), add_pooling_layer=False).save_pretrained(folder)
    BertTokenizerFast(vocab=str(write_bert_vocab(folder))).save_pretrained(folder)
    return folder


def test_bert_folder_loads_as_the_text_encoder(hub, tmp_path):
    from glip.language import LanguageBackbone

    src = _tiny_bert(tmp_path / "src")
    for name in catalogue.ITEMS["bert-base-uncased"].files:
        hub.add(catalogue.BERT_REPO, name, (src / name).read_bytes())
    weights = tmp_path / "weights"
    assert fetch("bert-base-uncased", "--to", str(weights)) == 0
    dest = weights / "bert-base-uncased"
    assert not (weights / "bert-base-uncased.partial").exists()
    backbone = LanguageBackbone.from_pretrained(dest)  # what --text-encoder DIR loads
    assert backbone.tokenizer.tokenize("red circle") == ["red", "circle"]
    assert backbone.model.config.hidden_size == 32


def test_an_interrupted_folder_never_appears_under_its_name(hub, tmp_path, capsys):
    hub.add(catalogue.BERT_REPO, "config.json", b"{}")  # the other four files are missing on this hub
    assert fetch("bert-base-uncased", "--to", str(tmp_path)) == 2
    assert "not found on the hub" in capsys.readouterr().err
    assert not (tmp_path / "bert-base-uncased").exists()
    assert (tmp_path / "bert-base-uncased.partial" / "config.json").is_file()  # kept for the next try


def _odinw_zip(task, extra: dict[str, bytes] | None = None) -> bytes:
    """An ODinW-style zip: <Zip>/<sub>/{train,valid,test}/annotations_without_background.json + images."""
    from PIL import Image

    from bench.testing.formats import coco_dict

    jpeg = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 10)).save(jpeg, format="JPEG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        cats = [(i + 1, n) for i, n in enumerate(task.classes)]
        for k, split in enumerate(task.splits):
            data = coco_dict(cats, n_images=2, first_image_id=1 + 100 * k)
            files = task.split_files(split)
            zf.writestr(f"{task.root.removeprefix('odinw/')}/{files.ann}", json.dumps(data))
            for im in data["images"]:
                zf.writestr(f"{task.root.removeprefix('odinw/')}/{files.images}/{im['file_name']}", jpeg.getvalue())
        for name, blob in (extra or {}).items():
            zf.writestr(name, blob)
    return buf.getvalue()


def test_an_odinw_task_name_fetches_its_zip_into_the_layout_tasks_reads(hub, tmp_path, capsys):
    from bench.commands.tasks import rows
    from bench.tasks.registry import get_task

    task = get_task("odinw-aquarium")
    hub.add("GLIPModel/GLIP", "odinw_35/Aquarium.zip", _odinw_zip(task))
    data_root = tmp_path / "data"
    assert fetch("odinw-aquarium", "--data-root", str(data_root)) == 0
    assert "odinw-aquarium: data: yes" in capsys.readouterr().out
    row = next(r for r in rows(None, str(data_root)) if r["name"] == "odinw-aquarium")
    assert row["data"] == "yes"
    ds = task.load("val", data_root=data_root)
    assert len(ds) == 2
    assert not (data_root / "odinw" / ".download" / "odinw_35" / "Aquarium.zip").exists(), "the zip is removed"
    assert [p.name for p in (data_root / "odinw").iterdir() if not p.name.startswith(".")] == ["Aquarium"]
    assert fetch("odinw-aquarium", "--data-root", str(data_root)) == 0
    assert "already unpacked" in capsys.readouterr().err
    assert len(hub.gets("Aquarium.zip")) == 1


def test_a_zip_member_outside_the_data_root_is_refused(hub, tmp_path, capsys):
    from bench.tasks.registry import get_task

    zip_bytes = _odinw_zip(get_task("odinw-pothole"), extra={"../escaped.txt": b"no"})
    hub.add("GLIPModel/GLIP", "odinw_35/pothole.zip", zip_bytes)
    data_root = tmp_path / "data"
    assert fetch("odinw:pothole", "--data-root", str(data_root)) == 2
    assert "would be written outside" in capsys.readouterr().err
    assert not (tmp_path / "escaped.txt").exists() and not (data_root / "odinw" / "pothole").exists()


def test_an_existing_folder_no_fetch_wrote_is_not_replaced_without_force(hub, tmp_path, capsys):
    from bench.tasks.registry import get_task

    hub.add("GLIPModel/GLIP", "odinw_35/pothole.zip", _odinw_zip(get_task("odinw-pothole")))
    mine = tmp_path / "data" / "odinw" / "pothole" / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep")
    assert fetch("odinw:pothole", "--data-root", str(tmp_path / "data")) == 2
    assert "pass --force" in capsys.readouterr().err and mine.read_text() == "keep"
    assert fetch("odinw:pothole", "--data-root", str(tmp_path / "data"), "--force") == 0
    assert not mine.exists() and (mine.parent / "train" / "annotations_without_background.json").is_file()


def test_hf_model_fetches_a_loadable_checkpoint_folder(hub, tmp_path, capsys):
    from bench.models.hf.loading import load
    from bench.testing.hf import save_tiny

    src = save_tiny("grounding-dino", tmp_path / "src")
    repo = "tiny-org/tiny-gdino"
    for p in src.iterdir():
        hub.add(repo, p.name, p.read_bytes())
    hub.add(repo, "pytorch_model.bin", b"a second copy of the weights")  # not fetched: safetensors is there
    hub.add(repo, "onnx/model.onnx", b"not for transformers")  # not fetched: below the top level
    hub.add(repo, "README.md", b"# card")
    dest = tmp_path / "gdino-t"
    assert fetch("hf-model", repo, "--to", str(dest)) == 0
    assert f"--model hf:{dest}" in capsys.readouterr().out
    got = {p.name for p in dest.iterdir() if p.is_file()}
    assert got == {p.name for p in src.iterdir()}
    loaded = load(f"hf:{dest}")  # what `run --model hf:DIR` loads, offline
    assert loaded.family.name == "grounding-dino"


def test_hf_model_of_a_family_without_adapter_is_kept_with_a_warning(hub, tmp_path, capsys):
    repo = "tiny-org/not-a-detector"
    hub.add(repo, "config.json", json.dumps({"model_type": "bert"}).encode())
    hub.add(repo, "model.safetensors", b"\0" * 2048)
    assert fetch("hf-model", repo, "--to", str(tmp_path / "m")) == 0
    assert "will refuse it: unknown transformers detector family" in capsys.readouterr().err
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_hf_model_takes_owner_slash_name(tmp_path, capsys):
    assert fetch("hf-model", "grounding-dino-tiny") == 2
    assert "OWNER/NAME" in capsys.readouterr().err
