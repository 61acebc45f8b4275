"""Labelled text (text -> label, for many-to-one classification) on disk, and the built-in
task `builtin:plays`.

Input: TSV files with one example per line, `text<TAB>label` (`label_column="first"` for
`label<TAB>text`), `-` for a TSV on stdin, a folder with one subfolder per label holding one
example per file (as scikit-learn's `load_files` reads), or `builtin:plays`. Every TSV line is
an example: a blank line, a line without a TAB, an empty label or an empty text is an error
naming the line (as `charrnn.pairs` treats a line without a TAB).
Output: a data directory with `tokenizer.json`, `meta.json` (`"kind": "labels"`, the label set
in `"labels"`: index = class id) and per split a flat `.bin` of ids, a `.idx` of uint64
offsets (example i is `ids[idx[i]:idx[i+1]]`) and a `.target.bin` of int32 class ids.

Labelled sets are small (thousands to a few hundred thousand examples): they are read into
memory once. The validation and test examples are a seeded sample of each label's examples
(stratified: a label with two examples or more has one in validation), or --val/--test files.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from charrnn import __version__, corpus
from charrnn.config import TokenizeConfig, to_dict
from charrnn.datadir import (
    DATA_FORMAT,
    DATA_VERSION,
    SPLITS,
    Histogram,
    build,
    check_out_dir,
    check_size,
    describe_sources,
    refuse_data_dirs,
    vocabulary_options,
    write_meta,
)
from charrnn.errors import CharrnnError, UsageError
from charrnn.pairs import encode_many
from charrnn.plays import write_plays
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

LABEL_COLUMNS = ("first", "last")
# Built-in labelled tasks: name -> a function writing its examples as a text<TAB>label TSV.
LABEL_BUILTINS = {"builtin:plays": write_plays}
DEFAULT_SEED = 0  # the stratified split's
TARGET_DTYPE = "int32"
# more distinct labels than this, most seen once, means the text was read as the label
MAX_LABELS_UNCHECKED = 100
_TSV_FIX = "write text<TAB>label on every line (--label-column first for label<TAB>text)"


@dataclass
class _Examples:
    """Examples read from inputs: texts (normalized), labels, and where each came from."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)
    sources: list[corpus.Source] = field(default_factory=list)

    def add(self, text: str, label: str, where: str) -> None:
        self.texts.append(text)
        self.labels.append(label)
        self.wheres.append(where)


def check_label_column(label_column: str) -> None:
    """Raise `UsageError` unless `label_column` is first or last."""
    if label_column not in LABEL_COLUMNS:
        raise UsageError("--label-column", f"unknown column '{label_column}'", "use first or last")


# -- reading -------------------------------------------------------------------------------------


def _parse_line(line: str, where: str, label_column: str) -> tuple[str, str]:
    """The (text, label) of one TSV line; raises for a line that holds no example."""
    if not line.strip():
        raise CharrnnError(
            where, "blank line", f"remove it: every line is one example ({_TSV_FIX})"
        )
    if "\t" not in line:
        raise CharrnnError(where, "no TAB between text and label", _TSV_FIX)
    if label_column == "last":
        text, _, label = line.rpartition("\t")
    else:
        label, _, text = line.partition("\t")
    label = label.strip()
    if not label:
        raise CharrnnError(where, "empty label", _TSV_FIX)
    if not text.strip():
        raise CharrnnError(where, "empty text", "give every example some text, or remove the line")
    return text, label


def _read_tsv(src, out: _Examples, config, label_column: str, hashes, progress) -> None:
    report = (lambda done, total: progress("reading", done, total)) if progress else None
    chunks = corpus.read_text(
        [src], encoding=config.encoding, errors=config.errors, hashes=hashes, progress=report
    )
    text = "".join(chunks)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    norm = {"lowercase": config.lowercase, "form": config.normalize}
    for number, line in enumerate(lines, 1):
        where = f"{src.name} line {number}"
        example, label = _parse_line(line.removesuffix("\r"), where, label_column)
        out.add(normalize_text(example, **norm), label, where)
    out.sources.append(src)


