"""`charrnn tokenize` and `charrnn info`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn import data as datamod
from charrnn import datadir, kinds
from charrnn.cli._app import (
    Json,
    Quiet,
    app,
    looks_parallel,
    out,
    out_json,
    progress_bar,
    warn,
)
from charrnn.config import TokenizeConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.labels import (
    DEFAULT_SEED,
    check_label_column,
)
from charrnn.pairs import DEFAULT_MAX_CHARS

TD = TokenizeConfig  # defaults live in the dataclass


# -- tokenize ----------------------------------------------------------------------------------


@app.command()
def tokenize(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Text files, directories (searched recursively), .gz files, - for stdin, or "
            "a built-in corpus (builtin:shakespeare, builtin:names, builtin:python, "
            "builtin:dates, builtin:plays). Several inputs are concatenated in order.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Data directory to write.")],
    vocab: Annotated[
        str,
        typer.Option(
            help="Vocabulary: auto, char (Unicode code points) or bpe (byte-level BPE); "
            "auto is char, but for parallel text of a real language (1,000+ distinct words): "
            "one BPE vocabulary for both sides."
        ),
    ] = TD.vocab,
    vocab_size: Annotated[
        int | None,
        typer.Option(
            help="BPE vocabulary size including 4 special tokens (default 4096). For char: an "
            "upper bound, checked against the alphabet.",
            show_default=False,
        ),
    ] = TD.vocab_size,
    lowercase: Annotated[bool, typer.Option(help="Lowercase the text.")] = TD.lowercase,
    normalize: Annotated[
        str, typer.Option(help="Unicode normalization: none, nfc, nfd, nfkc or nfkd.")
    ] = TD.normalize,
    val_frac: Annotated[
        float | None,
        typer.Option(
            help=f"Fraction of the text (its tail) kept for validation (default {TD.val_frac}); "
            "--labels: a seeded sample of each label's examples.",
            show_default=False,
        ),
    ] = None,
    test_frac: Annotated[
        float | None,
        typer.Option(
            help=f"Fraction of the text (the very end) kept for testing (default {TD.test_frac}); "
            "--labels: a seeded sample of each label's examples.",
            show_default=False,
        ),
    ] = None,
    val: Annotated[
        list[str] | None,
        typer.Option(help="Validation text from these files instead of a tail split (repeatable)."),
    ] = None,
    test: Annotated[
        list[str] | None,
        typer.Option(help="Test text from these files instead of a tail split (repeatable)."),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="Reuse this vocabulary (a data directory or tokenizer.json) instead of "
            "building one; --vocab, --vocab-size, --lowercase and --normalize come from it "
            "(and, for --labels, the label set of a labelled data directory)."
        ),
    ] = None,
    glob: Annotated[str, typer.Option(help="File-name pattern for directory inputs.")] = TD.glob,
    encoding: Annotated[str, typer.Option(help="Text encoding of the inputs.")] = TD.encoding,
    errors: Annotated[
        str, typer.Option(help="Undecodable bytes: strict (stop with an error), replace or ignore.")
    ] = TD.errors,
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs",
            help="Parallel text for seq2seq: a TSV (source TAB target per line), two "
            "line-aligned files SRC TGT, - (a TSV on stdin) or builtin:dates.",
        ),
    ] = False,
    shared_vocab: Annotated[
        bool, typer.Option("--shared-vocab", help="--pairs: one vocabulary for both sides.")
    ] = False,
    max_chars: Annotated[
        int | None,
        typer.Option(
            help="--pairs: drop (and count) pairs with a side longer than this (default 1000).",
            show_default=False,
        ),
    ] = None,
    shuffle: Annotated[
        bool,
        typer.Option(
            "--shuffle",
            help="--pairs: split by a seeded hash of the line number instead of "
            "taking the tail (for files sorted by length or topic).",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            help="--shuffle or --labels: the split's seed (default 0).", show_default=False
        ),
    ] = None,
    labels: Annotated[
        bool,
        typer.Option(
            "--labels",
            help="Labelled text for classification: a TSV (text TAB label per line), - (a TSV "
            "on stdin), a folder with one subfolder of text files per label, or builtin:plays.",
        ),
    ] = False,
    label_column: Annotated[
        str | None,
        typer.Option(
            help="--labels: the TSV column holding the label, first or last (default last).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DATA_DIR if it exists.")] = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Turn a corpus into token ids on disk (tokenizer.json, meta.json, train/val/test .bin)."""
    kind = kinds.data_kind(inputs, pairs, labels)
    own_flags = {"--shared-vocab": shared_vocab, "--max-chars": max_chars, "--shuffle": shuffle}
    own_flags["--label-column"] = label_column
    _check_kind_options(kind, own_flags, glob=glob, seed=seed)
    for frac, files, name in ((val_frac, val, "val"), (test_frac, test, "test")):
        if frac is not None and files:
            raise UsageError(
                f"--{name}-frac",
                f"and --{name} FILE both choose the {name} text",
                "drop one of them",
            )
    if kind == "lm":
        _warn_parallel(inputs)
    config = TokenizeConfig(
        vocab=vocab,
        vocab_size=vocab_size,
        lowercase=lowercase,
        normalize=normalize,
        val_frac=0.0 if val else (TD.val_frac if val_frac is None else val_frac),
        test_frac=0.0 if test else (TD.test_frac if test_frac is None else test_frac),
        glob=glob,
        encoding=encoding,
        errors=errors,
    )
    vocabulary, label_set = None, None
    if tokenizer is not None:
        if (vocab, vocab_size, lowercase, normalize) != (TD.vocab, None, False, TD.normalize):
            raise UsageError(
                "--tokenizer",
                "vocabulary options given together with a tokenizer",
                "drop --vocab/--vocab-size/--lowercase/--normalize",
            )
        vocabulary, label_set = _vocabulary(tokenizer, kind)
    given = {"val_inputs": val or (), "test_inputs": test or (), "force": force}
    given["vocabulary"] = vocabulary
    own = {  # each kind's writer takes its own of these (Kind.data_options)
        "shared_vocab": shared_vocab,
        "max_chars": DEFAULT_MAX_CHARS if max_chars is None else max_chars,
        "shuffle_seed": (seed or 0) if shuffle else None,
        "label_column": label_column or "last",
        "labels": label_set,
        "seed": DEFAULT_SEED if seed is None else seed,
    }
    writes = kinds.for_data(kind)
    options = {**given, **{k: v for k, v in own.items() if k in writes.data_options}}
    with progress_bar(quiet) as progress:
        meta = writes.write_data(inputs, out_dir, config, **options, progress=progress)
    summary = {"path": str(out_dir), **writes.describe_data(meta)}
    if vocabulary is None:
        _warn_small_bpe(config, summary["vocab"])
    _show_data(writes, summary, "wrote", as_json)


