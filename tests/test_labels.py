"""Labelled text on disk: TSV (both column orders), folders, stdin, the built-in plays task,
stratified splits, the label set, bad input and `charrnn info`."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest
from conftest import assert_error, ok

from charrnn import corpus
from charrnn.config import TokenizeConfig
from charrnn.data import load_dataset
from charrnn.errors import CharrnnError
from charrnn.labels import LABEL_BUILTINS, stratified_split, tokenize_labels
from charrnn.plays import PLAYS_KEPT, play_speeches, write_plays

# texts with a TAB inside, non-ASCII and astral characters; labels with a space inside
EXAMPLES = [
    ("Free entry\tin a wkly comp!", "spam"),
    ("Ok lar... Joking wif u oni", "ham"),
    ("caf\u00e9 at 5? \U0001f600", "ham"),
    ("WINNER!! claim your prize", "spam"),
    ("see you \u65e5\u672c", "not sure"),
    ("U dun say so early hor", "ham"),
] * 5


def _tsv(tmp_path, examples=EXAMPLES, name="l.tsv", first=False):
    rows = (f"{label}\t{text}" if first else f"{text}\t{label}" for text, label in examples)
    path = tmp_path / name
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def _decoded(ds, split="train"):
    s = ds.split(split)
    return [
        (ds.tokenizer.decode(s.example(i)[0]), ds.labels[s.example(i)[1]]) for i in range(len(s))
    ]


def _all(ds):
    return Counter(pair for split in ds.splits for pair in _decoded(ds, split))


def _same_files(a, b):
    for name in ("train.bin", "train.idx", "train.target.bin", "val.bin", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_tsv_round_trip_in_both_column_orders(tmp_path):
    meta = tokenize_labels([str(_tsv(tmp_path))], tmp_path / "last")
    ds = load_dataset(tmp_path / "last")
    assert meta["kind"] == "labels" and ds.labels == ["ham", "not sure", "spam"] == meta["labels"]
    assert _all(ds) == Counter(EXAMPLES)  # every example once, TABs inside the text kept
    train, val = ds.split("train"), ds.split("val")
    assert len(train) + len(val) == len(EXAMPLES) and val.targets.dtype == np.int64
    assert train.lengths.tolist() == [len(t) for t, _ in _decoded(ds, "train")]
    counts = Counter(label for _, label in _decoded(ds, "val"))
    assert meta["splits"]["val"]["labels"] == {label: counts[label] for label in ds.labels}
    tokenize_labels(
        [str(_tsv(tmp_path, name="f.tsv", first=True))], tmp_path / "first", label_column="first"
    )
    _same_files(tmp_path / "last", tmp_path / "first")


def test_folder_of_label_folders_equals_the_tsv(tmp_path):
    root = tmp_path / "folders"
    for k, (text, label) in enumerate(EXAMPLES):
        (root / label).mkdir(parents=True, exist_ok=True)
        if k % 7 == 0:  # compressed files are read too
            (root / label / f"{k:02d}.txt.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (root / label / f"{k:02d}.txt").write_text(text + "\r\n", encoding="utf-8")
    (root / "README").write_text("not an example: outside the label folders")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("a hidden folder is no label")
    meta = tokenize_labels([str(root)], tmp_path / "d")
    ds = load_dataset(tmp_path / "d")
    assert ds.labels == ["ham", "not sure", "spam"] and _all(ds) == Counter(EXAMPLES)
    assert meta["sources"]["count"] == len(EXAMPLES)


def test_stdin_equals_the_file(tmp_path, run):
    tsv = _tsv(tmp_path)
    ok(run("tokenize", "--labels", tsv, "-o", tmp_path / "file", "-q"))
    ok(run("tokenize", "--labels", "-", "-o", tmp_path / "in", "-q", stdin=tsv.read_bytes()))
    _same_files(tmp_path / "file", tmp_path / "in")
    files = {"meta.json", "tokenizer.json"} | {
        f"{split}.{ext}" for split in ("train", "val") for ext in ("bin", "idx", "target.bin")
    }
    assert {p.name for p in (tmp_path / "in").iterdir()} == files  # stdin's copy is gone


def test_builtin_plays_task(tmp_path, run):
    write_plays(tmp_path / "a.tsv")
    write_plays(tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    speeches = play_speeches()
    assert len(speeches) == 7222 and speeches[0] == (
        "Before we proceed any further, hear me speak.",
        "Coriolanus",
    )
    assert [play for _, play in speeches].count("The Tempest") == 283
    # --labels is implied by the name, as --pairs is by builtin:dates
    summary = ok(run("tokenize", "builtin:plays", "-o", tmp_path / "d", "-q", "--json")).json()
    assert summary["labels"] == sorted(PLAYS_KEPT)
    split = summary["splits"]
    assert split["train"]["examples"] + split["val"]["examples"] == 4973
    assert all(n >= 70 for n in split["val"]["labels"].values())
    ds = load_dataset(tmp_path / "d")
    assert not any(text.startswith(("GLOUCESTER:", "ROMEO:")) for text, _ in _decoded(ds, "val"))
    # every built-in labelled task is known to the list of built-in corpora
    for name in LABEL_BUILTINS:
        assert corpus.TASK_BUILTINS[name.split(":")[1]][1] == "--labels"


def test_stratified_split_keeps_small_labels_in_validation(tmp_path):
    labels = ["big"] * 200 + ["mid"] * 20 + ["pair"] * 2 + ["one"]
    splits = stratified_split(labels, 0.1, 0.1, seed=0)
    got = Counter(zip(labels, splits, strict=True))
    assert got["big", "val"] == got["big", "test"] == 20 and got["mid", "val"] == 2
    assert got["pair", "val"] == 1 and got["pair", "train"] == 1  # test gets none: train keeps 1
    assert got["one", "train"] == 1
    assert splits == stratified_split(labels, 0.1, 0.1, seed=0)
    assert splits != stratified_split(labels, 0.1, 0.1, seed=1)
    # through tokenize: deterministic, and every label with two examples is in val
    examples = [(f"text {i}", f"l{i % 7}") for i in range(40)] + [("lone", "l9"), ("x", "l9")]
    tsv = _tsv(tmp_path, examples)
    a = tokenize_labels([str(tsv)], tmp_path / "a", TokenizeConfig(val_frac=0.05))
    b = tokenize_labels([str(tsv)], tmp_path / "b", TokenizeConfig(val_frac=0.05))
    _same_files(tmp_path / "a", tmp_path / "b")
    assert all(n >= 1 for n in a["splits"]["val"]["labels"].values())
    assert a["split_method"] == "stratified" and a["splits"] == b["splits"]


def test_val_file_gives_the_validation_split(tmp_path, run):
    val = [("Ok see you", "ham"), ("WIN a prize", "spam")]
    summary = ok(
        run(
            "tokenize",
            "--labels",
            _tsv(tmp_path),
            "--val",
            _tsv(tmp_path, val, name="v.tsv"),
            "-o",
            tmp_path / "d",
            "--json",
        )
    ).json()
    assert summary["split_method"] == "files"
    assert summary["splits"]["train"]["examples"] == len(EXAMPLES)
    assert _decoded(load_dataset(tmp_path / "d"), "val") == val


def test_bpe_vocabulary_round_trips_exactly(tmp_path):
    config = TokenizeConfig(vocab="bpe", vocab_size=300, val_frac=0.0)
    meta = tokenize_labels([str(_tsv(tmp_path))], tmp_path / "d", config)
    assert meta["vocab"]["kind"] == "bpe" and "val" not in meta["splits"]
    assert _decoded(load_dataset(tmp_path / "d")) == EXAMPLES  # order kept within a split


def _bad_cases(tmp_path):
    good = _tsv(tmp_path, name="good.tsv")
    bad = {
        "no-tab.tsv": "hello\tham\nno label here\n",
        "empty-label.tsv": "hello\tham\nworld\t  \n",
        "empty-text.tsv": "hello\tham\n \tspam\n",
        "blank.tsv": "hello\tham\n\nworld\tspam\n",
        "one-label.tsv": "".join(f"text {i}\tham\n" for i in range(20)),
        "new-label.tsv": "hello\tham\nhi\teggs\n",
        "too-few.tsv": "a\tx\nb\ty\n",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.txt").write_text("files, but no label folders")
    swapped = _tsv(tmp_path, [(f"message {i}", "ham") for i in range(150)], "swap.tsv", True)
    t = str(tmp_path)
    return [
        ([f"{t}/no-tab.tsv"], 1, "no-tab.tsv line 2: no TAB between text and label"),
        ([f"{t}/empty-label.tsv"], 1, "empty-label.tsv line 2: empty label"),
        ([f"{t}/empty-text.tsv"], 1, "empty-text.tsv line 2: empty text"),
        ([f"{t}/blank.tsv"], 1, "blank.tsv line 2: blank line"),
        ([f"{t}/one-label.tsv"], 1, "only one label ('ham') in the training set"),
        ([good, "--val", f"{t}/new-label.tsv"], 1, "line 2: label 'eggs' (1 example) is not in"),
        ([good, "--label-column", "middle"], 2, "--label-column: unknown column 'middle'"),
        ([f"{t}/flat"], 1, "flat: has no subfolders"),
        ([f"{t}/too-few.tsv"], 1, "too few examples to split"),
        ([swapped], 1, "the last column holds text, not labels; pass --label-column first"),
        ([good, "--pairs"], 2, "--labels: and --pairs mark different kinds"),
        (["builtin:dates"], 2, "builtin:dates: is parallel text, not labelled text"),
        ([good, "--max-chars", "9"], 2, "--max-chars: is for parallel text"),
    ]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, run):
    cases = _bad_cases(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, code, needle in cases:
        assert_error(run("tokenize", "--labels", *args, "-o", tmp_path / "out"), code, needle)
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp dir left
    good = tmp_path / "good.tsv"
    assert_error(run("tokenize", good, "--label-column", "first", "-o", tmp_path / "o"), 2, "add")
    assert_error(run("tokenize", "builtin:plays", "--pairs", "-o", tmp_path / "o"), 2, "labels")
    with pytest.raises(CharrnnError, match="no such built-in corpus.*builtin:plays \\(labelled"):
        tokenize_labels(["builtin:nope"], tmp_path / "o")


def test_info_lists_labels_per_split(tmp_path, run):
    ok(run("tokenize", "--labels", _tsv(tmp_path), "-o", tmp_path / "d", "--test-frac", "0.2"))
    text = ok(run("info", tmp_path / "d")).stdout
    assert "labelled text, 3 labels" in text and "split: stratified" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert rows["label"] == ["train", "val", "test"]
    assert rows["spam"] == ["7", "1", "2"] and rows["ham"] == ["10", "2", "3"]
    summary = ok(run("info", tmp_path / "d", "--json")).json()
    assert summary["kind"] == "labels" and summary["labels"] == ["ham", "not sure", "spam"]
    assert summary["splits"]["test"]["labels"]["not sure"] == 1


def test_given_vocabulary_counts_unknown_characters(tmp_path, run):
    tokenize_labels([str(_tsv(tmp_path))], tmp_path / "v")
    vocab = load_dataset(tmp_path / "v").tokenizer
    # 30 characters the vocabulary lacks, the k-th k + 1 times
    odd = [(chr(0x4E00 + k) * (k + 1) + " ok", "ham") for k in range(30)]
    meta = tokenize_labels(
        [str(_tsv(tmp_path, EXAMPLES + odd, "odd.tsv"))], tmp_path / "d", vocabulary=vocab
    )
    assert meta["unknown_chars"] == [[chr(0x4E00 + k), k + 1] for k in range(29, 9, -1)]
    assert sum(s["unknown"] for s in meta["splits"].values()) == 30 * 31 // 2
    assert meta["vocabulary_from"] == "given"
    # --tokenizer DATA brings the label set: class ids match, and a new label is an error
    new = _tsv(tmp_path, [("see you", "spam"), ("hi", "ham")] * 3, "new.tsv")
    out = tmp_path / "n"
    ok(run("tokenize", "--labels", new, "--tokenizer", tmp_path / "v", "-o", out, "-q"))
    assert load_dataset(out).labels == ["ham", "not sure", "spam"]
    eggs = _tsv(tmp_path, [("see you", "eggs"), ("hi", "ham")] * 3, "eggs.tsv")
    args = ("tokenize", "--labels", eggs, "--tokenizer", tmp_path / "v", "-o", out / "e")
    assert_error(run(*args), 1, "label 'eggs' (3 examples) is not in the given label set")


def test_damaged_directory_is_detected_and_force_replaces(tmp_path, run):
    tokenize_labels([str(_tsv(tmp_path))], tmp_path / "d")
    targets = tmp_path / "d" / "train.target.bin"
    targets.write_bytes(targets.read_bytes()[:-4])
    with pytest.raises(CharrnnError, match="train.target.bin: has .* bytes, expected"):
        load_dataset(tmp_path / "d")
    ok(run("tokenize", "--labels", _tsv(tmp_path), "-o", tmp_path / "d", "--force", "-q"))
    assert len(load_dataset(tmp_path / "d").split("train")) > 0
