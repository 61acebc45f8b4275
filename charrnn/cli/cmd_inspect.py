"""`charrnn plot` (training curves), `charrnn inspect gradients` (gradient flow through time)
and `charrnn inspect gates` (gate saturation): numbers on stdout (a table, or JSON), a picture
with -o. `inspect neurons` and `inspect novelty` are in their own modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli._app import Json, Quiet, app, err, out, out_json, warn
from charrnn.config import GATE_MOSTLY, GATE_RARELY, SHOWN_K, FlowConfig, GatesConfig, ModelConfig
from charrnn.errors import CharrnnError, UsageError

FC, GC = FlowConfig(), GatesConfig()
Picture = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Also draw a picture: a .png or .svg file.", show_default=False
    ),
]

inspect_app = typer.Typer(
    name="inspect",
    help="Look inside a model: gradient flow through time, gate saturation, what single "
    "neurons track, and how much of a generated text was copied from the training text.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(inspect_app, name="inspect")


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = (0,)) -> None:
    """Columns padded to their widest cell: columns `left` (text) aligned left, the rest
    (numbers) right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out("  ".join(cells).rstrip())


def _draw(figure, path: Path, title: str, quiet: bool) -> None:
    from charrnn.inspect import pictures

    pictures.save(figure, path, title)
    if not quiet:
        err.print(f"wrote {path}", markup=False)


def _inspect_each(
    module, measure, config, checkpoints, init, text, models_: dict, out_file, threads, progress
) -> list[dict]:
    """What `inspect gradients` and `inspect gates` share: check the request (models, --init
    names, settings, the picture's path) before any work, take the free cores, then `measure`
    each model (a checkpoint, or a fresh --init one) and return the results as dicts.
    `progress` is said on a terminal for each model (None: quiet)."""
    from charrnn import device as devices
    from charrnn.inspect import pictures

    _check_request(checkpoints, init, text, "lstm")
    for model_name in init:  # before any work
        module.check_init(model_name)
    config.check()
    if out_file is not None:
        pictures.check_output(out_file)
    devices.configure(devices.resolve("cpu"), threads)  # the free cores, unless told
    results = []
    for subject in _subjects(module, checkpoints, init, text, **models_):
        if progress is not None and err.is_terminal:  # progress, where someone watches
            err.print(f"{subject.name}: {progress}", markup=False)
        results.append(measure(subject, config).as_dict())
    return results


# -- charrnn plot ------------------------------------------------------------------------------


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@app.command()
def plot(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN",
            help="Run directories (or their checkpoints, or metrics.jsonl files), drawn together.",
            show_default=False,
        ),
    ],
    out_file: Picture = None,
    x: Annotated[
        str, typer.Option("--x", help="The horizontal axis: step, or time (seconds of the run).")
    ] = "step",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Training curves from metrics.jsonl: loss (bits), learning rate, gradient norms, clipping,
    tokens/s; several runs overlaid, each one's best validation step marked."""
    from charrnn.inspect import curves, pictures

    if x not in curves.X_AXES:
        raise UsageError("--x", f"unknown axis '{x}'", f"use one of: {', '.join(curves.X_AXES)}")
    if out_file is not None:
        pictures.check_output(out_file)
    found = curves.read_runs(runs)
    for run in found:
        if run.skipped:
            warn(f"{run.path}: {run.skipped} line(s) that are not records were skipped")
    if out_file is not None:
        title = f"Training curves: {', '.join(run.name for run in found)}"
        _draw(pictures.curves_figure(found, x), out_file, title, quiet)
    if as_json:
        out_json({"x": x, "runs": [run.as_dict() for run in found]})
        return
    header = ["run", "steps", "elapsed", "train", "best val", "at step", "final val", "unit"]
    rows = []
    for run in found:
        s = run.summary()
        rows.append(
            [
                s["name"],
                f"{s['steps']:,}",
                f"{s['elapsed']:.1f}s",
                _number(s["last_train_loss"], ".3f"),
                _number(s["best_val"], ".3f"),
                _number(s["best_step"], ","),
                _number(s["final_val"], ".3f"),
                s["unit"],
                _number(s["tokens_per_s"], ",.0f"),
            ]
        )
    _table([*header, "tokens/s"], rows, left=(0, 7))