def _show_data(kind: kinds.Kind, summary: dict, verb: str, as_json: bool) -> None:
    if as_json:
        out_json(summary)
        return
    for line in kind.data_lines(summary, verb):
        out(line)


OWN_FLAGS = {  # the flags of only some kinds' writers, and the option each sets
    "--shared-vocab": "shared_vocab",
    "--max-chars": "max_chars",
    "--shuffle": "shuffle_seed",
    "--label-column": "label_column",
}


def _check_kind_options(kind: str, own_flags: dict, *, glob, seed) -> None:
    """Raise for a flag that the kind of text does not take."""
    takes = kinds.for_data(kind).data_options
    for flag, value in own_flags.items():
        if value not in (None, False) and OWN_FLAGS[flag] not in takes:
            owner = next(k for k in kinds.KINDS.values() if OWN_FLAGS[flag] in k.data_options)
            raise UsageError(flag, f"is for {owner.reads}", f"add {owner.flag}, or drop it")
    if kind == "pairs" and glob != TD.glob:
        raise UsageError(
            "--glob", "picks files in folders of text, not parallel text", "drop --glob"
        )
    if seed is not None and not own_flags["--shuffle"] and "seed" not in takes:
        raise UsageError(
            "--seed", "seeds --shuffle (and the split of --labels)", "add --shuffle, or drop --seed"
        )
    if own_flags["--label-column"] is not None:
        check_label_column(own_flags["--label-column"])


def _warn_parallel(inputs: list[str]) -> None:
    """Warn about text files that look like TSV, made language-model data of."""
    for item in inputs:
        if looks_parallel(item):
            warn(
                f"{item} looks like parallel text (a TAB in nearly every line): this makes "
                "language-model data of it; add --pairs for seq2seq data (or --labels for "
                "labelled text)"
            )


