"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeat` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sync(device: torch.device) -> None:
    """Wait for a GPU's queued work (it runs ahead of Python), so that a clock reads the work
    done; nothing to wait for elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(rounds: int, *fns: Callable[[], object]) -> list[float]:
    """The fastest time of each function over `rounds` rounds in which they run in turn. On a
    shared machine noise only ever adds time, so the minimum of many short interleaved runs
    is the steadiest estimate, and every contender gets the same chances at a quiet moment."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best
