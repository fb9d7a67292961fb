"""Distributed data-parallel training: two gloo processes on the CPU take the same steps as one.

The workers are started with ``torch.multiprocessing`` (and, for the script, with
torchrun); each uses one thread so that the test stays light on a shared machine.
Each fails if the batches were not split between the ranks, if a rank's share were
weighted wrongly, if the ranks drew different batches or augmentations, or if the
gradients were not averaged.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from negspike import distributed as D
from negspike.data import load_dataset
from negspike.models import Net4, build_model
from negspike.train import evaluate_ann, train_ann

ROOT = Path(__file__).resolve().parents[1]
N_MLP, N_CONV, BATCH = 51, 40, 16  # 51 = 3 * 16 + 3: the last global batch splits 2 + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlp_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_MLP, 12, generator=g)
    y = (x[:, :3].argmax(1) + (x[:, 3] > 1).long()) % 3
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(12, 16), nn.LeakyReLU(0.1), nn.Linear(16, 3))
    return model, (x, y)


def conv_problem():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N_CONV, 3, 8, 8, generator=g)
    y = torch.randint(4, (N_CONV,), generator=g)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 4))
    return model, (x, y)


def train_both(record_dir=None):
    """The two runs compared: SGD on an MLP (unequal last shards), Adam with crop and flip
    on a small conv net. Returns ``{name: (state_dict, history, samples seen, hook info)}``."""
    results = {}
    for name, problem, kwargs in (
        ("mlp", mlp_problem, dict(optimizer="sgd", momentum=0.0, lr=0.2)),
        ("conv", conv_problem, dict(optimizer="adam", lr=0.02, augment=True)),
    ):
        model, data = problem()
        seen = {"samples": 0, "post_step_types": set()}
        model[0].register_forward_hook(lambda m, inp, out: seen.__setitem__("samples", seen["samples"] + len(inp[0])))

        def post_step(m):
            seen["post_step_types"].add(type(m).__name__)

        hist = train_ann(model, data, epochs=2, batch_size=BATCH, seed=5, progress=False, post_step=post_step, **kwargs)
        results[name] = ({k: v.clone() for k, v in model.state_dict().items()}, hist, seen["samples"],
                         sorted(seen["post_step_types"]), type(model).__name__)
    return results


def worker(local_rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank))
    rank, world_, device = D.init_from_env()
    try:
        assert (rank, world_, device.type) == (local_rank, world, "cpu") and D.is_distributed()
        assert D.is_main() == (rank == 0)
        torch.save(train_both(), Path(out) / f"rank{rank}.pt")
        D.barrier()
    finally:
        D.cleanup()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """Two processes train both problems; also the single-process reference."""
    out = tmp_path_factory.mktemp("ddp")
    # a fork server that imports torch (and torch._dynamo, which the optimisers load) once
    # starts the workers in a fraction of the time that two spawned interpreters need
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if method == "forkserver":
        mp.get_context(method).set_forkserver_preload(["torch", "torch._dynamo", "negspike.train"])
    ctx = mp.start_processes(worker, args=(2, free_port(), str(out)), nprocs=2, join=False, start_method=method)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train_both()  # while the workers start
    finally:
        torch.set_num_threads(threads)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish in 120 s")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return single, ranks


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_two_processes_take_the_same_steps_as_one(ddp_runs, name):
    single, ranks = ddp_runs
    ref_state, ref_hist, ref_seen, _, _ = single[name]
    (s0, h0, _, _, _), (s1, h1, _, _, _) = ranks[0][name], ranks[1][name]
    for k in ref_state:
        assert torch.equal(s0[k], s1[k]), f"ranks disagree on {k}"
        assert torch.allclose(s0[k], ref_state[k], atol=1e-5, rtol=0), f"{name}.{k} differs from one process"
    # the training moved the weights far more than the tolerance
    model, _ = (mlp_problem if name == "mlp" else conv_problem)()
    init = model.state_dict()
    assert max(float((ref_state[k] - init[k]).abs().max()) for k in init) > 1e-2
    # every rank returns the global history
    assert h0 == h1
    for a, b in zip(h0, ref_hist):
        assert a["epoch"] == b["epoch"] and a["train_acc"] == b["train_acc"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["ce"] == pytest.approx(b["ce"], abs=1e-5)


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_each_rank_trains_on_its_own_share(ddp_runs, name):
    single, ranks = ddp_runs
    n = N_MLP if name == "mlp" else N_CONV
    assert single[name][2] == 2 * n  # two epochs
    seen = [ranks[r][name][2] for r in range(2)]
    assert sum(seen) == 2 * n and abs(seen[0] - seen[1]) <= 2  # disjoint halves of every batch
    # callbacks and the returned model are the plain module, not the DDP wrapper
    for r in range(2):
        assert ranks[r][name][3] == ["Sequential"] and ranks[r][name][4] == "Sequential"


def test_shard_bounds_cover_the_batch_once():
    for n in (1, 2, 3, 16, 17):
        for world in (1, 2, 3, 4):
            bounds = [D.shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1
            assert [len(t) for t in torch.arange(n).tensor_split(world)] == sizes
    with pytest.raises(ValueError, match="need 0 <= rank < world"):
        D.shard_bounds(4, 2, 2)


def test_without_torchrun_there_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    rank, world, device = D.init_from_env()
    assert (rank, world) == (0, 1) and not D.is_distributed() and D.is_main()
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    D.barrier()
    D.cleanup()  # both no-ops


def test_train_ddp_script_with_torchrun(tmp_path):
    out = tmp_path / "net4.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1", NEGSPIKE_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(ROOT / "scripts" / "train_ddp.py"),
           "--profile", "smoke", "--dataset", "synthetic_fmnist", "--train-subset", "96", "--batch-size", "32",
           "--epochs", "1", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "train_ddp: 2 process(es)" in proc.stdout and "test accuracy" in proc.stdout
    model = Net4()
    model.load_state_dict(torch.load(out))
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["world_size"] == 2 and record["config"]["train_subset"] == 96
    assert record["config"]["dataset"] == "synthetic_fmnist" and record["config"]["alpha"] == 0.1  # from the profile
    assert len(record["history"]) == 1
    # the recorded accuracy is the saved model's on the test split (not just a number in [0, 1])
    cfg = record["config"]
    saved = build_model(cfg["model"], cfg["activation"], cfg["alpha"], cfg["width"])
    saved.load_state_dict(torch.load(out))
    assert record["test_acc"] == pytest.approx(evaluate_ann(saved, *load_dataset(cfg["dataset"], "test"), device="cpu"))
