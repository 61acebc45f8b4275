"""Peak memory of `charrnn tokenize` against corpus size: it must not grow with the corpus.

    .venv/bin/python benchmarks/tokenize_memory.py [--sizes 10,100,1000] [--vocab char,bpe]

Generates corpora of the given sizes in MB (random words, some non-ASCII, streamed to disk),
runs `charrnn tokenize` on each in a child process and prints the child's peak resident
memory (ru_maxrss) and throughput.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "which",
    "or",
    "be",
    "this",
    "an",
    "had",
    "not",
    "are",
    "but",
    "it",
    "were",
    "they",
    "have",
    "one",
    "you",
    "all",
    "their",
    "there",
    "been",
    "has",
    "when",
    "who",
    "will",
    "café",
    "naïve",
    "über",
    "日本",
    "жизнь",
]


def generate(path: Path, megabytes: int, seed: int = 0) -> None:
    """Write about `megabytes` MB of random lines, a block at a time (bounded memory)."""
    rng = random.Random(seed)
    block = []
    for _ in range(20000):
        block.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) + ".\n")
    text = "".join(block).encode("utf-8")
    target = megabytes * 1_000_000
    with open(path, "wb") as f:
        written = 0
        while written < target:
            piece = text[: target - written]
            rng.shuffle(block)  # vary the text between blocks
            f.write(piece)
            written += len(piece)
            text = "".join(block).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="corpus sizes in MB, ascending")
    parser.add_argument("--vocab", default="char,bpe")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args()
    charrnn = [sys.executable, "-m", "charrnn"]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        print(f"{'vocab':<5} {'corpus MB':>9} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12}")
        for vocab in args.vocab.split(","):
            for size in [int(s) for s in args.sizes.split(",")]:
                corpus = tmp / f"corpus-{size}.txt"
                if not corpus.exists():
                    generate(corpus, size)
                # Each measurement in a fresh interpreter so ru_maxrss is its own.
                code = (
                    "import resource, subprocess, sys; "
                    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
                )
                cmd = [
                    *charrnn,
                    "tokenize",
                    str(corpus),
                    "-o",
                    str(tmp / "out"),
                    "--force",
                    "-q",
                    "--vocab",
                    vocab,
                ]
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True
                )
                seconds = time.perf_counter() - start
                peak = int(done.stdout.strip()) / 1024
                print(
                    f"{vocab:<5} {size:>9} {seconds:>8.1f} {size / seconds:>7.1f} {peak:>12.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
