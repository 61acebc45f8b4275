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
    describe_labels,
    tokenize_labels,
)
from charrnn.pairs import DEFAULT_MAX_CHARS, describe_pairs, tokenize_pairs

TD = TokenizeConfig  # defaults live in the dataclass
MAX_LABELS_SHOWN = 30  # rows of the per-label table; --json has them all


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
    _check_kind_options(
        kind,
        {"--shared-vocab": shared_vocab, "--max-chars": max_chars, "--shuffle": shuffle},
        glob=glob,
        seed=seed,
        label_column=label_column,
    )
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
    if kind == "pairs":
        options = {"shared_vocab": shared_vocab, "shuffle_seed": (seed or 0) if shuffle else None}
        options["max_chars"] = DEFAULT_MAX_CHARS if max_chars is None else max_chars
        _tokenize_pairs(inputs, out_dir, config, {**given, **options}, quiet, as_json)
        return
    if kind == "labels":
        options = {"label_column": label_column or "last", "labels": label_set}
        options["seed"] = DEFAULT_SEED if seed is None else seed
        _tokenize_labels(inputs, out_dir, config, {**given, **options}, quiet, as_json)
        return
    with progress_bar(quiet) as progress:
        meta = datamod.tokenize_corpus(inputs, out_dir, config, **given, progress=progress)
    summary = {"path": str(out_dir), **datamod.describe(meta)}
    if vocabulary is None:
        _warn_small_bpe(config, summary["vocab"]["size"])
    if as_json:
        out_json(summary)
    else:
        _print_data_summary(summary, verb="wrote")


def _check_kind_options(kind: str, pair_options: dict, *, glob, seed, label_column) -> None:
    """Raise for a flag that the kind of text does not take."""
    for flag, value in pair_options.items():
        if value not in (None, False) and kind != "pairs":
            raise UsageError(flag, "is for parallel text", "add --pairs, or drop it")
    if kind == "pairs" and glob != TD.glob:
        raise UsageError(
            "--glob", "picks files in folders of text, not parallel text", "drop --glob"
        )
    if seed is not None and not pair_options["--shuffle"] and kind != "labels":
        raise UsageError(
            "--seed", "seeds --shuffle (and the split of --labels)", "add --shuffle, or drop --seed"
        )
    if label_column is not None:
        if kind != "labels":
            raise UsageError("--label-column", "is for labelled text", "add --labels, or drop it")
        check_label_column(label_column)


def _warn_parallel(inputs: list[str]) -> None:
    """Warn about text files that look like TSV, made language-model data of."""
    for item in inputs:
        if looks_parallel(item):
            warn(
                f"{item} looks like parallel text (a TAB in nearly every line): this makes "
                "language-model data of it; add --pairs for seq2seq data (or --labels for "
                "labelled text)"
            )


def _tokenize_pairs(inputs, out_dir, config, options: dict, quiet: bool, as_json: bool) -> None:
    with progress_bar(quiet) as progress:
        meta = tokenize_pairs(inputs, out_dir, config, **options, progress=progress)
    summary = {"path": str(out_dir), **describe_pairs(meta)}
    if options["vocabulary"] is None:
        v = summary["vocab"]
        for side in ("source",) if v["shared"] else ("source", "target"):
            _warn_small_bpe(config, v[side]["size"], "" if v["shared"] else f" ({side})")
    if as_json:
        out_json(summary)
    else:
        _print_pairs_summary(summary, verb="wrote")


def _tokenize_labels(inputs, out_dir, config, options: dict, quiet: bool, as_json: bool) -> None:
    with progress_bar(quiet) as progress:
        meta = tokenize_labels(inputs, out_dir, config, **options, progress=progress)
    summary = {"path": str(out_dir), **describe_labels(meta)}
    if options["vocabulary"] is None:
        _warn_small_bpe(config, summary["vocab"]["size"])
    if as_json:
        out_json(summary)
    else:
        _print_labels_summary(summary, verb="wrote")


