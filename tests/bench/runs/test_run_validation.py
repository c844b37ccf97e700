"""`--dry-run` and the real run share one validator: every bad `--set` value, seed or model list is rc 2
before any compute, with the same message."""

from __future__ import annotations

import logging

import pytest

from bench.cli import main
from bench.runs.hparams import PARAMETER_GROUP_NAMES
from bench.testing.world import make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        yield make_world(tmp_path_factory.mktemp("world"), mp)


def _run(world, tmp_path, *extra, regime="full-ft", model="glip-tiny"):
    args = ["run", "--model", model, "--tasks", "runner-shapes-a", "--regime", regime, "--data-root", str(world[1]),
            "--results", str(tmp_path / "results"), "--workers", "0", *extra]
    if regime != "zero-shot" and "--shots" not in extra:
        args += ["--shots", "1", "--seeds", "3"]
    return main(args)


BAD_SETS = [
    ("lr=NaN", "override lr=nan must be a finite number in (0.0, inf]"),
    ("lr=-1", "override lr=-1.0 must be a finite number in (0.0, inf]"),
    ("weight_decay=-5", "override weight_decay=-5.0 must be a finite number in [0.0, inf]"),
    ("optimizer=Foo", "unknown optimizer (override optimizer=...) 'Foo'"),
    ("fpn_channels=0", "fpn_channels must be >= 1, got 0"),
    ("max_query_len=1", "max_query_len must be >= 3"),
    ("infer_batch_size=100000", "override infer_batch_size=100000 is past 4096 images per batch"),
    ("lang_lr_groups=['language','lnaguage']", "override lang_lr_groups names ['lnaguage'], which are no parameter group"),
    ("lr_factor=2", "override lr_factor=2.0 must be a finite number in (0.0, 1.0]"),
]


@pytest.mark.parametrize("setting, message", BAD_SETS)
@pytest.mark.parametrize("dry", [True, False])
def test_a_bad_set_value_is_refused_alike_by_the_dry_run_and_the_run(world, tmp_path, capsys, setting, message, dry):
    rc = _run(world, tmp_path, "--set", setting, *(["--dry-run"] if dry else []))
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "results" / "runs").exists()  # nothing computed


def test_good_values_pass_the_dry_run(world, tmp_path, capsys):
    assert _run(world, tmp_path, "--set", "lr=0.001", "--set", "weight_decay=0", "--set", "optimizer=SGD",
                "--set", "lang_lr_groups=['language','fusion']", "--dry-run") == 0
    assert "runner-shapes-a__full-ft__1shot__seed3" in capsys.readouterr().out


@pytest.mark.parametrize("seeds, message", [("99999999999999999999", "seed 99999999999999999999 is out of range"),
                                            ("-1", "seed -1 is out of range")])
def test_seeds_out_of_range_are_named(world, tmp_path, capsys, seeds, message):
    assert _run(world, tmp_path, "--shots", "1", "--seeds", seeds, "--dry-run") == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--model", ","), ("--regime", " , ")])
def test_an_empty_model_or_regime_list_is_refused(world, tmp_path, capsys, flag, value):
    kw = {"model": value} if flag == "--model" else {"regime": value}
    assert _run(world, tmp_path, "--shots", "1", **kw) == 2
    assert f"{flag} {value!r} names nothing" in capsys.readouterr().err


def test_the_static_group_list_is_every_familys_groups():
    from bench.models.hf.adapter import GROUP_MARKERS
    from glip.model import PARAMETER_GROUPS

    assert set(PARAMETER_GROUP_NAMES) == set(PARAMETER_GROUPS) | {g for g, _ in GROUP_MARKERS} | {"fusion"}


def test_token_colliding_class_names_are_warned(caplog):
    from bench.tasks.prompts import token_collisions, warn_token_collisions
    from glip.language import build_wordpiece_tokenizer

    tok = build_wordpiece_tokenizer(["circle", "square"])
    names = ["circle", "circlé", "square", "ж", "ф"]
    assert token_collisions(tok, names) == [["circle", "circlé"], ["ж", "ф"]]
    with caplog.at_level(logging.WARNING):
        warn_token_collisions(tok, "toy", names)
    assert "'circle' = 'circlé'; 'ж' = 'ф'" in caplog.text and "cannot tell them apart" in caplog.text
    assert token_collisions(tok, ["circle", "square"]) == []