# -- info --------------------------------------------------------------------------------------


@app.command()
def info(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A data directory, a checkpoint (.pt) or a run directory.",
            show_default=False,
        ),
    ],
    as_json: Json = False,
) -> None:
    """Describe a data directory (vocabulary, splits, sizes) or a checkpoint or run (model,
    parameters, training progress, latest scores)."""
    from charrnn.trained import describe_checkpoint  # torch: only once a command runs

    if not path.exists():
        raise CharrnnError(str(path), "no such file or directory", "check the path")
    if (  # data directories are folders; a run's folder holds its log from the start
        path.suffix == ".pt"
        or path.is_file()
        or datadir.is_run_dir(path)
        or (path / "metrics.jsonl").is_file()
    ):
        summary = describe_checkpoint(path)
        if as_json:
            out_json(summary)
            return
        _print_checkpoint(summary)
        return
    meta = datamod.load_dataset(path).meta
    kind = kinds.of_data(meta, str(path))
    _show_data(kind, {"path": str(path), **kind.describe_data(meta)}, "data directory", as_json)


def _warn_small_bpe(config: TokenizeConfig, vocab: dict) -> None:
    """A BPE vocabulary smaller than asked: the text ran out of pairs to merge."""
    asked = config.vocab_size
    if "source" not in vocab:  # one vocabulary
        sides = {"": vocab}
    elif vocab["shared"]:  # parallel text, one vocabulary for both sides
        sides = {"": vocab["source"]}
    else:
        sides = {f" ({side})": vocab[side] for side in ("source", "target")}
    for side, v in sides.items():
        if config.vocab == "bpe" and asked and v["size"] < asked:
            got = v["size"]
            warn(
                f"--vocab-size {asked}: the text gave {got:,} tokens{side} (no more pairs to merge)"
            )


def _vocabulary(path: Path, kind: str):
    """--tokenizer: a data directory's vocabulary (both sides for parallel text) and, for
    labelled text, its label set (None where it has none)."""
    parallel = (path / "source.tokenizer.json").is_file()
    if kind == "pairs" and parallel:
        ds = datamod.load_dataset(path)
        return (ds.source_tokenizer, ds.target_tokenizer), None
    if parallel:
        fix = "add --pairs" if kind == "lm" else "pass a data directory of labelled or plain text"
        raise UsageError("--tokenizer", f"{path} holds parallel text", fix)
    vocab = datamod.load_vocabulary(path)
    if kind == "pairs":
        return (vocab, vocab), None
    if kind == "labels" and datadir.is_dataset(path):
        return vocab, getattr(datamod.load_dataset(path), "labels", None)
    return vocab, None


def _print_checkpoint(summary: dict) -> None:
    model, train = summary["model"], summary["train"]
    fields = model["config"]  # only the fields that mean something for its kind
    config = ", ".join(f"{k}={v}" for k, v in fields.items())
    out(
        f"{summary['path']}: {summary['kind']} model '{model['name']}' with "
        f"{model['params']:,} parameters (charrnn {summary['charrnn_version']}, "
        f"format {summary['version']})"
    )
    out(f"  config: {config}")
    for name, vocab in summary["tokenizers"].items():
        out(f"  vocabulary ({name}): {vocab['kind']}, {vocab['size']:,} tokens")
    if model.get("labels"):
        out(f"  labels ({len(model['labels'])}): {', '.join(model['labels'])}")
    out(
        f"  trained: {train['step']:,} steps, {train.get('epochs', train['epoch'])} epochs, "
        f"{(train['elapsed'] or 0):.0f}s, {(train['tokens'] or 0):,} tokens"
    )
    for label, scores in (("latest", summary["metrics"]), ("best", summary["best_metrics"])):
        if scores and "val_accuracy" in scores:
            out(
                f"  {label} val: loss {scores['val_loss']:.4f}, accuracy "
                f"{scores['val_accuracy']:.4f}, macro F1 {scores['val_macro_f1']:.4f} "
                f"(step {scores['step']})"
            )
        elif scores and "val_loss" in scores:
            out(
                f"  {label} val: loss {scores['val_loss']:.4f}, bpc {scores['val_bpc']:.4f} "
                f"(step {scores['step']})"
            )
    if summary.get("data"):
        out(f"  data: {summary['data'].get('path')}")
    if summary.get("command"):
        out(f"  command: {summary['command']}")
