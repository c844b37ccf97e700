"""Benchmark-wide settings and shared fixtures (`nox -s bench` = pytest benchmarks --benchmark-only).

Offline, no progress bars. GLIP_BENCH_THREADS=<n> sets torch's thread count (default: torch's own, the core
count); every model benchmark records the count it ran with in extra_info["threads"]. GLIP_BENCH_SMOKE=1: tiny
sizes, for `pytest benchmarks --benchmark-disable` in the test suite (bench/testing/bench_smoke.py).
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GLIP_BENCH_NO_PROGRESS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.testing.bench_smoke import sized  # noqa: E402

if os.environ.get("GLIP_BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["GLIP_BENCH_THREADS"]))


def lvis_like_names(n: int = 1203) -> list[str]:
    """n distinct class names of 2-3 words from the built-in vocabulary (LVIS has 1203 classes)."""
    colours = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
               "grey", "cyan", "magenta")
    shapes = ("square", "circle", "triangle", "rectangle", "star", "cross", "ring", "diamond", "ellipse", "hexagon",
              "heart", "crescent", "arrow", "hourglass", "disk", "bar", "box", "person")
    sizes = ("", "small ", "large ", "big ", "tiny ")
    names = [f"{s}{c} {h}" for s, c, h in itertools.product(sizes, colours, shapes)]
    if len(names) < n:
        raise ValueError(f"only {len(names)} names available, {n} asked")
    return names[:n]


def random_model(preset: str, lift: bool = False, **overrides):
    """A GLIP with seeded random weights. lift: token scores lifted from the 0.01 prior to about 0.5, so
    every anchor is a candidate (at the prior nothing passes the 0.05 threshold and the postprocess is timed
    on empty inputs; lifted, it is timed at its worst: 1000 candidates per level into NMS)."""
    from glip.config import TOY_WORDS, VOCAB_CHARS, get_preset
    from glip.language import build_wordpiece_tokenizer
    from glip.model import GLIP

    torch.manual_seed(0)
    cfg = get_preset(preset, **overrides)
    # bert-base-uncased is not available offline: a small WordPiece vocabulary stands in for the real presets
    tok = None if cfg.vocab_words else build_wordpiece_tokenizer(list(TOY_WORDS) + list(VOCAB_CHARS))
    model = GLIP(cfg, tokenizer=tok).eval()
    if lift:
        with torch.no_grad():
            model.head.bias0.fill_(0.0)
    return model


@pytest.fixture(scope="session", name="random_model")
def random_model_fixture():
    """The `random_model(preset, **overrides)` factory (fixtures, so benchmark modules import nothing from here)."""
    return random_model


@pytest.fixture(scope="session", name="lvis_like_names")
def lvis_like_names_fixture():
    return lvis_like_names


def _detection_tasks(tmp_path_factory, name: str, scale: float | str):
    from bench.synthetic import generate
    from bench.synthetic.specs import DETECTION_TASKS

    root = tmp_path_factory.mktemp(name)
    generate(root, scale=scale, tasks=list(DETECTION_TASKS))
    return root


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """The synthetic world's detection tasks at the 'quick' scale (30 test images each), generated once."""
    return _detection_tasks(tmp_path_factory, "synthetic", sized("quick", 0.05))


@pytest.fixture(scope="session")
def synth_root_full(tmp_path_factory):
    """The detection tasks at the demo's scale (120 test images each): what a zero-shot run really scores."""
    return _detection_tasks(tmp_path_factory, "synthetic-full", sized(1.0, 0.05))
