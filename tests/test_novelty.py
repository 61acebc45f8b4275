"""`charrnn inspect novelty`: the suffix array against sorted suffixes, matching statistics,
n-gram shares and copied passages against brute force (Python `in` and sets), the index kept
beside the data (cached, rebuilt when corrupt or stale, elsewhere when it cannot be written),
and the command end to end."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, ok, png_info

from charrnn.config import NoveltyConfig, TokenizeConfig
from charrnn.data import tokenize_corpus
from charrnn.errors import CharrnnError
from charrnn.inspect import novelty, suffixes
from charrnn.pairs import tokenize_pairs
from charrnn.tokenizer import CharTokenizer

ALPHABETS = ("ab", "abc\n", "a\u00e9\U0001f600 ", "xyz")
WORDS = ["the", "king", "queen", "and", "of", "to", "my", "thy", "love", "night", "day"]


def _points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _index(text: str) -> suffixes.Index:
    return suffixes.build(*suffixes.encode(_points(text)), {}, workers=1)


def _measure(text: str, sample: str, config: NoveltyConfig = NoveltyConfig()) -> novelty.Novelty:
    """The report of `sample` against a training text held in memory."""
    training = novelty.Training(Path("mem"), None, CharTokenizer.build(text), novelty.LM)
    return novelty.measure(_index(text), training, sample, "sample", config)


def _naive_lengths(sample: str, text: str) -> list[int]:
    """For each sample position, the longest prefix found in the text, by `in`."""
    found = []
    for i in range(len(sample)):
        length = 0
        while i + length < len(sample) and sample[i : i + length + 1] in text:
            length += 1
        found.append(length)
    return found


def _random_pair(seed: int) -> tuple[str, str]:
    rng = random.Random(seed)
    alphabet = ALPHABETS[seed % len(ALPHABETS)]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 70)))
    sample = "".join(rng.choice(alphabet + "z") for _ in range(rng.randint(1, 40)))
    if seed % 4 == 0:  # a stretch of the text inside the sample
        a = rng.randrange(len(text))
        sample = sample[:5] + text[a : a + rng.randint(1, 30)] + sample[5:]
    return text, sample


# -- the suffix array and the search -----------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_suffix_array_against_sorted_suffixes(workers):
    for seed in range(150):
        rng = random.Random(seed)
        alphabet = ALPHABETS[seed % len(ALPHABETS)]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 90)))
        if seed % 5 == 0:
            text = text[:7] * 9  # long repeats: many doubling rounds
        codes, alphabet_points = suffixes.encode(_points(text))
        built = suffixes.suffix_array(codes[:-1], len(alphabet_points) + 1, workers=workers)
        assert built.tolist() == sorted(range(len(text)), key=lambda i: text[i:]), text


def test_matching_statistics_against_a_naive_search():
    for seed in range(300):
        text, sample = _random_pair(seed)
        index = _index(text)
        codes = suffixes.sample_codes(sample, index.alphabet)
        lengths, places = suffixes.matching_statistics(codes, index.codes, index.sa)
        assert lengths.tolist() == _naive_lengths(sample, text), (text, sample)
        for i, (length, place) in enumerate(zip(lengths.tolist(), places.tolist(), strict=True)):
            assert text[place : place + length] == sample[i : i + length]


def test_holes_match_nothing():
    # <unk> in the training text (a hole) matches no character of a sample, not even itself
    points = np.array([ord("a"), ord("b"), suffixes.HOLE, ord("c"), ord("d")], dtype=np.uint32)
    index = suffixes.build(*suffixes.encode(points), {})
    assert "".join(map(chr, index.alphabet)) == "abcd"
    codes = suffixes.sample_codes("ab\ufffdcd", index.alphabet)
    lengths, _ = suffixes.matching_statistics(codes, index.codes, index.sa)
    assert lengths.tolist() == [2, 1, 0, 2, 1]


# -- the report --------------------------------------------------------------------------------


def _check_report(text: str, sample: str, found: novelty.Novelty, ns=(8, 16, 32)) -> None:
    """Every number of a report against sets, `in` and brute force."""
    for row in found.ngrams:
        n = row["n"]
        grams = {text[i : i + n] for i in range(len(text) - n + 1)}
        hits = [i for i in range(len(sample) - n + 1) if sample[i : i + n] in grams]
        inside = {j for i in hits for j in range(i, i + n)}
        assert row["total"] == max(0, len(sample) - n + 1)
        assert row["found"] == len(hits)
        assert row["share"] == (len(hits) / row["total"] if row["total"] else None)
        assert row["covered"] == pytest.approx(len(inside) / len(sample))
    best = max(_naive_lengths(sample, text))
    assert (found.longest.length if found.longest else 0) == best
    taken = []
    for passage in [found.longest] * bool(best) + found.passages:
        a, length = passage.start, passage.length
        assert passage.text == sample[a : a + length]
        at = passage.train_offset
        assert text[at : at + length] == passage.text
        assert passage.train_line == text[:at].count("\n") + 1
        assert a == 0 or sample[a - 1 : a + length] not in text  # maximal
        assert a + length == len(sample) or sample[a : a + length + 1] not in text
    for passage in found.passages:
        assert passage.length >= min(ns)
        assert all(passage.start + passage.length <= a or b <= passage.start for a, b in taken)
        taken.append((passage.start, passage.start + passage.length))
    lengths = [p.length for p in found.passages]
    assert lengths == sorted(lengths, reverse=True) and (not lengths or lengths[0] == best)


def test_report_against_brute_force_on_random_text():
    rng = random.Random(5)
    for seed in range(40):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60)))
        sample = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25)))
        if seed % 2:
            a = rng.randrange(len(text))
            sample += text[a : a + 40]
        _check_report(text, sample, _measure(text, sample))


@pytest.mark.parametrize(
    "case",
    ["copied", "nothing", "short", "end", "unicode", "repeated"],
)
def test_report_by_hand(case):
    text = "the king and the queen of the night\nmy love, thy day\nto the end."
    sample = {
        "copied": text[4:52],
        "nothing": "QQQXYZ123!!!",
        "short": "the",
        "end": "QQ thy day\nto the end.",
        "unicode": "Z\U0001f600e\u0301 king and the queen of the night \u65e5\u672c",
        "repeated": text[:20] + "Q" + text[:20],
    }[case]
    if case == "unicode":
        text = "\u65e5\u672c" + text + " e\u0301 \U0001f600"
    found = _measure(text, sample)
    _check_report(text, sample, found)
    if case == "copied":
        assert [row["share"] for row in found.ngrams] == [1.0, 1.0, 1.0]
        assert (found.longest.length, found.longest.train_offset) == (48, 4)
    if case == "nothing":
        assert found.longest is None and found.passages == []
    if case == "short":
        assert [row["share"] for row in found.ngrams] == [None] * 3
    if case == "end":  # the match runs to the training text's last character
        assert found.longest.train_offset + found.longest.length == len(text)
    if case == "repeated":
        assert [(p.start, p.length) for p in found.passages] == [(0, 20), (21, 20)]


# -- the training text and its index -----------------------------------------------------------


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    rng = random.Random(0)
    lines = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) for _ in range(400))
    path = tmp_path / "text.txt"
    path.write_text("\n".join(lines) + "\n\u00e9t\u00e9 \U0001f600\n" * 3, encoding="utf-8")
    return path


@pytest.mark.parametrize("vocab", ["char", "bpe"])
def test_training_text_is_the_train_split(tmp_path, corpus_file, vocab):
    meta = tokenize_corpus(
        [str(corpus_file)], tmp_path / "d", TokenizeConfig(vocab=vocab, vocab_size=300)
    )
    training = novelty.open_training(None, tmp_path / "d")
    got = "".join(map(chr, novelty.training_points(training).tolist()))
    train_chars = meta["splits"]["train"]["chars"]
    assert got == corpus_file.read_text(encoding="utf-8")[:train_chars]


def test_training_text_of_pairs_is_their_targets(tmp_path):
    rng = random.Random(1)
    pairs = [(f"src {i}", " ".join(rng.choice(WORDS) for _ in range(3))) for i in range(50)]
    (tmp_path / "p.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    tokenize_pairs([str(tmp_path / "p.tsv")], tmp_path / "d", TokenizeConfig(val_frac=0.0))
    training = novelty.open_training(None, tmp_path / "d")
    got = "".join(map(chr, novelty.training_points(training).tolist()))
    assert training.what == novelty.PAIRS and got == "\n".join(t for _, t in pairs)


def test_index_is_kept_beside_the_data_and_rebuilt(tmp_path, corpus_file, monkeypatch):
    data, cache = tmp_path / "d", tmp_path / "cache"
    tokenize_corpus([str(corpus_file)], data, TokenizeConfig())
    notes = []

    def index():
        notes.clear()
        training = novelty.open_training(None, data)
        say = lambda message, warning: notes.append((message, warning))  # noqa: E731
        return novelty.open_index(training, NoveltyConfig(), cache_dir=cache, workers=1, say=say)

    beside = tmp_path / "d.novelty"
    first = index()
    assert first.path == beside and beside.is_file() and notes[0][0].startswith("indexing")
    again = index()
    assert notes == [] and isinstance(again.sa, np.memmap)
    assert again.sa.tolist() == first.sa.tolist() and again.codes.tolist() == first.codes.tolist()
    for damage in (b"garbage", beside.read_bytes()[:-100]):  # not an index; truncated
        beside.write_bytes(damage)
        index()
        assert "not a readable index" in notes[0][0] and notes[0][1]  # a warning
        assert index().path == beside and notes == []  # whole again
    tokenize_corpus([str(corpus_file)], data, TokenizeConfig(lowercase=True), force=True)
    index()
    assert "before the data changed" in notes[0][0] and not notes[0][1]
    real_write = suffixes.write

    def read_only(found, path):  # the data's folder refuses writes (root ignores chmod)
        if path.parent == tmp_path:
            raise CharrnnError(str(path), "read-only file system", "write elsewhere")
        real_write(found, path)

    monkeypatch.setattr(suffixes, "write", read_only)
    tokenize_corpus([str(corpus_file)], data, TokenizeConfig(), force=True)
    kept = index()
    assert kept.path.parent == cache and "read-only" in notes[-1][0]
    assert index().path == kept.path and notes == []  # found there next time
    monkeypatch.setattr(suffixes, "write", lambda found, path: read_only(found, tmp_path / "x"))
    kept.path.unlink()
    assert index().path is None and "memory only" in notes[-1][0] and notes[-1][1]


# -- the command -------------------------------------------------------------------------------


def _train_text(run_dir: Path) -> str:
    """The training split of a tiny run's text data (the first characters of text.txt)."""
    data = run_dir.parent / "text"
    chars = json.loads((data / "meta.json").read_text())["splits"]["train"]["chars"]
    return (run_dir.parent / "text.txt").read_text(encoding="utf-8")[:chars]


