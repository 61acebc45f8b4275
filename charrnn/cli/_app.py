"""The Typer app, output helpers and the entry point: the only place that prints, exits, or reads
argv and the environment.

stdout carries results (text, JSON); progress, logs and warnings go to stderr. Library errors
(`CharrnnError`) become one line: `Error: <where>: <what>; <how to fix>`.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
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
from charrnn.config import MAX_LEN_RATIO
from charrnn.errors import CharrnnError, UsageError
from charrnn.files import io_error

app = typer.Typer(
    name="charrnn",
    help="Train and use character- and BPE-level RNN/GRU/LSTM language models and seq2seq models.",
    add_completion=False,
    no_args_is_help=True,
    # click's plain help: flags shown as flags (the rich panels of recent Typer versions print
    # `--json <bool>`), and it reads the same in a pipe or a narrow terminal
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Typer raises click's usage errors (vendored in recent Typer versions): find the class by name.
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
err = Console(stderr=True, highlight=False, soft_wrap=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
# Options several commands share, declared once.
Checkpoint = Annotated[
    Path,
    typer.Argument(
        metavar="CHECKPOINT",
        help="A checkpoint (.pt) or a run directory (uses best.pt).",
        show_default=False,
    ),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Threads = Annotated[
    int | None,
    typer.Option(
        help="CPU threads (default: train uses the cores other programs leave free, looking "
        "again every 10 s; the other commands one per core).",
        min=1,
        show_default=False,
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        help="auto, fp32 or bf16 (fp16 on CUDA): the arithmetic; auto is bf16 on a CPU with "
        "AVX512-BF16 or AMX and on a GPU with bf16, else fp32."
    ),
]
Prompt = Annotated[
    str | None,
    typer.Option(
        help="Text to continue (seq2seq: a source to translate); - reads it from stdin. Default: "
        "start from nothing (seq2seq: one source per stdin line)."
    ),
]
PerLine = Annotated[
    bool,
    typer.Option(
        "--per-line",
        help="Each stdin line is an input: one output line per input line, in "
        "order, newlines escaped as \\n.",
    ),
]
Unknown = Annotated[
    str, typer.Option(help="Input characters outside the vocabulary: error, skip or unk.")
]
MaxLenRatio = Annotated[
    float | None,
    typer.Option(
        help="seq2seq: outputs at most this x the source length (default 2).", show_default=False
    ),
]


def length_ratio(translates: bool, value: float | None, what: str = "a language model") -> float:
    """--max-len-ratio's value: 2 unless given; only a seq2seq model (`translates`) has a
    source to measure (`what` the model is, when not)."""
    if value is None:
        return MAX_LEN_RATIO
    if not translates:
        raise UsageError(
            "--max-len-ratio",
            f"applies to seq2seq models (this is {what})",
            "drop it; --length (sample) or --max-len (beam) caps a language model's output",
        )
    if not 0 < value < math.inf:
        raise UsageError("--max-len-ratio", f"{value} must be a positive number", "use e.g. 2")
    return value


# -- output helpers ----------------------------------------------------------------------------


class ReaderLeft(Exception):
    """stdout's reader went away (`charrnn ... | head`). Not an OSError: click would turn a
    BrokenPipeError into exit status 1 before `main` could end quietly."""


class StdoutFailed(CharrnnError):
    """stdout cannot take the output: closed, or its disk is full."""


class Interrupted(BaseException):
    """A signal stopped the command (not an Exception: nothing may swallow it)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def write(text: str, flush: bool = True) -> None:
    """The one way to stdout (data only)."""
    if sys.stdout is None:
        raise StdoutFailed(
            "stdout", "is closed", "give the command somewhere to write (a file, a pipe)"
        )
    try:
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        raise ReaderLeft from None
    except OSError as e:
        failure = io_error("stdout", e)
        raise StdoutFailed(failure.where, failure.what, failure.fix) from None


def out(text: str = "", end: str = "\n") -> None:
    """Write results to stdout and flush, so pipes see them at once."""
    write(text + end)


