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
