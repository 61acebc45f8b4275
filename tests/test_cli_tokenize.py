"""`charrnn tokenize` and `charrnn info` from the command line: bad input, stdout hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import HOSTILE, assert_error


def _cases(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "nodir").mkdir()
    (tmp_path / "nodir" / "x.bin").write_bytes(b"\0\1\2")
    (tmp_path / "bin.txt").write_bytes(b"text\0more")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "tiny.txt").write_text("abc")
    (tmp_path / "ok.txt").write_text("hello world\n" * 50)
    (tmp_path / "exists").mkdir()
    (tmp_path / "tokenized").mkdir()
    (tmp_path / "tokenized" / "meta.json").write_text("{}")  # a data directory
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"PK")  # a run directory
    ok = str(tmp_path / "ok.txt")
    return [
        ("data-dir", [str(tmp_path / "tokenized")], 1, "is a data directory (tokenized already)"),
        ("data-dir-pairs", ["--pairs", str(tmp_path / "tokenized")], 1, "is a data directory"),
        ("run-dir", [str(tmp_path / "run")], 1, "is a run directory, not text"),
        ("val-twice", [ok, "--val", ok, "--val-frac", "0.2"], 2, "--val-frac: and --val FILE"),
        ("missing", [str(tmp_path / "nope.txt")], 1, "no such file or directory"),
        ("empty", [str(tmp_path / "empty.txt")], 1, "empty corpus"),
        ("no-text-files", [str(tmp_path / "nodir")], 1, "no text files"),
        ("binary", [str(tmp_path / "bin.txt")], 1, "binary file (NUL byte at offset 4)"),
        (
            "not-utf8",
            [str(tmp_path / "latin1.txt")],
            1,
            "latin1.txt: not valid utf-8 at byte offset 3",
        ),
        (
            "bpe-vocab-small",
            [ok, "--vocab", "bpe", "--vocab-size", "100"],
            2,
            "too small for the alphabet",
        ),
        ("vocab-absurd", [ok, "--vocab", "bpe", "--vocab-size", "999999999"], 2, "absurdly large"),
        ("char-vocab-small", [ok, "--vocab-size", "5"], 2, "too small for the alphabet"),
        ("val-frac-high", [ok, "--val-frac", "1.5"], 2, "--val-frac"),
        ("val-frac-negative", [ok, "--val-frac", "-0.1"], 2, "--val-frac"),
        (
            "fractions-sum",
            [ok, "--val-frac", "0.5", "--test-frac", "0.5"],
            2,
            "leave no training text",
        ),
        ("too-small-to-split", [str(tmp_path / "tiny.txt")], 1, "too small to split"),
        ("bad-vocab-kind", [ok, "--vocab", "word"], 2, "unknown vocabulary"),
        ("not-an-int", [ok, "--vocab-size", "many"], 2, "--vocab-size"),
        ("unknown-option", [ok, "--frobnicate"], 2, "No such option"),
        ("bad-normalize", [ok, "--normalize", "nfx"], 2, "--normalize"),
        ("bad-encoding", [ok, "--encoding", "klingon"], 2, "--encoding"),
        ("bad-errors", [ok, "--errors", "explode"], 2, "--errors"),
    ]


def test_bad_input_table(tmp_path, run):
    for name, args, code, needle in _cases(tmp_path):
        out = tmp_path / f"out-{name}"
        result = run("tokenize", *args, "-o", out)
        assert_error(result, code, needle)
        assert not out.exists(), name
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out-")]
        assert leftovers == [], name


def test_existing_output_refused_unless_force(tmp_path, run):
    src = tmp_path / "c.txt"
    src.write_text("hello world\n" * 50)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    assert_error(run("tokenize", src, "-o", tmp_path / "d"), 1, "already exists")
    assert (tmp_path / "d" / "keep").exists()
    # --force replaces data directories only: not a folder of other files, not the input
    forced = run("tokenize", src, "-o", tmp_path / "d", "--force")
    assert_error(forced, 1, "not a charrnn data directory")
    assert (tmp_path / "d" / "keep").exists()
    (tmp_path / "d" / "c.txt").write_text("hello again\n" * 50)
    assert_error(run("tokenize", tmp_path / "d", "-o", tmp_path / "d", "--force"), 1, "not a")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["c.txt", "keep"]
    assert run("tokenize", src, "-o", tmp_path / "e", "-q").code == 0
    assert run("tokenize", src, "-o", tmp_path / "e", "--force", "-q").code == 0
    assert (tmp_path / "e" / "meta.json").exists()
    # ... holding nothing else: not the input, not notes, not a run trained on it
    (tmp_path / "e" / "c.txt").write_text("hello world\n" * 50)
    forced = run("tokenize", tmp_path / "e" / "c.txt", "-o", tmp_path / "e", "--force")
    assert_error(forced, 1, "holds other files besides its data (c.txt)")
    assert (tmp_path / "e" / "c.txt").exists()


def test_missing_out_option_is_usage_error(tmp_path, run):
    result = run("tokenize", tmp_path)
    assert result.code == 2 and "--out" in result.stderr and "Traceback" not in result.stderr


def test_encoding_option_lets_user_proceed(tmp_path, run):
    (tmp_path / "l.txt").write_bytes(b"caf\xe9 au lait\n" * 20)
    result = run(
        "tokenize",
        tmp_path / "l.txt",
        "-o",
        tmp_path / "d",
        "--encoding",
        "latin-1",
        "--json",
        "-q",
    )
    assert result.code == 0, result.stderr
    assert any(c["char"] == "\u00e9" for c in result.json()["top_chars"])  # decoded as latin-1
    result = run("tokenize", tmp_path / "l.txt", "-o", tmp_path / "e", "--errors", "replace", "-q")
    assert result.code == 0


def test_json_stdout_is_data_only(tmp_path, run):
    src = tmp_path / "c.txt"
    src.write_text(HOSTILE * 20, encoding="utf-8")
    result = run("tokenize", src, "-o", tmp_path / "d", "--json", "-q")
    assert result.code == 0
    summary = json.loads(result.stdout)  # exactly one JSON document
    assert summary["vocab"]["kind"] == "char"
    assert summary["splits"]["train"]["chars"] + summary["splits"]["val"]["chars"] == len(
        HOSTILE * 20
    )
    assert result.stderr == ""
    info = run("info", tmp_path / "d", "--json")
    assert info.code == 0 and info.json()["splits"] == summary["splits"]


def test_stdin_input_and_human_summary(tmp_path, run):
    result = run("tokenize", "-", "-o", tmp_path / "d", "-q", stdin="to be or not to be\n" * 30)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("wrote ")
    assert "train" in result.stdout and "top characters" in result.stdout
    assert not (tmp_path / "d" / "stdin.txt").exists()
    assert run("info", tmp_path / "d").stdout.startswith("data directory ")


def test_info_on_non_data_dir(tmp_path, run):
    assert_error(run("info", tmp_path), 1, "not a charrnn data directory")


def test_module_entry_point_and_version():
    done = subprocess.run(
        [sys.executable, "-m", "charrnn", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("charrnn ")


@pytest.mark.parametrize("vocab", ["char", "bpe"])
def test_builtin_corpus_tokenizes(tmp_path, run, vocab):
    result = run(
        "tokenize", "builtin:python", "-o", tmp_path / "d", "--vocab", vocab, "--json", "-q"
    )
    assert result.code == 0, result.stderr
    assert result.json()["splits"]["train"]["tokens"] > 1_000_000


def test_a_bpe_vocabulary_smaller_than_asked_is_pointed_out(tmp_path, run):
    (tmp_path / "few.txt").write_text("ab ab ab ba ba\n" * 50)
    result = run("tokenize", tmp_path / "few.txt", "-o", tmp_path / "d", "--vocab", "bpe", "--json")
    size = result.json()["vocab"]["size"]
    assert result.code == 0 and size < 4096
    assert "Warning" not in result.stderr  # the default size is a ceiling, not a request
    result = run(
        "tokenize",
        tmp_path / "few.txt",
        "-o",
        tmp_path / "e",
        "--vocab",
        "bpe",
        "--vocab-size",
        "500",
    )
    assert result.code == 0 and f"--vocab-size 500: the text gave {size} tokens" in result.stderr


def test_unknown_characters_are_counted_as_eval_counts_them(tmp_path, run):
    (tmp_path / "train.txt").write_text("abc abc abc\n" * 20)
    (tmp_path / "val.txt").write_text("abcxx\u00e9\n")
    result = run(
        "tokenize",
        tmp_path / "train.txt",
        "--val",
        tmp_path / "val.txt",
        "-o",
        tmp_path / "d",
        "--json",
    )
    assert result.code == 0 and result.json()["unknown_chars"] == {"x": 2, "\u00e9": 1}
    human = run(
        "tokenize", tmp_path / "train.txt", "--val", tmp_path / "val.txt", "-o", tmp_path / "e"
    )
    assert "'x' x2, '\u00e9' x1" in human.stdout