def _read_folder(root: Path, out: _Examples, config: TokenizeConfig, hashes, progress) -> None:
    """One subfolder per label, one example per text file (below it, matching --glob)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise CharrnnError(
            str(root),
            "has no subfolders (labelled text in a folder is one subfolder per label)",
            "put each label's files in a subfolder named after the label, or pass a TSV file",
        )
    norm = {"lowercase": config.lowercase, "form": config.normalize}
    done = 0
    for folder in folders:
        sources = corpus.resolve([str(folder)], glob=config.glob, encoding=config.encoding)
        for src in sources:
            chunks = corpus.read_text(
                [src], encoding=config.encoding, errors=config.errors, hashes=hashes
            )
            text = "".join(chunks).rstrip("\r\n")
            if not text.strip():
                raise CharrnnError(src.name, "empty text", "give every example some text")
            out.add(normalize_text(text, **norm), folder.name, src.name)
            out.sources.append(src)
            done += src.size
            if progress is not None:
                progress("reading", done, None)


def _read_inputs(items, scratch: Path, config, label_column: str, hashes, progress) -> _Examples:
    """The examples of every input, in order."""
    out = _Examples()
    for item in items:
        if item in LABEL_BUILTINS:
            corpus.make_dir(scratch)
            path = scratch / f"{item.split(':')[1]}.tsv"
            LABEL_BUILTINS[item](path)
            src = corpus.Source(item, path, path.stat().st_size)
            _read_tsv(src, out, config, "last", hashes, progress)  # text<TAB>label
        elif corpus.is_builtin(item):
            key = item[len(corpus.BUILTIN_PREFIX) :]
            what, flag = corpus.TASK_BUILTINS.get(key, ("plain text", ""))
            if key in corpus.BUILTINS or key in corpus.TASK_BUILTINS:
                fix = f"pass it with {flag} instead" if flag else "drop --labels"
                raise UsageError(item, f"is {what}, not labelled text", fix)
            corpus.resolve([item])  # an unknown name: the list of built-in corpora
        elif item != "-" and Path(item).is_dir():
            _read_folder(Path(item), out, config, hashes, progress)
        else:
            for src in corpus.resolve([item], spool_dir=scratch, encoding=config.encoding):
                _read_tsv(src, out, config, label_column, hashes, progress)
    return out


# -- splitting and checking ----------------------------------------------------------------------


def _share(n: int, frac: float, at_least_one: bool) -> int:
    return max(round(n * frac), 1 if frac > 0 and at_least_one else 0)


def stratified_split(labels: Sequence[str], val_frac: float, test_frac: float, seed: int):
    """The split of each example: per label, a seeded sample of `val_frac` (at least one of
    a label with two examples or more) and `test_frac`, always keeping one for training."""
    splits = ["train"] * len(labels)
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n = len(rows)
        n_val = min(_share(n, val_frac, n >= 2), n - 1)
        n_test = min(_share(n, test_frac, n - n_val >= 2), n - 1 - n_val)
        for i in rows[:n_val]:
            splits[i] = "val"
        for i in rows[n_val : n_val + n_test]:
            splits[i] = "test"
    return splits


def _check_training_labels(train: list[str], where: str, label_column: str) -> list[str]:
    """The label set of the training examples, sorted; raises if it cannot train a classifier."""
    counts = Counter(train)
    if len(counts) < 2:
        only = f" ('{next(iter(counts))}')" if counts else ""
        raise CharrnnError(
            where,
            f"only one label{only} in the training set ({len(train)} examples)",
            "a classifier needs examples of at least two labels: add some of another label",
        )
    once = sum(1 for n in counts.values() if n == 1)
    if len(counts) > MAX_LABELS_UNCHECKED and once > len(counts) // 2:
        other = "first" if label_column == "last" else "last"
        raise CharrnnError(
            where,
            f"{len(counts):,} distinct labels in {len(train):,} training examples ({once:,} "
            f"seen once): the {label_column} column holds text, not labels",
            f"pass --label-column {other} if the label is the {other} column",
        )
    return sorted(counts)


def _check_known(examples: _Examples, rows: list[int], label_set: list[str], given: bool) -> None:
    """Raise for a validation or test label that the label set lacks."""
    known = set(label_set)
    unknown = Counter(examples.labels[i] for i in rows if examples.labels[i] not in known)
    if unknown:
        label, n = unknown.most_common(1)[0]
        first = next(i for i in rows if examples.labels[i] == label)
        what = "the given label set" if given else "the training set"
        others = f" (and {len(unknown) - 1} more such labels)" if len(unknown) > 1 else ""
        raise CharrnnError(
            examples.wheres[first],
            f"label '{label}' ({n} example{'s' if n > 1 else ''}) is not in {what}{others}",
            "add training examples of it, or remove it from the validation and test data",
        )


def _assign(main: _Examples, extra: dict, config: TokenizeConfig, seed: int):
    """All examples in one `_Examples` with the split of each, and the split method."""
    val_frac = 0.0 if "val" in extra else config.val_frac
    test_frac = 0.0 if "test" in extra else config.test_frac
    splits = stratified_split(main.labels, val_frac, test_frac, seed)
    wanted = [f for f, frac in (("val", val_frac), ("test", test_frac)) if frac > 0]
    for name in wanted:
        if name not in splits:
            raise CharrnnError(
                main.sources[0].name if main.sources else "INPUT",
                f"too few examples to split ({len(splits)}, no label has two)",
                f"pass more examples, lower --{name}-frac, or give --{name} FILE",
            )
    both = _Examples(main.texts[:], main.labels[:], main.wheres[:], main.sources[:])
    for name, examples in extra.items():
        both.texts += examples.texts
        both.labels += examples.labels
        both.wheres += examples.wheres
        splits += [name] * len(examples.texts)
    method = "stratified" if wanted else "files" if extra else "none"
    return both, splits, method


# -- tokenizing ----------------------------------------------------------------------------------


def tokenize_labels(
    inputs: Sequence[str],
    out_dir: str | Path,
    config: TokenizeConfig = TokenizeConfig(),
    *,
    label_column: str = "last",
    val_inputs: Sequence[str] = (),
    test_inputs: Sequence[str] = (),
    vocabulary: Tokenizer | None = None,
    labels: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    progress=None,
) -> dict:
    """Tokenize labelled text into the data directory `out_dir`; return its meta data. With
    `vocabulary` (a model's tokenizer) text is normalized and encoded as the model's was;
    with `labels` (a model's label set) class ids follow it and other labels are errors."""
    refuse_data_dirs([*inputs, *val_inputs, *test_inputs])
    check_label_column(label_column)
    config = vocabulary_options(config, vocabulary)
    config.check()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force, [*inputs, *val_inputs, *test_inputs])
    given = {"vocabulary": vocabulary, "labels": None if labels is None else list(labels)}

    def make(tmp: Path) -> dict:
        meta = _tokenize_labels(
            tmp, (inputs, val_inputs, test_inputs), config, label_column, seed, given, progress
        )
        shutil.rmtree(tmp / ".spool", ignore_errors=True)  # text read once: the ids stay
        return meta

    return build(out_dir, force, make)


def _tokenize_labels(tmp, all_inputs, config, label_column, seed, given, progress) -> dict:
    inputs, val_inputs, test_inputs = all_inputs
    hashes: dict[str, str] = {}

    def read(items):
        return _read_inputs(items, tmp / ".spool", config, label_column, hashes, progress)

    main = read(inputs)
    extra = {n: read(items) for n, items in (("val", val_inputs), ("test", test_inputs)) if items}
    label_set = given["labels"]
    if label_set is None:  # every label keeps an example in training: the main input's set
        where = ", ".join(s.name for s in main.sources[:3])
        label_set = _check_training_labels(main.labels, where, label_column)
    examples, splits, method = _assign(main, extra, config, seed)
    train_rows = [i for i, s in enumerate(splits) if s == "train"]
    if given["labels"] is None:
        _check_known(examples, [i for i, s in enumerate(splits) if s != "train"], label_set, False)
    else:
        _check_known(examples, list(range(len(splits))), label_set, True)
    picked = None
    if config.vocab == "auto":  # word pieces for a real language, else characters
        texts = (examples.texts[i] for i in train_rows)
        vocab, size, picked = auto_vocabulary(texts, config.vocab_size, "labels")
        config = replace(config, vocab=vocab, vocab_size=size)
    hist = Histogram()
    for i in train_rows:
        hist.add(examples.texts[i])
    tok = given["vocabulary"] or _build_vocabulary([examples.texts[i] for i in train_rows], config)
    class_of = {label: k for k, label in enumerate(label_set)}
    stats, unknown_chars = {}, Counter()
    for name in SPLITS:
        rows = [i for i, s in enumerate(splits) if s == name]
        if rows:
            stats[name] = _write_split(tmp, name, examples, rows, tok, class_of, unknown_chars)
    tok.save(tmp / "tokenizer.json")
    sources = {"main": main.sources, **{n: e.sources for n, e in extra.items()}}
    meta = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "kind": "labels",
        "charrnn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vocab": {**tok.describe(), **({"picked": picked} if picked else {})},
        "dtype": tok.dtype.name,
        "target_dtype": TARGET_DTYPE,
        "labels": label_set,
        "labels_from": "given" if given["labels"] is not None else "train split",
        "label_column": label_column,
        "splits": stats,
        "split_method": method,
        "seed": seed,
        "vocabulary_from": "given" if given["vocabulary"] is not None else "train split",
        "options": to_dict(config),
        "top_chars": hist.top(10),
        "train_chars_counted": int(hist.counts.sum()),
        "unknown_chars": [[c, n] for c, n in unknown_chars.most_common(20)],
        "sources": describe_sources(sources, hashes),
    }
    write_meta(tmp, meta)
    return meta