def _print_data_summary(summary: dict, verb: str) -> None:
    v = summary["vocab"]
    extra = ", lowercase" if v["lowercase"] else ""
    extra += f", {v['normalize'].upper()}" if v["normalize"] != "none" else ""
    out(
        f"{verb} {summary['path']}: {v['kind']} vocabulary of {v['size']:,} tokens "
        f"(4 special){extra}, ids as {summary['dtype']}, {summary['sources']} source file(s)"
    )
    for name, s in summary["splits"].items():
        unk = f", {s['unknown']:,} unknown" if s["unknown"] else ""
        out(
            f"  {name:<5} {s['tokens']:>13,} tokens {s['chars']:>13,} chars "
            f"{s['bytes']:>13,} bytes{unk}"
        )
    if summary["unknown_chars"]:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(summary["unknown_chars"].items())[:8])
        out(f"  characters not in the vocabulary: {shown}")
    top = "  ".join(f"{c['char']!r} {100 * c['fraction']:.1f}%" for c in summary["top_chars"])
    out(f"  top characters: {top}  (together {100 * summary['top_coverage']:.1f}% of train)")


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
    dataset = datamod.load_dataset(path)
    kinds = {"pairs": (describe_pairs, _print_pairs_summary)}
    kinds["labels"] = (describe_labels, _print_labels_summary)
    if dataset.meta.get("kind") in kinds:
        describe, show = kinds[dataset.meta["kind"]]
        summary = {"path": str(path), **describe(dataset.meta)}
        if as_json:
            out_json(summary)
        else:
            show(summary, verb="data directory")
        return
    summary = {"path": str(path), **datamod.describe(dataset.meta)}
    if as_json:
        out_json(summary)
    else:
        _print_data_summary(summary, verb="data directory")


def _warn_small_bpe(config: TokenizeConfig, got: int, side: str = "") -> None:
    """A BPE vocabulary smaller than asked: the text ran out of pairs to merge."""
    asked = config.vocab_size
    if config.vocab == "bpe" and asked and got < asked:
        warn(f"--vocab-size {asked}: the text gave {got:,} tokens{side} (no more pairs to merge)")


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


def _print_labels_summary(summary: dict, verb: str) -> None:
    v = summary["vocab"]
    labels = summary["labels"]
    out(
        f"{verb} {summary['path']}: labelled text, {len(labels):,} labels, {v['kind']} "
        f"vocabulary of {v['size']:,} tokens (4 special), ids as {summary['dtype']}, "
        f"{summary['sources']:,} source file(s), split: {summary['split_method']}"
    )
    splits = summary["splits"]
    for name, s in splits.items():
        unk = f", {s['unknown']:,} unknown" if s["unknown"] else ""
        out(
            f"  {name:<5} {s['examples']:>9,} examples {s['tokens']:>11,} tokens "
            f"{s['chars']:>11,} chars{unk}"
        )
    width = min(max(len(label) for label in labels), 40)
    out(f"  {'label':<{width}} " + " ".join(f"{name:>9}" for name in splits))
    shown = labels if len(labels) <= MAX_LABELS_SHOWN else labels[: MAX_LABELS_SHOWN - 1]
    for label in shown:
        counts = " ".join(f"{s['labels'][label]:>9,}" for s in splits.values())
        out(f"  {label[:width]:<{width}} {counts}")
    if len(shown) < len(labels):
        out(f"  ... and {len(labels) - len(shown):,} more labels (--json lists them all)")
    if summary["unknown_chars"]:
        missing = ", ".join(f"{c!r} x{n}" for c, n in list(summary["unknown_chars"].items())[:8])
        out(f"  characters not in the vocabulary: {missing}")


def _print_pairs_summary(summary: dict, verb: str) -> None:
    v = summary["vocab"]
    shared = ", shared" if v["shared"] else ""
    out(
        f"{verb} {summary['path']}: parallel text, {v['source']['kind']} vocabularies of "
        f"{v['source']['size']:,} (source) and {v['target']['size']:,} (target) tokens{shared}"
    )
    if v.get("picked"):
        out(f"  vocabulary picked by --vocab auto: {v['picked']}")
    for name, s in summary["splits"].items():
        src, tgt = s["source"], s["target"]
        unknown = [f"{s[side]['unknown']:,} {side}" for side in ("source", "target")]
        extra = f", unknown {' / '.join(unknown)}" if src["unknown"] or tgt["unknown"] else ""
        out(
            f"  {name:<5} {s['pairs']:>9,} pairs  source {src['tokens']:>9,} tokens "
            f"{src['chars']:>9,} chars  target {tgt['tokens']:>9,} tokens "
            f"{tgt['chars']:>9,} chars{extra}"
        )
    for side in ("source", "target"):
        missing = summary.get("unknown_chars", {}).get(side)
        if missing:
            shown = ", ".join(f"{c!r} x{n}" for c, n in list(missing.items())[:8])
            out(f"  {side} characters not in the vocabulary: {shown}")
        top = summary.get("top_chars", {}).get(side)
        if top:
            shares = "  ".join(f"{c['char']!r} {100 * c['fraction']:.1f}%" for c in top[:8])
            out(f"  top {side} characters: {shares}")
    f = summary["filtered"]
    if f["empty"] or f["too_long"]:
        out(
            f"  filtered: {f['empty']:,} with an empty side, {f['too_long']:,} longer than "
            f"{f['max_chars']:,} characters"
        )


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
