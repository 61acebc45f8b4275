"""Pictures of training curves, gradient flow and gate saturation, drawn with matplotlib's
object-oriented API (a `Figure` and the Agg renderer: no display, no pyplot state) and written
atomically. matplotlib is imported inside the functions that draw, so that importing this
module (to check an output name before the work) costs nothing."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from charrnn.errors import CharrnnError, UsageError
from charrnn.files import io_error, temp_sibling
from charrnn.inspect.curves import RunCurves

FORMATS = {".png": "png", ".svg": "svg"}
DPI = 100
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("", "o", "s", "^")  # with the line styles, 16 layers tell apart


def _layer_style(i: int) -> dict:
    """The line style of the i-th layer name, when colour tells the runs apart."""
    return {
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
        "marker": MARKERS[i // len(LINESTYLES) % len(MARKERS)],
        "markersize": 3,
    }


def check_output(path: Path) -> str:
    """The picture format of an output name (.png or .svg), whose folder must exist: checked
    before the work, so that a bad name does not cost a run."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            "--out", f"{path}: a picture must be a .png or .svg file", "use e.g. curves.png"
        )
    if not path.parent.is_dir():
        raise CharrnnError(str(path), "its folder does not exist", "create it, or write elsewhere")
    if path.is_dir():
        raise CharrnnError(str(path), "is a directory", "give a file name")
    return fmt


def save(figure, path: Path, title: str) -> None:
    """Render `figure` (titled `title` in the file's metadata) and write it to `path`
    atomically: a temporary file beside it, renamed over it, so nothing half-written stays."""
    fmt = check_output(path)
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata={"Title": title})
    tmp = temp_sibling(path, "tmp")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise io_error(path, e) from None


def _figure(rows: int, columns: int, size: tuple[float, float]):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


# -- training curves ---------------------------------------------------------------------------


def _key(x: str) -> str:
    """The field of the x axis: step, or elapsed seconds for --x time."""
    return "step" if x == "step" else "elapsed"


def _x(series: dict, x: str) -> list[float]:
    return series[_key(x)]


def _loss_panel(ax, run: RunCurves, color: str, x: str) -> None:
    ax.plot(_x(run.train, x), run.train["loss"], color=color, alpha=0.45, linewidth=1)
    best = run.best()
    label = (
        run.name if best is None else f"{run.name} (best {best['loss']:.3f} at step {best['step']})"
    )
    ax.plot(_x(run.val, x), run.val["loss"], color=color, marker="o", markersize=3, label=label)
    if best is not None:
        ax.plot(
            best[_key(x)],
            best["loss"],
            marker="*",
            markersize=14,
            color=color,
            markeredgecolor="black",
            linestyle="none",
        )
    if run.final is not None:
        ax.plot(
            run.final[_key(x)],
            run.final["loss"],
            marker="D",
            markersize=6,
            markerfacecolor="none",
            color=color,
            linestyle="none",
        )


def _gradient_panel(ax, run: RunCurves, color: str, x: str) -> None:
    ax.plot(_x(run.train, x), run.train["grad_norm"], color=color, label=run.name)
    ax.plot(_x(run.train, x), run.train["grad_norm_max"], color=color, linestyle=":", alpha=0.6)
    if run.clip_norm > 0:
        ax.axhline(run.clip_norm, color=color, linestyle="--", linewidth=0.8, alpha=0.6)


def _layer_panel(ax, runs: list[RunCurves], colors: list[str], x: str) -> None:
    """Per-layer gradient norms: one colour per layer for one run; one colour per run and one
    line style per layer for several."""
    names = list(dict.fromkeys(name for run in runs for name in run.layers))
    for run, color in zip(runs, colors, strict=True):
        for name, series in run.layers.items():
            i = names.index(name)
            if len(runs) == 1:
                style = {"color": f"C{i % 10}", "label": name}
            else:
                style = {"color": color, **_layer_style(i)}
            ax.plot(_x(series, x), series["grad_norm"], linewidth=1, **style)
    if len(runs) > 1:  # a key of the line styles, in grey
        for i, name in enumerate(names):
            ax.plot([], [], color="grey", label=name, **_layer_style(i))
    if names:
        ax.legend(fontsize="x-small", ncols=2)


def _style_key(ax) -> None:
    """What the loss panel's marks mean, in grey, beside the runs' legend."""
    from matplotlib.lines import Line2D

    marks = [
        Line2D([], [], color="grey", alpha=0.45, label="train"),
        Line2D([], [], color="grey", marker="o", markersize=3, label="validation"),
        Line2D(
            [],
            [],
            color="grey",
            marker="*",
            markersize=10,
            linestyle="none",
            markeredgecolor="black",
            label="best validation",
        ),
        Line2D(
            [],
            [],
            color="grey",
            marker="D",
            markerfacecolor="none",
            linestyle="none",
            label="whole split, at the end",
        ),
    ]
    key = ax.legend(handles=marks, fontsize="x-small", loc="lower left")
    ax.add_artist(key)
    ax.legend(fontsize="x-small", loc="upper right")


