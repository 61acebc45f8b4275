"""`charrnn train` and `charrnn models`."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from charrnn import kinds, models
from charrnn.cli._app import (
    STARTED,
    Interrupted,
    Json,
    Quiet,
    Threads,
    app,
    err,
    looks_parallel,
    out,
    out_json,
    warn,
)
from charrnn.config import (
    KIND_DEFAULTS,
    MAX_AUTO_DROPOUT,
    WORD_PIECE_SMOOTHING,
    ModelConfig,
    TokenizeConfig,
    TrainConfig,
    configs_for,
    model_fields,
    parse_duration,
)
from charrnn.datadir import is_dataset
from charrnn.errors import UsageError

M, T = ModelConfig, TrainConfig  # defaults live in the dataclasses; shown in --help
C_M, C_T = KIND_DEFAULTS["classify"]["model"], KIND_DEFAULTS["classify"]["train"]  # its flags


def _per_kind(section: str, field: str) -> str:
    """'; seq2seq models 256; classifiers 256': the kinds whose defaults (charrnn.kinds) set
    this model or training field, for --help."""
    return "".join(
        f"; {kind.models} {kind.defaults[section][field]}"
        for kind in kinds.KINDS.values()
        if field in kind.defaults[section]
    )


def cache_dir() -> Path:
    """Where tokenized copies of raw-text corpora are kept: $CHARRNN_CACHE_DIR, else
    $XDG_CACHE_HOME/charrnn, else ~/.cache/charrnn."""
    if os.environ.get("CHARRNN_CACHE_DIR"):
        return Path(os.environ["CHARRNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn" / "data"


def torchrun_ranks():
    """This process's place when launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK)."""
    from charrnn.distributed import Ranks

    env = os.environ
    return Ranks(
        rank=int(env.get("RANK", 0)),
        world_size=int(env.get("WORLD_SIZE", 1)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", 1)),
    )


@contextmanager
def stop_signals(started: list[bool]):
    """Ctrl-C / SIGTERM during training ask the loop to checkpoint and stop; before the loop
    starts (or on a second signal) they interrupt at once."""
    received: list[str] = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if received or not started:
            raise Interrupted(name)
        received.append(name)
        err.print(f"\n{name}: saving a checkpoint and stopping (again to abort)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _TwoLineProgress(Progress):
    """A progress bar with the training figures on a line of their own below it, so that a
    narrow terminal cuts neither."""

    footer = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.footer:
            yield Text(self.footer, overflow="ellipsis", no_wrap=True)


class TrainDisplay:
    """The progress display on stderr, fed by the training loop's hooks. Without a terminal
    (a log file, a pipe) it prints a labelled line at every evaluation and at least every
    LINE_EVERY seconds instead."""

    def __init__(self, quiet: bool, started: list[bool]) -> None:
        self.quiet = quiet
        self.started = started
        self.info = {"loss": "", "val": "", "speed": "", "grad": "", "time": ""}
        self.clipping = True  # whether the run clips gradients (from its start record)
        self.bar: Progress | None = None
        self.task = None
        self.stages: dict[str, int] = {}
        self.printed = time.monotonic() - LINE_EVERY + FIRST_LINE  # the first line comes soon

    def __enter__(self):
        if not self.quiet and err.is_terminal:  # logs and pipes get the summary lines only
            self.bar = _TwoLineProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                console=err,
                redirect_stdout=False,  # stdout carries data, also while a bar is drawn
            )
            self.bar.__enter__()
        return self

    def data_progress(self, stage: str, done: int, total: int | None) -> None:
        """Tokenizing a raw-text corpus before training."""
        if self.bar is None:
            return
        if stage not in self.stages:
            self.stages[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.stages[stage], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def event(self, record: dict) -> None:
        kind = record["event"]
        if kind in ("start", "resume"):
            self._start(record)
        elif kind == "warning":
            warn(record["message"])
        elif kind in ("note", "threads") and not self.quiet:
            err.print(record["message"] if kind == "note" else _threads_line(record))
        elif kind == "train":
            self.info["loss"] = f"loss {record['loss']:.3f}"
            self.info["speed"] = f"{record['tokens_per_s'] / 1000:.1f}k tok/s"
            clipped = f" ({100 * record['clipped']:.0f}% clipped)" if self.clipping else ""
            self.info["grad"] = f"|g| {record['grad_norm']:.2f}{clipped}"
            self.info["time"] = (
                f"elapsed {_clock(record['elapsed'])}, left {_clock(record['remaining'])}"
            )
            if time.monotonic() - self.printed >= LINE_EVERY:
                self._line(record["step"], record.get("progress"))
        elif kind == "eval":
            mark = " *" if record["best"] else ""
            sample = " (sample)" if record.get("val_sample") else ""
            self.info["val"] = _val_line(record) + f"{mark}{sample}"
            if "val_attention_entropy" in record:  # seq2seq: is the attention looking?
                self.info["val"] += (
                    f", attention entropy {record['val_attention_entropy']:.2f} "
                    f"(on end {record['val_attention_on_end']:.2f})"
                )
            self._line(record["step"], None)
        self._refresh()

    def _start(self, record: dict) -> None:
        self.started.append(True)
        config = record.get("config", {})
        self.clipping = bool(config.get("clip_norm") or config.get("clip_value"))
        if self.bar is not None:
            for task_id in self.stages.values():
                self.bar.remove_task(task_id)
            self.task = self.bar.add_task("starting", total=1000)
        if not self.quiet:
            verb = "resuming at step" if record["event"] == "resume" else "training from step"
            err.print(
                f"{verb} {record['step']}: {record['params']:,} parameters, "
                f"{record.get('precision', 'fp32')}, {record.get('threads')} thread(s)"
            )
            for key, (old, new) in record.get("changes", {}).items():
                err.print(f"changed on resume: {key} {old} -> {new}")

    def _line(self, step: int, progress: float | None) -> None:
        """A line for the log, without a terminal."""
        if self.quiet or self.bar is not None:
            return
        self.printed = time.monotonic()
        done = f" ({100 * progress:.0f}%)" if progress is not None else ""
        err.print(f"step {step}{done}: {self._summary()}")

    def step(self, step: int, fraction: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=1000 * fraction, description=f"step {step}")

    def _summary(self) -> str:
        return " | ".join(v for v in self.info.values() if v)

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.footer = self._summary()


LINE_EVERY = 30.0  # seconds between progress lines without a terminal...
FIRST_LINE = 10.0  # ...the first one this long after the start


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


def _threads_line(record: dict) -> str:
    if record["threads"] < record["cores"]:
        return (
            f"using {record['threads']} thread(s) of {record['cores']}: other programs keep "
            f"{record['busy']:.1f} core(s) busy"
        )
    return f"using all {record['cores']} cores again"


def _val_line(record: dict) -> str:
    """An evaluation's headline: bits per character, or a classifier's accuracy and loss."""
    if "val_accuracy" in record:
        return (
            f"val acc {record['val_accuracy']:.3f}, F1 {record['val_macro_f1']:.3f}, "
            f"loss {record['val_loss']:.3f}"
        )
    return f"val bpc {record['val_bpc']:.3f}"


def _print_summary(summary: dict) -> None:
    last = summary.get("last_eval") or {}
    out(
        f"{summary['reason'] or 'stopped'} after {summary['step']:,} steps "
        f"({summary['elapsed']:.0f}s, {summary['tokens']:,} tokens) on {summary['device']}, "
        f"{summary['precision']}"
    )
    if "val_accuracy" in last:
        out(
            f"  validation: accuracy {last['val_accuracy']:.4f}, macro F1 "
            f"{last['val_macro_f1']:.4f}, loss {last['val_loss']:.4f} nats/text"
        )
    elif last:
        which = "a sample of the validation split" if last.get("val_sample") else "validation"
        out(
            f"  {which}: loss {last.get('val_loss', float('nan')):.4f} nats/token, "
            f"{last.get('val_bpc', float('nan')):.4f} bits/char"
        )
    run_dir = Path(summary["run_dir"])
    saved = [str(run_dir / n) for n in ("best.pt", "last.pt") if (run_dir / n).is_file()]
    out(f"  checkpoints: {', '.join(saved)}; log: {run_dir / 'metrics.jsonl'}")


@app.command()
def train(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="INPUT",
            help="A text file, directory, .gz, - (stdin), a built-in corpus (builtin:shakespeare, "
            "builtin:names, builtin:python, builtin:dates), or a data "
            "directory from charrnn tokenize. Raw text is tokenized once and cached.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory for last.pt, best.pt and metrics.jsonl."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this run directory exactly where it stopped.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Registry entry: {', '.join(models.MODELS)} (default lstm; --pairs "
            "seq2seq-gru; --labels classify-gru)."
        ),
    ] = None,
    embed_size: Annotated[
        int | None, typer.Option(help=f"Embedding size (default {M.embed_size}).")
    ] = None,
    hidden_size: Annotated[
        int | None,
        typer.Option(
            help="Hidden units per layer (default: picked for the time budget and the "
            f"corpus by measuring this machine's speed{_per_kind('model', 'hidden_size')})."
        ),
    ] = None,
    num_layers: Annotated[
        int | None, typer.Option(help=f"Stacked recurrent layers (default {M.num_layers}).")
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(
            help="Dropout between layers and on the output (default: by how many times the "
            f"budget reads the corpus, 0 to {MAX_AUTO_DROPOUT}{_per_kind('model', 'dropout')})."
        ),
    ] = None,
    embed_dropout: Annotated[
        float | None, typer.Option(help=f"Dropout on the embeddings (default {M.embed_dropout}).")
    ] = None,
    weight_dropout: Annotated[
        float | None,
        typer.Option(
            help="DropConnect on the recurrent (hidden-to-hidden) weights, one mask per batch "
            f"(default {M.weight_dropout})."
        ),
    ] = None,
    tie_weights: Annotated[
        bool | None,
        typer.Option(
            "--tie-weights/--no-tie-weights",
            help="Share the input embedding and the output "
            "layer (needs --embed-size = --hidden-size).",
            show_default=False,
        ),
    ] = None,
    residual: Annotated[
        bool | None,
        typer.Option(
            "--residual/--no-residual",
            help="Residual connections between stacked layers.",
            show_default=False,
        ),
    ] = None,
    nonlinearity: Annotated[
        str | None, typer.Option(help="rnn cell only: tanh or relu (default tanh).")
    ] = None,
    attention: Annotated[
        str | None,
        typer.Option(
            help="seq2seq: dot, general (Luong), additive (Bahdanau) or none (default general)."
        ),
    ] = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option(
            "--bidirectional/--no-bidirectional",
            help="seq2seq and classify: a bidirectional encoder (default on).",
            show_default=False,
        ),
    ] = None,
    input_feeding: Annotated[
        bool | None,
        typer.Option(
            "--input-feeding/--no-input-feeding",
            help="seq2seq: feed the previous attentional vector to the decoder (default on).",
            show_default=False,
        ),
    ] = None,
    scaled_attention: Annotated[
        bool | None,
        typer.Option(
            "--scaled-attention/--no-scaled-attention",
            help="seq2seq: divide dot and general attention scores by sqrt(hidden size) "
            "(default on).",
            show_default=False,
        ),
    ] = None,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="classify: how a text's states become one vector: last (each direction's final "
            "state), mean, max or attention (one learned weight per token) (default "
            f"{C_M.get('pooling', M.pooling)})."
        ),
    ] = None,
    class_weights: Annotated[
        str | None,
        typer.Option(
            help="classify: none, or balanced (each class weighs in the loss as if the labels "
            "were balanced) (default none)."
        ),
    ] = None,
    best_on: Annotated[
        str | None,
        typer.Option(
            help="classify: the validation score that picks best.pt and counts --patience: "
            f"loss, accuracy or macro_f1 (default {C_T.get('best_on', T.best_on)})."
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="classify: start the encoder from this language model's run (pretrained on "
            "unlabelled text tokenized with the labelled data's vocabulary).",
            show_default=False,
        ),
    ] = None,
    scheduled_sampling: Annotated[
        float | None,
        typer.Option(
            help="seq2seq: feed the decoder its own predictions with a probability growing "
            "linearly to this over the run (default 0: always teacher forcing)."
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            help="seq2seq: spread this much of each target token's probability over the "
            "vocabulary in the training loss (evaluations score the plain loss) (default "
            f"{WORD_PIECE_SMOOTHING:g} over word pieces, else 0)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help=f"Sequences (or pairs, or texts) per batch (default {T.batch_size}"
            f"{_per_kind('train', 'batch_size')})."
        ),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            help=f"Tokens per sequence: the truncated-BPTT length (default {T.seq_len}); "
            f"classify: texts are cut to this many tokens in training (default {C_T['seq_len']})."
        ),
    ] = None,
    reset_every: Annotated[
        int | None,
        typer.Option(
            help=f"stream batching: each row restarts from <bos> once every this many chunks on "
            f"average, so the model learns fresh starts; 0 = never (default {T.reset_every})."
        ),
    ] = None,
    batching: Annotated[
        str | None,
        typer.Option(
            help="stream (consecutive chunks, state carried) or random (windows) (default stream)."
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help=f"Peak learning rate (default {T.lr}{_per_kind('train', 'lr')})."),
    ] = None,
    min_lr_frac: Annotated[
        float | None,
        typer.Option(help=f"Final learning rate as a fraction of --lr (default {T.min_lr_frac})."),
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option(help=f"Linear warmup steps (default {T.warmup_steps}).")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="cosine or constant (default cosine).")
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="adamw, adam, rmsprop or sgd (default adamw).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help=f"Weight decay on matrices (default {T.weight_decay}).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Stop after this many epochs.")] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Stop after this long (90s, 10m, 1h30m), counted from the command's start: "
            "set-up, evaluations and the final evaluation and save fit inside. Default 10m when "
            "neither --max-steps nor --epochs is given."
        ),
    ] = None,
    clip_norm: Annotated[
        float | None,
        typer.Option(
            help=f"Clip the global gradient norm; 0 turns it off (default {T.clip_norm})."
        ),
    ] = None,
    clip_value: Annotated[
        float | None,
        typer.Option(
            help="Clip each gradient element to +-this (char-rnn style); 0 = off (default 0)."
        ),
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option(
            help="Evaluate and keep an exponential moving average of the weights with this "
            f"decay per step (Polyak averaging); 0 = off (default {T.ema_decay}"
            f"{_per_kind('train', 'ema_decay')})."
        ),
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Evaluate on a fixed sample of the validation split every N steps (the last "
            f"evaluation scores all of it) (default {T.eval_every}"
            f"{_per_kind('train', 'eval_every')})."
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help=f"Early stopping: evaluations without improvement; 0 = never "
            f"(default {T.patience})."
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help="Write last.pt every N steps; 0 = at every evaluation (default 0)."),
    ] = None,
    log_every: Annotated[
        int | None,
        typer.Option(help=f"Log to metrics.jsonl every N steps (default {T.log_every})."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help=f"Random seed (default {T.seed}).", min=0, max=2**63 - 1)
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="auto, cpu, cuda, cuda:N or mps (default auto: CUDA, then MPS, then CPU)."
        ),
    ] = None,
    threads: Threads = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto, fp32, bf16 or fp16 (CUDA only): the arithmetic of the forward and "
            "backward passes; weights stay fp32. auto: bf16 on a CPU with AVX512-BF16 or AMX "
            "and on a GPU with bf16, else fp32.",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs", help="INPUT is parallel text (source TAB target per line): train seq2seq."
        ),
    ] = False,
    labels: Annotated[
        bool,
        typer.Option(
            "--labels",
            help="INPUT is labelled text (text TAB label per line, or a folder of label "
            "folders): train a classifier.",
        ),
    ] = False,
    label_column: Annotated[
        str,
        typer.Option(help="--labels TSV: the label is the last or the first column."),
    ] = "last",
    vocab: Annotated[
        str | None,
        typer.Option(
            help="Raw text only: auto, char or bpe vocabulary (default auto: char, but BPE for "
            "parallel text of a real language; see charrnn tokenize --help).",
            show_default=False,
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option(help="Raw text only: BPE vocabulary size (default 4096).", show_default=False),
    ] = None,
    val_frac: Annotated[
        float | None,
        typer.Option(
            help="Raw text only: fraction of the text (its tail) for validation (default 0.1).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Start over in a run directory that already holds a run."),
    ] = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Train a language model, a seq2seq model or a classifier (truncated BPTT, AdamW,
    clipping, time budgets, exact resume)."""
    given = dict(locals())  # the parameters, before anything else is defined
    if resume is None and out_dir is None:
        raise UsageError("--out", "no run directory given", "pass -o RUN_DIR (or --resume RUN_DIR)")
    if resume is not None and out_dir is not None and out_dir != resume:
        raise UsageError(
            "--out", "--out and --resume name different directories", "pass only --resume RUN_DIR"
        )
    # flags are the config fields of the same names; None: not given
    model_options = {f.name: given[f.name] for f in fields(ModelConfig) if f.name in given}
    train_options = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    if time_budget is not None:
        train_options["time_budget"] = parse_duration(time_budget)
    if force and resume is not None:
        raise UsageError("--force", "starts a run over; --resume continues one", "drop one of them")
    tokenizing = {"vocab": vocab, "vocab_size": vocab_size, "val_frac": val_frac}
    tokenizing = {k: v for k, v in tokenizing.items() if v is not None}
    tokenized = (source is None and resume is not None) or (
        source not in (None, "-") and is_dataset(source)
    )
    if tokenizing and tokenized:
        flag = "--" + next(iter(tokenizing)).replace("_", "-")
        if source is None:
            raise UsageError(flag, "a resumed run keeps its vocabulary and data", f"drop {flag}")
        raise UsageError(
            flag,
            "says how to tokenize raw text, and this data is tokenized already",
            f"drop {flag}, or pass the raw text (charrnn tokenize makes other data directories)",
        )
    vocab_config = TokenizeConfig(**tokenizing)
    _check_marks(pairs, labels, label_column)
    command = " ".join(shlex.quote(a) for a in ["charrnn", *sys.argv[1:]])
    ranks = torchrun_ranks()
    if not (pairs or labels) and resume is None and ranks.rank == 0 and looks_parallel(source):
        warn(
            f"{source} looks like parallel text (a TAB in nearly every line): this trains a "
            "language model on it; add --pairs to train a seq2seq model (--labels: a classifier)"
        )
    quiet = quiet or ranks.rank != 0  # under torchrun, rank 0 speaks for all
    started: list[bool] = []
    from charrnn import runs  # torch: only once a command runs
    from charrnn.train import Hooks

    with stop_signals(started) as should_stop, TrainDisplay(quiet, started) as display:
        hooks = Hooks(on_event=display.event, on_step=display.step, should_stop=should_stop)
        summary = runs.start_training(
            source,
            resume or out_dir,
            model_name=model,
            model_options=model_options,
            train_options=train_options,
            vocab=vocab_config,
            resume=resume is not None,
            force=force,
            pairs=pairs,
            labels=labels,
            label_column=label_column,
            cache_dir=cache_dir(),
            command=command,
            hooks=hooks,
            progress=display.data_progress,
            ranks=ranks,
            started=STARTED[0],
        )
    if ranks.rank != 0:
        pass
    elif as_json:
        out_json(summary)
    else:
        _print_summary(summary)
    signalled = hooks.should_stop()  # also during the final evaluation, which was let end
    if signalled or summary["reason"].startswith("interrupted"):
        raise typer.Exit(143 if "SIGTERM" in (signalled or summary["reason"]) else 130)


def _check_marks(pairs: bool, labels: bool, label_column: str) -> None:
    """--pairs and --labels mark INPUT as one kind of text, not both; --label-column is
    first or last."""
    from charrnn.labels import check_label_column

    kinds.data_kind([], pairs, labels)
    check_label_column(label_column)


@app.command("models")
def list_models(
    vocab_size: Annotated[
        int, typer.Option(help="Vocabulary size for the example counts.", min=5)
    ] = 100,
    as_json: Json = False,
) -> None:
    """List the model registry: what each entry is and how its parameter count grows."""
    rows = []
    for name, entry in models.MODELS.items():
        defaults, _ = configs_for(entry.kind, {}, {})  # the sizes a new run of this kind gets
        defaults = replace(defaults, cell=entry.cell)
        rows.append(
            {
                "name": name,
                "kind": entry.kind,
                "cell": entry.cell,
                "description": entry.description,
                "parameters": models.growth(name),
                "example": {
                    "config": model_fields(asdict(defaults), entry.kind),
                    "vocab_size": vocab_size,
                    "params": models.expected_parameters(name, defaults, vocab_size),
                },
            }
        )
    if as_json:
        out_json(rows)
        return
    for row in rows:
        example = row["example"]
        out(f"{row['name']:<13} {row['kind']:<8} {row['description']}")
        out(f"{'':<23}parameters: {row['parameters']}")
        out(
            f"{'':<23}default sizes (hidden {example['config']['hidden_size']}), "
            f"{vocab_size} tokens: {example['params']:,} parameters"
        )
