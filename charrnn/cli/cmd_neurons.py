"""`charrnn inspect neurons`: what single units of a language model do over a text, and which
units track its quotes, brackets and lines (charrnn.inspect.neurons): coloured text on a
terminal, or a table (or JSON); a page (.html) or a picture (.png, .svg) with -o."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli._app import Checkpoint, Json, Quiet, err, out, out_json, write
from charrnn.cli.cmd_inspect import Text, Threads, _draw, _table, inspect_app
from charrnn.config import NeuronsConfig
from charrnn.errors import CharrnnError, UsageError

NC = NeuronsConfig()
COLOR = ("auto", "always", "never")


def _coloured(color: str, out_file: Path | None) -> bool:
    """Whether stdout gets the coloured text (else a table): --color, or by default a
    terminal without NO_COLOR when no page or picture is written."""
    if color not in COLOR:
        raise UsageError("--color", f"unknown choice '{color}'", f"use one of: {', '.join(COLOR)}")
    if color != "auto":
        return color == "always"
    terminal = sys.stdout is not None and sys.stdout.isatty()
    return terminal and not os.environ.get("NO_COLOR") and out_file is None


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _about(found: dict) -> str:
    return (
        f"  {found['name']}: {found['model']}, {found['num_layers']} x {found['hidden_size']}, "
        f"read {found['read']:,} of {found['tokens']:,} tokens of {found['text']} in "
        f"{found['streams']} streams"
    )


def _find_table(found: dict) -> None:
    """Per property, the units that track it best."""
    out(
        f"units that track properties of the text: Pearson r of each unit's {found['state']} "
        "with the property, over the tokens read"
    )
    rows = [
        [ranking["property"], str(rank), entry["unit"], _r(entry["r"])]
        for ranking in found["properties"]
        for rank, entry in enumerate(ranking["top"], 1)
    ]
    if rows:
        _table(["property", "rank", "unit", "r"], rows, left=(0, 2))
    missing = [ranking["property"] for ranking in found["properties"] if not ranking["present"]]
    if missing:
        out(f"not in the text: {', '.join(missing)}")
    out(_about(found))


def _units_table(found: dict) -> None:
    """Each unit shown: its range over the text shown, and its r with every property."""
    names = [ranking["property"] for ranking in found["properties"]]
    out(
        f"{found['state']} over the first {len(found['shown']):,} tokens, and r with each "
        "property over the tokens read"
    )
    rows = []
    for unit in found["units"]:
        values = unit["values"]
        spread = [min(values), sum(values) / len(values), max(values)]
        rows.append(
            [unit["unit"], *(f"{v:+.3f}" for v in spread), *(_r(unit["r"][n]) for n in names)]
        )
    _table(["unit", "min", "mean", "max", *names], rows)
    out(_about(found))


@inspect_app.command("neurons")
def neurons(
    checkpoint: Checkpoint,
    unit: Annotated[
        list[str] | None,
        typer.Option(
            help="A unit to show, LAYER:UNIT (layer from 1, unit from 0), e.g. 1:42; repeat "
            "for several. Default: the one that tracks a property of the text best.",
            show_default=False,
        ),
    ] = None,
    find: Annotated[
        bool,
        typer.Option(
            "--find",
            help="Print the units that track properties of the text best (quotes, bracket "
            "depth, position in the line, distance to its end); a page or picture shows the "
            "best unit of each.",
        ),
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="--find: units listed per property.")] = NC.top,
    text: Text = None,
    length: Annotated[
        int, typer.Option(min=1, help="Tokens shown, from the start of the text.")
    ] = NC.length,
    find_length: Annotated[
        int, typer.Option(min=1, help="Tokens read at most to rank the units.")
    ] = NC.find_length,
    state: Annotated[
        str,
        typer.Option(
            help="What a unit's activation is: auto (an LSTM's cell state tanh(c), else h), "
            "cell or hidden."
        ),
    ] = NC.state,
    color: Annotated[
        str,
        typer.Option(
            help="Colour the text on stdout: auto (on a terminal, unless NO_COLOR is set), "
            "always or never (a table instead)."
        ),
    ] = "auto",
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write a page (.html: hover for the model's predictions) or a picture "
            "(.png, .svg).",
            show_default=False,
        ),
    ] = None,
    threads: Threads = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Neuron activations over a text: a unit's activation at every character (coloured
    text, a page or a picture), and the units that track quotes, brackets and lines."""
    from charrnn import device as devices
    from charrnn.inspect import gradflow, neuronpage
    from charrnn.inspect import neurons as neuron

    config = NeuronsConfig(length=length, find_length=find_length, top=top, state=state)
    config.check()
    for spec in unit or []:
        neuron.parse_unit(spec)  # before any work
    coloured = _coloured(color, out_file)
    fmt = neuronpage.check_output(out_file) if out_file is not None else None
    devices.configure(devices.resolve("cpu"), threads)
    body = None if text is None else gradflow.read_text(text)
    name = "<stdin>" if text == "-" else text
    if body is not None and not body:
        raise CharrnnError(name, "is empty", "give some text")
    subject = neuron.run_subject(checkpoint, body, name)
    if not quiet and err.is_terminal:
        err.print(f"{subject.name}: ranking its units over the text", markup=False)
    found = neuron.neurons(subject, config, units=unit, find=find).as_dict()
    if fmt == "html":
        neuronpage.write_page(out_file, neuronpage.page(found))
        if not quiet:
            err.print(f"wrote {out_file}", markup=False)
    elif fmt is not None:
        _draw(neuronpage.figure(found), out_file, "Neuron activations", quiet)
    if as_json:
        out_json(found)
    elif find:
        _find_table(found)
    elif coloured:
        for i in range(len(found["units"])):
            write(neuronpage.terminal(found, i))
    else:
        _units_table(found)
