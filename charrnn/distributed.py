"""Training on several processes under torchrun: where this process stands, starting the
process group, and the agreements the training loop needs (when to stop, every rank's state
in the checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from charrnn import checkpoint
from charrnn import device as devices
from charrnn.errors import CharrnnError, UsageError


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch (one process alone by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine


def device_for(ranks: Ranks, name: str) -> torch.device:
    """This process's device for `--device name`: alone, the device itself; under torchrun,
    one GPU per process on a machine (cuda:LOCAL_RANK), so every rank makes the same choice:
    auto takes the GPUs only when there is one for each process, else the CPU."""
    if ranks.world_size == 1:
        return devices.resolve(name)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if gpus >= ranks.local_world_size else "cpu"
    device = devices.resolve(name)
    if device.type != "cuda":
        return device
    if gpus < ranks.local_world_size:
        raise UsageError(
            "--device",
            f"{ranks.local_world_size} processes on this machine need {ranks.local_world_size} "
            f"GPUs ({gpus} found)",
            "launch one process per GPU (torchrun --nproc_per_node), or use --device cpu",
        )
    return torch.device("cuda", ranks.local_rank)


def start_processes(ranks: Ranks, device: torch.device) -> None:
    """Join the other processes: NCCL for CUDA, gloo for the CPU (torchrun sets the rest)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world_size
    )


def rank0_first(ranks: Ranks, fn):
    """Run `fn` on rank 0, then on the others (which then find its result: cached data, a
    clean run directory)."""
    if ranks.world_size == 1:
        return fn()
    if ranks.rank == 0:
        result = fn()
        torch.distributed.barrier()
        return result
    torch.distributed.barrier()
    return fn()


def any_rank(flag: bool, world_size: int, device: torch.device) -> bool:
    """True when `flag` holds on any rank: ranks must stop at the same step together (a time
    budget or a signal can reach them a step apart)."""
    if world_size == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def agree(
    flag: bool, seconds: tuple[float, ...], world_size: int, device: torch.device
) -> tuple[bool, tuple[float, ...]]:
    """(`flag` holds on any rank, the largest of each of `seconds`), in one exchange: the
    ranks stop together and keep one clock, so a time budget ends them at the same step and
    their learning rates follow the same schedule."""
    if world_size == 1:
        return flag, seconds
    value = torch.tensor([float(flag), *seconds], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value[0].item()), tuple(float(v) for v in value[1:].tolist())


def from_rank0(value, world_size: int):
    """Rank 0's `value` (any picklable object) on every rank."""
    if world_size == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_rank_states(task, world_size: int) -> list[dict] | None:
    """Every rank's carried task state and random state (None when training alone)."""
    if world_size == 1:
        return None
    states: list = [None] * world_size
    torch.distributed.all_gather_object(
        states, {"task": task.state_dict(), "rng": checkpoint.rng_state()}
    )
    return states


def own_rank_state(train: dict, rank: int, world_size: int) -> dict:
    """This rank's state from a checkpoint (written alone or by as many ranks)."""
    ranks = train.get("ranks")
    if world_size > 1 and ranks is not None:
        if len(ranks) != world_size:
            raise CharrnnError(
                "--resume",
                f"the run was trained on {len(ranks)} processes, not {world_size}",
                f"resume with {len(ranks)} processes",
            )
        return ranks[rank]
    return {"task": train["task"], "rng": train["rng"]}
