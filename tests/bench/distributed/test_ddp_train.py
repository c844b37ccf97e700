"""Data-parallel fine-tuning (bench.runs.train under torch.distributed, bench/dist/ddp.py).

- 2 CPU processes (torchrun, gloo) fine-tune glip-tiny (full-ft, prompt-tuning, linear-probe): both ranks end
  with identical weights, the trained parameters moved and the frozen ones did not, both ranks followed
  rank 0's evaluation metric (rank 1's evaluate returns something else on purpose), and the result matches
  one process training on the same global batches (GLIPLoss's cross-rank normalisers + DDP's gradient
  average = the whole batch's gradient).
- a process group of world size 1 (DDP wrapper, all-reduces) gives bit-for-bit the weights of no group.
- the pieces: batch sharding, the batch-size rule, the unused-parameter check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
from torch import nn

from bench.data.training import SampleList, TrainSample
from bench.dist import ddp
from bench.runs.hparams import TrainHParams, coerce, names
from bench.runs.regimes import get_regime
from bench.runs.train import train
from bench.util.errors import UserError
from glip.config import get_preset
from glip.model import GLIP
from glip.structures import TrainTarget

HERE = Path(__file__).resolve().parent
REGIMES = ("full-ft", "prompt-tuning", "linear-probe")
# rank 0's scripted val metric: best at the 2nd evaluation, then misses; rank 1's own would pick the 4th
SCRIPT = {0: [1.0, 2.0, 0.5, 0.5], 1: [0.0, 0.0, 0.0, 9.0]}
N_SAMPLES = 4  # 2 global batches of 2 per epoch


def hparams(regime: str, sgd: bool) -> TrainHParams:
    """2 epochs x 2 global batches = 4 steps, one evaluation per epoch.

    sgd: plain SGD without clipping, so the weights are linear in the gradients: AdamW's update and the
    gradient-norm clip are blind to a wrong gradient scale (e.g. a missing average over ranks).
    """
    hp = {**get_regime(regime).defaults, "copy_factor": 1, "step_patience": 1, "stop_patience": 4,
          "batch_size": 2, "max_epochs": 2, "eval_every": 1, "lr": 1e-2, "amp": False}
    if sgd:
        hp.update(optimizer="SGD", clip_grad=None, weight_decay=0.0, bias_weight_decay=0.0)
    return coerce(TrainHParams, {k: v for k, v in hp.items() if k in names(TrainHParams)})  # no inference keys


def build(seed: int = 0) -> GLIP:
    torch.manual_seed(seed)
    return GLIP(get_preset("glip-tiny")).eval()


def run_regime(model: GLIP, regime: str, samples: list, rank: int, eval_ranks: str = "all", sgd: bool = True) -> dict:
    """Train one regime from the model's current weights; returns the TrainResult dict and evaluate calls."""
    reg = get_regime(regime)
    calls = []

    def evaluate(m):
        calls.append(len(calls))
        return SCRIPT[rank][len(calls) - 1]

    res = train(model, samples, trainable=reg.trainable_names(model.parameter_groups()), hp=hparams(regime, sgd),
                device="cpu", seed=7, evaluate=evaluate, eval_modules=reg.eval_modules, eval_ranks=eval_ranks)
    return {"result": res.to_dict(), "eval_calls": len(calls)}


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, sys.argv[2])
    import torch
    from safetensors.torch import save_file
    from bench.dist import ddp
    from bench.dist import comm as dist
    from test_ddp_train import REGIMES, N_SAMPLES, build, run_regime
    from bench.testing.training import tiny_detection_samples

    out = sys.argv[1]
    assert dist.init_from_env("gloo"), "not launched by torchrun"
    rank = dist.rank()
    model = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    samples = tiny_detection_samples(model, N_SAMPLES)
    report = {"world": dist.world_size(), "init_digest": ddp.param_digest(model)}
    for regime in REGIMES:
        model.load_state_dict(init)
        t0 = time.perf_counter()
        got = run_regime(model, regime, samples, rank, eval_ranks="main" if regime == "linear-probe" else "all")
        got["seconds"] = time.perf_counter() - t0
        got["digest"] = ddp.param_digest(model)
        report[regime] = got
        if rank == 0:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"{regime}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    dist.destroy()
    """
)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Launch the 2-process run once (torchrun --standalone picks a free rendezvous port)."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLIP_BENCH_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(out / "worker.py"), str(out), str(HERE)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return out


def untimed(result: dict) -> dict:
    """A TrainResult dict without its wall-clock fields."""
    return {k: v for k, v in result.items() if k not in ("train_seconds", "eval_seconds")}


def load_rank(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


# ~13 s under pytest -n 2 (12 s of it: torchrun starting 2 processes that import torch + transformers)
def test_two_ranks_identical_trained_and_equal_to_one_process(two_ranks):
    from safetensors.torch import load_file

    from bench.testing.training import tiny_detection_samples

    r0, r1 = load_rank(two_ranks, 0), load_rank(two_ranks, 1)
    assert r0["world"] == r1["world"] == 2
    model = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    assert r0["init_digest"] == r1["init_digest"] == ddp.param_digest(model)  # same start (fixed init seed)
    samples = tiny_detection_samples(model, N_SAMPLES)
    for regime in REGIMES:
        a, b = r0[regime], r1[regime]
        # identical weights (every parameter and buffer, bit for bit) and identical decisions on both ranks
        assert a["digest"] == b["digest"], regime
        assert untimed(a["result"]) == untimed(b["result"]), regime
        res = a["result"]
        assert res["world_size"] == 2 and res["iters"] == 4 and res["images_seen"] == 8
        # rank 0's metric drove both: best = its 2nd evaluation (epoch 2 of 2), not rank 1's
        assert [h["metric"] for h in res["history"]] == SCRIPT[0][:2] and res["best_epoch"] == 2
        # eval_ranks="main": only rank 0 evaluated; "all": both did
        assert (a["eval_calls"], b["eval_calls"]) == ((2, 0) if regime == "linear-probe" else (2, 2)), regime

        ddp_state = load_file(str(two_ranks / f"{regime}.safetensors"))
        trainable = set(get_regime(regime).trainable_names(model.parameter_groups()))
        moved = [k for k in trainable if not torch.equal(ddp_state[k], init[k])]
        assert len(moved) >= 0.9 * len(trainable), f"{regime}: only {len(moved)}/{len(trainable)} moved"
        frozen = [k for k in init if k not in trainable and not torch.equal(ddp_state[k], init[k])]
        assert frozen == [], regime

        # one process with the whole global batch of 2 (glip-tiny has no dropout; all images the same size):
        # the same weights up to float summation order
        model.load_state_dict(init)
        single = run_regime(model, regime, samples, rank=0)["result"]
        assert single["world_size"] == 1 and single["iters"] == res["iters"]
        assert single["history"] == res["history"]
        # SGD: a rank-count scale error would be of the size of the update itself; what is left is float
        # summation order (measured: max 1.2e-7 against updates up to 4.3e-2 for full-ft)
        updates = {k: float((v - init[k]).abs().max()) for k, v in model.state_dict().items()}
        biggest = max(updates.values())
        for k, v in model.state_dict().items():
            diff = float((ddp_state[k] - v).abs().max())
            assert diff <= 1e-3 * updates[k] + 1e-5 * biggest, (regime, k, diff, updates[k], biggest)
        for x, y in zip(single["epoch_losses"], res["epoch_losses"]):
            assert abs(x - y) <= 1e-4 * abs(x), (regime, single["epoch_losses"], res["epoch_losses"])


# ------------------------------------------------------------------------------ world size 1 (in process)
@pytest.fixture
def group_of_one(tmp_path):
    """A gloo process group with this process as its only rank (destroyed afterwards)."""
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.parametrize("regime", ["full-ft", "prompt-tuning"])
def test_world_size_one_equals_no_process_group(regime, tmp_path):
    from bench.testing.training import tiny_detection_samples

    model = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    samples = tiny_detection_samples(model, N_SAMPLES)
    plain = run_regime(model, regime, samples, rank=0, sgd=False)["result"]  # the regime's AdamW + clipping
    plain_digest = ddp.param_digest(model)
    assert plain_digest != ddp.param_digest(build())  # it trained

    model.load_state_dict(init)
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert ddp.is_active()
        grouped = run_regime(model, regime, samples, rank=0, sgd=False)["result"]
    finally:
        torch_dist.destroy_process_group()
    assert ddp.param_digest(model) == plain_digest  # bit for bit, through the DDP wrapper
    assert untimed(grouped) == untimed(plain)


# ---------------------------------------------------------------------------------------- the pieces
def test_rank_share_is_a_disjoint_cover():
    order = [5, 3, 8, 1, 0, 2, 7]
    batch = [5, 3, 8, 1]
    shares = [ddp.rank_share(batch, order, r, 2) for r in range(2)]
    assert shares == [[5, 8], [3, 1]]
    assert sorted(shares[0] + shares[1]) == sorted(batch)
    # a last batch shorter than the ranks is topped up from the start of the epoch order, cycling
    assert [ddp.rank_share([7], order, r, 3) for r in range(3)] == [[7], [5], [3]]
    assert [ddp.rank_share([4], [4], r, 3) for r in range(3)] == [[4], [4], [4]]
    with pytest.raises(ValueError):
        ddp.rank_share([], order, 0, 2)


def test_batch_size_must_split_over_ranks():
    assert ddp.check_batch_size(8, 4) == 2
    with pytest.raises(UserError, match="divisible by the 8 processes.*batch_size=8"):
        ddp.check_batch_size(4, 8)


class Unused(nn.Module):
    """A trainable parameter the loss never touches."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Parameter(torch.zeros(3))
        self.idle = nn.Parameter(torch.zeros(2))

    def forward(self, images, captions, targets):
        return {"loss": ((self.used - 1) ** 2).sum()}


