"""Parallel text (source -> target pairs) on disk, and the built-in toy task.

Input: a TSV file (source TAB target per line; further columns are ignored), two line-aligned
files (source lines, target lines), `-` for a TSV on stdin, or `builtin:dates` (generated).
Output: a data directory like the language-model one, with `source.tokenizer.json` and
`target.tokenizer.json` (the same file twice with a shared vocabulary) and, per split and
side, a flat `.bin` of ids and a `.idx` of uint64 offsets: pair i's source is
`src[idx[i]:idx[i+1]]`.

Pairs are streamed (three passes: check and count, vocabulary, encode), so memory does not
grow with the data. Lines with an empty side, or longer than `max_chars`, are filtered and
counted in the summary; misaligned files and TSV lines without a TAB are errors.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path

import numpy as np

from charrnn import __version__, corpus
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
    refuse_data_dirs,
    write_meta,
)
from charrnn.dates import write_dates
from charrnn.errors import CharrnnError, UsageError
from charrnn.tokenizer import (
    DEFAULT_BPE_VOCAB,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    auto_vocabulary,
    check_vocab_size,
    load,
    normalize_text,
)

# Built-in parallel corpora: name -> a function writing its pairs as a TSV file.
PAIR_BUILTINS = {"builtin:dates": write_dates}
DEFAULT_MAX_CHARS = 1000
SIDES = ("source", "target")
ENCODE_BLOCK = 4096  # pairs encoded per call


# -- reading pairs ------------------------------------------------------------------------------


def _lines(
    sources: Sequence[corpus.Source], encoding: str, errors: str, hashes: dict | None, progress
) -> Iterator[str]:
    carry = ""
    for chunk in corpus.read_text(
        sources, encoding=encoding, errors=errors, hashes=hashes, progress=progress
    ):
        lines = (carry + chunk).split("\n")
        carry = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith("\r") else line
    if carry:
        yield carry[:-1] if carry.endswith("\r") else carry


@dataclass
class _PairStream:
    """The pairs of one input: a TSV, or two aligned files."""

    inputs: list[list[corpus.Source]]  # one TSV, or [source files, target files]
    config: TokenizeConfig
    progress: object = None
    cache: list[tuple[str, str]] | None = None

    def pairs(self, stage: str, hashes: dict | None = None) -> Iterator[tuple[int, str, str]]:
        """(line number, source, target) of every line, normalized; raises on misalignment."""
        if self.cache is not None:
            yield from ((i + 1, s, t) for i, (s, t) in enumerate(self.cache))
            return
        report = (lambda done, total: self.progress(stage, done, total)) if self.progress else None
        read = [
            _lines(srcs, self.config.encoding, self.config.errors, hashes, report)
            for srcs in self.inputs
        ]
        norm = {"lowercase": self.config.lowercase, "form": self.config.normalize}
        cache: list | None = [] if hashes is not None else None
        size = 0
        number = 0
        if len(read) == 1:
            for number, line in enumerate(read[0], 1):
                if "\t" not in line:
                    raise CharrnnError(
                        f"{self.inputs[0][0].name} line {number}",
                        "no TAB between source and target",
                        "write source<TAB>target on every line, or pass two aligned files",
                    )
                source, target = line.split("\t", 2)[:2]
                pair = (normalize_text(source, **norm), normalize_text(target, **norm))
                size, cache = _remember(cache, pair, size)
                yield number, *pair
        else:
            missing = object()
            counts = [0, 0]
            for source, target in zip_longest(*read, fillvalue=missing):
                counts[0] += source is not missing
                counts[1] += target is not missing
                if source is missing or target is missing:
                    continue  # count the rest, then fail below
                number += 1
                pair = (normalize_text(source, **norm), normalize_text(target, **norm))
                size, cache = _remember(cache, pair, size)
                yield number, *pair
            if counts[0] != counts[1]:
                names = [srcs[0].name for srcs in self.inputs]
                raise CharrnnError(
                    f"{names[0]}, {names[1]}",
                    f"misaligned: {counts[0]} source lines but {counts[1]} target lines",
                    "pass line-aligned files (line i of one translates line i of the other)",
                )
        if cache is not None:
            self.cache = cache


def _remember(cache, pair, size):
    """Keep `pair` in the replay cache while the text stays under CACHE_CHARS."""
    if cache is None:
        return size, None
    size += len(pair[0]) + len(pair[1])
    if size > CACHE_CHARS:
        return size, None
    cache.append(pair)
    return size, cache


def _resolve_pairs(inputs: Sequence[str], scratch: Path, glob: str) -> list[list[corpus.Source]]:
    if not 1 <= len(inputs) <= 2:
        raise UsageError(
            "INPUT",
            f"--pairs takes a TSV file or two aligned files, not {len(inputs)} inputs",
            "pass source<TAB>target lines, or SRC TGT",
        )
    groups = []
    for item in inputs:
        if item in PAIR_BUILTINS:
            path = scratch / f"{item.split(':')[1]}.tsv"
            PAIR_BUILTINS[item](path)
            groups.append([corpus.Source(item, path, path.stat().st_size)])
        elif corpus.is_builtin(item) and item[len(corpus.BUILTIN_PREFIX) :] in corpus.BUILTINS:
            raise UsageError(item, "is plain text, not parallel text", "drop --pairs")
        else:
            groups.append(corpus.resolve([item], glob=glob, spool_dir=scratch))
    return groups


# -- tokenizing -----------------------------------------------------------------------------------


def _split_of(index: int, config: TokenizeConfig, shuffle_seed: int | None, n: int) -> str:
    """The split of pair `index` (0-based) of `n`: a tail split, or a seeded hash split."""
    if shuffle_seed is None:
        n_test = round(n * config.test_frac)
        n_val = round(n * config.val_frac)
        if index >= n - n_test:
            return "test"
        return "val" if index >= n - n_test - n_val else "train"
    digest = hashlib.blake2b(f"{shuffle_seed}:{index}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    if u < config.test_frac:
        return "test"
    return "val" if u < config.test_frac + config.val_frac else "train"


def tokenize_pairs(
    inputs: Sequence[str],
    out_dir: str | Path,
    config: TokenizeConfig = TokenizeConfig(),
    *,
    shared_vocab: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    shuffle_seed: int | None = None,
    val_inputs: Sequence[str] = (),
    test_inputs: Sequence[str] = (),
    force: bool = False,
    vocabulary: tuple[Tokenizer, Tokenizer] | None = None,
    progress=None,
) -> dict:
    """Tokenize parallel text into the data directory `out_dir`; return its meta data. With
    `vocabulary` (a model's source and target tokenizers), text is normalized as the model's
    was and encoded with those tokenizers."""
    refuse_data_dirs([*inputs, *val_inputs, *test_inputs])
    if vocabulary is not None:
        source = vocabulary[0]
        config = replace(config, lowercase=source.lowercase, normalize=source.normalize_form)
    config.check()
    if max_chars < 1:
        raise UsageError("--max-chars", f"{max_chars} must be at least 1", "use e.g. 1000")
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force, [*inputs, *val_inputs, *test_inputs])

    def make(tmp: Path) -> dict:
        meta = _tokenize_pairs(
            tmp,
            inputs,
            config,
            shared_vocab,
            max_chars,
            shuffle_seed,
            val_inputs,
            test_inputs,
            vocabulary,
            progress,
        )
        for spooled in [*tmp.glob("*.tsv"), tmp / "stdin.txt", *tmp.glob("stream-*.txt")]:
            spooled.unlink(missing_ok=True)
        return meta

    return build(out_dir, force, make)


def _tokenize_pairs(
    tmp,
    inputs,
    config,
    shared,
    max_chars,
    shuffle_seed,
    val_inputs,
    test_inputs,
    vocabulary,
    progress,
) -> dict:
    streams = {"main": _PairStream(_resolve_pairs(inputs, tmp, config.glob), config, progress)}
    for name, items in (("val", val_inputs), ("test", test_inputs)):
        if items:
            streams[name] = _PairStream(_resolve_pairs(items, tmp, config.glob), config, progress)
    hashes: dict[str, str] = {}
    kept, filtered = _count_pairs(streams, max_chars, hashes)  # pass 1: check and count
    split_pairs = _splitter(streams, kept, config, shuffle_seed, max_chars)
    # Pass 2: vocabularies from the training pairs only.
    hists = {side: Histogram() for side in SIDES}
    picked = None
    if vocabulary is not None:
        toks = dict(zip(SIDES, vocabulary, strict=True))
    else:
        if config.vocab == "auto":
            config, shared, picked = pick_vocabulary(split_pairs, config, shared)
        toks = _build_vocabularies(split_pairs, hists, config, shared)
    # Pass 3: encode (a reused vocabulary's character counts are taken here).
    writer = _PairWriter(tmp, toks)
    with writer:
        for split, source, target in split_pairs("encoding"):
            writer.add(split, source, target)
            if vocabulary is not None and split == "train":
                hists["source"].add(source)
                hists["target"].add(target)
    toks["source"].save(tmp / "source.tokenizer.json")
    toks["target"].save(tmp / "target.tokenizer.json")
    sources = {
        "main" if i == 0 else name: [s for group in stream.inputs for s in group]
        for i, (name, stream) in enumerate(streams.items())
    }
    explicit = len(streams) > 1
    meta = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "kind": "pairs",
        "charrnn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vocab": {
            "source": toks["source"].describe(),
            "target": toks["target"].describe(),
            # a reused vocabulary is shared when both sides are the one tokenizer
            "shared": shared or (toks["source"].to_json() == toks["target"].to_json()),
            **({"picked": picked} if picked else {}),
        },
        "dtype": {side: toks[side].dtype.name for side in SIDES},
        "splits": {name: writer.stats[name] for name in SPLITS if name in writer.stats},
        "split_method": "files" if explicit else ("hash" if shuffle_seed is not None else "tail"),
        "filtered": {**filtered, "max_chars": max_chars},
        "options": to_dict(config),
        "top_chars": {side: hists[side].top(10) for side in SIDES},
        "unknown_chars": {
            side: [[c, n] for c, n in v.most_common(20)] for side, v in writer.unknown_chars.items()
        },
        "sources": describe_sources(sources, hashes),
    }
    write_meta(tmp, meta)
    return meta


def _usable(source: str, target: str, max_chars: int) -> bool:
    """A pair with text on both sides, neither longer than `max_chars`."""
    return bool(source.strip() and target.strip()) and max(len(source), len(target)) <= max_chars


def _count_pairs(streams: dict, max_chars: int, hashes: dict) -> tuple[dict, dict]:
    """Read every pair once: the pairs kept per stream, and those filtered out (empty or too
    long); a stream with none to keep is an error. Fills `hashes` with the files' hashes."""
    filtered = {"empty": 0, "too_long": 0}
    kept = {}
    for name, stream in streams.items():
        kept[name] = 0
        for _, source, target in stream.pairs("checking", hashes):
            if not source.strip() or not target.strip():
                filtered["empty"] += 1
            elif len(source) > max_chars or len(target) > max_chars:
                filtered["too_long"] += 1
            else:
                kept[name] += 1
        if kept[name] == 0:
            raise CharrnnError(
                stream.inputs[0][0].name,
                "no usable pairs (all empty or too long)",
                "pass source<TAB>target lines with text on both sides",
            )
    return kept, filtered


def _splitter(streams: dict, kept: dict, config: TokenizeConfig, shuffle_seed, max_chars: int):
    """`split_pairs(stage)`: the kept pairs with their split, read again at each stage: the
    main stream's by the tail (or hash, with --shuffle) unless --val/--test files give them."""
    explicit = len(streams) > 1
    if not explicit and shuffle_seed is None:
        n = kept["main"]
        if (config.val_frac and round(n * config.val_frac) == 0) or (
            config.test_frac and round(n * config.test_frac) == 0
        ):
            raise CharrnnError(
                streams["main"].inputs[0][0].name,
                f"too few pairs to split ({n})",
                "pass more pairs, lower --val-frac/--test-frac, or give --val FILE",
            )

    def split_pairs(stage: str) -> Iterator[tuple[str, str, str]]:
        for name, stream in streams.items():
            index = 0
            for _, source, target in stream.pairs(stage):
                if not _usable(source, target, max_chars):
                    continue
                if name != "main":
                    split = name
                elif explicit:
                    split = "train"
                else:
                    split = _split_of(index, config, shuffle_seed, kept["main"])
                index += 1
                yield split, source, target

    return split_pairs


class _PairWriter:
    """Encodes pairs in blocks into each split's source and target files (ids, and token
    offsets per pair), counting tokens, characters, bytes and unknown characters."""

    def __init__(self, tmp: Path, toks: dict[str, Tokenizer]) -> None:
        self.tmp, self.toks = tmp, toks
        self.stats: dict[str, dict] = {}
        self.unknown_chars: dict[str, Counter[str]] = {side: Counter() for side in SIDES}
        self.files: dict = {}
        self.block: dict[str, list] = {}
        self.stack = ExitStack()

    def __enter__(self) -> _PairWriter:
        self.stack.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                for split in list(self.block):
                    self.flush(split)
        finally:
            self.stack.__exit__(*exc)

    def add(self, split: str, source: str, target: str) -> None:
        if split not in self.stats:
            self._open(split)
        self.stats[split]["pairs"] += 1
        self.block.setdefault(split, []).append((source, target))
        if len(self.block[split]) >= ENCODE_BLOCK:
            self.flush(split)

    def _open(self, split: str) -> None:
        sides = {
            side: {
                "file": f"{split}.{side}.bin",
                "index": f"{split}.{side}.idx",
                "tokens": 0,
                "chars": 0,
                "bytes": 0,
                "unknown": 0,
            }
            for side in SIDES
        }
        self.stats[split] = {"pairs": 0, **sides}
        for side in SIDES:
            for ext in ("bin", "idx"):
                f = self.stack.enter_context(open(self.tmp / f"{split}.{side}.{ext}", "wb"))  # noqa: SIM115 (closed by self.stack)
                self.files[split, side, ext] = f
                if ext == "idx":
                    np.zeros(1, dtype=np.uint64).tofile(f)

    def flush(self, split: str) -> None:
        pairs = self.block.pop(split, [])
        if not pairs:
            return
        for side_index, side in enumerate(SIDES):
            texts = [p[side_index] for p in pairs]
            tok = self.toks[side]
            ids, lengths = encode_many(tok, texts)
            s = self.stats[split][side]
            ids.tofile(self.files[split, side, "bin"])
            offsets = s["tokens"] + np.concatenate([[0], np.cumsum(lengths)])[1:]
            offsets.astype(np.uint64).tofile(self.files[split, side, "idx"])
            s["tokens"] += int(lengths.sum())
            s["chars"] += sum(len(t) for t in texts)
            s["bytes"] += sum(len(t.encode("utf-8")) for t in texts)
            unk = tok.unknown_count(ids)
            if unk:
                s["unknown"] += unk
                self.unknown_chars[side].update(tok.unknown_chars("".join(texts), ids))


def pick_vocabulary(split_pairs, config: TokenizeConfig, shared: bool):
    """`--vocab auto` for parallel text (charrnn.tokenizer.auto_vocabulary over both sides of
    the training pairs): a BPE vocabulary is shared by both sides. Measured on Multi30k fr-en
    (docs/numbers.md): BPE 8,000 shared is what made the 10-minute model translate. Returns
    the config, whether shared, and a line saying why."""
    texts = (s + " " + t for split, s, t in split_pairs("vocabulary") if split == "train")
    vocab, size, why = auto_vocabulary(texts, config.vocab_size, "pairs")
    if vocab == "bpe":
        shared, why = True, why.replace(":", " shared:", 1)
    return replace(config, vocab=vocab, vocab_size=size), shared, why


def _build_vocabularies(split_pairs, hists, config: TokenizeConfig, shared: bool) -> dict:
    kw = {"lowercase": config.lowercase, "normalize": config.normalize}
    if config.vocab == "char":
        for split, source, target in split_pairs("vocabulary"):
            if split == "train":
                hists["source"].add(source)
                hists["target"].add(target)
        alphabets = {side: hists[side].alphabet() for side in SIDES}
        if shared:
            both = sorted(set(alphabets["source"]) | set(alphabets["target"]))
            alphabets = {side: both for side in SIDES}
        toks = {}
        for side in SIDES:
            check_vocab_size("char", config.vocab_size, len(alphabets[side]))
            toks[side] = CharTokenizer.build(alphabets[side], **kw)
        return toks
    vocab_size = config.vocab_size or DEFAULT_BPE_VOCAB
    check_vocab_size("bpe", vocab_size)

    def side_texts(which: Sequence[int]) -> Iterator[str]:
        for split, source, target in split_pairs("vocabulary"):
            if split == "train":
                if 0 in which:
                    hists["source"].add(source)
                if 1 in which:
                    hists["target"].add(target)
                for i in which:
                    yield (source, target)[i]

    if shared:
        tok = BPETokenizer.train(side_texts((0, 1)), vocab_size=vocab_size, **kw)
        return {"source": tok, "target": tok}
    return {
        side: BPETokenizer.train(side_texts((i,)), vocab_size=vocab_size, **kw)
        for i, side in enumerate(SIDES)
    }


def encode_many(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The ids of many lines, concatenated, and each line's number of ids."""
    if isinstance(tok, CharTokenizer):
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        return tok.encode("".join(texts), normalized=True), lengths
    encodings = tok._batch(texts)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
    ids = np.fromiter(
        (i for e in encodings for i in e.ids), dtype=tok.dtype, count=int(lengths.sum())
    )
    return ids, lengths


# -- reading a pair data directory ---------------------------------------------------------------


@dataclass
class PairSplit:
    """One split's pairs: flat ids and offsets per side."""

    source: np.ndarray
    source_offsets: np.ndarray
    target: np.ndarray
    target_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.source_offsets) - 1

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The source and target ids of pair i."""
        so, to = self.source_offsets, self.target_offsets
        return self.source[so[i] : so[i + 1]], self.target[to[i] : to[i + 1]]


@dataclass
class PairDataset:
    """A data directory of parallel text."""

    path: Path
    meta: dict
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer

    @property
    def splits(self) -> list[str]:
        return [name for name in SPLITS if name in self.meta["splits"]]

    def split(self, name: str) -> PairSplit:
        """A split's pairs, memory-mapped."""
        if name not in self.meta["splits"]:
            raise CharrnnError(
                str(self.path),
                f"has no {name} split (it has: {', '.join(self.splits)})",
                "choose another --split, or re-run charrnn tokenize --pairs with "
                "--val-frac/--test-frac or --val/--test",
            )
        info = self.meta["splits"][name]
        arrays = []
        for side in SIDES:
            s = info[side]
            dtype = self.meta["dtype"][side]
            ids = (
                np.memmap(self.path / s["file"], dtype=dtype, mode="r", shape=(s["tokens"],))
                if s["tokens"]
                else np.zeros(0, dtype=dtype)
            )
            offsets = np.fromfile(self.path / s["index"], dtype=np.uint64).astype(np.int64)
            arrays += [ids, offsets]
        return PairSplit(*arrays)

    def stats(self, name: str) -> dict:
        """Pairs and per-side counts of a split."""
        return self.meta["splits"][name]

    @property
    def tokenizers(self) -> dict[str, Tokenizer]:
        """Its vocabularies by name, as a checkpoint keeps them."""
        return {"source": self.source_tokenizer, "target": self.target_tokenizer}


def load_pair_dataset(path: Path, meta: dict) -> PairDataset:
    """Open a pair data directory (after `charrnn.data.load_dataset` read its meta)."""
    toks = [load(path / f"{side}.tokenizer.json") for side in SIDES]
    for info in meta["splits"].values():
        for side in SIDES:
            s = info[side]
            itemsize = np.dtype(meta["dtype"][side]).itemsize
            fix = "re-run charrnn tokenize --pairs"
            check_size(path / s["file"], s["tokens"] * itemsize, fix)
            check_size(path / s["index"], (info["pairs"] + 1) * 8, fix)
    return PairDataset(path, meta, *toks)


def describe_pairs(meta: dict) -> dict:
    """Summary numbers of a pair data directory for humans and `--json`."""
    train = meta["splits"].get("train", {})
    return {
        "kind": "pairs",
        "vocab": meta["vocab"],
        "dtype": meta["dtype"],
        "splits": meta["splits"],
        "filtered": meta["filtered"],
        # the shapes of a text data directory's summary, one per side
        "top_chars": {
            side: [
                {"char": c, "fraction": n / max(train.get(side, {}).get("chars", 0), 1)}
                for c, n in meta["top_chars"][side]
            ]
            for side in SIDES
        },
        "unknown_chars": {side: dict(meta["unknown_chars"][side]) for side in SIDES},
        "sources": meta["sources"]["count"],
    }
