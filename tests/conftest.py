"""Shared fixtures: small corpora, hostile Unicode, and an in-process CLI runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from charrnn import cli

# Text that breaks naive tokenizers: emoji sequences, CJK, combining marks, right-to-left
# scripts, tabs, CRLF, a lone CR, Unicode line separators, astral characters, U+FEFF inside
# the text (a zero-width no-break space, kept; at the start of a file it is a byte order mark,
# which reading drops), and the literal names of our special tokens.
HOSTILE = (
    "Header\ufeff\tcol2\r\n"
    "caf\u00e9 vs cafe\u0301; na\u0308ive \u1e9b\u0323\n"
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \U0001f44d\U0001f3fd\n"
    "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3002 \ud55c\uad6d\uc5b4 \u4e2d\u6587\r"
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd\u2028next\u2029para\n"
    "<unk> <pad> <bos> <eos> \u00a0nbsp\u00a0 \U00010348 \U0010fffd\n"
    "   leading spaces and trailing   \n\n\n"
    "\t\ttabs\t\n"
)


def ok(result):
    """Assert a command succeeded; return its result."""
    assert result.code == 0, result.stderr
    return result


def assert_error(result, code: int, needle: str) -> None:
    """Assert the error form: one line on stderr, `Error: <where>: <what>; <how to fix>`, with
    `needle` in it, exit `code`, no traceback, nothing on stdout."""
    assert result.code == code, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and needle in lines[0], lines[0]
    assert "; " in lines[0]  # the how-to-fix part
    assert "Traceback" not in result.stderr and result.stdout == ""


def png_info(path: Path) -> dict:
    """A PNG file's width, height and text fields, read chunk by chunk (each CRC checked):
    raises AssertionError for anything that is not a whole, valid PNG."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    at, info = 8, {"text": {}}
    while at < len(data):
        (size,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + size]
        (crc,) = struct.unpack(">I", data[at + 8 + size : at + 12 + size])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            info["width"], info["height"] = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            info["text"][key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":  # UTF-8 text: key, flag, method, language, translated key, text
            key, _, rest = body.partition(b"\0")
            assert rest[:1] == b"\0", "a compressed iTXt chunk"
            _, _, rest = rest[2:].partition(b"\0")  # the language tag
            _, _, value = rest.partition(b"\0")  # the translated keyword
            info["text"][key.decode("latin-1")] = value.decode("utf-8")
        at += 12 + size
        if kind == b"IEND":
            break
    assert kind == b"IEND" and at == len(data), "the PNG does not end with IEND"
    return info


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Raw-text corpora are tokenized into a cache of the test session, not the user's."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `charrnn ARGS...` in-process; returns exit code, stdout and stderr."""

    def _run(*args: str, stdin: str | bytes | None = None) -> Result:
        if stdin is not None:
            import io
            import sys

            raw = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
        try:
            cli.main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


@pytest.fixture
def shakespeare_like(tmp_path: Path) -> Path:
    """A small English corpus (generated, deterministic): about 20 KB."""
    import random

    rng = random.Random(0)
    words = [
        "the",
        "king",
        "queen",
        "lord",
        "and",
        "of",
        "to",
        "my",
        "thy",
        "thou",
        "art",
        "what",
        "shall",
        "be",
        "is",
        "not",
        "love",
        "death",
        "night",
        "day",
        "sweet",
        "fair",
        "good",
        "noble",
        "heart",
        "hand",
        "eye",
    ]
    lines = []
    for _ in range(600):
        speaker = rng.choice(["KING", "QUEEN", "LORD", "FOOL"])
        lines.append(
            f"{speaker}:\n"
            + " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
            + rng.choice([".", ",", "!", "?"])
            + "\n"
        )
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs trained for a few steps, with evaluations and per-layer gradient norms in
    their metrics.jsonl: a char LSTM language model ("lm") and a seq2seq GRU ("seq2seq")."""
    import random

    from charrnn import runs
    from charrnn.config import TokenizeConfig
    from charrnn.data import tokenize_corpus
    from charrnn.dates import write_dates
    from charrnn.pairs import tokenize_pairs

    tmp = tmp_path_factory.mktemp("tiny-runs")
    rng = random.Random(0)
    words = ["the", "king", "queen", "and", "of", "to", "my", "thy", "love", "night", "day"]
    lines = (" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) for _ in range(800))
    (tmp / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenize_corpus([str(tmp / "text.txt")], tmp / "text", TokenizeConfig())
    write_dates(tmp / "dates.tsv", count=300, seed=3)
    tokenize_pairs([str(tmp / "dates.tsv")], tmp / "dates", TokenizeConfig())
    small = {"embed_size": 8, "hidden_size": 16}
    train = {"batch_size": 8, "max_steps": 12, "eval_every": 4, "log_every": 2}
    train |= {"warmup_steps": 2, "threads": 1}
    found = {}
    for kind, data, model, extra in (
        ("lm", "text", "lstm", {"seq_len": 32}),
        ("seq2seq", "dates", "seq2seq-gru", {}),
    ):
        runs.start_training(
            str(tmp / data),
            tmp / kind,
            model_name=model,
            model_options=small,
            train_options={**train, **extra},
        )
        found[kind] = tmp / kind
    return found
