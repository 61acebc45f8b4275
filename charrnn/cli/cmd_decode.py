"""`charrnn sample` and `charrnn beam`."""

from __future__ import annotations

import array
import io
import os
import secrets
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.live import Live
from rich.table import Table

from charrnn.cli._app import (
    Checkpoint,
    Device,
    Json,
    MaxLenRatio,
    PerLine,
    Precision,
    Prompt,
    Quiet,
    Threads,
    Unknown,
    app,
    err,
    length_ratio,
    out_json,
    warn,
    write,
)
from charrnn.config import BeamConfig, SampleConfig
from charrnn.errors import CharrnnError, UsageError

S, B = SampleConfig, BeamConfig  # defaults live in the dataclasses
Echo = Annotated[
    bool | None,
    typer.Option(
        "--echo/--no-echo",
        help="Print the prompt before its continuation, or a seq2seq source and a tab before "
        "its output (default: on for one language-model prompt, off with --per-line and for "
        "seq2seq).",
        show_default=False,
    ),
]
BATCH = 64  # prompts decoded together with --per-line


class Writer:
    """Text to stdout as it is produced: flushed at once on a terminal, at most every 50 ms
    into a pipe (so `| cat` sees text arrive without a system call per token)."""

    def __init__(self) -> None:
        self.tty = sys.stdout is not None and sys.stdout.isatty()
        self.last = 0.0
        self.line_open = True  # no newline ends the output yet (an empty one gets its line)

    def write(self, text: str) -> None:
        if text:
            self.line_open = not text.endswith("\n")
        now = time.monotonic()
        flush = self.tty or now - self.last > 0.05
        write(text, flush)
        if flush:
            self.last = now

    def close(self) -> None:
        write("", flush=True)


def _prompts(prompt: str | None, per_line: bool, translates: bool) -> list[str]:
    """The prompt texts: --prompt TEXT, all of stdin (--prompt -), or stdin lines. A language
    model's prompt from stdin is used exactly; a seq2seq source is one line, its end cut."""
    if per_line:
        if prompt not in (None, "-"):
            raise UsageError("--per-line", "reads its prompts from stdin", "drop --prompt TEXT")
        # lines end at \n (or \r\n) only, as `wc -l` counts them: form feeds, U+2028 and
        # the like stay inside a prompt
        lines = [line.removesuffix("\r") for line in _stdin().split("\n")]
        if lines[-1] == "":
            lines.pop()
        if not lines:
            raise CharrnnError(
                "stdin",
                "no lines to continue (stdin is empty)",
                "pipe text in, one prompt per line",
            )
        return lines
    if prompt == "-":
        text = _stdin()
        if not text:
            raise CharrnnError(
                "--prompt -",
                "the prompt is empty (nothing on stdin)",
                "pipe a prompt in, or leave out --prompt to start from nothing"
                if not translates
                else "pipe a source sentence in",
            )
        if not translates:
            return [text]
        source = text.removesuffix("\n").removesuffix("\r")
        if "\n" in source:  # sentence pairs never hold a newline
            raise UsageError(
                "--prompt -",
                f"reads all of stdin as one source sentence, and stdin holds "
                f"{source.count(chr(10)) + 1} lines",
                "leave out --prompt - to translate one source per line",
            )
        return [source]
    return [_utf8("--prompt", prompt or "")]


def _echo(trained, texts: list[str], per_line: bool, echo: bool | None):
    """What goes before input `line`'s output: its prompt (language models), or its source
    and a tab (seq2seq), when echoing; by default only a single language-model prompt is."""
    echo = (not per_line and not trained.translates) if echo is None else echo
    sep = "\t" if trained.translates else ""
    return lambda line: texts[line] + sep if echo else ""


def _stdin() -> str:
    if sys.stdin is None:
        raise CharrnnError("stdin", "is closed", "pipe the text in, or give it with --prompt TEXT")
    try:
        # a byte order mark is not text (decoded first, so error offsets count its bytes)
        return sys.stdin.buffer.read().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise CharrnnError(
            "stdin", f"not valid utf-8 at byte offset {e.start}", "convert the input to UTF-8"
        ) from None