def _build_vocabulary(texts: list[str], config: TokenizeConfig) -> Tokenizer:
    """A char vocabulary of the training texts' characters, or BPE trained on them."""
    kw = {"lowercase": config.lowercase, "normalize": config.normalize}
    if config.vocab == "bpe":
        vocab_size = config.vocab_size or DEFAULT_BPE_VOCAB
        check_vocab_size("bpe", vocab_size)
        return BPETokenizer.train(iter(texts), vocab_size=vocab_size, length=len(texts), **kw)
    alphabet = sorted(set("".join(texts)))
    check_vocab_size("char", config.vocab_size, len(alphabet))
    return CharTokenizer.build(alphabet, **kw)


def _write_split(tmp: Path, name: str, examples: _Examples, rows, tok, class_of, unknown) -> dict:
    """Encode one split's examples to its files; its statistics."""
    texts = [examples.texts[i] for i in rows]
    ids, lengths = encode_many(tok, texts)
    ids.astype(tok.dtype).tofile(tmp / f"{name}.bin")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.uint64)
    offsets.tofile(tmp / f"{name}.idx")
    targets = np.array([class_of[examples.labels[i]] for i in rows], dtype=TARGET_DTYPE)
    targets.tofile(tmp / f"{name}.target.bin")
    per_label = np.bincount(targets, minlength=len(class_of))
    n_unknown = tok.unknown_count(ids)
    if n_unknown:
        unknown.update(tok.unknown_chars("".join(texts), ids))
    return {
        "file": f"{name}.bin",
        "index": f"{name}.idx",
        "targets": f"{name}.target.bin",
        "examples": len(rows),
        "tokens": int(lengths.sum()),
        "chars": sum(len(t) for t in texts),
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "unknown": n_unknown,
        "labels": {label: int(per_label[k]) for label, k in class_of.items()},
    }


