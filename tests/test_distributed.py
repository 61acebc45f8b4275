"""`charrnn train` under torchrun: two CPU processes (gloo) train, checkpoint and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from charrnn import checkpoint
from charrnn.config import TokenizeConfig
from charrnn.data import tokenize_corpus

SMALL = [
    "--embed-size",
    "8",
    "--hidden-size",
    "16",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-every",
    "2",
    "--log-every",
    "1",
    "-q",
    "--json",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def _torchrun(*args, cwd, env) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "charrnn",
        "train",
        *map(str, args),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_two_processes_train_checkpoint_and_resume(tmp_path, shakespeare_like):
    tokenize_corpus([str(shakespeare_like)], tmp_path / "data", TokenizeConfig())
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    first = _torchrun(
        tmp_path / "data", "-o", tmp_path / "run", *SMALL, "--max-steps", "4", cwd=tmp_path, env=env
    )
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)  # one summary: rank 0 speaks for all
    assert summary["step"] == 4
    saved = checkpoint.load(tmp_path / "run" / "last.pt")
    ranks = saved["train"]["ranks"]
    assert len(ranks) == 2 and all(r["task"]["hidden"] is not None for r in ranks)
    # the ranks read different rows, so their carried states differ
    assert not (ranks[0]["task"]["hidden"][0] == ranks[1]["task"]["hidden"][0]).all()
    again = _torchrun(
        "--resume", tmp_path / "run", "--max-steps", "6", "-q", "--json", cwd=tmp_path, env=env
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["step"] == 6
    # exactly as a run of 6 steps that was never stopped: the same losses, the same weights
    full = _torchrun(
        tmp_path / "data",
        "-o",
        tmp_path / "full",
        *SMALL,
        "--max-steps",
        "6",
        cwd=tmp_path,
        env=env,
    )
    assert full.returncode == 0, full.stderr[-2000:]

    def losses(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["event"] == "train"]

    assert (
        losses(tmp_path / "run") == losses(tmp_path / "full") and len(losses(tmp_path / "run")) == 6
    )
    a = checkpoint.load(tmp_path / "run" / "last.pt")["weights"]
    b = checkpoint.load(tmp_path / "full" / "last.pt")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    alone = subprocess.run(
        [
            sys.executable,
            "-m",
            "charrnn",
            "train",
            "--resume",
            str(tmp_path / "run"),
            "--max-steps",
            "8",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert alone.returncode == 0, alone.stderr  # one process may continue a distributed run


def test_every_rank_picks_the_same_kind_of_device(monkeypatch):
    from charrnn.distributed import Ranks, device_for
    from charrnn.errors import UsageError

    def gpus(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    second = Ranks(rank=1, world_size=2, local_rank=1, local_world_size=2)
    gpus(0)
    assert device_for(second, "auto") == torch.device("cpu")
    gpus(1)  # too few GPUs for two processes: auto trains both on the CPU
    assert device_for(second, "auto") == torch.device("cpu")
    assert device_for(Ranks(), "auto") == torch.device("cuda")
    with pytest.raises(UsageError, match="need 2 GPUs"):
        device_for(second, "cuda")
    gpus(2)  # one each
    assert device_for(second, "auto") == torch.device("cuda", 1)
    assert device_for(second, "cuda") == torch.device("cuda", 1)
