"""The data directory, whatever it holds: its format and version, the checks on its files,
and how one is written (into a temporary directory beside it, published by one rename, with
the --force rules), shared by language-model text (`charrnn.data`) and parallel text
(`charrnn.pairs`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from charrnn import corpus
from charrnn.errors import CharrnnError
from charrnn.files import io_error, temp_sibling

DATA_FORMAT = "charrnn-data"
DATA_VERSION = 1
SPLITS = ("train", "val", "test")
CACHE_CHARS = 1 << 25  # corpora up to 32 M characters are read once and replayed from memory


def refuse_data_dirs(inputs: Sequence[str]) -> None:
    """Raise if an input is a data or run directory: its files are charrnn's, not text."""
    for item in inputs:
        if item != "-" and is_dataset(item):
            raise CharrnnError(
                str(item),
                "is a data directory (tokenized already)",
                f"train on it (charrnn train {item} -o RUN_DIR), or pass the text files",
            )
        if item != "-" and is_run_dir(item):
            raise CharrnnError(str(item), "is a run directory, not text", "pass the text files")


# what a data directory holds: --force replaces a directory with nothing else in it
_DATA_FILE = re.compile(
    r"(meta\.json|(source\.|target\.)?tokenizer\.json|(train|val|test)(\.(source|target))?\.(bin|idx))"
)


def check_force(out_dir: Path, inputs: Sequence[str]) -> None:
    """Raise unless `out_dir` may be replaced: a data directory holding only its own files,
    and no input."""
    others = sorted(p.name for p in out_dir.iterdir() if not _DATA_FILE.fullmatch(p.name))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise CharrnnError(
            str(out_dir),
            f"holds other files besides its data ({shown}), so --force will not replace it",
            "move them out, or choose another -o",
        )
    inside = [i for i in inputs if i != "-" and Path(i).resolve().is_relative_to(out_dir.resolve())]
    if inside:
        raise CharrnnError(
            inside[0], f"lies inside -o {out_dir}, which --force would replace", "choose another -o"
        )