def _toy_samples(n=2):
    t = TrainTarget(boxes_xyxy=torch.zeros(1, 4), positive_map=torch.zeros(1, 256))
    return SampleList([TrainSample(torch.zeros(3, 8, 8), (8, 8), (8, 8), "a", t) for _ in range(n)])


def test_unused_trainable_parameter_is_named(group_of_one):
    hp = coerce(TrainHParams, {"copy_factor": 1, "step_patience": 1, "stop_patience": None, "batch_size": 1,
                               "max_iters": 1, "eval_every": 0})
    with pytest.raises(ValueError, match=r"got no gradient.*'idle'.*find_unused_parameters=True"):
        train(Unused(), _toy_samples(), trainable=["used", "idle"], hp=hp)
    model = Unused()
    res = train(model, _toy_samples(), trainable=["used", "idle"], hp=hp, find_unused_parameters=True)
    assert res.iters == 1 and bool((model.used != 0).all()) and torch.equal(model.idle, torch.zeros(2))


def test_param_digest_sees_one_bit():
    a = nn.Linear(2, 2)
    d = ddp.param_digest(a)
    with torch.no_grad():
        a.weight[0, 0] = torch.nextafter(a.weight[0, 0], torch.tensor(2.0))
    assert ddp.param_digest(a) != d
