"""Provenance: git commit + dirty flag of the checkout found from the package location, versions, hashes."""

from __future__ import annotations

import subprocess

from bench.util import provenance


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_state_of_a_checkout(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    (tmp_path / "a.txt").write_text("1")
    _git("add", "a.txt", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert provenance.git_state(tmp_path) == (head, False)
    (tmp_path / "untracked.txt").write_text("results do not make a checkout dirty")
    assert provenance.git_state(tmp_path) == (head, False)
    (tmp_path / "a.txt").write_text("2")
    assert provenance.git_state(tmp_path) == (head, True)
    # a folder inside the checkout is not the checkout's root: its commit would not describe the package
    (tmp_path / "sub").mkdir()
    assert provenance.git_state(tmp_path / "sub") == (None, None)
    assert provenance.git_state(tmp_path.parent / "nowhere") == (None, None)


def test_package_checkout_found_from_package_location(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    root = provenance.package_root()
    assert (root / "bench" / "util" / "provenance.py").is_file()
    commit, dirty = provenance.git_state()
    if commit is not None:  # a git checkout (the development layout)
        assert len(commit) == 40 and isinstance(dirty, bool)


def test_provenance_section(tmp_path):
    ckpt = tmp_path / "w.bin"
    ckpt.write_bytes(b"abc")
    p = provenance.provenance(seeds={"fewshot": 3}, ann_sha256={"val": "x"}, checkpoint=str(ckpt), prompt_set="plain",
                              chunk_size=None, metric_backend="hotcoco")
    assert p["checkpoint_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert p["packages"]["torch"] and p["packages"]["mmengine"] and p["torch"]
    assert {"git_commit", "git_dirty", "cuda", "seeds", "prompt_set", "chunk_size", "metric_backend"} <= set(p)
    assert provenance.file_sha256(None) is None and provenance.device_name("cpu").startswith("cpu")


def test_results_folder_the_run_writes_does_not_make_the_checkout_dirty(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    (tmp_path / "results" / "demo").mkdir(parents=True)
    (tmp_path / "code.py").write_text("1")
    (tmp_path / "results" / "demo" / "record.json").write_text("{}")
    _git("add", ".", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=tmp_path)
    (tmp_path / "results" / "demo" / "record.json").write_text('{"rerun": true}')  # a rerun rewrites it
    assert provenance.git_state(tmp_path)[1] is True
    assert provenance.git_state(tmp_path, ignore=("results/demo",))[1] is False
    (tmp_path / "code.py").write_text("2")
    assert provenance.git_state(tmp_path, ignore=("results/demo",))[1] is True


def test_record_names_the_folder_left_out_of_git_dirty(tmp_path):
    root = provenance.package_root()
    assert provenance.ignored_for_dirty(root / "results" / "demo") == ("results/demo",)
    assert provenance.ignored_for_dirty(tmp_path / "elsewhere") == ()
    assert provenance.ignored_for_dirty(None) == ()
    assert provenance.environment(root / "results" / "demo")["git_dirty_ignores"] == ["results/demo"]
    assert provenance.environment()["git_dirty_ignores"] == []
