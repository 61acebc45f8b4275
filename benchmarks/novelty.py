"""Memorization search (`charrnn inspect novelty`): building the index of a large training text
once, and searching a sample in it, against a naive scan of the text measured in the same run.

    .venv/bin/python benchmarks/novelty.py [--chars 100000000] [--sample 10000] [--workers N]

The corpus: the text files of ../shared/data once each (tinyshakespeare, names, the sentence
pairs: about 2.6 MB of real text), then words drawn at random (seeded) from their vocabulary
by frequency, with line breaks, up to --chars characters. It does not repeat itself beyond a
few words; a corpus made of copies of one file would tie its long repeats through many
doubling rounds and make every sample look copied. Without ../shared/data the words come
from a short built-in list. It is tokenized (char) into a data directory, as `charrnn train`
would, then indexed as `inspect novelty` does (written beside it as DATA.novelty).

The sample: --sample characters, half fresh random words, half passages of 50 to 800
characters copied from the corpus. Printed: the build time and its peak memory (tracemalloc),
the index file's size, the search time (best of 3), and the naive scan: Python's `gram in
text` over the training text for some of the sample's 32-grams, scaled to all of them, and
its ratio to the search (which also finds the 8- and 16-grams and the longest passages).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from timing import best_of

from charrnn.config import NoveltyConfig, TokenizeConfig
from charrnn.data import tokenize_corpus
from charrnn.inspect import novelty

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = ("tinyshakespeare.txt", "names.txt", "eng-fra.tsv", "sms-spam.tsv")
FALLBACK = "the king queen lord and of to my thy thou art what shall be is not love night day"


def make_corpus(chars: int, seed: int) -> str:
    """Real text once, then random words from its vocabulary up to `chars` characters."""
    real = "".join(
        (SHARED / name).read_text(encoding="utf-8") for name in REAL if (SHARED / name).exists()
    )
    words, counts = np.unique(np.array((real or FALLBACK).split()), return_counts=True)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(words), max(1, (chars - len(real)) // 5), p=counts / counts.sum())
    ends = np.where(rng.random(len(drawn)) < 0.1, "\n", " ")
    vocabulary = words.tolist()
    filler = "".join(
        vocabulary[i] + end for i, end in zip(drawn.tolist(), ends.tolist(), strict=True)
    )
    return (real + filler)[:chars]


def make_sample(text: str, chars: int, seed: int) -> str:
    """Half fresh words, half passages copied from `text`."""
    rng = random.Random(seed)
    words = text[: 1 << 20].split() or FALLBACK.split()
    pieces, total = [], 0
    while total < chars:
        if len(pieces) % 2:
            start = rng.randrange(len(text) - 800)
            piece = text[start : start + rng.randint(50, 800)]
        else:
            piece = " ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) + " "
        pieces.append(piece)
        total += len(piece)
    return "".join(pieces)[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=100_000_000, help="corpus size")
    parser.add_argument("--sample", type=int, default=10_000, help="sample size, characters")
    parser.add_argument("--workers", type=int, default=None, help="threads for the build")
    parser.add_argument("--naive-grams", type=int, default=30, help="32-grams scanned naively")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    text = make_corpus(args.chars, args.seed)
    source = "../shared/data + random words" if SHARED.exists() else "random words"
    print(
        f"corpus: {len(text):,} characters ({source}), made in {time.perf_counter() - started:.1f}s"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "corpus.txt").write_text(text, encoding="utf-8")
        started = time.perf_counter()
        meta = tokenize_corpus([str(tmp / "corpus.txt")], tmp / "data", TokenizeConfig())
        print(f"tokenized (char) in {time.perf_counter() - started:.1f}s")
        train = text[: meta["splits"]["train"]["chars"]]
        del text
        config = NoveltyConfig()
        training = novelty.open_training(None, tmp / "data")
        tracemalloc.start()  # numpy reports its arrays to it
        started = time.perf_counter()
        index = novelty.open_index(training, config, workers=args.workers)
        build = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = index.path.stat().st_size
        print(
            f"index: {len(train):,} training characters in {build:.1f}s "
            f"({build / len(train) * 1e8:.1f}s per 100 M), {peak / len(train):.0f} bytes of memory "
            f"a character at the peak; file {size / 2**20:,.0f} MiB "
            f"({size / len(train):.2f} bytes a character)"
        )
        index = novelty.open_index(training, config)  # from the file, as a later command
        sample = make_sample(train, args.sample, args.seed)
        found = None

        def search():
            nonlocal found
            found = novelty.measure(index, training, sample, "sample", config)

        search_time = best_of(3, search)
        shares = ", ".join(f"{row['n']}-grams {row['share']:.3f}" for row in found.ngrams)
        print(
            f"search: {len(sample):,} sample characters in {search_time * 1e3:.1f} ms "
            f"({shares}; longest passage {found.longest.length} characters)"
        )
        grams = [sample[i : i + 32] for i in range(len(sample) - 31)]
        picked = grams[:: max(1, len(grams) // args.naive_grams)][: args.naive_grams]
        started = time.perf_counter()
        hits = [gram in train for gram in picked]
        per_gram = (time.perf_counter() - started) / len(picked)
        naive = per_gram * len(grams)
        assert hits == [found.lengths[grams.index(g)] >= 32 for g in picked]
        print(
            f"naive: `gram in text` {per_gram * 1e3:.1f} ms per 32-gram, {len(grams):,} of them "
            f"{naive:.1f}s (from {len(picked)} measured); index search {naive / search_time:,.0f}x "
            "faster"
        )


if __name__ == "__main__":
    main()
