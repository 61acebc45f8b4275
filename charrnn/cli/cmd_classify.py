"""`charrnn classify`: the labels of texts by a trained classifier."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli._app import (
    Checkpoint,
    Device,
    Json,
    Precision,
    Quiet,
    Threads,
    Unknown,
    app,
    err,
    out,
    out_json,
)
from charrnn.errors import CharrnnError, UsageError
from charrnn.files import io_error, temp_sibling

BATCH_LINES = 256  # stdin lines classified (and printed) together


@app.command("classify")
def classify(
    checkpoint: Checkpoint,
    files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[FILE]...",
            help="Texts to classify: each file (or each file of a folder) is one text. "
            "Default: one text per stdin line.",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option(min=1, help="Print the k most probable labels of each text.")
    ] = 1,
    explain: Annotated[
        Path | None,
        typer.Option(
            help="Attention-pooling models: write an HTML page (PAGE.html) that colours each "
            "character of every text by the weight the decision put on it; - colours the "
            "texts on stdout instead (24-bit terminal colours), each after its label.",
            show_default=False,
        ),
    ] = None,
    unknown: Unknown = "error",
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Label texts with a trained classifier: `label<TAB>probability` per text, in order
    (`FILE<TAB>label<TAB>probability` for files); --top-k for more labels, --json for all
    of them and, with attention pooling, each token's weight."""
    from charrnn.cli.cmd_decode import load_model

    coloured = explain is not None and str(explain) == "-"
    if explain is not None and not coloured:
        _check_page(explain)
    trained = load_model(checkpoint, device, threads, precision)
    if trained.kind != "classify":
        raise UsageError(
            "CHECKPOINT",
            f"{trained.path} is a {trained.kind} model, not a classifier",
            "pass a run trained with --labels (charrnn sample and beam decode the others)",
        )
    if explain is not None and trained.model.config.pooling != "attention":
        raise UsageError(
            "--explain",
            f"this classifier pools with '{trained.model.config.pooling}', which weighs no token",
            "train with --pooling attention, or drop --explain",
        )
    weights = explain is not None or (as_json and trained.model.config.pooling == "attention")
    page = []
    for names, texts in _inputs(files):
        found = _classify(trained, names, texts, unknown, weights)
        for name, prediction in zip(names, found, strict=True):
            _print(name, prediction, top_k, as_json)
            if coloured and not as_json:
                out(_coloured(prediction))
        if explain is not None and not coloured:  # kept for the page
            page += [(name, text, p) for name, text, p in zip(names, texts, found, strict=True)]
    if explain is not None and not coloured:
        _write_page(explain, page)
        if not quiet:
            err.print(f"wrote {explain}", markup=False)


def _inputs(files: list[str] | None):
    """Batches of (names, texts): stdin lines (named by line number), or whole files."""
    from charrnn import corpus
    from charrnn.pairs import _lines

    with tempfile.TemporaryDirectory(prefix="charrnn-") as spool:
        if not files:
            names, texts = [], []
            stdin = corpus.resolve(["-"], spool_dir=Path(spool))
            for line in _lines(stdin, "utf-8", "strict", None, None):
                names.append(None)
                texts.append(line)
                if len(texts) == BATCH_LINES:
                    yield names, texts
                    names, texts = [], []
            if texts:
                yield names, texts
            return
        for path in files:
            for source in corpus.resolve([path], spool_dir=Path(spool)):
                # as a folder of label folders is read for training: the final newline dropped
                yield [source.name], ["".join(corpus.read_text([source])).rstrip("\r\n")]


def _classify(trained, names, texts, unknown: str, weights: bool):
    """Predictions of a batch of texts (their unknown characters handled as `unknown` says)."""
    import numpy as np

    from charrnn.generate import encode_prompt
    from charrnn.kinds.classify import classify as label

    ids = []
    for name, text in zip(names, texts, strict=True):
        encoded, _ = encode_prompt(trained.tokenizer, text, unknown, name or "stdin")
        ids.append(np.asarray(encoded[1:], dtype=np.int64))
    return label(trained, ids, explain=weights)


def _print(name: str | None, prediction, top_k: int, as_json: bool) -> None:
    if as_json:
        out_json({**({"file": name} if name else {}), **prediction.as_dict(top_k)})
        return
    cells = [f"{label}\t{p:.4f}" for label, p in prediction.labels[:top_k]]
    out("\t".join(([name] if name else []) + cells))


def _coloured(prediction) -> str:
    """The text's characters on a background as red as the pooling's weight on them (relative
    to the text's largest), in 24-bit terminal colours; a line end shown as a symbol."""
    top = max(prediction.weights) or 1.0
    cells = []
    for token, w in zip(prediction.tokens, prediction.weights, strict=True):
        fade = round(255 * (1 - w / top))
        shown = token.replace("\n", "\u21b5").replace("\t", "\u21e5")
        cells.append(f"\x1b[48;2;255;{fade};{fade}m\x1b[38;2;0;0;0m{shown}\x1b[0m")
    return "".join(cells)


def _check_page(path: Path) -> None:
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError("--explain", f"{path}: the page is an .html file", "use e.g. why.html")
    if not path.parent.is_dir():
        raise CharrnnError(str(path), "its folder does not exist", "create it, or write elsewhere")


def _write_page(path: Path, page: list) -> None:
    """One self-contained HTML page: each text's label, then its characters on a background
    as red as the pooling's weight on them (relative to the text's largest weight)."""
    rows = []
    for i, (name, _, prediction) in enumerate(page, start=1):
        label, p = prediction.labels[0]
        top = max(prediction.weights) or 1.0
        spans = "".join(
            f'<span title="{w:.4f}" style="background:rgba(220,40,40,{w / top:.3f})">'
            f"{html.escape(token).replace(chr(10), '&#8629;<br>')}</span>"
            for token, w in zip(prediction.tokens, prediction.weights, strict=True)
        )
        head = html.escape(name or f"text {i}")
        rows.append(f"<h3>{head}: {html.escape(label)} ({p:.3f})</h3><p>{spans}</p>")
    body = "\n".join(rows)
    text = (
        "<!doctype html><meta charset=utf-8><title>charrnn classify --explain</title>"
        "<style>body{font:15px/1.7 monospace;max-width:70em;margin:2em auto}"
        "span{white-space:pre-wrap}</style>"
        "<p>Each character's background: the attention pooling's weight on it "
        "(hover for the value), relative to the text's largest.</p>\n" + body
    )
    tmp = temp_sibling(path, "tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise io_error(path, e) from None