def out_json(obj) -> None:
    """One JSON document on stdout."""
    out(json.dumps(obj, ensure_ascii=False))


def warn(message: str) -> None:
    """A warning on stderr (shown even with -q)."""
    err.print(f"[yellow]Warning:[/yellow] {message}", markup=True)


@contextmanager
def progress_bar(quiet: bool):
    """A rich progress display on stderr (a terminal only: logs and pipes get no bars);
    yields a `(stage, done, total)` callback or None."""
    if quiet or not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description:>10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, redirect_stdout=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Train and use character- and BPE-level RNN/GRU/LSTM language models and seq2seq models."""
    if version:
        out(f"charrnn {__version__}")
        raise typer.Exit(0)


# -- entry point -------------------------------------------------------------------------------


def looks_parallel(source: str | None) -> bool:
    """Whether a text file's first lines are nearly all `source<TAB>target` pairs."""
    try:
        if source is None or not Path(source).is_file() or source.endswith(".gz"):
            return False
        with open(source, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read(1 << 16).splitlines()[:200] if line.strip()]
    except OSError:
        return False  # reading it says what is wrong with the file
    return len(lines) >= 5 and sum("\t" in line for line in lines) >= 0.9 * len(lines)


def _usage_line(e) -> str:
    """One line for a command-line error found by the parser: a bad value names its flag (or
    argument) as the place, like charrnn's own errors."""
    command = e.ctx.command_path if e.ctx else "charrnn"
    where, message = command, e.format_message()
    param = getattr(e, "param", None)
    if isinstance(e, typer.BadParameter) and param is not None and e.message:
        if param.param_type_name == "option":
            where = max(param.opts, key=len)  # --temperature, not -t
        else:
            where = param.human_readable_name
        message = e.message
    message = " ".join(message.split()).rstrip(".")
    fix = f"see {command} --help"
    if "unexpected extra argument" in message and command.split()[-1] in ("sample", "beam"):
        fix = "the checkpoint is the only argument: give the text with --prompt (or on stdin)"
    return f"Error: {where}: {message}; {fix}"


STARTED = [time.monotonic()]  # when the current command began (a time budget counts from it)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every failure into one line on stderr and an exit code."""
    STARTED[0] = time.monotonic()
    debug = os.environ.get("CHARRNN_DEBUG") == "1"
    if not (sys.argv[1:] if argv is None else argv):  # no command: the overview, as --help
        app(args=["--help"], prog_name="charrnn", standalone_mode=False)
        sys.exit(2)
    if sys.stderr is None:  # closed: errors have nowhere to go, but are still errors
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    # a signal becomes Interrupted (typer would turn Ctrl-C into a silent exit 130)
    previous = {s: signal.signal(s, _on_signal) for s in _SIGNALS if _handled(s)}
    try:
        code = app(args=argv, prog_name="charrnn", standalone_mode=False)
    except CharrnnError as e:
        if debug:
            raise
        err.print(f"Error: {e.message()}", markup=False)
        code = e.exit_code
        if isinstance(e, StdoutFailed):
            _stdout_to_null()  # the exit's own flush would fail again
    except _USAGE_ERROR as e:
        err.print(_usage_line(e), markup=False)
        code = 2
    except (typer.Abort, KeyboardInterrupt, Interrupted) as e:
        name = e.name if isinstance(e, Interrupted) else "SIGINT"
        err.print(
            f"Error: {name}: stopped before the end; nothing half-written was kept, run the "
            "command again",
            markup=False,
        )
        code = 143 if name == "SIGTERM" else 130
    except (ReaderLeft, BrokenPipeError):
        # `charrnn ... | head`: the reader left; end quietly, with success, as `yes | head`'s
        # pipeline does.
        _stdout_to_null()
        code = 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    sys.exit(code if isinstance(code, int) else 0)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handled(signum: int) -> bool:
    """Whether to take over a signal: not one the parent ignores (a background job's SIGINT)."""
    return signal.getsignal(signum) is not signal.SIG_IGN


def _on_signal(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _stdout_to_null() -> None:
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