def check_out_dir(out_dir: Path, force: bool, inputs: Sequence[str] = ()) -> None:
    if out_dir.exists() and not force:
        raise CharrnnError(
            str(out_dir), "already exists", "pass --force to replace it, or choose another -o"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise CharrnnError(str(out_dir), "exists and is not a directory", "choose another -o")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_dataset(out_dir):
        # --force replaces a data directory, never a folder of other files (an input, say)
        raise CharrnnError(
            str(out_dir),
            "exists and is not a charrnn data directory, so --force will not replace it",
            "choose another -o",
        )
    if out_dir.is_dir():
        check_force(out_dir, inputs)


def publish(tmp: Path, out_dir: Path, force: bool) -> None:
    """Move the finished temporary directory into place (replacing the old one with force)."""
    check_out_dir(out_dir, force)
    if out_dir.exists():
        old = temp_sibling(out_dir, f"old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def temp_dir_for(out_dir: Path) -> Path:
    """A fresh hidden directory beside `out_dir` (same file system, so rename is atomic)."""
    if out_dir.is_file():
        raise CharrnnError(str(out_dir), "is a file", "choose a new folder name")
    corpus.make_dir(out_dir.parent)
    tmp = temp_sibling(out_dir, f"tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        tmp.mkdir()
    except OSError as e:
        raise io_error(out_dir, e) from None
    return tmp


class Histogram:
    """Character counts, in an array that grows to the largest code point seen."""

    def __init__(self) -> None:
        self.counts = np.zeros(256, dtype=np.int64)

    def add(self, text: str, sign: int = 1) -> None:
        """Count (or with sign=-1, uncount) the characters of `text`."""
        if text.isascii():
            points = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        else:
            points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        step = 1 << 16  # slices: bincount's index conversion buffer stays in cache
        for i in range(0, len(points), step):
            hist = np.bincount(points[i : i + step])
            if len(hist) > len(self.counts):
                self.counts = np.concatenate(
                    [self.counts, np.zeros(len(hist) - len(self.counts), np.int64)]
                )
            self.counts[: len(hist)] += sign * hist

    def alphabet(self) -> list[str]:
        """The characters seen, by code point."""
        return [chr(c) for c in np.flatnonzero(self.counts)]

    def top(self, k: int = 10) -> list[list]:
        """The `k` most frequent characters with their counts."""
        order = np.argsort(-self.counts, kind="stable")[:k]
        return [[chr(int(c)), int(self.counts[c])] for c in order if self.counts[c]]


def describe_sources(streams: dict, hashes: dict[str, str], limit: int = 1000) -> dict:
    rows = [
        {
            "split": "train" if name == "main" else name,
            # a file name that is not UTF-8 (its bytes kept as surrogates) is shown with
            # U+FFFD where it cannot be decoded: meta.json is UTF-8
            "name": s.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
            "bytes": s.size,
            "sha256": hashes.get(s.name, ""),
        }
        for name, sources in streams.items()
        for s in sources
    ]
    combined = hashlib.sha256("".join(r["sha256"] for r in rows).encode()).hexdigest()
    return {"count": len(rows), "sha256": combined, "files": rows[:limit]}


def check_size(file: Path, expected: int, fix: str) -> None:
    """A data file must exist with exactly the size its meta data promises."""
    found = file.stat().st_size if file.is_file() else None
    if found != expected:
        state = "is missing" if found is None else f"has {found} bytes, expected {expected}"
        raise CharrnnError(str(file), f"{state} (truncated or replaced)", fix)


def is_run_dir(path: str | Path) -> bool:
    """Whether `path` is a run directory (it holds checkpoints)."""
    p = Path(path)
    try:
        return p.is_dir() and any((p / name).is_file() for name in ("last.pt", "best.pt"))
    except OSError:  # a name too long, say: reading it says what is wrong
        return False


def is_dataset(path: str | Path) -> bool:
    """True when `path` is a directory with a meta.json."""
    try:
        return (Path(path) / "meta.json").is_file()
    except OSError:  # a name too long, say: reading it says what is wrong
        return False


def read_meta(path: Path) -> dict:
    """A data directory's meta data, its format and version checked."""
    where = str(path)
    if not path.exists():
        raise CharrnnError(where, "no such directory", "check the path")
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CharrnnError(
            where, "not a charrnn data directory (no meta.json)", "create one with charrnn tokenize"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CharrnnError(
            str(meta_path), f"corrupt meta data ({e})", "re-run charrnn tokenize"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != DATA_FORMAT:
        raise CharrnnError(
            str(meta_path),
            "not a charrnn data directory (wrong format name)",
            "create one with charrnn tokenize",
        )
    if not isinstance(meta.get("version"), int) or meta["version"] > DATA_VERSION:
        raise CharrnnError(
            where,
            f"written by a newer charrnn (format version {meta.get('version')}, "
            f"this one reads {DATA_VERSION})",
            "upgrade charrnn",
        )
    return meta


def vocabulary_options(config, vocabulary):
    """`config` (TokenizeConfig) for text encoded with `vocabulary` (a trained model's, or
    another data directory's): its kind, size and normalization, whatever was asked."""
    if vocabulary is None:
        return config
    return replace(
        config,
        vocab=vocabulary.kind,
        vocab_size=vocabulary.vocab_size,
        lowercase=vocabulary.lowercase,
        normalize=vocabulary.normalize_form,
    )


def write_meta(folder: Path, meta: dict) -> None:
    """A data directory's meta.json (in its temporary folder, before publishing)."""
    (folder / "meta.json").write_text(
        json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def build(out_dir: Path, force: bool, make) -> dict:
    """Write the data directory `out_dir`: `make(tmp)` fills a temporary folder beside it
    and returns its meta; the folder is renamed into place (`publish`) only when that
    succeeded, and removed when anything failed (a full disk: one error naming `out_dir`)."""
    tmp = temp_dir_for(out_dir)
    try:
        meta = make(tmp)
        publish(tmp, out_dir, force)
    except OSError as e:  # writing the data: a full disk, say
        shutil.rmtree(tmp, ignore_errors=True)
        raise io_error(out_dir, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