def test_a_run_end_to_end(run, tiny_runs, tmp_path):
    lm = tiny_runs["lm"]
    text = _train_text(lm)
    sample = "QQ " + text[100:300] + " QQ king and queen of my night Q"
    found = ok(run("inspect", "novelty", lm, "--json", stdin=sample)).json()
    longest = found["longest"]
    assert (longest["start"], longest["length"], longest["text"]) == (3, 200, text[100:300])
    assert text[longest["train_offset"] :].startswith(text[100:300])
    assert found["training"] == novelty.LM and found["train_chars"] == len(text)
    for row in found["ngrams"]:
        n, grams = row["n"], {text[i : i + row["n"]] for i in range(len(text))}
        hits = sum(sample[i : i + n] in grams for i in range(len(sample) - n + 1))
        assert row["found"] == hits
    (tmp_path / "s.txt").write_text(sample, encoding="utf-8")
    args = ["inspect", "novelty", "--data", lm.parent / "text", "--text", tmp_path / "s.txt"]
    table = ok(run(*args, "--passages", "2", "-o", tmp_path / "n.png")).stdout
    assert "longest copied passage: 200 characters at 3" in table
    assert table.splitlines()[1].split() == [
        "n",
        "n-grams",
        "in",
        "training",
        "share",
        "chars",
        "inside",
    ]
    assert png_info(tmp_path / "n.png")["width"] > 1000
    ok(run(*args, "-o", tmp_path / "n.svg", "-q"))
    assert (tmp_path / "n.svg").read_text().lstrip().startswith("<?xml")


