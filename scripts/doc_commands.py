"""Run every shell command of the README and docs/ as written, from a fresh clone.

    .venv/bin/python scripts/doc_commands.py [--keep] [--only README.md] [--list]

A fresh clone of this repository's HEAD is made in a temporary folder (so no ../shared
beside it, no data/ or runs/ of yours), its environment is made with `make .venv/.installed`
(the first step of `make demo`), and every line of every ```sh block of README.md and
docs/*.md runs there with bash, in order, with .venv/bin first on PATH (as after
`. .venv/bin/activate`). A line ending in `# fails` must fail (an example of an error
message); any other line must succeed. `make demo` and `make test` themselves are run as
well; a command already run (a second `make test`) and this script itself are skipped.
Prints each command with its exit status and time (each one's output is kept in the
clone's `../logs/` with `--keep`), and exits 1 if any went wrong.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def commands(path: Path) -> list[str]:
    """The command lines of a markdown file's ```sh blocks (continuations joined)."""
    lines = []
    for block in BLOCK.findall(path.read_text(encoding="utf-8")):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line = pending + line
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def documents(only: list[str]) -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [d for d in docs if not only or d.name in only]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    parser.add_argument("--only", action="append", default=[], help="only this document")
    parser.add_argument("--list", action="store_true", help="list the commands, run nothing")
    args = parser.parse_args()
    todo = [(doc, line) for doc in documents(args.only) for line in commands(doc)]
    if args.list:
        for doc, line in todo:
            print(f"{doc.name}: {line}")
        return 0
    base = Path(tempfile.mkdtemp(prefix="charrnn-docs-"))
    clone = base / "charrnn"  # nothing beside it: no ../shared
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "PATH": f"{clone / '.venv' / 'bin'}:{os.environ['PATH']}"}
    env["CHARRNN_CACHE_DIR"] = str(base / "cache")
    env.pop("VIRTUAL_ENV", None)
    failed = 0
    print(f"clone: {clone}; outputs in {base / 'logs'}", flush=True)
    subprocess.run(["make", "-s", ".venv/.installed"], cwd=clone, env=env, check=True)
    logs = base / "logs"  # each command's output, kept with --keep
    logs.mkdir()
    ran = set()
    for number, (doc, line) in enumerate(todo, 1):
        command = line.split("  #")[0].strip()
        if "scripts/doc_commands.py" in command or command in ran:
            print(f"skip          {doc.name}: {line} (this script, or run above)", flush=True)
            continue
        ran.add(command)
        expect_failure = line.endswith("# fails")
        began = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True
        )
        seconds = time.monotonic() - began
        (logs / f"{number:03d}.out").write_text(f"$ {line}\n{done.stdout}\n{done.stderr}")
        # a pipeline's status is its last command's (zcat | head stops zcat early, as meant)
        ok = (done.returncode != 0) == expect_failure
        failed += not ok
        mark = "ok  " if ok else "FAIL"
        print(f"{mark} {done.returncode:>3} {seconds:7.1f}s  {doc.name}: {line}", flush=True)
        if not ok:
            print(done.stderr[-2000:], file=sys.stderr)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{len(todo) - failed} of {len(todo)} commands as documented")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