def _inputs(trained, prompt: str | None, per_line: bool, unknown: str):
    """The input texts and their ids. A seq2seq model reads one source per stdin line
    unless --prompt gives one."""
    per_line = per_line or (trained.translates and prompt is None)
    if prompt is None and not per_line and _unread_stdin():
        warn("stdin holds text that is not read: pass --prompt - to continue it, or --per-line")
    from charrnn import generate

    texts = _prompts(prompt, per_line, trained.translates)
    from_lines = per_line or prompt == "-"
    encoded, missing = generate.encode_inputs(trained, texts, unknown, lines=from_lines)
    if missing:
        verb = "skipped" if unknown == "skip" else "encoded as <unk>"
        warn(f"{missing} prompt character(s) not in the vocabulary were {verb}")
    return texts, encoded, per_line


def _unread_stdin() -> bool:
    """Whether text waits on stdin (a pipe or a file, not a terminal) that a command without
    --prompt - or --per-line would ignore. Looks without reading; best effort."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return os.fstat(fd).st_size > os.lseek(fd, 0, os.SEEK_CUR)
        if stat.S_ISFIFO(mode):
            import fcntl  # POSIX only
            import termios

            waiting = array.array("i", [0])
            fcntl.ioctl(fd, termios.FIONREAD, waiting)
            return waiting[0] > 0
    except (ImportError, OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    return False


def load_model(checkpoint: Path, device: str, threads: int | None, precision: str = "auto"):
    """A trained model on its device, to decode or score in `precision` (torch is imported
    here, not before: --help is fast)."""
    from charrnn import device as devices
    from charrnn.trained import load_trained

    return load_trained(checkpoint, devices.prepare(device, threads), precision)


def load_generator(checkpoint: Path, device: str, threads: int | None, precision: str):
    """A trained model that generates text (a language or seq2seq model), for sample and
    beam: a classifier is told where to go."""
    trained = load_model(checkpoint, device, threads, precision)
    if trained.kind == "classify":
        raise UsageError(
            "CHECKPOINT",
            f"{trained.path} is a classifier: it labels texts, it does not generate them",
            f"use charrnn classify {checkpoint}",
        )
    return trained


def _utf8(flag: str, text: str) -> str:
    """`text` from the command line, which must be UTF-8: undecodable bytes reach Python as
    lone surrogates, which no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            flag, "holds bytes that are not UTF-8 text", "pass UTF-8 (or pipe the text in)"
        ) from None
    return text


def _stops(stop: list[str] | None) -> list[str]:
    stops = [unescape(_utf8("--stop", s)) for s in stop or []]
    if any(not s for s in stops):
        raise UsageError(
            "--stop", "a stop string is empty", "give a non-empty string, e.g. '\\n\\n'"
        )
    return stops


NoRepeatNgram = Annotated[  # sample and beam
    int | None,
    typer.Option(
        help="Never repeat an n-gram of this size; 0 = off (default: 3 for a seq2seq model "
        "over word pieces, else off).",
        show_default=False,
    ),
]


