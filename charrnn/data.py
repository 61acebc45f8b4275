"""Text -> token ids on disk: a data directory of `tokenizer.json`, `meta.json` and flat `.bin`
files of ids per split, readable with `np.memmap`.

The corpus is streamed three times in chunks (count, build the vocabulary from the training
split, encode), so peak memory does not depend on the size of the corpus. Output is written
to a temporary directory that is renamed into place only when everything succeeded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charrnn import __version__, corpus, kinds
from charrnn.config import TokenizeConfig, to_dict
from charrnn.datadir import (
    CACHE_CHARS,
    DATA_FORMAT,
    DATA_VERSION,
    SPLITS,
    Histogram,
    build,
    check_out_dir,
    check_size,
    describe_sources,
    read_meta,
    refuse_data_dirs,
    vocabulary_options,
    write_meta,
)
from charrnn.errors import CharrnnError
from charrnn.tokenizer import (
    DEFAULT_BPE_VOCAB,
    SPECIALS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    check_vocab_size,
    last_safe_cut,
    load,
    normalize_text,
    split_for_encoding,
)

MAX_CARRY = 1 << 26  # cut a line with no safe boundary after 64 M characters

# Progress callback: (stage, done, total or None).
Progress = Callable[[str, int, int | None], None]


# -- segmentation ----------------------------------------------------------------------------


def segments(chunks: Iterable[str]) -> Iterator[str]:
    """Re-cut streamed text so that every piece ends at a safe boundary (see `safe_cut`).

    Normalization and BPE then treat each piece exactly as they would treat the whole text.
    """
    carry = ""
    for chunk in chunks:
        text = carry + chunk if carry else chunk
        cut = last_safe_cut(text)
        if cut == 0 and len(text) > MAX_CARRY:
            cut = len(text)  # no boundary at all: a pathological single line; cut anyway
        if cut:
            yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


def _route(pieces: Iterable[str], bounds: dict[str, int]) -> Iterator[tuple[str, str]]:
    """Assign consecutive text to splits: the first bounds['train'] characters are train, etc."""
    names = [name for name in SPLITS if bounds.get(name)]
    if not names:
        return
    index, left = 0, bounds[names[0]]
    for piece in pieces:
        while piece:
            take = piece[:left] if len(piece) > left else piece
            yield names[index], take
            piece = piece[len(take) :]
            left -= len(take)
            if left == 0:
                index += 1
                if index == len(names):
                    return
                left = bounds[names[index]]


# -- the pipeline ------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Which text goes to which split: either one stream cut at character counts, or files."""

    streams: dict[str, list[corpus.Source]]  # stream name -> its sources
    bounds: dict[str, dict[str, int]]  # stream name -> split name -> characters


def tokenize_corpus(
    inputs: Sequence[str],
    out_dir: str | Path,
    config: TokenizeConfig = TokenizeConfig(),
    *,
    val_inputs: Sequence[str] = (),
    test_inputs: Sequence[str] = (),
    force: bool = False,
    vocabulary: Tokenizer | None = None,
    progress: Progress | None = None,
) -> dict:
    """Tokenize `inputs` into the data directory `out_dir`; return its meta data.

    With `vocabulary`, text is encoded with that existing tokenizer (and its normalization)
    instead of a new vocabulary built from the training split.
    """
    refuse_data_dirs([*inputs, *val_inputs, *test_inputs])
    if config.vocab == "auto":  # a language model's text: characters, charrnn's default
        config = replace(config, vocab="char")
    config = vocabulary_options(config, vocabulary)
    config.check()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force, [*inputs, *val_inputs, *test_inputs])

    def make(tmp: Path) -> dict:
        meta = _tokenize_into(tmp, inputs, config, val_inputs, test_inputs, vocabulary, progress)
        for spooled in [tmp / "stdin.txt", *tmp.glob("stream-*.txt")]:
            spooled.unlink(missing_ok=True)  # text read once: the ids stay
        return meta

    return build(out_dir, force, make)


