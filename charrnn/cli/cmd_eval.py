"""`charrnn eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli._app import (
    Device,
    Json,
    MaxLenRatio,
    Precision,
    Quiet,
    Threads,
    app,
    length_ratio,
    out,
    out_json,
    progress_bar,
)
from charrnn.datadir import SPLITS, is_run_dir
from charrnn.errors import UsageError


@app.command("eval")
def evaluate(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            metavar="CHECKPOINT",
            help="A checkpoint (.pt) or a run directory (uses best.pt). Not needed with --hyp.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="TEXT|DATA_DIR",
            help="Language models: text to score (a file, - for stdin) "
            "or a data directory in the model's vocabulary; seq2seq models: a data directory of "
            "parallel text in the model's vocabularies; classifiers: labelled text (a TSV, a "
            "folder of label folders, -) or a labelled data directory. Default: the run's "
            "validation split.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="With a data directory: train, val or test (default val).", show_default=False
        ),
    ] = None,
    src: Annotated[
        str | None,
        typer.Option(
            help="seq2seq: source sentences to translate, one per line (default: the run's "
            "validation split).",
            show_default=False,
        ),
    ] = None,
    ref: Annotated[
        list[str] | None,
        typer.Option(
            help="References, one per line, aligned with --src or --hyp (repeat for several).",
            show_default=False,
        ),
    ] = None,
    hyp: Annotated[
        str | None,
        typer.Option(help="Score these outputs against --ref without a model.", show_default=False),
    ] = None,
    beam_size: Annotated[
        int | None,
        typer.Option(help="seq2seq: beam size for decoding (default 5).", show_default=False),
    ] = None,
    length_penalty: Annotated[
        str | None,
        typer.Option(help="seq2seq: none, avg or gnmt (default none).", show_default=False),
    ] = None,
    coverage_penalty: Annotated[
        float | None,
        typer.Option(
            help="seq2seq: GNMT's coverage penalty beta, against outputs that leave parts of "
            "the source untranslated (default 0: off).",
            show_default=False,
        ),
    ] = None,
    no_repeat_ngram: Annotated[
        int | None,
        typer.Option(
            help="seq2seq: never repeat an n-gram of this many tokens in an output (default "
            "3 over word pieces, off over characters).",
            show_default=False,
        ),
    ] = None,
    max_len_ratio: MaxLenRatio = None,
    label_column: Annotated[
        str | None,
        typer.Option(
            help="classify, a TSV: the label is the last or the first column (default last).",
            show_default=False,
        ),
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Score a model: loss, perplexity, bits per token/char/byte; seq2seq: BLEU, chrF, ROUGE;
    classifiers: accuracy, macro-F1, per-label precision/recall/F1, the confusion matrix."""
    from charrnn import kinds, metrics, reports  # torch: only once a command runs

    if hyp is not None:
        if checkpoint is not None or src is not None:
            raise UsageError(
                "--hyp",
                "scores existing outputs: no checkpoint or --src needed",
                "pass only --hyp FILE --ref FILE",
            )
        if not ref:
            raise UsageError("--ref", "--hyp needs references", "pass --ref FILE")
        hyps = metrics.read_lines(hyp)
        result = {
            "hyp": hyp,
            **metrics.text_scores(hyps, metrics.read_references(ref, len(hyps), hyp)),
        }
        _show(result, reports.translations, as_json)
        return
    if checkpoint is None:
        raise UsageError("CHECKPOINT", "nothing to score", "pass a checkpoint, or --hyp and --ref")
    if split is not None and split not in SPLITS:
        raise UsageError("--split", f"unknown split '{split}'", f"use one of: {', '.join(SPLITS)}")
    if source is not None and source != "-" and is_run_dir(source):
        raise UsageError(  # e.g. charrnn eval text.txt runs/a: the order swapped
            "TEXT",
            f"{source} is a run directory (it holds checkpoints), not text",
            "the model to score comes first: charrnn eval RUN TEXT",
        )
    from charrnn.cli.cmd_decode import load_model

    trained = load_model(checkpoint, device, threads, precision)
    kind = kinds.get(trained.kind)
    length_ratio(trained.translates, max_len_ratio, kind.one)  # checked: a seq2seq model's
    options = {
        "src": src,
        "ref": ref,
        "beam_size": beam_size,
        "length_penalty": length_penalty,
        "coverage_penalty": coverage_penalty,
        "no_repeat_ngram": no_repeat_ngram,
        "max_len_ratio": max_len_ratio,
        "label_column": label_column,
    }
    for name, value in options.items():
        if value is not None and name not in kind.eval_options:
            owners = [k.models for k in kinds.KINDS.values() if name in k.eval_options]
            raise UsageError(
                "--" + name.replace("_", "-"),
                f"is for {' and '.join(owners)}, not {kind.models}",
                "drop it",
            )
    with progress_bar(quiet) as progress:
        result = kind.score(
            trained, source, split, progress, **{k: options[k] for k in kind.eval_options}
        )
    _show(result, kind.report_lines, as_json)


def _show(result: dict, lines, as_json: bool) -> None:
    """`result` as JSON, or as the `lines(result)` that put it into words."""
    if as_json:
        out_json(result)
        return
    for line in lines(result):
        out(line)