@app.command()
def sample(
    checkpoint: Checkpoint,
    prompt: Prompt = None,
    per_line: PerLine = False,
    length: Annotated[int, typer.Option(help="New tokens at most.")] = S.length,
    max_chars: Annotated[
        int | None,
        typer.Option(help="Stop each sample after this many characters.", show_default=False),
    ] = None,
    temperature: Annotated[
        float, typer.Option(help="Divide logits by this; 0 = greedy (argmax).")
    ] = S.temperature,
    top_k: Annotated[int, typer.Option(help="Keep the k most likely tokens; 0 = off.")] = S.top_k,
    top_p: Annotated[
        float, typer.Option(help="Nucleus: keep the most likely tokens up to this mass; 1 = off.")
    ] = S.top_p,
    min_p: Annotated[
        float, typer.Option(help="Keep tokens at least this x the top probability; 0 = off.")
    ] = S.min_p,
    repetition_penalty: Annotated[
        float, typer.Option(help="Penalise tokens already in the text (CTRL); 1 = off.")
    ] = S.repetition_penalty,
    no_repeat_ngram: NoRepeatNgram = None,
    stop: Annotated[
        list[str] | None,
        typer.Option(
            help="End a sample at this string, not printed (repeatable; \\n, \\t understood)."
        ),
    ] = None,
    num_samples: Annotated[int, typer.Option(help="Samples per prompt, drawn as one batch.")] = 1,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed: the same command gives the same output.",
            show_default=False,
            min=0,
            max=2**63 - 1,
        ),
    ] = None,
    unknown: Unknown = "error",
    echo: Echo = None,
    max_len_ratio: MaxLenRatio = None,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Generate text: temperature, top-k, top-p, min-p, repetition filters; streamed to stdout."""
    cfg = SampleConfig(
        length=length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram=no_repeat_ngram or 0,
    )
    cfg.check()
    _check_counts(num_samples, max_chars, per_line, as_json)
    from charrnn import generate

    stops = _stops(stop)
    trained = load_generator(checkpoint, device, threads, precision)
    if no_repeat_ngram is None:
        no_repeat_ngram = generate.no_repeat_default(trained)
        cfg = replace(cfg, no_repeat_ngram=no_repeat_ngram)
    ratio = length_ratio(trained.translates, max_len_ratio)
    texts, prompts, per_line = _inputs(trained, prompt, per_line, unknown)
    _check_counts(num_samples, max_chars, per_line, as_json)  # seq2seq: per line
    prefix = _echo(trained, texts, per_line, echo)
    if seed is None:  # drawn here, so --json records the seed that repeats these samples
        seed = secrets.randbits(63)  # not torch.seed(): that reseeds torch's own generator
    settings = {
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "min_p": min_p,
        "repetition_penalty": repetition_penalty,
        "no_repeat_ngram": no_repeat_ngram,
        "length": length,
        "max_chars": max_chars,
        "stop": stops,
        "seed": seed,
    }
    writer = Writer()
    stream = not per_line and num_samples == 1 and not as_json
    if stream:
        writer.write(prefix(0))
    for start in range(0, len(prompts), BATCH):
        chunk = prompts[start : start + BATCH]
        on_text = (lambda row, text: writer.write(text)) if stream else None
        results = generate.sample(
            trained,
            chunk,
            cfg,
            num_samples=num_samples,
            stops=stops,
            max_chars=max_chars,
            seed=seed,
            positions=range(start, start + len(chunk)),  # line numbers: each line's own draws
            max_len_ratio=ratio,
            on_text=on_text,
        )
        for r in results:
            line = start + r.prompt_index
            if as_json:
                out_json(_sample_record(r, texts[line], line if per_line else None, settings))
            elif per_line:
                writer.write(escape_line(prefix(line) + r.text) + "\n")
            elif not stream:
                text = prefix(line) + r.text
                ending = "" if text.endswith("\n") else "\n"
                writer.write(text + ending + ("\n" if r.sample_index < num_samples - 1 else ""))
    if stream and writer.line_open:  # end the line, as the other outputs do
        writer.write("\n")
    writer.close()


def _check_counts(num_samples: int, max_chars: int | None, per_line: bool, as_json: bool):
    if num_samples < 1:
        raise UsageError("--num-samples", f"{num_samples} must be at least 1", "use 1 or more")
    if max_chars is not None and max_chars < 1:
        raise UsageError("--max-chars", f"{max_chars} must be at least 1", "use 1 or more")
    if per_line and num_samples > 1 and not as_json:
        raise UsageError(
            "--num-samples",
            "one output line is written per input line (--per-line, or a seq2seq model)",
            "use --json for several samples per line",
        )


def _sample_record(r, prompt: str, line: int | None, settings: dict) -> dict:
    """One sample as --json prints it (`line`: its input line's index with --per-line)."""
    return {
        "prompt": prompt,
        "text": r.text,
        "tokens": r.tokens,
        "logprob": r.logprob,
        "finished": r.finished,
        "sample": r.sample_index,
        **({"line": line + 1} if line is not None else {}),
        "settings": settings,
    }


class BeamDisplay:
    """--show-beams: the live beams of the first input in the batch, on stderr."""

    def __init__(self, tokenizer, enabled: bool) -> None:
        self.tokenizer = tokenizer
        enabled = enabled and err.is_terminal
        live = Live(console=err, refresh_per_second=8, transient=True, redirect_stdout=False)
        self.live = live if enabled else None
        self.last = 0.0

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, length: int, tokens, scores) -> None:
        if self.live is None or time.monotonic() - self.last < 0.1:
            return
        beams = list(zip(tokens[0].tolist(), scores[0].tolist(), strict=True))
        self.last = time.monotonic()
        table = Table(title=f"beam search, step {length}", show_lines=False)
        table.add_column("score", justify="right")
        table.add_column("hypothesis")
        for ids, score in beams:
            text = escape_line(self.tokenizer.decode(ids))[-80:]
            table.add_row(f"{score:.3f}", text)
        self.live.update(table)