class _Stream:
    """The normalized text of one input stream, as pieces; replayed from memory when it is
    small (under `CACHE_CHARS`), else read again from disk on every pass."""

    def __init__(self, sources: list[corpus.Source], config: TokenizeConfig, progress) -> None:
        self.sources = sources
        self.config = config
        self.progress = progress
        self.cache: list[str] | None = None
        # Cutting at safe boundaries only matters when something could see across a cut.
        self.cut = config.vocab == "bpe" or config.lowercase or config.normalize != "none"

    def pieces(self, stage: str, hashes: dict | None = None) -> Iterator[str]:
        """Yield the text; the first call (with `hashes`) also fills the memory cache."""
        if self.cache is not None:
            yield from self.cache
            return
        report = (lambda done, total: self.progress(stage, done, total)) if self.progress else None
        chunks = corpus.read_text(
            self.sources,
            encoding=self.config.encoding,
            errors=self.config.errors,
            hashes=hashes,
            progress=report,
        )
        cache: list[str] | None = [] if hashes is not None else None
        cached = 0
        for piece in segments(chunks) if self.cut else chunks:
            piece = normalize_text(
                piece, lowercase=self.config.lowercase, form=self.config.normalize
            )
            if cache is not None:
                cached += len(piece)
                if cached <= CACHE_CHARS:
                    cache.append(piece)
                else:
                    cache = None
            yield piece
        if cache is not None:
            self.cache = cache


def _tokenize_into(tmp, inputs, config, val_inputs, test_inputs, vocabulary, progress) -> dict:
    def resolve(items):
        return corpus.resolve(items, glob=config.glob, spool_dir=tmp, encoding=config.encoding)

    sources = {"main": resolve(inputs)}
    if val_inputs:
        sources["val"] = resolve(val_inputs)
    if test_inputs:
        sources["test"] = resolve(test_inputs)
    streams = {name: _Stream(srcs, config, progress) for name, srcs in sources.items()}

    # Pass 1: validate, hash, and count the characters of the main stream.
    hashes: dict[str, str] = {}
    counts: dict[str, int] = {}
    train_hist = Histogram()
    for name, stream in streams.items():
        counts[name] = 0
        for piece in stream.pieces("checking", hashes):
            counts[name] += len(piece)
            if name == "main":
                train_hist.add(piece)
    plan = _plan(sources, counts, config)

    def split_text(stage: str) -> Iterator[tuple[str, str]]:
        for name, stream in streams.items():
            yield from _route(stream.pieces(stage), plan.bounds[name])

    # The training split's histogram: the main stream's, less its val/test tail.
    if plan.bounds["main"].get("val") or plan.bounds["main"].get("test"):
        for split, piece in _route(streams["main"].pieces("splitting"), plan.bounds["main"]):
            if split != "train":
                train_hist.add(piece, sign=-1)

    # Pass 2: the vocabulary, from the training split only (unless one was given).
    tok = (
        vocabulary if vocabulary is not None else _build_vocabulary(split_text, train_hist, config)
    )
    # Pass 3: encode every split to its own flat binary file.
    names = [name for name in SPLITS if any(b.get(name) for b in plan.bounds.values())]
    stats, unknown_chars = _encode_splits(tmp, split_text, tok, names)
    tok.save(tmp / "tokenizer.json")
    meta = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "kind": "lm",
        "charrnn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vocab": tok.describe(),
        "dtype": tok.dtype.name,
        "splits": stats,
        "split_method": "files" if len(streams) > 1 else "tail",
        "vocabulary_from": "given" if vocabulary is not None else "train split",
        "options": to_dict(config),
        "top_chars": train_hist.top(10),
        "train_chars_counted": int(train_hist.counts.sum()),
        "unknown_chars": [[c, n] for c, n in unknown_chars.most_common(20)],
        "sources": describe_sources(sources, hashes),
    }
    write_meta(tmp, meta)
    return meta


def _build_vocabulary(split_text, train_hist: Histogram, config: TokenizeConfig) -> Tokenizer:
    """A BPE vocabulary trained on the training split, or the characters it holds."""
    kw = {"lowercase": config.lowercase, "normalize": config.normalize}
    if config.vocab == "bpe":
        vocab_size = config.vocab_size or DEFAULT_BPE_VOCAB
        check_vocab_size("bpe", vocab_size)
        train = (
            p
            for split, text in split_text("vocabulary")
            if split == "train"
            for p in split_for_encoding(text)
        )
        return BPETokenizer.train(train, vocab_size=vocab_size, **kw)
    alphabet = train_hist.alphabet()
    check_vocab_size("char", config.vocab_size, len(alphabet))
    return CharTokenizer.build(alphabet, **kw)


def _encode_splits(tmp: Path, split_text, tok: Tokenizer, names: list[str]):
    """Encode each split to its flat binary file; its statistics (tokens, characters, bytes,
    unknown tokens) and the characters outside the vocabulary."""
    stats = {
        name: {"file": f"{name}.bin", "tokens": 0, "chars": 0, "bytes": 0, "unknown": 0}
        for name in names
    }
    unknown_chars: Counter[str] = Counter()
    with ExitStack() as stack:
        files = {
            name: stack.enter_context(open(tmp / s["file"], "wb")) for name, s in stats.items()
        }
        for split, piece in split_text("encoding"):
            ids = tok.encode(piece, normalized=True)
            ids.tofile(files[split])
            s = stats[split]
            s["tokens"] += len(ids)
            s["chars"] += len(piece)
            s["bytes"] += len(piece) if piece.isascii() else len(piece.encode("utf-8"))
            unk = tok.unknown_count(ids)
            if unk:
                s["unknown"] += unk
                unknown_chars.update(tok.unknown_chars(piece, ids))
    return stats, unknown_chars


