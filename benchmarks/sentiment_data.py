"""Balanced sentiment sentences for benchmarks/classify.py, from a file pip can fetch.

    .venv/bin/pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d /tmp/vader
    .venv/bin/python benchmarks/sentiment_data.py /tmp/vader/vaderSentiment-3.3.2.tar.gz \\
        -o /tmp/movie-sentiment.tsv [--per-label 2000] [--seed 0]
    .venv/bin/python benchmarks/classify.py --data /tmp/movie-sentiment.tsv

The source distribution of vaderSentiment (MIT licence) carries the data of its paper (Hutto
and Gilbert, ICWSM 2014): 10,605 sentences of movie reviews (from Pang and Lee's
rt-polarity set), each with the mean of 20 people's ratings from -4 to +4. A sentence rated
above 0 is `pos`, below 0 `neg` (37 rated exactly 0 are left out); --per-label sentences of
each label are drawn with --seed. Writes `label<TAB>text`, one per line (the layout of the
SMS file: --label-column first).
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
from io import BytesIO
from pathlib import Path

INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
SENTENCES = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def read_sentences(sdist: Path) -> dict[str, list[str]]:
    """The rated sentences of the sdist, by label (pos, neg)."""
    with tarfile.open(sdist) as outer:
        inner_name = next(n for n in outer.getnames() if n.endswith(INNER))
        inner = BytesIO(outer.extractfile(inner_name).read())
    with tarfile.open(fileobj=inner) as resources:
        text = resources.extractfile(SENTENCES).read().decode("utf-8", errors="replace")
    by_label: dict[str, list[str]] = {"pos": [], "neg": []}
    for line in text.splitlines():
        _, rating, sentence = line.split("\t", 2)
        sentence = " ".join(sentence.split())
        if float(rating) != 0 and sentence:
            by_label["pos" if float(rating) > 0 else "neg"].append(sentence)
    return by_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="vaderSentiment-3.3.2.tar.gz")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--per-label", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.sdist.is_file():
        sys.exit(f"{args.sdist}: no such file; see the command at the top of this script")
    rng = random.Random(args.seed)
    rows = []
    for label, sentences in read_sentences(args.sdist).items():
        if len(sentences) < args.per_label:
            sys.exit(f"--per-label {args.per_label}: only {len(sentences)} {label} sentences")
        rows += [f"{label}\t{s}" for s in rng.sample(sentences, args.per_label)]
    rng.shuffle(rows)
    args.out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(rows):,} sentences, {args.per_label:,} per label", file=sys.stderr)


if __name__ == "__main__":
    main()