@app.command()
def beam(
    checkpoint: Checkpoint,
    prompt: Prompt = None,
    per_line: PerLine = False,
    beam_size: Annotated[int, typer.Option(help="Hypotheses kept per input.")] = B.beam_size,
    n_best: Annotated[int, typer.Option(help="Print the N best, with scores.")] = B.n_best,
    max_len: Annotated[int, typer.Option(help="New tokens at most.")] = B.max_len,
    min_len: Annotated[int, typer.Option(help="No ending before this many tokens.")] = B.min_len,
    length_penalty: Annotated[
        str,
        typer.Option(help="none (sum of log-probs), avg (per token) or gnmt ((5+len)/6)^alpha."),
    ] = B.length_penalty,
    alpha: Annotated[float, typer.Option(help="The gnmt length-penalty exponent.")] = B.alpha,
    no_repeat_ngram: NoRepeatNgram = None,
    coverage_penalty: Annotated[
        float,
        typer.Option(
            help="seq2seq: GNMT's coverage penalty beta (0 = off): favours outputs whose "
            "attention covered every source token."
        ),
    ] = B.coverage_penalty,
    end: Annotated[
        str | None,
        typer.Option(
            help="A language model's end of sequence, e.g. '\\n' for one line per name.",
            show_default=False,
        ),
    ] = None,
    show_beams: Annotated[
        bool, typer.Option("--show-beams", help="Draw the live beams on stderr.")
    ] = False,
    unknown: Unknown = "error",
    echo: Echo = None,
    max_len_ratio: MaxLenRatio = None,
    attention: Annotated[
        Path | None,
        typer.Option(
            help="seq2seq: draw the first input's attention (.png or .svg): a heatmap, output "
            "tokens down the side, source tokens along the bottom.",
            show_default=False,
        ),
    ] = None,
    show_attention: Annotated[
        bool,
        typer.Option(
            "--show-attention", help="seq2seq: draw the first input's attention on stderr."
        ),
    ] = False,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Beam search: the most likely continuations, with length penalties and n-best lists."""
    cfg = BeamConfig(
        beam_size=beam_size,
        n_best=n_best,
        max_len=max_len,
        min_len=min_len,
        length_penalty=length_penalty,
        alpha=alpha,
        no_repeat_ngram=no_repeat_ngram or 0,
        coverage_penalty=coverage_penalty,
    )
    cfg.check()
    end_text = unescape(_utf8("--end", end)) if end is not None else None
    if end is not None and not end_text:
        raise UsageError("--end", "the end string is empty", "give e.g. '\\n'")
    from charrnn import generate

    trained = load_generator(checkpoint, device, threads, precision)
    if no_repeat_ngram is None:
        cfg = replace(cfg, no_repeat_ngram=generate.no_repeat_default(trained))
    ratio = length_ratio(trained.translates, max_len_ratio)
    if end is not None and trained.translates:
        raise UsageError(
            "--end",
            "applies to language models (a seq2seq output ends with its own end token)",
            "drop --end; --max-len or --max-len-ratio caps a translation",
        )
    _check_attention_flags(trained, attention, show_attention)
    texts, prompts, per_line = _inputs(trained, prompt, per_line, unknown)
    prefix = _echo(trained, texts, per_line, echo)
    writer = Writer()
    with BeamDisplay(trained.tokenizer, show_beams and not quiet) as display:
        for start in range(0, len(prompts), BATCH):
            chunk = prompts[start : start + BATCH]
            results = generate.beam(
                trained,
                chunk,
                cfg,
                end=end_text,
                on_step=display.update,
                max_len_ratio=ratio,
            )
            for i, hyps in enumerate(results):
                line = start + i
                for rank, h in enumerate(hyps, 1):
                    if as_json:
                        out_json(
                            {
                                "prompt": texts[line],
                                **h,
                                "rank": rank,
                                **({"line": line + 1} if per_line else {}),
                            }
                        )
                    elif n_best > 1:
                        number = f"{line + 1}\t" if per_line else ""
                        text = escape_line(prefix(line) + h["text"])
                        writer.write(f"{number}{h['score']:.4f}\t{text}\n")
                    elif per_line or trained.translates:
                        writer.write(escape_line(prefix(line) + h["text"]) + "\n")
                    else:
                        text = prefix(line) + h["text"]
                        writer.write(text + ("" if text.endswith("\n") else "\n"))
            if (attention or show_attention) and start == 0:
                if results[0][0]["finished"] == "empty":
                    warn("the first input is empty: no attention to draw")
                else:
                    _attention(trained, chunk[0], results[0][0]["ids"], attention, show_attention)
    writer.close()


def _check_attention_flags(trained, attention: Path | None, show_attention: bool) -> None:
    """--attention FILE and --show-attention need a model with attention, and FILE a place."""
    if (attention or show_attention) and not _has_attention(trained):
        flag = "--attention" if attention else "--show-attention"
        kind = trained.model_name + ("" if not trained.translates else ", --attention none")
        raise UsageError(
            flag,
            f"needs a seq2seq model with attention (this one is {kind})",
            f"drop {flag}, or pass a seq2seq checkpoint trained with attention",
        )
    if attention is not None and (attention.is_dir() or not attention.parent.is_dir()):
        what = "is a directory" if attention.is_dir() else "is in a folder that does not exist"
        raise UsageError("--attention", f"{attention} {what}", "give a file path, e.g. att.png")
    if attention is not None:
        from charrnn.inspect import pictures

        pictures.check_output(attention)  # .png or .svg, before the work


def _attention(
    trained, source: list[int], target: list[int], png_path: Path | None, show: bool
) -> None:
    """Draw the attention of the first input's best output (PNG file and/or terminal)."""
    from charrnn.kinds import seq2seq

    weights = seq2seq.attention_map(trained.model, source, target, trained.device)
    src = [trained.source_tokenizer.token_text(i) for i in source]
    tgt = [trained.tokenizer.token_text(i) for i in target] + ["<eos>"]
    if png_path is not None:
        from charrnn.inspect import pictures

        labels = [[_visible(t) for t in tokens] for tokens in (src, tgt)]
        figure = pictures.attention_figure(weights, *labels, trained.model_name)
        title = f"Attention: {' '.join(labels[0])} -> {' '.join(labels[1])}"
        pictures.save(figure, png_path, title)
        err.print(
            f"wrote {png_path}: attention of {len(tgt)} target over {len(src)} source "
            "tokens (rows: target, columns: source)"
        )
    if show:
        for line in attention_lines(src, tgt, weights, color=err.color_system is not None):
            err.print(line, soft_wrap=True)


def attention_lines(src: list[str], tgt: list[str], weights, *, color: bool) -> list[str]:
    """The attention grid as lines of rich markup: a header of source tokens, then a row per
    target token. Each column is as wide as its token (at least 2), one space apart, so the
    labels of multi-character (BPE) tokens stay over their own columns."""
    widths = [max(2, _width(t)) for t in src]
    left = max(_width(t) for t in tgt) + 1
    header = " " * left + " ".join(
        _label(t) + " " * (w - _width(t)) for t, w in zip(src, widths, strict=True)
    )
    lines = [header.rstrip()]
    for token, row in zip(tgt, weights, strict=True):
        cells = " ".join(_cell(x, w, color) for x, w in zip(row, widths, strict=True))
        lines.append(_label(token) + " " * (left - _width(token)) + cells)
    return lines


def _width(token: str) -> int:
    """How many columns a token's label takes on the terminal."""
    return cell_len(escape_line(token))  # East Asian characters take two


def _cell(weight: float, width: int, color: bool) -> str:
    """One attention weight as a coloured block, or shade characters without colours."""
    if not color:
        return " ░▒▓█"[min(4, int(weight * 5))] * width
    return f"[on rgb{_rgb(weight)}]{' ' * width}[/]"


def _rgb(weight: float) -> tuple[int, int, int]:
    """A weight in [0, 1] from white (0) to dark blue (1)."""
    w = min(max(float(weight), 0.0), 1.0)
    return tuple(round(255 + (c - 255) * w) for c in (8, 48, 107))


def _visible(token: str) -> str:
    """A token as a picture's label: spaces, newlines and tabs shown."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5")


def _has_attention(trained) -> bool:
    return trained.translates and getattr(trained.model, "attention", None) is not None


def _label(token: str) -> str:
    return escape_line(token).replace(" ", "\u2423").replace("[", "\\[")


def unescape(text: str) -> str:
    """`\\n`, `\\t`, `\\r` and `\\\\` in a command-line string become the characters."""
    out, i = [], 0
    table = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def escape_line(text: str) -> str:
    """One output line: backslash, newline and carriage return escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