# -- reading a labelled data directory -----------------------------------------------------------


@dataclass
class LabelSplit:
    """One split's examples: flat ids, token offsets per example, and class ids."""

    ids: np.ndarray
    offsets: np.ndarray  # (N + 1,) int64: example i is ids[offsets[i]:offsets[i + 1]]
    targets: np.ndarray  # (N,) int64 class ids: indexes into the data directory's labels

    def __len__(self) -> int:
        return len(self.targets)

    def example(self, i: int) -> tuple[np.ndarray, int]:
        """The ids and class id of example i."""
        return self.ids[self.offsets[i] : self.offsets[i + 1]], int(self.targets[i])

    @property
    def lengths(self) -> np.ndarray:
        """(N,) tokens per example."""
        return np.diff(self.offsets)


@dataclass
class LabelDataset:
    """A data directory of labelled text."""

    path: Path
    meta: dict
    tokenizer: Tokenizer

    @property
    def labels(self) -> list[str]:
        """The label set: class id k is labels[k]."""
        return list(self.meta["labels"])

    @property
    def splits(self) -> list[str]:
        return [name for name in SPLITS if name in self.meta["splits"]]

    def split(self, name: str) -> LabelSplit:
        """A split's examples (ids memory-mapped)."""
        if name not in self.meta["splits"]:
            raise CharrnnError(
                str(self.path),
                f"has no {name} split (it has: {', '.join(self.splits)})",
                "choose another --split, or re-run charrnn tokenize --labels with "
                "--val-frac/--test-frac or --val/--test",
            )
        s = self.meta["splits"][name]
        dtype = self.meta["dtype"]
        ids = (
            np.memmap(self.path / s["file"], dtype=dtype, mode="r", shape=(s["tokens"],))
            if s["tokens"]
            else np.zeros(0, dtype=dtype)
        )
        offsets = np.fromfile(self.path / s["index"], dtype=np.uint64).astype(np.int64)
        targets = np.fromfile(self.path / s["targets"], dtype=TARGET_DTYPE).astype(np.int64)
        if len(targets) and not 0 <= targets.min() <= targets.max() < len(self.labels):
            raise CharrnnError(
                str(self.path / s["targets"]),
                f"class ids outside the {len(self.labels)} labels (corrupt)",
                "re-run charrnn tokenize --labels",
            )
        return LabelSplit(ids, offsets, targets)

    def stats(self, name: str) -> dict:
        """Examples, tokens, characters, unknowns and examples per label of a split."""
        return self.meta["splits"][name]

    @property
    def tokenizers(self) -> dict[str, Tokenizer]:
        """Its vocabulary by name, as a checkpoint keeps it."""
        return {"text": self.tokenizer}