# -- charrnn inspect gradients -----------------------------------------------------------------


def _subjects(inspector, checkpoints, init, text, *, hidden_size: int, num_layers: int, seed: int):
    """The models to inspect, each with the token ids to read (generated lazily: one model in
    memory at a time), by `inspector`'s `run_subject` and `init_subject` (a module of
    charrnn.inspect: gradflow, gates)."""
    from charrnn.inspect import gradflow

    body = None if text is None else gradflow.read_text(text)
    name = "<stdin>" if text == "-" else text
    if body is not None and not body:
        raise CharrnnError(name, "is empty", "give some text")
    for path in checkpoints:
        yield inspector.run_subject(path, body, name)
    for model_name in init:
        yield inspector.init_subject(
            model_name, body, name, hidden_size=hidden_size, num_layers=num_layers, seed=seed
        )


def _flow_table(flows: list[dict], length: int) -> None:
    """The gradient norms at a few k, and the singular values, of every model and layer."""
    shown = [k for k in SHOWN_K if k < length]
    shown += [] if length - 1 in shown else [length - 1]
    first = flows[0]
    out(
        f"gradient norm |dL/dh| k steps before the last step, mean over {first['windows']} "
        f"windows of {length} tokens"
    )
    header = ["model", "layer", *(f"k={k}" for k in shown), "step Jacobian", "W_hh"]
    rows = []
    for flow in flows:
        for layer in flow["layers"]:
            norms = [f"{layer['grad_norm'][k]:.1e}" for k in shown]
            sigmas = [f"{layer['jacobian_norm']:.3f}", f"{layer['weight_norm']:.3f}"]
            rows.append([flow["name"], str(layer["layer"] + 1), *norms, *sigmas])
    _table(header, rows)
    out(
        "step Jacobian: largest singular value of ds(t+1)/ds(t), mean over the text; "
        "W_hh: the recurrent matrix's"
    )
    for flow in flows:
        out(
            f"  {flow['name']}: {flow['model']}, {flow['num_layers']} x {flow['hidden_size']}, "
            f"read {flow['text']} ({flow['tokens']:,} tokens)"
        )


# Arguments and options the inspections share.
Checkpoints = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="RUN_OR_CHECKPOINT",
        help="Language-model runs (best.pt) or checkpoints, drawn together.",
        show_default=False,
    ),
]
Text = Annotated[
    str | None,
    typer.Option(
        help="Text to read: a file, a folder, builtin:NAME or - (stdin). Default: each "
        "run's validation split.",
        show_default=False,
    ),
]
HiddenSize = Annotated[int, typer.Option(min=1, help="--init: hidden units.")]
NumLayers = Annotated[int, typer.Option(min=1, help="--init: stacked layers.")]
Seed = Annotated[int, typer.Option(help="--init: the weights' seed.")]
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads (default: the cores other programs leave free).",
        show_default=False,
    ),
]


def _check_request(checkpoints: list[Path], init: list[str], text: str | None, fresh: str):
    """Something to inspect, and a text for fresh models (`fresh`: an example --init)."""
    if not checkpoints and not init:
        raise UsageError(
            "RUN_OR_CHECKPOINT",
            "nothing to inspect",
            f"pass a run or checkpoint, or --init {fresh}",
        )
    if init and text is None:
        raise UsageError(
            "--init", "a fresh model needs a text to read", "pass --text FILE (or builtin:NAME)"
        )


