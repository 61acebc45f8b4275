"""How many CPU cores this process may use, and how many of them other programs keep busy.

torch runs one thread per core and its threads wait for each other at every operation, so a
core that another program holds stalls them all: with one of two cores busy, two threads
train several times slower than one. The default thread count is therefore the number of
cores that are free, read from the kernel's per-core tick counts (/proc/stat) over a short
window, less what this process used itself. Where /proc/stat is missing (macOS, Windows),
the load average stands in.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity), as /proc/stat numbers them."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def quota_cores() -> float | None:
    """A cgroup CPU quota (a container limited to 2.5 cores, say), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def core_count() -> int:
    """How many cores this process can use at once."""
    cores = len(usable_cores())
    quota = quota_cores()
    return max(1, min(cores, math.floor(quota))) if quota else cores


@dataclass
class _Reading:
    busy: int  # ticks the usable cores spent on anything but idling
    total: int  # all their ticks
    own: float  # this process's CPU seconds
    wall: float


def _read(cpus: set[int]) -> _Reading | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = ticks[3] + ticks[4]
        total += sum(ticks)
        busy += sum(ticks) - idle
    if not total:
        return None
    times = os.times()
    return _Reading(busy, total, times.user + times.system, time.monotonic())


class CoreWatch:
    """Watches how many of this process's cores other programs keep busy."""

    def __init__(self) -> None:
        self.cores = core_count()
        self.cpus = set(usable_cores())
        self.last = _read(self.cpus)
        self.busy = 0.0  # the latest reading of others()

    def others(self, wait: float = 0.0) -> float:
        """Cores kept busy by other programs since the last call (after `wait` seconds,
        for a first reading): what all usable cores did, less this process's own work."""
        if wait:
            time.sleep(wait)
        now = _read(self.cpus)
        last, self.last = self.last, now
        if now is None or last is None or now.total <= last.total:
            self.busy = _load_average_others(self.cores)
            return self.busy
        seconds = now.wall - last.wall
        cores = len(self.cpus)
        busy = (now.busy - last.busy) / (now.total - last.total) * cores  # cores in use
        own = (now.own - last.own) / seconds if seconds > 0 else 0.0
        self.busy = max(0.0, busy - own)
        return self.busy


def _load_average_others(cores: int) -> float:
    try:
        return min(float(cores), os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def threads_for(cores: int, others: float) -> int:
    """Threads for `cores` cores of which other programs keep `others` busy: the free
    cores, counting a core as free when others use less than about a third of it."""
    return max(1, min(cores, math.floor(cores - others + 0.35)))