def load_label_dataset(path: Path, meta: dict) -> LabelDataset:
    """Open a labelled data directory (after `charrnn.data.load_dataset` read its meta)."""
    tok = load(path / "tokenizer.json")
    fix = "re-run charrnn tokenize --labels"
    labels = meta.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise CharrnnError(str(path / "meta.json"), "no label set (corrupt meta data)", fix)
    if tok.vocab_size != meta["vocab"]["size"]:
        raise CharrnnError(str(path), "tokenizer.json does not match meta.json", fix)
    itemsize = np.dtype(meta["dtype"]).itemsize
    for s in meta["splits"].values():
        check_size(path / s["file"], s["tokens"] * itemsize, fix)
        check_size(path / s["index"], (s["examples"] + 1) * 8, fix)
        check_size(path / s["targets"], s["examples"] * np.dtype(TARGET_DTYPE).itemsize, fix)
    return LabelDataset(path, meta, tok)


def describe_labels(meta: dict) -> dict:
    """Summary numbers of a labelled data directory for humans and `--json`."""
    total = meta["train_chars_counted"] or 1
    return {
        "kind": "labels",
        "vocab": meta["vocab"],
        "dtype": meta["dtype"],
        "labels": meta["labels"],
        "splits": meta["splits"],
        "split_method": meta["split_method"],
        "top_chars": [{"char": c, "fraction": n / total} for c, n in meta["top_chars"]],
        "unknown_chars": dict(meta["unknown_chars"]),
        "sources": meta["sources"]["count"],
    }


def encode_examples(
    source: str,
    tokenizer: Tokenizer,
    known: Sequence[str],
    label_column: str = "last",
    progress=None,
) -> tuple[LabelSplit, int]:
    """Labelled text (a TSV, a folder of label folders, -, a built-in task) encoded with a
    model's tokenizer, its class ids those of the model's labels `known` (another label is an
    error), and how many tokens are unknown to the vocabulary."""
    check_label_column(label_column)
    config = replace(
        TokenizeConfig(), lowercase=tokenizer.lowercase, normalize=tokenizer.normalize_form
    )
    with tempfile.TemporaryDirectory(prefix="charrnn-") as scratch:
        examples = _read_inputs([source], Path(scratch), config, label_column, {}, progress)
    _check_known(examples, list(range(len(examples.texts))), list(known), True)
    ids, lengths = encode_many(tokenizer, examples.texts)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    targets = np.array([list(known).index(label) for label in examples.labels], dtype=np.int64)
    return LabelSplit(ids, offsets, targets), int(tokenizer.unknown_count(ids))
