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
from charrnn.datadir import SPLITS, is_dataset, is_run_dir
from charrnn.errors import CharrnnError, UsageError


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
    from charrnn import metrics  # torch: only once a command runs

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
        _report_text(result, as_json)
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
    ratio = length_ratio(trained.translates, max_len_ratio)
    if label_column is not None and trained.kind != "classify":
        raise UsageError("--label-column", "is for classifiers", "drop it")
    if trained.translates:
        decoding = {
            "beam_size": beam_size,
            "length_penalty": length_penalty,
            "coverage_penalty": coverage_penalty,
            "no_repeat_ngram": no_repeat_ngram,
        }
        _evaluate_seq2seq(trained, source, src, ref, split, decoding, ratio, quiet, as_json)
        return
    given = {
        "--src": src,
        "--ref": ref,
        "--beam-size": beam_size,
        "--length-penalty": length_penalty,
        "--coverage-penalty": coverage_penalty,
        "--no-repeat-ngram": no_repeat_ngram,
    }
    what = "a classifier" if trained.kind == "classify" else "a language model"
    for flag, value in given.items():
        if value is not None:
            raise UsageError(
                flag,
                f"is for seq2seq models (this is {what})",
                f"drop it; {what} is scored on TEXT",
            )
    if trained.kind == "classify":
        _evaluate_classifier(trained, source, split, label_column or "last", quiet, as_json)
    else:
        _evaluate_lm(trained, source, split, quiet, as_json)


def _evaluate_classifier(trained, source, split, label_column: str, quiet, as_json) -> None:
    """Score a classifier on labelled text or a data directory's split (see `evaluate`)."""
    from charrnn import metrics

    if split is not None and source is not None and (source == "-" or not is_dataset(source)):
        raise UsageError(
            "--split", "chooses a split of a data directory, not of a text file", "drop --split"
        )
    with progress_bar(quiet) as progress:
        result = metrics.score_classifier(
            trained, source, split=split, label_column=label_column, progress=progress
        )
    if as_json:
        out_json(result)
        return
    where = result["data"] + (f" ({result['split']})" if result["split"] else "")
    out(f"{result['checkpoint']} on {where}: {result['examples']:,} texts")
    out(f"  accuracy    {result['accuracy']:.4f}")
    out(f"  macro F1    {result['macro_f1']:.4f}   weighted F1 {result['weighted_f1']:.4f}")
    out(f"  loss        {result['loss']:.4f} nats/text")
    labels = list(result["labels"])
    width = max(len(label) for label in [*labels, "label"])
    out(f"  {'label':<{width}}  precision  recall      F1  support")
    for label, s in result["labels"].items():
        out(
            f"  {label:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}"
            f"  {s['support']:7,}"
        )
    out("  confusion (rows: true label, columns: predicted, in the order above)")
    for label, row in zip(labels, result["confusion"], strict=True):
        out(f"  {label:<{width}}  " + " ".join(f"{n:6,}" for n in row))
    if result["unknown"]:
        out(
            f"  unknown     {result['unknown']:,} character(s) outside the vocabulary, "
            "read as <unk>"
        )


def _evaluate_seq2seq(trained, source, src, ref, split, decoding: dict, ratio, quiet, as_json):
    """Translate and score a seq2seq model's sources (see `evaluate`)."""
    from charrnn import decode, generate, metrics

    if source is not None and source != "-" and not Path(source).exists():
        raise CharrnnError(str(source), "no such file or directory", "check the path")
    if source is not None and (str(source) == "-" or not is_dataset(source)):
        raise UsageError(
            "TEXT",
            "a seq2seq model is scored on --src and --ref files, or on a data directory "
            "of parallel text",
            "pass --src FILE --ref FILE",
        )
    if source is not None and src is not None:
        raise UsageError(
            "TEXT", "a data directory and --src both give sentences to score", "drop one"
        )
    if ref and src is None:
        raise UsageError(
            "--ref",
            "needs --src, the sources to translate",
            "pass --src FILE too, or neither to score the run's own split",
        )
    if split is not None and src is not None:
        raise UsageError(
            "--split", "chooses a split of a data directory, not of --src", "drop --split"
        )
    no_repeat = decoding["no_repeat_ngram"]
    beam = decode.BeamConfig(
        beam_size=decode.BeamConfig.beam_size
        if decoding["beam_size"] is None
        else decoding["beam_size"],
        length_penalty=decoding["length_penalty"] or decode.BeamConfig.length_penalty,
        coverage_penalty=decoding["coverage_penalty"] or 0.0,
        no_repeat_ngram=generate.no_repeat_default(trained) if no_repeat is None else no_repeat,
        max_len=1000,
    )
    beam.check()
    with progress_bar(quiet) as progress:
        result = metrics.score_seq2seq(
            trained,
            src,
            ref,
            beam=beam,
            max_len_ratio=ratio,
            split_name=split or "val",
            data=None if source is None else str(source),
            progress=progress,
        )
    result.pop("hypotheses")
    _report_text(result, as_json)


def _evaluate_lm(trained, source, split, quiet: bool, as_json: bool) -> None:
    """Score a language model on a text or a data directory's split (see `evaluate`)."""
    from charrnn import metrics

    if split is not None and source is not None and (source == "-" or not is_dataset(source)):
        raise UsageError(
            "--split", "chooses a split of a data directory, not of a text file", "drop --split"
        )
    with progress_bar(quiet) as progress:
        result = metrics.score_lm(trained, source, split=split, progress=progress)
    if as_json:
        out_json(result)
        return
    where = result["data"] + (f" ({result['split']})" if result["split"] else "")
    out(
        f"{result['checkpoint']} on {where}: {result['tokens']:,} tokens, "
        f"{result['chars']:,} chars, {result['bytes']:,} bytes"
    )
    _report_loss(result)
    if result["unknown"]:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(result["unknown_chars"].items())[:8])
        out(f"  unknown     {result['unknown']:,} tokens scored as <unk>: {shown}")


def _report_loss(result: dict) -> None:
    out(f"  loss        {result['loss']:.4f} nats/token   perplexity {result['perplexity']:.3f}")
    out(f"  bits/token  {result['bits_per_token']:.4f}")
    out(f"  bits/char   {result['bpc']:.4f}")
    out(f"  bits/byte   {result['bits_per_byte']:.4f}")


def _report_text(result: dict, as_json: bool) -> None:
    if as_json:
        out_json(result)
        return
    what = result.get("data") or result.get("hyp")
    beam = f", beam {result['beam_size']}" if "beam_size" in result else ""
    out(
        f"{result.get('checkpoint', 'hypotheses')} on {what}: {result['sentences']:,} "
        f"sentences{beam}"
    )
    out(f"  BLEU        {result['bleu']:.2f}   {result['bleu_signature']}")
    out(f"  chrF        {result['chrf']:.2f}   {result['chrf_signature']}")
    out(
        f"  ROUGE-1/2/L {result['rouge1']:.2f} / {result['rouge2']:.2f} / {result['rougeL']:.2f}"
        "   (rouge-score F1, mean over sentences)"
    )
    out(f"  exact match {result['exact_match']:.2f}%")
    if result.get("unknown"):  # sources in another script than the vocabulary, say
        out(
            f"  unknown     {result['unknown']:,} source character(s) outside the model's "
            "vocabulary, read as <unk>"
        )
    if "loss" in result:
        out("  on the references (teacher forced):")
        _report_loss(result)
    if "attention_entropy" in result:
        out(
            f"  attention   entropy {result['attention_entropy']:.3f} of the most possible, "
            f"{result['attention_on_end']:.3f} of the weight on the source's end token"
        )
