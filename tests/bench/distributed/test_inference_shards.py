"""Shard planning, merging and resume of bench/dist/inference.py, with ranks simulated in one process."""

from __future__ import annotations

import shutil

import pytest

from bench.dist import comm as dist
from bench.dist.inference import merge_shards, piece_path, plan_pieces, predict_sharded, remove_shards
from bench.util.errors import UserError

KEYS = [5, 3, 11, 8, 2, 13, 21, 1, 34, 55]


def fake_predict(calls: list[list[int]]):
    """Two predictions per image (some images get none), recording which keys were asked for."""

    def predict(ids: list[int]) -> list[dict]:
        calls.append(list(ids))
        return [{"image_id": i, "category_id": c, "bbox": [i, c, 1, 1], "score": 1 / (i + c)}
                for i in ids if i % 3 for c in (1, 2)]

    return predict


def reference() -> list[dict]:
    return fake_predict([])(KEYS)


def test_dist_helpers_without_a_process_group():
    assert not dist.is_initialized() and dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    dist.barrier()  # no-op
    assert dist.broadcast_object({"a": 1}) == {"a": 1} and dist.local_device("cuda") == "cuda"
    assert dist.init_from_env() is False  # no torchrun environment


def test_pieces_are_exact_and_disjoint():
    pieces = plan_pieces(KEYS, 3)
    assert pieces == [[5, 3, 11], [8, 2, 13], [21, 1, 34], [55]]
    with pytest.raises(UserError, match=r"more than once: \[3\]"):
        plan_pieces([1, 3, 3], 2)


def test_ranks_cover_the_split_once_and_merge_in_split_order(tmp_path):
    calls: list[list[int]] = []
    # rank 1 of 3 first, then 2, then 0 (which merges): every rank predicts only its own pieces
    for r in (1, 2, 0):
        res = predict_sharded(fake_predict(calls), KEYS, tmp_path, fingerprint="run-a", piece_size=3, rank=r,
                              world_size=3)
        assert res.computed == list(range(r, 4, 3)) and not res.reused
    assert calls == [[8, 2, 13], [21, 1, 34], [5, 3, 11], [55]]
    assert res.predictions == reference()
    assert merge_shards(tmp_path, KEYS, fingerprint="run-a", piece_size=3) == reference()


def test_resume_redoes_only_missing_pieces_even_with_another_world_size(tmp_path):
    # a 2-rank run whose rank 1 died before writing anything: rank 0's pieces 0 and 2 are on disk
    first: list[list[int]] = []
    with pytest.raises(UserError, match=r"4 image ids have no shard: \[8, 2, 13, 55\]"):
        predict_sharded(fake_predict(first), KEYS, tmp_path, fingerprint="run-a", piece_size=3, rank=0, world_size=2)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").iterdir()}
    (tmp_path / "shards" / f".{piece_path(tmp_path, 1, 4).name}.x.tmp").write_text("{half")  # interrupted write
    # rerun in one process: only pieces 1 and 3 are predicted
    again: list[list[int]] = []
    res = predict_sharded(fake_predict(again), KEYS, tmp_path, fingerprint="run-a", piece_size=3)
    assert res.computed == [1, 3] and res.reused == [0, 2] and again == [[8, 2, 13], [55]]
    assert res.predictions == reference()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished shards kept as they were
    assert not list((tmp_path / "shards").glob(".*.tmp"))
    # another run (fingerprint) ignores these shards and redoes everything
    other: list[list[int]] = []
    predict_sharded(fake_predict(other), KEYS, tmp_path / "b", fingerprint="run-b", piece_size=3)
    assert len(other) == 4
    remove_shards(tmp_path)
    assert not (tmp_path / "shards").exists()


def test_merge_names_duplicated_and_missing_images(tmp_path):
    predict_sharded(fake_predict([]), KEYS, tmp_path, fingerprint="run-a", piece_size=4)
    shutil.copy(piece_path(tmp_path, 1, 3), tmp_path / "shards" / "piece-00099-of-00003.json")
    with pytest.raises(UserError, match=r"4 image ids are in several shards: 2 \(piece-00001-of-00003.json \+ "
                                        r"piece-00099-of-00003.json\)"):
        merge_shards(tmp_path, KEYS, fingerprint="run-a", piece_size=4)
    (tmp_path / "shards" / "piece-00099-of-00003.json").unlink()
    piece_path(tmp_path, 2, 3).write_text("not json")  # a corrupt shard counts as missing
    with pytest.raises(UserError, match=r"have no shard: \[34, 55\]"):
        merge_shards(tmp_path, KEYS, fingerprint="run-a", piece_size=4)


def test_predictions_outside_the_piece_are_refused(tmp_path):
    with pytest.raises(RuntimeError, match="outside it: \\[99\\]"):
        predict_sharded(lambda ids: [{"image_id": 99}], KEYS, tmp_path, fingerprint="x", piece_size=4)
