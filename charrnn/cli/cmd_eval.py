"""`charrnn eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn import device as devices
from charrnn import metrics, runs
from charrnn.cli._app import Json, Quiet, app, out, out_json, progress_bar


@app.command("eval")
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint (.pt) or a run directory (uses best.pt).", show_default=False
        ),
    ],
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="[TEXT|DATA_DIR]",
            help="Text to score (a file, - for stdin), or a data "
            "directory encoded with the model's vocabulary. Default: the run's validation split.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="With a data directory: train, val or test [val].", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Score a model: loss, perplexity, bits per token, per character and per byte."""
    trained = runs.load_trained(checkpoint, devices.resolve(device))
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
    out(f"  loss        {result['loss']:.4f} nats/token   perplexity {result['perplexity']:.3f}")
    out(f"  bits/token  {result['bits_per_token']:.4f}")
    out(f"  bits/char   {result['bpc']:.4f}")
    out(f"  bits/byte   {result['bits_per_byte']:.4f}")
    if result["unknown"]:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(result["unknown_chars"].items())[:8])
        out(f"  unknown     {result['unknown']:,} tokens scored as <unk>: {shown}")
