"""`charrnn inspect novelty`: how much of a generated text was copied verbatim from the training
text (charrnn.inspect.novelty): n-gram shares and the longest copied passages on stdout (a
table, or JSON), a picture with -o."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli._app import Json, Quiet, err, out, out_json, warn
from charrnn.cli.cmd_inspect import Picture, Threads, _draw, _table, inspect_app
from charrnn.config import NoveltyConfig
from charrnn.errors import UsageError

NC = NoveltyConfig()


def _shown(text: str, limit: int) -> str:
    """A passage in one table cell: quoted, line ends and tabs escaped, cut to `limit`
    characters of text."""
    return json.dumps(text[:limit], ensure_ascii=False) + ("..." if len(text) > limit else "")


def _novelty_table(found: dict, config: NoveltyConfig) -> None:
    """The n-gram shares, then the longest copied passages."""
    out(
        f"{found['sample']}: {found['sample_chars']:,} characters, against {found['data']} "
        f"({found['training']}: {found['train_chars']:,} characters)"
    )
    rows = []
    for row in found["ngrams"]:
        share = "-" if row["share"] is None else f"{row['share']:.3f}"
        counts = [f"{row['total']:,}", f"{row['found']:,}", share, f"{row['covered']:.3f}"]
        rows.append([str(row["n"]), *counts])
    _table(["n", "n-grams", "in training", "share", "chars inside"], rows)
    longest = found["longest"]
    if longest is None:
        out("longest copied passage: none (no character of the sample is in the training text)")
        return
    out(
        f"longest copied passage: {longest['length']:,} characters at {longest['start']:,} "
        f"(training text: offset {longest['train_offset']:,}, line {longest['train_line']:,})"
    )
    if not found["passages"]:
        return
    out(f"copied passages of {min(config.ngrams)} characters or more, longest first")
    rows = [
        [
            f"{p['start']:,}",
            f"{p['length']:,}",
            f"{p['train_offset']:,}",
            f"{p['train_line']:,}",
            _shown(p["text"], config.shown_chars),
        ]
        for p in found["passages"]
    ]
    _table(["start", "length", "train offset", "line", "text"], rows, left=(4,))


def _say(quiet: bool):
    """Notes from building the index: warnings always, the rest unless -q."""

    def say(message: str, warning: bool) -> None:
        if warning:
            warn(message)
        elif not quiet:
            err.print(message, markup=False)

    return say


@inspect_app.command("novelty")
def novelty(
    run_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN_OR_CHECKPOINT",
            help="The run (or checkpoint) that wrote the text: its training data is compared.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="The training data directory to compare with (default: the run's).",
            show_default=False,
        ),
    ] = None,
    text: Annotated[
        str, typer.Option(help="The generated text: a file, or - (stdin).", show_default=True)
    ] = "-",
    ngram: Annotated[
        list[int] | None,
        typer.Option(
            help="n-gram length in characters whose share is reported (repeat for several; "
            "default: 8, 16, 32).",
            show_default=False,
        ),
    ] = None,
    passages: Annotated[
        int, typer.Option(help="Copied passages listed, longest first (0: only the longest).")
    ] = NC.passages,
    out_file: Picture = None,
    threads: Threads = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Memorization: the share of the text's n-grams found verbatim in the training text, and
    its longest copied passages. The training text is indexed once (a suffix array kept
    beside the data directory, DATA.novelty) and searched exactly."""
    from charrnn.cli.cmd_train import cache_dir
    from charrnn.inspect import novelty as nov
    from charrnn.inspect import pictures

    config = NoveltyConfig(ngrams=tuple(ngram or NC.ngrams), passages=passages)
    config.check()
    if run_path is None and data is None:
        raise UsageError(
            "RUN_OR_CHECKPOINT", "nothing to compare with", "pass a run, or --data DATA_DIR"
        )
    if out_file is not None:
        pictures.check_output(out_file)
    sample = nov.read_sample(text, config.max_sample_chars)
    training = nov.open_training(run_path, data)
    index = nov.open_index(
        training, config, cache_dir=cache_dir() / "novelty", workers=threads, say=_say(quiet)
    )
    name = "<stdin>" if text == "-" else text
    result = nov.measure(index, training, sample, name, config)
    if out_file is not None:
        _draw(nov.figure(result, config), out_file, "Copied from the training text", quiet)
    found = result.as_dict()
    if as_json:
        out_json(found)
    else:
        _novelty_table(found, config)
