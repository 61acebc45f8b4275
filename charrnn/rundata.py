"""The data a run trains on: INPUT (raw text, a built-in corpus or stdin) tokenized once into a
cache keyed by its files and options, or a data directory as it is; and, on resume, the same
data found again where the run left it or where INPUT says it lies now."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from charrnn import corpus, datadir, kinds
from charrnn import data as datamod
from charrnn.config import TokenizeConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.tokenizer import from_json
from charrnn.trained import saved_data_path


def prepare_data(
    source: str,
    *,
    cache_dir: Path | None,
    vocab: TokenizeConfig = TokenizeConfig(),
    marked: str = "lm",
    label_column: str = "last",
    scratch: Path | None = None,
    vocabulary=None,
    progress=None,
):
    """A data directory as is; raw text (a file, directory, builtin:NAME or -) tokenized once
    into `cache_dir` (keyed by the sources' paths, sizes and times and the options) and
    reused by later runs. Stdin cannot be cached: it goes to `scratch`. `marked` is the
    data kind the flags say the text is (see `data_kind`): lm (plain text), pairs (source TAB
    target; also a built-in pair task such as builtin:dates) or labels (text TAB label, the
    label in `label_column`, or a folder of label folders). With `vocabulary` (a tokenizer,
    or a pair of them for parallel text) the text is encoded with it instead of a new one."""
    marked = kinds.data_kind([source], marked == "pairs", marked == "labels")
    if source != "-" and datadir.is_dataset(source):
        return datamod.load_dataset(source)
    if source == "-" or cache_dir is None or corpus.is_stream(source):  # nothing to key a cache
        if scratch is None:
            raise UsageError("INPUT", "stdin needs a place to keep its tokens", "pass a file")
        target = scratch
        if datadir.is_dataset(target):
            shutil.rmtree(target)
    else:
        key = cache_key(source, vocab, marked, vocabulary, label_column)
        target = Path(cache_dir) / key
        if datadir.is_dataset(target):
            return datamod.load_dataset(target)
    try:
        kind = kinds.for_data(marked)
        options = {"label_column": label_column} if "label_column" in kind.data_options else {}
        options.update(vocabulary=vocabulary, progress=progress)
        kind.write_data([source], target, vocab, **options)
    except CharrnnError:
        if datadir.is_dataset(target):  # another process tokenized it at the same time
            return datamod.load_dataset(target)
        raise
    return datamod.load_dataset(target)


def stored_path(data: Path, run_dir: Path) -> str:
    """The data path a checkpoint keeps: relative when the data lies inside the run."""
    data, run_dir = data.resolve(), run_dir.resolve()
    return str(data.relative_to(run_dir)) if data.is_relative_to(run_dir) else str(data)


def same_data(
    source: str, data_path: str, cache_dir, vocab: TokenizeConfig, marked: str, label_column: str
) -> bool:
    """Whether INPUT names the data a run was trained on: the data directory itself, or raw
    text whose cached tokenization it is."""
    if source == "-":
        return False
    if datadir.is_dataset(source):
        return Path(source).resolve() == Path(data_path).resolve()
    if cache_dir is None:
        return False
    key = cache_key(source, vocab, marked, label_column=label_column)
    return (Path(cache_dir) / key).resolve() == Path(data_path).resolve()


def check_same_data(dataset, saved: dict, source: str) -> None:
    """Raise unless `dataset` holds the data a run was trained on: the same vocabulary and the
    same validation split."""
    now = {name: tok.to_json() for name, tok in dataset.tokenizers.items()}
    if now != saved["tokenizers"]:
        raise CharrnnError(
            str(source),
            "it holds another vocabulary than the run's",
            "resume with the exact text (or data directory) the run was trained on",
        )
    val = dataset.stats("val") if "val" in dataset.splits else None
    if val != (saved.get("data") or {}).get("val"):
        raise CharrnnError(
            str(source),
            "its validation split differs from the run's: it is other data",
            "resume with the exact text (or data directory) the run was trained on",
        )


def cache_key(
    source: str, vocab: TokenizeConfig, marked: str, vocabulary=None, label_column: str = "last"
) -> str:
    files = (
        [source]
        if source.startswith("builtin:") and kinds.data_kind([source]) != "lm"
        else [
            [str(s.path.resolve()), s.size, s.path.stat().st_mtime_ns]
            for s in corpus.resolve([source], glob=vocab.glob)
        ]
    )
    # "reader": how text is read (2: a UTF-8 byte order mark is dropped), so that a change
    # there tokenizes again instead of reusing what the old reading made
    options = {"files": files, "options": asdict(vocab), "pairs": marked == "pairs", "reader": 2}
    if marked == "labels":
        options["labels"] = label_column
    if vocabulary is not None:  # text encoded with a run's own tokenizer(s)
        toks = vocabulary if isinstance(vocabulary, tuple) else (vocabulary,)
        blob = "".join(t.to_json() for t in toks)
        options["vocabulary"] = hashlib.sha256(blob.encode()).hexdigest()
    blob = json.dumps(options, sort_keys=True)
    name = Path(source).name.replace(":", "-") or "corpus"
    kind = {"lm": "text"}.get(marked, marked)
    return f"{name}-{kind}-{vocab.vocab}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def resumed_data(saved, run_dir, data: tuple, progress):
    """The data a resumed run continues on: its own data directory, or INPUT standing in
    for it when that holds the same data. `data`: INPUT, the cache, the vocabulary options,
    the data kind and the label column."""
    source, cache_dir, vocab, marked, label_column = data
    data_path = saved_data_path(saved, run_dir)
    data_there = bool(data_path) and datadir.is_dataset(data_path)
    if source is None or (
        data_there and same_data(source, data_path, cache_dir, vocab, marked, label_column)
    ):
        if not data_there:
            raise CharrnnError(
                str(run_dir),
                f"the run's data directory {data_path} is gone",
                "resume with the text it was trained on (charrnn train INPUT --resume "
                "RUN_DIR tokenizes it again), or with its data directory where it lies now",
            )
        dataset = datamod.load_dataset(data_path)
        check_same_data(dataset, saved, data_path)  # not tokenized again in place
        return dataset
    if data_there or source == "-":
        raise UsageError(
            "INPUT",
            f"the run was trained on {data_path}, not on {source}",
            "resume without INPUT (a run keeps its data), or start a new run",
        )
    # the run's data is gone (moved, or a cache cleared or on another machine): INPUT
    # stands in for it if it holds the same data, moved or tokenized again
    if datadir.is_dataset(source):
        dataset = datamod.load_dataset(source)
    else:  # encoded with the run's own vocabulary, so only the split can differ
        own = {name: from_json(text) for name, text in saved["tokenizers"].items()}
        dataset = prepare_data(
            source,
            cache_dir=cache_dir,
            vocab=vocab,
            marked=marked,
            label_column=label_column,
            vocabulary=own["text"] if "text" in own else (own["source"], own["target"]),
            progress=progress,
        )
    check_same_data(dataset, saved, source)
    return dataset