def test_a_seq2seq_run_compares_its_targets(run, tiny_runs):
    training = novelty.open_training(tiny_runs["seq2seq"], None)
    targets = "".join(map(chr, novelty.training_points(training).tolist()))
    line = targets.splitlines()[3]
    found = ok(run("inspect", "novelty", tiny_runs["seq2seq"], "--json", stdin=line)).json()
    assert found["training"] == novelty.PAIRS and found["longest"]["length"] == len(line)
    assert found["longest"]["train_line"] <= 4  # the line, or an earlier one just like it


def test_a_corrupt_index_is_rebuilt_with_a_warning(run, tmp_path, corpus_file):
    tokenize_corpus([str(corpus_file)], tmp_path / "d", TokenizeConfig())
    args = ["inspect", "novelty", "--data", tmp_path / "d", "--json"]
    first = ok(run(*args, stdin="the king and the queen")).json()
    (tmp_path / "d.novelty").write_bytes(b"charrnn-novelty\n" + b"\xff" * 40)
    again = run(*args, stdin="the king and the queen")
    assert again.code == 0 and "Warning:" in again.stderr and "rebuilding" in again.stderr
    assert again.json()["ngrams"] == first["ngrams"]


def test_errors(run, tiny_runs, tmp_path, monkeypatch):
    lm = tiny_runs["lm"]
    novelty_ = ["inspect", "novelty"]
    assert_error(run(*novelty_, stdin="x"), 2, "nothing to compare with")
    assert_error(run(*novelty_, lm, stdin=""), 1, "<stdin>: is empty")
    assert_error(run(*novelty_, lm, "-o", tmp_path / "n.gif", stdin="x"), 2, ".png or .svg")
    assert_error(run(*novelty_, lm, "--ngram", "0", stdin="x"), 2, "--ngram")
    assert_error(run(*novelty_, lm, "--passages", "-1", stdin="x"), 2, "--passages")
    assert_error(run(*novelty_, "--data", tmp_path / "nowhere", stdin="x"), 1, "no such directory")
    assert_error(run(*novelty_, "--data", tmp_path, stdin="x"), 1, "not a charrnn data directory")
    monkeypatch.setattr("charrnn.trained.saved_data_path", lambda saved, run_dir: None)
    assert_error(run(*novelty_, lm, stdin="x"), 1, "pass the data directory with --data DIR")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_help_and_a_data_directory_import_neither_torch_nor_matplotlib(tiny_runs, tmp_path):
    (tmp_path / "s.txt").write_text("the king and the queen", encoding="utf-8")
    data = tiny_runs["lm"].parent / "text"
    probe = (
        "import sys; from charrnn.cli import main\n"
        f"for args in (['inspect', 'novelty', '--help'], ['inspect', 'novelty', '--data', "
        f"{str(data)!r}, '--text', {str(tmp_path / 's.txt')!r}, '-q']):\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        assert not e.code\n"
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--ngram" in done.stdout and "longest copied passage" in done.stdout
