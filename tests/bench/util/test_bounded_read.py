"""Every read of a user file is bounded: a gzip bomb or an oversized JSON stops at the limit, by name."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from bench.cli import main
from bench.results import store
from bench.util.errors import UserError
from bench.util.io import MAX_RATIO_ENV, MAX_READ_ENV, parse_size, read_json, read_user_bytes

GT = {"images": [{"id": 1, "file_name": "1.png", "width": 10, "height": 10}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0}],
      "categories": [{"id": 1, "name": "square"}]}


def _bomb(path, mib: int):
    """`[` + mib MiB of spaces + `]`, gzipped: a few KiB on disk."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(b"[")]
    block = b" " * (1 << 20)
    parts += [z.compress(block) for _ in range(mib)]
    parts += [z.compress(b"]"), z.flush()]
    path.write_bytes(b"".join(parts))
    return path


def test_a_gzip_bomb_stops_at_the_ratio_bound_by_name(tmp_path):
    bomb = _bomb(tmp_path / "p.json.gz", 8)
    with pytest.raises(UserError) as e:
        read_user_bytes(bomb, "predictions file")
    msg = str(e.value)
    assert str(bomb) in msg and "100 times its compressed size" in msg and MAX_RATIO_ENV in msg, msg


def test_a_small_limit_stops_the_read_and_names_the_limit(tmp_path, monkeypatch):
    bomb = _bomb(tmp_path / "p.json.gz", 3)
    monkeypatch.setenv(MAX_RATIO_ENV, "100000")
    assert len(read_user_bytes(bomb)) == 3 * (1 << 20) + 2  # under the default limit it is read whole
    monkeypatch.setenv(MAX_READ_ENV, "1M")
    with pytest.raises(UserError, match=rf"{bomb} decompresses to more than 1.0 MiB: above the read limit of 1.0 MiB.*--max-read"):
        read_user_bytes(bomb, "predictions file")
    plain = tmp_path / "gt.json"
    plain.write_text(" " * (2 << 20) + "{}")
    with pytest.raises(UserError, match=rf"annotation file {plain} is 2.0 MiB, above the read limit of 1.0 MiB"):
        read_json(plain, "annotation file")


def test_score_with_max_read_refuses_a_bomb_before_scoring(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MAX_READ_ENV, "")  # --max-read sets it; monkeypatch restores it after
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    bomb = _bomb(tmp_path / "p.json.gz", 2)
    rc = main(["--max-read", "1M", "score", "--annotations", str(gt), "--predictions", str(bomb), "--metric", "coco"])
    err = capsys.readouterr().err
    assert rc == 2 and str(bomb) in err and "read limit of 1.0 MiB" in err, err
    rc = main(["--max-read", "lots", "score", "--annotations", str(gt), "--predictions", str(bomb), "--metric", "coco"])
    assert rc == 2 and "--max-read='lots' is not a size" in capsys.readouterr().err


def test_a_run_folder_bomb_and_a_big_annotation_file_are_refused(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    _bomb(run / store.PREDICTIONS, 4)
    with pytest.raises(UserError, match=rf"predictions file {run / store.PREDICTIONS} decompresses"):
        store.read_predictions(run)
    monkeypatch.setenv(MAX_READ_ENV, "100")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    with pytest.raises(UserError, match=rf"{gt} is .* above the read limit of 100 B"):
        read_json(gt, "annotation file")
    (tmp_path / "small.json.gz").write_bytes(gzip.compress(b"[1]"))
    assert read_json(tmp_path / "small.json.gz") == [1]
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(b"[1, 2, 3]" * 10)[:-6])
    with pytest.raises(UserError, match="truncated or corrupt gzip"):
        read_json(tmp_path / "cut.json.gz")


@pytest.mark.parametrize("text, value", [("1000", 1000), ("64K", 64 << 10), ("32G", 32 << 30), ("1.5m", 3 << 19), ("2GiB", 2 << 30)])
def test_sizes_parse(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "-1", "nan", "inf", "0", "12Q"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(UserError, match="is not a size"):
        parse_size(text)