@inspect_app.command("gradients")
def gradients(
    checkpoints: Checkpoints = None,
    init: Annotated[
        list[str] | None,
        typer.Option(
            help="Also a freshly initialised model of this registry entry (rnn, gru or lstm; "
            "repeat for several), with a character vocabulary of --text.",
            show_default=False,
        ),
    ] = None,
    text: Text = None,
    windows: Annotated[int, typer.Option(min=1, help="Windows of text, averaged.")] = FC.windows,
    length: Annotated[
        int, typer.Option(min=2, help="Tokens per window: k runs from 0 to length - 1.")
    ] = FC.length,
    hidden_size: HiddenSize = ModelConfig.hidden_size,
    num_layers: NumLayers = ModelConfig.num_layers,
    seed: Seed = FC.seed,
    out_file: Picture = None,
    threads: Threads = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Gradient flow through time: how the gradient of the loss shrinks (or grows) with the
    steps back to a hidden state, per layer, with the step Jacobian's norm and W_hh's."""
    from charrnn.inspect import gradflow, pictures

    config = FlowConfig(windows=windows, length=length, seed=seed)
    models_ = {"hidden_size": hidden_size, "num_layers": num_layers, "seed": seed}
    flows = _inspect_each(
        gradflow, gradflow.gradient_flow, config, checkpoints or [], init or [], text, models_,
        out_file, threads, f"{windows} windows of {length} tokens" if not quiet else None,
    )  # fmt: skip
    if out_file is not None:
        figure = pictures.gradient_figure(flows)
        _draw(figure, out_file, "Gradient flow through time", quiet)
    if as_json:
        out_json({"windows": windows, "length": length, "flows": flows})
    else:
        _flow_table(flows, length)


# -- charrnn inspect gates ---------------------------------------------------------------------


def _gates_table(found: list[dict]) -> None:
    """Each gate's saturated fractions and units, per model and layer."""
    first = found[0]
    left, right = f"{first['left_below']:g}", f"{first['right_above']:g}"
    mostly, rarely = f"{GATE_MOSTLY:.0%}", f"{GATE_RARELY:.0%}"
    out(f"gate saturation: the share of (unit, step) values below {left} (left), above {right}")
    header = ["model", "layer", "gate", "left", "right", "mean", "units"]
    header += [f"left>{mostly}", f"right>{mostly}", f"sat<{rarely}"]
    rows = []
    for saturation in found:
        for layer in saturation["layers"]:
            for gate in layer["gates"]:
                shares = [f"{gate[key]:.3f}" for key in ("left", "right", "mean")]
                units = [gate["units_left"], gate["units_right"], gate["units_unsaturated"]]
                first_cells = [saturation["name"], str(layer["layer"] + 1), gate["gate"]]
                size = str(saturation["hidden_size"])
                rows.append([*first_cells, *shares, size, *(f"{n:,}" for n in units)])
    _table(header, rows, left=(0, 2))
    out(
        f"units: how many are left- (right-) saturated on more than {mostly} of the steps, "
        f"saturated on either side on less than {rarely} of them"
    )
    for saturation in found:
        out(
            f"  {saturation['name']}: {saturation['model']}, {saturation['num_layers']} x "
            f"{saturation['hidden_size']}, read {saturation['read']:,} of {saturation['tokens']:,} "
            f"tokens of {saturation['text']} in {saturation['streams']} streams"
        )


@inspect_app.command("gates")
def gates(
    checkpoints: Checkpoints = None,
    init: Annotated[
        list[str] | None,
        typer.Option(
            help="Also a freshly initialised model of this registry entry (gru or lstm; "
            "repeat for several), with a character vocabulary of --text.",
            show_default=False,
        ),
    ] = None,
    text: Text = None,
    length: Annotated[
        int, typer.Option(min=1, help="Tokens to read at most, from the start of the text.")
    ] = GC.length,
    streams: Annotated[
        int,
        typer.Option(
            min=1, help="Contiguous pieces of them read side by side, each from a zero state."
        ),
    ] = GC.streams,
    hidden_size: HiddenSize = ModelConfig.hidden_size,
    num_layers: NumLayers = ModelConfig.num_layers,
    seed: Seed = GC.seed,
    out_file: Picture = None,
    threads: Threads = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Gate saturation of GRU (update, reset) and LSTM (input, forget, output) units: how often
    each unit's gate is below 0.1 (left-saturated) or above 0.9 (right-saturated) over a text."""
    from charrnn.inspect import gates as gating
    from charrnn.inspect import pictures

    config = GatesConfig(length=length, streams=streams, seed=seed)
    models_ = {"hidden_size": hidden_size, "num_layers": num_layers, "seed": seed}
    found = _inspect_each(
        gating, gating.saturation, config, checkpoints or [], init or [], text, models_,
        out_file, threads, f"gates over {length:,} tokens at most" if not quiet else None,
    )  # fmt: skip
    if out_file is not None:
        _draw(pictures.gates_figure(found), out_file, "Gate saturation", quiet)
    if as_json:
        out_json({"left_below": config.left, "right_above": config.right, "models": found})
    else:
        _gates_table(found)