def _plan(streams: dict, counts: dict[str, int], config: TokenizeConfig) -> _Plan:
    """Decide how many characters of each stream go to which split."""
    for name, n in counts.items():
        if n == 0:
            names = ", ".join(s.name for s in streams[name][:3])
            raise CharrnnError(names, "empty corpus (no characters)", "pass a file with text in it")
    if len(streams) > 1:
        bounds = {"main": {"train": counts["main"]}}
        bounds.update({name: {name: counts[name]} for name in streams if name != "main"})
        return _Plan(streams, bounds)
    total = counts["main"]
    n_val = round(total * config.val_frac)
    n_test = round(total * config.test_frac)
    n_train = total - n_val - n_test
    too_small = (config.val_frac > 0 and n_val == 0) or (config.test_frac > 0 and n_test == 0)
    if too_small or n_train < 1:
        raise CharrnnError(
            streams["main"][0].name,
            f"corpus too small to split ({total} characters)",
            "pass more text, lower --val-frac/--test-frac, or give --val FILE",
        )
    return _Plan(streams, {"main": {"train": n_train, "val": n_val, "test": n_test}})


# -- reading a data directory ------------------------------------------------------------------


@dataclass
class Dataset:
    """A data directory written by `tokenize_corpus`."""

    path: Path
    meta: dict
    tokenizer: Tokenizer

    @property
    def splits(self) -> list[str]:
        """Split names present, in order."""
        return [name for name in SPLITS if name in self.meta["splits"]]

    def ids(self, split: str) -> np.ndarray:
        """The ids of one split as a read-only memory map."""
        if split not in self.meta["splits"]:
            have = ", ".join(self.splits)
            raise CharrnnError(
                str(self.path),
                f"has no {split} split (it has: {have})",
                "re-run charrnn tokenize with --val-frac/--test-frac or --val/--test",
            )
        info = self.meta["splits"][split]
        path = self.path / info["file"]
        if info["tokens"] == 0:
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(path, dtype=self.meta["dtype"], mode="r", shape=(info["tokens"],))

    def stats(self, split: str) -> dict:
        """Token, character, byte and unknown counts of a split."""
        return self.meta["splits"][split]

    @property
    def tokenizers(self) -> dict[str, Tokenizer]:
        """Its vocabularies by name, as a checkpoint keeps them."""
        return {"text": self.tokenizer}


def load_dataset(path: str | Path):
    """Open a data directory of any kind (by its reader in charrnn.kinds), checking its
    format, version and file sizes."""
    path = Path(path)
    meta = read_meta(path)
    return kinds.of_data(meta, str(path)).read_data(path, meta)


def load_text_dataset(path: Path, meta: dict) -> Dataset:
    """Open a data directory of plain text (see `load_dataset`)."""
    where = str(path)
    tok = load(path / "tokenizer.json")
    itemsize = np.dtype(meta["dtype"]).itemsize
    for info in meta["splits"].values():
        check_size(path / info["file"], info["tokens"] * itemsize, "re-run charrnn tokenize")
    if tok.vocab_size != meta["vocab"]["size"]:
        raise CharrnnError(
            where, "tokenizer.json does not match meta.json", "re-run charrnn tokenize"
        )
    return Dataset(path=path, meta=meta, tokenizer=tok)


def load_vocabulary(path: str | Path) -> Tokenizer:
    """The tokenizer of a data directory, or a tokenizer.json file."""
    path = Path(path)
    return load(path / "tokenizer.json" if path.is_dir() else path)


def describe(meta: dict) -> dict:
    """Summary numbers for humans and `--json`: vocabulary, split sizes, coverage."""
    total = meta["train_chars_counted"] or 1
    top = meta["top_chars"]
    return {
        "vocab": meta["vocab"],
        "dtype": meta["dtype"],
        "splits": meta["splits"],
        "top_chars": [{"char": c, "fraction": n / total} for c, n in top],
        "top_coverage": sum(n for _, n in top) / total,
        "unknown_chars": dict(meta.get("unknown_chars", [])),  # most frequent first, as eval's
        "sources": meta["sources"]["count"],
        "specials": list(SPECIALS),
    }