def curves_figure(runs: list[RunCurves], x: str = "step"):
    """Six panels: loss, learning rate, gradient norm, clipped fraction, per-layer gradient
    norms, tokens/s; each run one colour, its best validation step marked in every panel."""
    from matplotlib.ticker import EngFormatter

    figure, axes = _figure(2, 3, (16, 9))
    (loss, lr, norm), (clipped, layers, speed) = axes
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for run, color in zip(runs, colors, strict=True):
        _loss_panel(loss, run, color, x)
        lr.plot(_x(run.train, x), run.train["lr"], color=color, label=run.name)
        _gradient_panel(norm, run, color, x)
        clipped.plot(_x(run.train, x), run.train["clipped"], color=color, label=run.name)
        speed.plot(_x(run.train, x), run.train["tokens_per_s"], color=color, label=run.name)
        best = run.best()
        for ax in axes.flat if best else ():
            ax.axvline(best[_key(x)], color=color, linestyle=":", linewidth=0.8, alpha=0.5)
    _layer_panel(layers, runs, colors, x)
    units = " or ".join(dict.fromkeys(run.unit for run in runs))
    titles = {
        loss: ("Loss (validation: best starred)", units),
        lr: ("Learning rate", "learning rate"),
        norm: ("Gradient norm before clipping (dotted: max; dashed: --clip-norm)", "norm"),
        clipped: ("Clipped steps", "fraction of steps clipped"),
        layers: ("Gradient norm per layer", "norm"),
        speed: ("Training speed", "tokens/s"),
    }
    for ax, (title, ylabel) in titles.items():
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("step" if x == "step" else "elapsed time (s)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in (norm, layers):
        ax.set_yscale("log", nonpositive="mask")
    clipped.set_ylim(-0.02, 1.02)
    speed.yaxis.set_major_formatter(EngFormatter())  # 500k, not 500000
    _style_key(loss)
    figure.suptitle(f"Training curves: {', '.join(run.name for run in runs)}")
    return figure


# -- gradient flow -----------------------------------------------------------------------------


def gradient_figure(flows: list[dict]):
    """Gradient norm against steps back (log scale) for every model and layer of `flows`
    (Flow.as_dict()), as measured and relative to the last step's."""
    figure, axes = _figure(1, 2, (14, 5.5))
    absolute, relative = axes[0]
    line = 0
    for flow in flows:
        for layer in flow["layers"]:
            norms = layer["grad_norm"]
            name = flow["name"] + (
                f", layer {layer['layer'] + 1}" if flow["num_layers"] > 1 else ""
            )
            label = (
                f"{name} (step Jacobian {layer['jacobian_norm']:.3g}, "
                f"W_hh {layer['weight_norm']:.3g})"
            )
            style = {"color": f"C{line % 10}", "linewidth": 1.2}
            absolute.plot(range(len(norms)), norms, label=label, **style)
            base = norms[0] if norms[0] > 0 else math.nan
            relative.plot(range(len(norms)), [n / base for n in norms], **style)
            line += 1
    absolute.set_title("|dL/dh| k steps before the last step", fontsize="medium")
    absolute.set_ylabel("gradient norm (mean over windows)")
    relative.set_title("The same, relative to k = 0", fontsize="medium")
    relative.set_ylabel("gradient norm / gradient norm at k = 0")
    for ax in (absolute, relative):
        ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("k (steps back)")
        ax.grid(alpha=0.3, which="both")
    absolute.legend(fontsize="x-small")
    first = flows[0]
    figure.suptitle(
        f"Gradient flow through time: {first['windows']} windows of {first['length']} tokens"
    )
    return figure


# -- gate saturation ---------------------------------------------------------------------------


def _gate_panel(ax, gate: dict, title: str, saturation: dict, color: str) -> None:
    """Each unit a point at (fraction of steps left-saturated, fraction right-saturated): the
    points lie in the triangle x + y <= 1, its long side dashed."""
    ax.plot([0, 1], [1, 0], color="grey", linestyle="--", linewidth=0.8)
    ax.scatter(gate["unit_left"], gate["unit_right"], s=12, alpha=0.5, color=color, linewidths=0)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(f"fraction of steps left-saturated (< {saturation['left_below']:g})")
    ax.set_ylabel(f"fraction right-saturated (> {saturation['right_above']:g})")
    ax.grid(alpha=0.3)


def gates_figure(saturations: list[dict]):
    """Gate saturation as in Karpathy, Johnson and Fei-Fei 2015, figure 3: one panel per gate
    (columns) and layer (rows) of every model of `saturations` (Saturation.as_dict())."""
    rows = [(found, layer) for found in saturations for layer in found["layers"]]
    columns = max(len(layer["gates"]) for _, layer in rows)
    figure, axes = _figure(len(rows), columns, (4 * columns, 4 * len(rows) + 0.5))
    for r, (found, layer) in enumerate(rows):
        where = found["name"] + (f", layer {layer['layer'] + 1}" if found["num_layers"] > 1 else "")
        for c, ax in enumerate(axes[r]):
            if c >= len(layer["gates"]):  # a GRU's row beside an LSTM's
                ax.set_axis_off()
                continue
            gate = layer["gates"][c]
            title = f"{where}: {gate['gate']} gate"
            _gate_panel(ax, gate, title, found, f"C{c % 10}")
    read = ", ".join(f"{found['name']} ({found['read']:,} tokens)" for found in saturations)
    figure.suptitle(f"Gate saturation: {read}")
    return figure


# -- seq2seq attention -------------------------------------------------------------------------


def attention_figure(weights, source: list[str], target: list[str], model: str):
    """A seq2seq model's attention over one sentence: a heatmap with the target tokens down
    the side (one row per output token) and the source tokens along the bottom, each cell the
    weight that output step put on that source token."""
    rows, columns = len(target), len(source)
    width = min(4 + 0.32 * columns, 40)
    height = min(2 + 0.3 * rows, 40)
    figure, axes = _figure(1, 1, (width, height))
    ax = axes[0][0]
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(columns), source, rotation=90, fontsize="small", family="monospace")
    ax.set_yticks(range(rows), target, fontsize="small", family="monospace")
    ax.set_xlabel("source token (what the encoder read)")
    ax.set_ylabel("output token (what the decoder wrote)")
    ax.set_xticks([x - 0.5 for x in range(1, columns)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, rows)], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    figure.suptitle(f"Attention of {model}: each output token's weights over the source")
    return figure
