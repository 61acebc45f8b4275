"""Start-up time: `charrnn --help` and `charrnn CMD --help` against bare Python and an import
of torch, each a whole process, measured in turn.

    .venv/bin/python benchmarks/startup.py [--rounds 10]

Prints the fastest of `--rounds` runs of each (noise only ever adds time). Target: the help
commands under 0.5 s: they import no torch, which alone takes longer than that.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "charrnn --help": [sys.executable, "-m", "charrnn", "--help"],
    "charrnn train --help": [sys.executable, "-m", "charrnn", "train", "--help"],
    "charrnn sample --help": [sys.executable, "-m", "charrnn", "sample", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    best = dict.fromkeys(COMMANDS, float("inf"))
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            began = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - began)
    for name, seconds in best.items():
        print(f"{name:<28} {seconds:6.3f} s")
    helps = [s for n, s in best.items() if n.startswith("charrnn")]
    print(
        f"slowest help {max(helps):.3f} s (target < 0.5 s); torch alone {best[list(best)[1]]:.3f} s"
    )


if __name__ == "__main__":
    main()
