"""The `charrnn` command line: the only place that prints, exits, or reads argv and the environment.

stdout carries results (text, JSON); progress, logs and warnings go to stderr. Library errors
(`CharrnnError`) become one line: `Error: <where>: <what>; <how to fix>`.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from charrnn import __version__
from charrnn import data as datamod
from charrnn.config import TokenizeConfig
from charrnn.errors import CharrnnError, UsageError

app = typer.Typer(
    name="charrnn",
    help="Train and use character- and BPE-level RNN/GRU/LSTM language models and seq2seq models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Typer raises click's usage errors (vendored in recent Typer versions): find the class by name.
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
err = Console(stderr=True, highlight=False, soft_wrap=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
TD = TokenizeConfig  # defaults live in the dataclass


# -- output helpers ----------------------------------------------------------------------------


def out(text: str = "", end: str = "\n") -> None:
    """Write results to stdout (data only) and flush, so pipes see them at once."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


def out_json(obj) -> None:
    """One JSON document on stdout."""
    out(json.dumps(obj, ensure_ascii=False))


def warn(message: str) -> None:
    """A warning on stderr (shown even with -q)."""
    err.print(f"[yellow]Warning:[/yellow] {message}", markup=True)


@contextmanager
def progress_bar(quiet: bool):
    """A rich progress display on stderr; yields a `(stage, done, total)` callback or None."""
    if quiet:
        yield None
        return
    columns = (
        TextColumn("{task.description:>10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


# -- tokenize ----------------------------------------------------------------------------------


@app.command()
def tokenize(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Text files, directories (searched recursively), .gz files, - for stdin, or "
            "builtin:python. Several inputs are concatenated in order.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Data directory to write.")],
    vocab: Annotated[
        str, typer.Option(help="Vocabulary: char (Unicode code points) or bpe (byte-level BPE).")
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
        float, typer.Option(help="Fraction of the text (its tail) kept for validation.")
    ] = TD.val_frac,
    test_frac: Annotated[
        float, typer.Option(help="Fraction of the text (the very end) kept for testing.")
    ] = TD.test_frac,
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
            "building one; --vocab, --vocab-size, --lowercase and --normalize come from it."
        ),
    ] = None,
    glob: Annotated[str, typer.Option(help="File-name pattern for directory inputs.")] = TD.glob,
    encoding: Annotated[str, typer.Option(help="Text encoding of the inputs.")] = TD.encoding,
    errors: Annotated[
        str, typer.Option(help="Undecodable bytes: strict (stop with an error), replace or ignore.")
    ] = TD.errors,
    force: Annotated[bool, typer.Option("--force", help="Replace DATA_DIR if it exists.")] = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Turn a corpus into token ids on disk (tokenizer.json, meta.json, train/val/test .bin)."""
    config = TokenizeConfig(
        vocab=vocab,
        vocab_size=vocab_size,
        lowercase=lowercase,
        normalize=normalize,
        val_frac=0.0 if val else val_frac,
        test_frac=0.0 if test else test_frac,
        glob=glob,
        encoding=encoding,
        errors=errors,
    )
    vocabulary = None
    if tokenizer is not None:
        if (vocab, vocab_size, lowercase, normalize) != (TD.vocab, None, False, TD.normalize):
            raise UsageError(
                "--tokenizer",
                "vocabulary options given together with a tokenizer",
                "drop --vocab/--vocab-size/--lowercase/--normalize",
            )
        vocabulary = datamod.load_vocabulary(tokenizer)
    with progress_bar(quiet) as progress:
        meta = datamod.tokenize_corpus(
            inputs,
            out_dir,
            config,
            val_inputs=val or (),
            test_inputs=test or (),
            force=force,
            vocabulary=vocabulary,
            progress=progress,
        )
    summary = {"path": str(out_dir), **datamod.describe(meta)}
    if as_json:
        out_json(summary)
    else:
        _print_data_summary(summary, verb="wrote")


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
        shown = ", ".join(f"{c!r} x{n}" for c, n in summary["unknown_chars"][:8])
        out(f"  characters not in the vocabulary: {shown}")
    top = "  ".join(f"{c['char']!r} {100 * c['fraction']:.1f}%" for c in summary["top_chars"])
    out(f"  top characters: {top}  (together {100 * summary['top_coverage']:.1f}% of train)")


# -- info --------------------------------------------------------------------------------------


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="A data directory written by charrnn tokenize.")],
    as_json: Json = False,
) -> None:
    """Describe a data directory: vocabulary, splits, sizes."""
    dataset = datamod.load_dataset(path)
    summary = {"path": str(path), **datamod.describe(dataset.meta)}
    if as_json:
        out_json(summary)
    else:
        _print_data_summary(summary, verb="data directory")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Train and use character- and BPE-level RNN/GRU/LSTM language models and seq2seq models."""
    if version:
        out(f"charrnn {__version__}")
        raise typer.Exit(0)


# -- entry point -------------------------------------------------------------------------------


def _usage_line(e) -> str:
    where = e.ctx.command_path if e.ctx else "charrnn"
    message = " ".join(e.format_message().split()).rstrip(".")
    return f"Error: {where}: {message}; see {where} --help"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every failure into one line on stderr and an exit code."""
    debug = os.environ.get("CHARRNN_DEBUG") == "1"
    try:
        code = app(args=argv, prog_name="charrnn", standalone_mode=False)
    except CharrnnError as e:
        if debug:
            raise
        err.print(f"Error: {e.message()}", markup=False)
        code = e.exit_code
    except _USAGE_ERROR as e:
        err.print(_usage_line(e), markup=False)
        code = 2
    except typer.Abort:
        code = 130
    except BrokenPipeError:
        # `charrnn ... | head`: the reader left; end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code if isinstance(code, int) else 0)
