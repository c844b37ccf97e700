"""Inference engine speed (bench/models/glip.py): chunked prompts, batch size, harness overhead.

Run with `nox -s bench`; `python -m bench.reports.benchmarks` prints each group's ratios against its baseline
(extra_info["baseline"]). Models: seeded random weights for the chunked-prompt groups (token scores at the 0.01
prior: no candidate passes 0.05, so the postprocess, the same in both paths, costs ~nothing and the ratio
is the model compute saved); glip-synth briefly trained on synth-shapes (200 AdamW steps, fixture
`trained_synth`) for the batch-size, overhead and AP groups, so the postprocess sees realistic candidates.
The equality of the fast and the naive paths is tested in
tests/bench/models/test_inference.py, not here. Nothing asserts a time.

- chunked prompts: an LVIS-like prompt of 1203 names in chunks of at most 40 (31 with BERT's vocabulary; more
  with glip-tiny's toy vocabulary, which spells words out and so fills the 256 tokens sooner). Per image, the naive path runs the
  whole model once per chunk; the cached path runs backbone + FPN once and fusion + head + postprocess per
  chunk, the text features (once per chunk for the whole split) computed beforehand and reported apart.
  glip-tiny and glip-synth end to end; glip-t (the real architecture, at a reduced 256x256 input: a full
  800x1333 forward takes tens of seconds on 2 CPU cores) from its measured parts, since the naive path is
  exactly n full forwards for n chunks: ratio = (backbone + n x (head + postprocess)) / (n x full forward). glip-t-a
  (late fusion) too: its tower sees no text, so it runs once per image and a chunk costs only its logits.
  Inference drops text padding (glip.model.GLIP.encode_text); the official forward pads every chunk to 256
  tokens, so that padded forward is timed too and the ratio reported against both naive paths.
  GLIP_BENCH_FULL_SIZE=1 adds glip-t at the official 800x1333 (about 3 minutes; skipped by default).
- batch size: images/s of glip-synth on the synthetic synth-shapes test split for batch 1, 4, 8.
- harness overhead: a zero-shot pass over the 5 synthetic detection tasks' test splits at the demo's scale
  (120 images each; the 30-image 'quick' splits overstate per-run fixed costs) (load, predict, save, score, with
  bench.runs.runner's own save and score steps): the share of wall time spent outside the model's calls
  (ModelTimer). Pipelines, each adding one step to the one before: "plain" (the baseline: each batch
  decoded when the model asks for it; the predictions scored after a second JSON encoding, with the
  garbage collector on), "file-scoring" (scored from the saved file with the collector
  paused), "+prefetch" (the next batch decoded in a background thread: the default when torch leaves a core
  free, as here with one torch thread on 2 cores), "+gc-freeze" (the heap alive after the model build moved
  out of the collector's reach, as runner.ModelCache does) and "+orjson" (the predictions file written and
  parsed by orjson instead of the standard library): the last is run_one now.
  extra_info also counts Python's full (generation 2) garbage
  collections in a round: one costs ~0.2 s here and lands in the harness share of whichever round it hits.
  The rounds' own wall times (stats) say whether a lower harness share is time saved or time moved
  into the model's calls (a busy machine: a prefetch thread with no idle core slows the model).
- postprocess: glip-synth's head outputs on synth-shapes test (batches of 8) post-processed image by image
  (the baseline: one positive-map object per image) and batched (one prompt
  for the batch: tensor ops over the images, one NMS call with images as groups); detections compared.
- batching vs AP: AP of batch 1, batch 8 in data-set order (the official padding, which the fusion attends
  to), and batch 8 grouped by input size (the default), on synth-shapes test with a third of the images
  cropped to 128x96 and a third to 96x128.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

from bench.models.glip import ModelTimer, detect_chunks, encode_prompts, predict_detection
from bench.testing.bench_smoke import sized

CHUNK = 40  # official TEST.CHUNKED_EVALUATION for LVIS: 1203 classes -> 31 prompts (BERT's vocabulary)
_PARTS: dict[str, float] = {}


def _image(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _setup(random_model, names, preset: str, **overrides):
    from glip.prompts import build_prompt_chunks

    model = random_model(preset, **overrides)
    class_names = names(sized(1203, 90))
    chunks = build_prompt_chunks(model.tokenizer, class_names, chunk_size=CHUNK)
    # at most CHUNK names per prompt; more prompts when a tokenizer splits names into many tokens (glip-tiny's
    # toy vocabulary spells words out, 43 prompts for 1203 names), so the count is recorded, not assumed
    assert len(chunks) >= -(-len(class_names) // CHUNK)
    return model, chunks


def _naive(model, batch, chunks) -> int:
    return sum(len(model.detect(batch, [ch.caption], [ch.positive_map])[0]) for ch in chunks)


def _cached(model, batch, texts, maps) -> int:
    return sum(len(d[0]) for d in detect_chunks(model, batch, texts, maps))


@pytest.mark.parametrize("preset,size", [("glip-tiny", (96, 64)), ("glip-synth", (128, 128))])
@pytest.mark.parametrize("path", ["naive", "cached"])
def test_chunked_prompt_per_image(benchmark, random_model, lvis_like_names, preset, size, path):
    benchmark.group = f"chunked prompt, 1203 names in chunks of <= 40, per image: {preset}"
    model, chunks = _setup(random_model, lvis_like_names, preset)
    batch = model.preprocess([_image(size)])
    t0 = time.perf_counter()
    texts = encode_prompts(model, [ch.caption for ch in chunks])
    text_s = time.perf_counter() - t0
    maps = [ch.positive_map for ch in chunks]
    with torch.no_grad():
        if path == "naive":
            n = benchmark.pedantic(_naive, args=(model, batch, chunks), rounds=2, iterations=1, warmup_rounds=1)
        else:
            n = benchmark.pedantic(_cached, args=(model, batch, texts, maps), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(baseline=path == "naive", chunks=len(chunks), detections=n,
                                threads=torch.get_num_threads(), input=list(batch.tensor.shape[-2:]))
    if path == "cached":
        benchmark.extra_info["text_seconds_per_split"] = text_s  # one text pass per chunk, once for the whole split
    if benchmark.stats is not None:
        _PARTS[f"{preset}/{path}"] = benchmark.stats.stats.mean
        if f"{preset}/naive" in _PARTS and f"{preset}/cached" in _PARTS:
            benchmark.extra_info["cached_over_naive"] = _PARTS[f"{preset}/cached"] / _PARTS[f"{preset}/naive"]


@pytest.mark.benchmark(group="chunked prompt, 1203 names in chunks of <= 40, glip-t / glip-t-a 256x256 (parts of one image)")
@pytest.mark.parametrize("preset", ["glip-t", "glip-t-a"])
def test_chunked_prompt_glip_t_parts(benchmark, random_model, lvis_like_names, preset):
    """One round = one full forward (the naive path's unit: it runs one per chunk), then the cached path's
    once-per-image part and one chunk's per-chunk part, timed back to back so machine noise hits all three.
    The per-part minimum over the rounds gives the all-chunks per-image estimate in extra_info."""
    side = sized(256, 64)
    model, chunks = _setup(random_model, lvis_like_names, preset, min_size=side, max_size=side)
    _chunk_parts(benchmark, model, chunks, (side, side), rounds=2, warmup_rounds=1)


@pytest.mark.skipif(not os.environ.get("GLIP_BENCH_FULL_SIZE"),
                    reason="about 3 minutes on 2 CPU cores: set GLIP_BENCH_FULL_SIZE=1 to run it")
@pytest.mark.benchmark(group="chunked prompt, 1203 names in chunks of <= 40, glip-t 800x1333 (parts of one image)")
def test_chunked_prompt_glip_t_parts_full_size(benchmark, random_model, lvis_like_names):
    """The same at the official test size (800x1333, padded to 800x1344), two rounds: DyHead's cost grows
    with the pixels while the text side does not, so the per-chunk share is larger than at 256x256."""
    model, chunks = _setup(random_model, lvis_like_names, "glip-t")
    _chunk_parts(benchmark, model, chunks, (1333, 800), rounds=2, warmup_rounds=0)


def _chunk_parts(benchmark, model, chunks, size: tuple[int, int], rounds: int, warmup_rounds: int) -> None:
    from glip.prompts import fit_positive_map

    batch = model.preprocess([_image(size)])
    ch = chunks[len(chunks) // 2]
    text = encode_prompts(model, [ch.caption])[0]  # padding dropped, as inference does
    pm = fit_positive_map(ch.positive_map.float(), text.input_ids.shape[1])
    pm_padded = fit_positive_map(ch.positive_map.float(), model.config.max_query_len)
    late = model.head.text_free_tower
    parts: dict[str, list[float]] = {"full_padded": [], "full": [], "once": [], "chunk": []}

    def one_round() -> None:
        t0 = time.perf_counter()
        features = model.encode_images(batch)  # the official forward: text padded to 256 tokens
        out = model.forward_head(features, model.encode_text([ch.caption], trim_padding=False))
        model.postprocessor(out, model.anchors(features), [pm_padded], batch.image_sizes, batch.original_sizes)
        t1 = time.perf_counter()
        model.detect(batch, [ch.caption], [ch.positive_map])
        t2 = time.perf_counter()
        features = model.encode_images(batch)
        anchors = model.anchors(features)
        if late:  # the text-free tower and box branches once per image, as the engine does
            tower_feats, _ = model.head.tower(features)
            boxes = model.head.box_branches(tower_feats)
        t3 = time.perf_counter()
        out = (model.head.predict(tower_feats, None, text.embedded, boxes) if late
               else model.forward_head(features, text))
        model.postprocessor(out, anchors, [pm], batch.image_sizes, batch.original_sizes)
        t4 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[k].append(v)

    with torch.no_grad():
        benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    full_padded, full, once, chunk = (min(v) for v in parts.values())
    n = len(chunks)
    cached, naive, official = once + n * chunk, n * full, n * full_padded
    benchmark.extra_info.update(threads=torch.get_num_threads(), tokens=int(text.attention_mask.sum()),
                                input=list(batch.tensor.shape[-2:]),
                                full_forward_padded_s=full_padded, full_forward_s=full, once_per_image_s=once,
                                per_chunk_s=chunk, official_naive_per_image_s=official, naive_per_image_s=naive,
                                cached_per_image_s=cached, cached_over_naive=cached / naive,
                                cached_over_official_naive=cached / official,
                                trimmed_over_padded_forward=full / full_padded,
                                per_chunk_share_of_full_forward=chunk / full)
    print(f"\n{model.config.name} {size[0]}x{size[1]}, {n} chunks: cached/naive per image = "
          f"{cached / naive:.2f}, cached/official naive (256-token padding) = {cached / official:.2f} (full padded "
          f"{full_padded:.2f} s, full {full:.2f} s, once {once:.2f} s, per chunk {chunk:.2f} s)")


@pytest.mark.benchmark(group="batch size: glip-synth (trained 200 steps), synth-shapes test (30 images)")
@pytest.mark.parametrize("batch_size", [1, 4, 8])
def test_batch_size(benchmark, trained_synth, synth_root, batch_size):
    from bench.tasks.registry import get_task
    from glip.prompts import build_prompt_chunks

    model = trained_synth[0]
    ds = get_task("synth-shapes").load("test", synth_root)
    chunks = build_prompt_chunks(model.tokenizer, [c["name"] for c in ds.categories])
    preds, _ = benchmark.pedantic(predict_detection, args=(model, ds, chunks, 100, batch_size),
                                  kwargs={"num_workers": 0}, rounds=2, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(baseline=batch_size == 1, threads=torch.get_num_threads(), detections=len(preds))
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = len(ds) / benchmark.stats.stats.mean


@contextmanager
def _full_gc_seconds(out: dict[str, float]) -> Iterator[None]:
    """Count Python's full garbage collections (and their seconds) while the block runs."""
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            out["gc_full_s"] = out.get("gc_full_s", 0.0) + time.perf_counter() - started.pop()
            out["gc_full_collections"] = out.get("gc_full_collections", 0) + 1

    gc.callbacks.append(on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(on_gc)


def _save_stdlib(folder, preds) -> None:
    """store.write_predictions before orjson: the standard library's compact JSON, gzip level 1."""
    import gzip
    import json

    from bench.results import store
    from bench.util.io import atomic_write_bytes

    data = json.dumps(preds, separators=(",", ":")).encode("utf-8")
    atomic_write_bytes(store.predictions_path(folder), gzip.compress(data, compresslevel=1, mtime=0))


def _score_saved_stdlib(task, ds, folder):
    """scoring.score_saved before orjson: the file parsed by the standard library."""
    import gzip
    import json

    from bench.metrics import evaluate
    from bench.results import store
    from bench.runs import scoring

    with scoring.gc_paused():
        preds = json.loads(gzip.decompress(store.predictions_path(folder).read_bytes()))
        return evaluate(task.metric, scoring.ground_truth(task, ds), preds, backend=scoring.DEFAULT_BACKEND)


def _score_stdlib(task, ds, preds):
    """scoring.score before orjson: an in-memory round trip through the standard library's JSON."""
    import json

    from bench.metrics import evaluate
    from bench.runs import scoring

    return evaluate(task.metric, scoring.ground_truth(task, ds), json.loads(json.dumps(preds)),
                    backend=scoring.DEFAULT_BACKEND)


def zero_shot_suite(model, data_root, out_dir, num_workers: int, prefetch: bool = True,
                    from_file: bool = True, fast_json: bool = True) -> dict:
    """Every synthetic detection task's test split, as a zero-shot run does it: load, predict, save, score.

    Saving and scoring are the runner's own steps (bench.runs.scoring): from_file scores the saved file
    (scoring.score_saved, what run_one does), False the predictions re-encoded in memory (scoring.score, the
    baseline).
    fast_json False: the same steps with the standard library's JSON instead of orjson (the baseline).
    """
    from bench.results import store
    from bench.runs import scoring
    from bench.synthetic.specs import DETECTION_TASKS
    from bench.tasks.registry import get_task
    from glip.prompts import build_prompt_chunks

    timer = ModelTimer()
    stages = {"load": 0.0, "predict": 0.0, "save": 0.0, "score": 0.0}
    gcs: dict[str, float] = {"gc_full_collections": 0, "gc_full_s": 0.0}
    start = time.perf_counter()
    images = 0
    with _full_gc_seconds(gcs):
        for name in DETECTION_TASKS:
            t = time.perf_counter()
            task = get_task(name)
            ds = task.load(task.eval_split, data_root)
            chunks = build_prompt_chunks(model.tokenizer, [c["name"] for c in ds.categories], separator=task.separator)
            stages["load"] += time.perf_counter() - t
            t = time.perf_counter()
            preds, _ = predict_detection(model, ds, chunks, task.detections_per_image, 8, num_workers=num_workers,
                                         timer=timer, prefetch=prefetch)
            stages["predict"] += time.perf_counter() - t
            t = time.perf_counter()
            if fast_json:
                store.write_predictions(out_dir / name, preds)
            else:
                _save_stdlib(out_dir / name, preds)
            stages["save"] += time.perf_counter() - t
            t = time.perf_counter()
            if from_file and fast_json:
                scoring.score_saved(task, ds, out_dir / name, scoring.DEFAULT_BACKEND)
            elif from_file:
                _score_saved_stdlib(task, ds, out_dir / name)
            elif fast_json:
                scoring.score(task, ds, preds, scoring.DEFAULT_BACKEND)
            else:
                _score_stdlib(task, ds, preds)
            stages["score"] += time.perf_counter() - t
            images += len(ds)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "model_s": timer.model_seconds, "harness_fraction": 1 - timer.model_seconds / wall,
            "predict_harness_fraction": timer.harness_fraction, "images": images,
            **{f"{k}_s": v for k, v in stages.items()}, **{f"model_{k}_s": v for k, v in timer.seconds.items()}, **gcs}


# name -> (DataLoader worker processes, prefetch thread, score the saved file, gc.freeze after the model build as
# runner.ModelCache does, orjson for the predictions file); "plain" is the baseline, the last is run_one now
PIPELINES = {"plain": (0, False, False, False, False), "file-scoring": (0, False, True, False, False),
             "file-scoring+prefetch": (0, True, True, False, False),
             "file-scoring+prefetch+gc-freeze": (0, True, True, True, False),
             "file-scoring+prefetch+gc-freeze+orjson": (0, True, True, True, True)}


@pytest.mark.benchmark(group="zero-shot synthetic suite (5 tasks x 120 test images, the demo's scale), glip-synth "
                             "(trained 200 steps), batch 8")
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_harness_overhead(benchmark, trained_synth, synth_root_full, tmp_path, pipeline):
    """extra_info: each key's mean over the timed rounds, and harness_fraction of every round."""
    from bench.models.cache import freeze_gc_heap

    model = trained_synth[0]
    num_workers, prefetch, from_file, freeze, fast_json = PIPELINES[pipeline]
    rounds: list[dict] = []

    def one_round() -> None:
        rounds.append(zero_shot_suite(model, synth_root_full, tmp_path, num_workers, prefetch, from_file, fast_json))

    if freeze:
        freeze_gc_heap()
    try:
        benchmark.pedantic(one_round, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        gc.unfreeze()  # the other pipelines and benchmarks measure an unfrozen heap
    timed = rounds[1:] or rounds  # the first is the warm-up round (none under --benchmark-disable: one round)
    info = {k: float(np.mean([r[k] for r in timed])) for k in timed[0]}
    benchmark.extra_info.update(baseline=pipeline == "plain", pipeline=pipeline, num_workers=num_workers,
                                prefetch=prefetch, score_from_file=from_file, gc_freeze=freeze, orjson=fast_json,
                                threads=torch.get_num_threads(),
                                harness_fraction_rounds=[round(r["harness_fraction"], 4) for r in timed],
                                **{k: round(v, 4) for k, v in info.items()})
    print(f"\n{pipeline}: harness {info['harness_fraction']:.1%} of {info['wall_s']:.2f} s (mean of {len(timed)}; "
          f"inside predict: {info['predict_harness_fraction']:.1%}; full GCs per round: "
          f"{info['gc_full_collections']:.1f}, {info['gc_full_s']:.2f} s)")


# ------------------------------------------------------------------------- batching and padding: AP
def _train_briefly(model, train, steps: int, seed: int = 0) -> None:
    """A few hundred AdamW steps of batch 4 on a synthetic train split (enough for a non-trivial AP)."""
    import random

    from glip.prompts import build_prompt_chunks
    from glip.structures import ImageBatch, TrainTarget
    from glip.transforms import pad_batch, train_transform

    rng = random.Random(seed)
    torch.manual_seed(seed)
    cfg = model.config
    ch = build_prompt_chunks(model.tokenizer, [c["name"] for c in train.categories])[0]
    class_map = ch.positive_map[torch.tensor(ch.phrase_indices).argsort()]  # rows in category order
    row = {c["id"]: k for k, c in enumerate(train.categories)}
    ids = [i for i in train.image_ids if len(train.boxes_xyxy(i))]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        images, targets = [], []
        for i in rng.sample(ids, 4):
            t, boxes, _ = train_transform(train.load_image(i), train.boxes_xyxy(i), cfg.train_min_sizes,
                                          cfg.train_max_size, cfg.flip_prob, cfg.pixel_mean, cfg.pixel_std, rng)
            images.append(t)
            targets.append(TrainTarget(boxes, class_map[[row[c] for c in train.category_ids(i)]]))
        sizes = [tuple(t.shape[1:]) for t in images]
        losses = model(ImageBatch(pad_batch(images, cfg.size_divisibility), sizes, sizes), [ch.caption] * 4, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()


def _mixed_sizes(ds, out_dir):
    """The split with a third of its images cropped to 128x96 (w x h) and a third to 96x128 (boxes clipped,
    dropped when less than half is left), so that batches mix input sizes and need padding."""
    from bench.data.types import DetectionDataset, ImageInfo

    out_dir.mkdir(parents=True, exist_ok=True)
    images, infos, by_image = [], [], {}
    for k, im in enumerate(ds.images):
        img = ds.load_image(im.id)
        w, h = [(img.width, img.height), (img.width, 96), (96, img.height)][k % 3]
        img.crop((0, 0, w, h)).save(out_dir / im.file_name)
        images.append({"id": im.id, "file_name": im.file_name, "width": w, "height": h})
        infos.append(ImageInfo(im.id, im.file_name, out_dir / im.file_name, w, h))
        for a in ds.annotations.get(im.id, []):
            x, y, bw, bh = a["bbox"]
            cw, chh = min(x + bw, w) - x, min(y + bh, h) - y
            if cw > 0 and chh > 0 and cw * chh >= 0.5 * bw * bh:
                by_image.setdefault(im.id, []).append({**a, "bbox": [x, y, cw, chh], "area": cw * chh})
    coco = {k: v for k, v in ds.coco.items() if k not in ("images", "annotations")}
    coco.update(images=images, annotations=[a for i in sorted(by_image) for a in by_image[i]])
    return DetectionDataset(ds.name, ds.split, out_dir / "mixed.json", infos, ds.categories, by_image, coco)


@pytest.fixture(scope="module")
def trained_synth(synth_root, tmp_path_factory):
    from bench.tasks.registry import get_task
    from glip.config import get_preset
    from glip.model import GLIP

    task = get_task("synth-shapes")
    torch.manual_seed(0)
    model = GLIP(get_preset("glip-synth"))
    _train_briefly(model, task.load("train", synth_root), steps=sized(200, 2))
    return model, _mixed_sizes(task.load("test", synth_root), tmp_path_factory.mktemp("mixed"))


_B1: dict[str, list] = {}


@pytest.mark.benchmark(group="batching vs batch 1: AP, mixed-size synth-shapes test, glip-synth trained 200 steps")
@pytest.mark.parametrize("batch_size,group_by_size", [(1, True), (8, False), (8, True)],
                         ids=["batch1", "batch8-official-padding", "batch8-size-grouped"])
def test_batching_effect_on_ap(benchmark, trained_synth, batch_size, group_by_size):
    from bench.metrics import evaluate
    from glip.prompts import build_prompt_chunks

    model, ds = trained_synth
    chunks = build_prompt_chunks(model.tokenizer, [c["name"] for c in ds.categories])
    preds, _ = benchmark.pedantic(predict_detection, args=(model, ds, chunks, 100, batch_size),
                                  kwargs={"num_workers": 0, "group_by_size": group_by_size}, rounds=1, iterations=1)
    values = evaluate("coco_bbox", ds.coco, preds).values
    if batch_size == 1:
        _B1.update(preds=preds, values=values)
    info = {"baseline": batch_size == 1, "AP": values["AP"], "AP50": values["AP50"], "detections": len(preds),
            "threads": torch.get_num_threads()}
    if _B1 and batch_size != 1:
        ref = _B1["preds"]
        info["AP_minus_batch1"] = values["AP"] - _B1["values"]["AP"]
        info["AP50_minus_batch1"] = values["AP50"] - _B1["values"]["AP50"]
        changed = {p["image_id"] for p in ref} ^ {p["image_id"] for p in preds}
        for i in ds.image_ids:
            a = [p for p in preds if p["image_id"] == i]
            b = [p for p in ref if p["image_id"] == i]
            if len(a) != len(b) or any(x["category_id"] != y["category_id"] or abs(x["score"] - y["score"]) > 1e-5
                                       for x, y in zip(a, b)):
                changed.add(i)
        info["images_changed_vs_batch1"] = len(changed)
    benchmark.extra_info.update(info)
    print(f"\nbatch {batch_size} grouped={group_by_size}: AP {values['AP']:.2f} {info}")


# ------------------------------------------------------------------------------------ postprocess
@pytest.fixture(scope="module")
def synth_head_outputs(trained_synth, synth_root):
    """glip-synth's head outputs on synth-shapes test in batches of 8 of equal-size images (what the
    inference engine hands the postprocessor), with the anchors, the prompt's positive map and the sizes."""
    from bench.models.glip import _expand
    from bench.tasks.registry import get_task
    from glip.prompts import build_prompt_chunks, fit_positive_map

    model = trained_synth[0]
    ds = get_task("synth-shapes").load("test", synth_root)
    ch = build_prompt_chunks(model.tokenizer, [c["name"] for c in ds.categories])[0]
    text = encode_prompts(model, [ch.caption])[0]
    pm = fit_positive_map(ch.positive_map.float(), text.input_ids.shape[1])
    cases = []
    with torch.no_grad():
        for k in range(0, len(ds), 8):
            batch = model.preprocess([ds.load_image(i) for i in ds.image_ids[k:k + 8]])
            features = model.encode_images(batch)
            out = model.forward_head(features, _expand(text, len(batch)))
            cases.append((out, model.anchors(features), pm, batch.image_sizes, batch.original_sizes))
    return model.postprocessor, cases


@pytest.mark.benchmark(group="postprocess: glip-synth (trained 200 steps) head outputs, synth-shapes test, batch 8")
@pytest.mark.parametrize("path", ["image-by-image", "batched"])
def test_postprocess_batched(benchmark, synth_head_outputs, path):
    """Paths: "batched" (the default when a batch shares its prompt): candidates of every image in one set of tensor
    ops per level and one class-aware NMS with images as groups; "image-by-image" (the baseline: how every
    batch was post-processed before, still the path when each image brings its own prompt): the same
    postprocessor handed one positive-map object per image. Their detections are compared here."""
    post, cases = synth_head_outputs

    def run(shared: bool) -> list:
        return [d for out, anchors, pm, sizes, originals in cases
                for d in post(out, anchors, pm if shared else [pm.clone() for _ in sizes], sizes, originals)]

    dets = benchmark.pedantic(run, args=(path == "batched",), rounds=5, iterations=1, warmup_rounds=1)
    other = run(path != "batched")
    identical = all(torch.equal(a.boxes_xyxy, b.boxes_xyxy) and torch.equal(a.scores, b.scores)
                    and torch.equal(a.labels, b.labels) for a, b in zip(dets, other))
    benchmark.extra_info.update(baseline=path == "image-by-image", images=len(dets),
                                detections=sum(len(d) for d in dets), identical_to_other_path=identical,
                                threads=torch.get_num_threads())
