"""Training speed on a busy machine: the default thread count against --threads 1 and 2.

    .venv/bin/python benchmarks/threads.py [--seconds 60] [--busy 1]

Keeps `--busy` cores busy with other processes (a Python loop each, as another program
would), then trains the same model on builtin:shakespeare for `--seconds` each with the
default threads, `--threads 1` and `--threads 2`, one after another, and prints the training
tokens/s of each (the mean of its log records after the first 10 seconds) and the default's
against the best of the others (target: within 10%). Then the same with nothing else
running.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path


def _spin() -> None:
    while True:
        pass


def train_speed(run_dir: Path, seconds: float, threads: int | None) -> tuple[float, str]:
    """Training tokens/s of a fixed model, and the threads it used."""
    args = [sys.executable, "-m", "charrnn", "train", "builtin:shakespeare", "-o", str(run_dir)]
    args += ["--hidden-size", "512", "--dropout", "0.2", "--time-budget", f"{seconds:g}", "-q"]
    args += ["--force", "--log-every", "5"]
    if threads:
        args += ["--threads", str(threads)]
    subprocess.run(args, check=True, capture_output=True)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    start = next(r for r in records if r["event"] == "start")
    used = f"{start['threads']}"
    changes = [r["threads"] for r in records if r["event"] == "threads"]
    if changes:
        used += " then " + ", ".join(map(str, changes))
    speeds = [r["tokens_per_s"] for r in records if r["event"] == "train" and r["elapsed"] > 10]
    return sum(speeds) / max(len(speeds), 1), used


def measure(seconds: float, tmp: Path, label: str) -> None:
    rows = {}
    for name, threads in (("default", None), ("--threads 1", 1), ("--threads 2", 2)):
        speed, used = train_speed(tmp / name.replace(" ", ""), seconds, threads)
        rows[name] = speed
        print(f"{label}, {name:<12}: {speed:8,.0f} tokens/s (threads {used})", flush=True)
    best = max(rows["--threads 1"], rows["--threads 2"])
    print(f"{label}: the default is {rows['default'] / best:.2f}x the best (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="charrnn-threads-"))
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    try:
        measure(args.seconds, tmp, f"{args.busy} core(s) busy")
    finally:
        for spinner in spinners:
            spinner.terminate()
    measure(args.seconds, tmp, "idle")


if __name__ == "__main__":
    main()
