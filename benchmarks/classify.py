"""A classifier's quality per CPU-minute against a bag-of-words baseline, on the same split.

    .venv/bin/python benchmarks/classify.py [--data ../shared/data/sms-spam.tsv]
        [--label-column first] [--budget 5m] [--held-out 0.2] [--seed 0] [--train-flag ...]

The labelled file is shuffled (seeded) and cut: --held-out of it is the test set, the rest
trains. charrnn's defaults train on the rest (`charrnn train REST --labels --time-budget`;
its own validation split comes out of it) and are scored on the test set (`charrnn eval`). The
baseline, on the same two files in the same run: scikit-learn's logistic regression over word
unigrams and bigrams (CountVectorizer, ngram_range=(1, 2); C chosen by 5-fold cross-validation
on the training part). Prints accuracy and macro-F1 of both, and their ratio.

Needs scikit-learn (`pip install -e ".[bench]"`); without ../shared/data, pass --data.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms-spam.tsv"


def split_file(path: Path, out: Path, held_out: float, seed: int) -> tuple[Path, Path]:
    """The lines of `path` shuffled with `seed`, cut into train.tsv and test.tsv."""
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    random.Random(seed).shuffle(lines)
    cut = round(len(lines) * (1 - held_out))
    train, test = out / "train.tsv", out / "test.tsv"
    train.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    test.write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return train, test


def read_examples(path: Path, label_column: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if label_column == "first":
            label, _, text = line.partition("\t")
        else:
            text, _, label = line.rpartition("\t")
        texts.append(text)
        labels.append(label.strip())
    return texts, labels


def baseline(train: Path, test: Path, label_column: str) -> dict:
    """Bag of words (unigrams and bigrams) and logistic regression, C by cross-validation."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    x_train, y_train = read_examples(train, label_column)
    x_test, y_test = read_examples(test, label_column)
    began = time.perf_counter()
    model = make_pipeline(
        CountVectorizer(ngram_range=(1, 2)),
        LogisticRegressionCV(Cs=[0.1, 0.3, 1, 3, 10, 30], cv=5, max_iter=3000),
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    return {
        "accuracy": accuracy_score(y_test, predicted),
        "macro_f1": f1_score(y_test, predicted, average="macro"),
        "seconds": time.perf_counter() - began,
    }


def charrnn(train: Path, test: Path, run: Path, args) -> dict:
    """charrnn's defaults for --budget on the training part, scored on the test part."""
    exe = [sys.executable, "-m", "charrnn"]
    column = ["--label-column", args.label_column]
    command = [*exe, "train", str(train), "--labels", *column, "-o", str(run)]
    command += ["--time-budget", args.budget, "--seed", str(args.seed), "--json", "-q"]
    command += args.train_flag
    summary = json.loads(_run(command))
    result = json.loads(_run([*exe, "eval", str(run), str(test), *column, "--json"]))
    return {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "steps": summary["step"],
        "model": summary["model"],
        "config": summary["model_config"],
    }


def _run(command: list[str]) -> str:
    """A command's stdout; its stderr and exit status end the benchmark when it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--label-column", default="first", choices=("first", "last"))
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-flag", action="append", default=[], help="more train flags")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data}: no such file; pass --data FILE.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        train, test = split_file(args.data, Path(tmp), args.held_out, args.seed)
        words = baseline(train, test, args.label_column)
        rnn = charrnn(train, test, Path(tmp) / "run", args)
    print(f"{args.data.name}: held out {args.held_out:.0%} (seed {args.seed})")
    print(f"{'':<34}{'accuracy':>10}{'macro F1':>10}")
    print(f"{'bag of words + logistic regression':<34}{words['accuracy']:>10.4f}"
          f"{words['macro_f1']:>10.4f}   ({words['seconds']:.0f}s)")  # fmt: skip
    name = f"charrnn {rnn['model']}, {args.budget}"
    print(f"{name:<34}{rnn['accuracy']:>10.4f}{rnn['macro_f1']:>10.4f}   ({rnn['steps']:,} steps)")
    ratio = rnn["macro_f1"] / max(words["macro_f1"], 1e-9)
    print(f"macro-F1 ratio charrnn / baseline: {ratio:.3f}")
    print(f"charrnn config: {json.dumps(rnn['config'])}")


if __name__ == "__main__":
    main()
