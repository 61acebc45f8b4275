"""Runs: set up a new or resumed training run from command-line inputs (loading trained
models back is `charrnn.trained`)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch

from charrnn import checkpoint, corpus, datadir, kinds, models, rundata
from charrnn import device as devices
from charrnn.config import (
    ModelConfig,
    TokenizeConfig,
    TrainConfig,
    configs_for,
    from_dict,
    model_fields,
)
from charrnn.cores import CoreWatch
from charrnn.distributed import Ranks, device_for, from_rank0, rank0_first, start_processes
from charrnn.errors import CharrnnError, UsageError
from charrnn.runlock import RunLock
from charrnn.train import Hooks, RunInfo, fit
from charrnn.trained import build_model

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")


TRAIN_OFF = {  # values that ask for nothing, which any kind takes
    "scheduled_sampling": (None, 0.0),
    "label_smoothing": (None, 0.0),
    "class_weights": (None, "none"),
    "best_on": (None, "loss"),
}
TRAIN_WHY = {
    "seq_len": "cuts a text stream (or a labelled text) into pieces",
    "batching": "cuts a text stream into batches",
    "reset_every": "restarts rows of a text stream",
    "scheduled_sampling": "is for seq2seq models",
    "label_smoothing": "is for seq2seq models",
    "class_weights": "is for classifiers",
    "best_on": "picks a classifier's best evaluation by accuracy or F1",
    "init_from": "starts a classifier's encoder from a language model",
}


# -- data ----------------------------------------------------------------------------------------


def _last_checkpoint(run_dir) -> dict | None:
    """A run's last.pt, or None if it cannot be read (resuming then reports why)."""
    try:
        return checkpoint.load(Path(run_dir) / "last.pt")
    except CharrnnError:
        return None


def _check_kind(model_name: str, dataset) -> str:
    """The run's kind; a model of another kind than the data's (a language model on parallel
    text ...) is a usage error."""
    kind = kinds.of_data(dataset.meta, str(dataset.path))
    entry = models.spec(model_name)
    if entry.kind != kind.name:
        fitting = [n for n, e in models.MODELS.items() if e.kind == kind.name]
        raise UsageError(
            "--model",
            f"{model_name} is a {entry.kind} model but the data is {kind.reads}",
            f"use one of: {', '.join(fitting)}",
        )
    return kind.name


# -- training ------------------------------------------------------------------------------------


def _check_run_dir(run_dir: Path, force: bool) -> None:
    if datadir.is_dataset(run_dir):
        raise UsageError("-o", f"{run_dir} is a data directory", "give the run a folder of its own")
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not force:
        if not (run_dir / "last.pt").is_file():  # stopped before its first last.pt
            raise CharrnnError(
                str(run_dir),
                "already holds a run that cannot be resumed (it has no last.pt yet)",
                "pass --force to start over (or another -o)",
            )
        raise CharrnnError(
            str(run_dir),
            "already holds a run",
            f"continue it with --resume {run_dir}, or pass --force to start over",
        )
    for name in existing:
        (run_dir / name).unlink()


# model settings a resumed run may change
REGULARISERS = ("dropout", "embed_dropout", "weight_dropout")


def _check_early(model_name, marked: str, model_options: dict, train_options: dict) -> None:
    """Bad flag values fail before any tokenizing: checked against the defaults of the kind
    the run will be, or, while that is unknown (a data directory decides), of any kind."""
    if model_name is not None:
        names = [models.spec(model_name).kind]
    elif marked != "lm":
        names = [next(k.name for k in kinds.KINDS.values() if k.data == marked)]
    else:
        names = list(kinds.KINDS)
    for i, kind in enumerate(names):
        try:
            for config in configs_for(kind, model_options, train_options):
                config.check()
            return
        except UsageError:
            if i == len(names) - 1:
                raise


def _merge_model(saved: dict, given: dict) -> tuple[ModelConfig, dict]:
    """The checkpoint's architecture; a conflicting flag is an error, never an override.
    Dropout rates are not architecture (the weights are the same): they may change, and the
    changes ({key: [old, new]}) come back with the configuration."""
    config = from_dict(ModelConfig, saved)
    changes = {}
    for key, value in given.items():
        if key in REGULARISERS and value is not None:
            if getattr(config, key) != value:
                changes[key] = [getattr(config, key), value]
            config = replace(config, **{key: value})
        elif value is not None and getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                flag,
                f"cannot change the architecture on resume (the run has "
                f"{key}={getattr(config, key)!r}, you asked for {value!r})",
                f"drop {flag}, or start a new run",
            )
    config.check()
    return config, changes


def start_training(
    source: str | None,
    run_dir: str | Path,
    *,
    model_name: str | None,
    model_options: dict,
    train_options: dict,
    vocab: TokenizeConfig = TokenizeConfig(),
    resume: bool = False,
    force: bool = False,
    cache_dir: Path | None = None,
    pairs: bool = False,
    labels: bool = False,
    label_column: str = "last",
    command: str = "",
    hooks: Hooks | None = None,
    progress=None,
    ranks: Ranks = Ranks(),
    started: float | None = None,
) -> dict:
    """Train a new model, or continue `run_dir` (resume=True) exactly where it stopped.

    `model_options` / `train_options` hold the flags the user gave (None = not given):
    defaults come from ModelConfig / TrainConfig, or from the checkpoint on resume. Under
    torchrun, `ranks` places this process; each trains on its own rows of every batch.
    `pairs` (--pairs) and `labels` (--labels, the label in `label_column`) mark INPUT as
    parallel or labelled text; a data directory knows its kind.
    `started` (time.monotonic()) is when the command began: a time budget counts from there.
    """
    distributed = ranks.world_size > 1
    created = not Path(run_dir).exists()
    saved = None  # last.pt, when it is read before training starts
    lock = _lock(Path(run_dir), resume) if ranks.rank == 0 else None
    if distributed:
        if source == "-":
            raise UsageError(
                "INPUT",
                "stdin cannot be shared by several processes",
                "tokenize it first with charrnn tokenize, then train on the directory",
            )
        name = train_options.get("device")
        if name is None and resume and (saved := _last_checkpoint(run_dir)) is not None:
            name = saved.get("train", {}).get("config", {}).get("device")  # the run's --device
        start_processes(ranks, device_for(ranks, name or "auto"))
    try:
        return _train(
            source,
            run_dir,
            model_name=model_name,
            model_options=model_options,
            train_options=train_options,
            vocab=vocab,
            resume=resume,
            force=force,
            cache_dir=cache_dir,
            marked=kinds.data_kind([source], pairs, labels),
            label_column=label_column,
            command=command,
            hooks=hooks,
            progress=progress,
            ranks=ranks,
            saved=saved,
            started=started,
        )
    except BaseException:
        # a new run that failed before its first checkpoint leaves nothing behind (not even
        # the stdin text it kept); one with checkpoints keeps them
        kept = any((Path(run_dir) / n).exists() for n in ("last.pt", "best.pt"))
        if created and lock is not None and not kept:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.release()
        if distributed:
            torch.distributed.destroy_process_group()


def _lock(run_dir: Path, resume: bool) -> RunLock | None:
    """Own the run directory (made for a new run) for this process's life; None where
    training will refuse the directory anyway (no run to resume, a data directory)."""
    if (resume and not run_dir.is_dir()) or datadir.is_dataset(run_dir):
        return None
    if not resume:
        corpus.make_dir(run_dir)
    lock = RunLock(run_dir)
    lock.acquire()
    return lock


def _configs_and_data(
    run_dir, data, saved, model_name, model_options, train_options, force, progress, ranks
):
    """A run's model name, model and training configs, changes from the saved run's settings
    and dataset: of the checkpoint `saved` to resume (with the flags that may change), or
    of a new run from its flags and its data."""
    source, marked = data[0], data[3]
    if saved is not None:
        if train_options.get("init_from"):
            raise UsageError(
                "--init-from", "starts a new run's encoder; a resumed run has its own", "drop it"
            )
        model_name, model_config, train_config, changes = _resumed_configs(
            saved, model_name, model_options, train_options
        )
        if marked == "lm":  # the run knows its kind
            data = (*data[:3], kinds.get(saved.get("kind", "lm")).data, data[4])
        dataset = rundata.resumed_data(saved, run_dir, data, progress)
        return model_name, model_config, train_config, changes, dataset
    _check_new_run(source, model_name, marked, model_options, train_options)
    dataset = rank0_first(ranks, lambda: _new_data(run_dir, data, force, progress))
    kind = kinds.of_data(dataset.meta, str(dataset.path)).name
    model_name = model_name or kinds.get(kind).default_model
    model_config, train_config = configs_for(kind, model_options, train_options)
    return model_name, model_config, train_config, {}, dataset


def _train(
    source,
    run_dir,
    *,
    model_name,
    model_options,
    train_options,
    vocab,
    resume,
    force,
    cache_dir,
    marked,
    label_column,
    command,
    hooks,
    progress,
    ranks,
    saved,
    started,
) -> dict:
    run_dir = Path(run_dir)
    data = (source, cache_dir, vocab, marked, label_column)
    if resume:
        saved = saved or _checkpoint_to_resume(run_dir)
    model_name, model_config, train_config, changes, dataset = _configs_and_data(
        run_dir, data, saved if resume else None, model_name, model_options, train_options,
        force, progress, ranks,
    )  # fmt: skip
    train_config.check()
    device = device_for(ranks, train_config.device)
    watch = CoreWatch() if train_config.threads is None and device.type == "cpu" else None
    notes = _threads_notes(device, train_config, watch)
    precision = devices.resolve_precision(train_config.precision, device)
    checkpoint.seed_everything(train_config.seed)
    kind = _check_kind(model_name, dataset)
    _check_flags_fit_kind(kind, model_name, model_options, train_options)
    tokenizers = dataset.tokenizers
    if saved is None:
        model_config, train_config = _defaults_for_data(
            kind, model_name, model_config, model_options, tokenizers, dataset, train_config,
            train_options, device, precision, ranks, notes,
        )  # fmt: skip
    labels = getattr(dataset, "labels", None)  # a classifier's
    start = {"saved": saved, "where": str(run_dir / "last.pt"), "notes": notes}
    start["init_from"] = train_config.init_from
    model, trained = _model(model_name, model_config, tokenizers, labels, start, device, ranks)
    where = {"rank": ranks.rank, "world_size": ranks.world_size}
    task = kinds.get(kind).make_task(dataset, train_config, device, where)
    info = RunInfo(
        kind=kind,
        model_name=model_name,
        model_config=asdict(model.config),
        tokenizers={name: tok.to_json() for name, tok in tokenizers.items()},
        data={"path": rundata.stored_path(dataset.path, run_dir), "val": task_val_stats(dataset)},
        command=command,
        labels=labels,
    )
    if ranks.rank == 0:
        for stale in run_dir.glob(".*.pt.tmp-*"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
    summary = fit(
        run_dir,
        trained,
        task,
        train_config,
        info,
        device=device,
        precision=precision,
        resume=saved,
        hooks=hooks or Hooks(),
        changes=changes,
        started=started,
        watch=watch,
        notes=notes,
        **where,
    )
    return {
        **summary,
        "run_dir": str(run_dir),
        "model": model_name,
        "model_config": model_fields(asdict(model.config), kind),
        "params": models.count_parameters(model),
        "device": str(device),
        "precision": precision,
        "data": str(dataset.path),
        "changes": changes,
    }


def _new_data(run_dir: Path, data: tuple, force: bool, progress):
    """A new run's directory made (or checked, with --force) and its data: INPUT tokenized
    (or its cache, or a data directory). `data`: INPUT, the cache, the vocabulary options,
    the data kind and the label column."""
    source, cache_dir, vocab, marked, label_column = data
    corpus.make_dir(run_dir)
    _check_run_dir(run_dir, force)
    return rundata.prepare_data(
        source,
        cache_dir=cache_dir,
        vocab=vocab,
        marked=marked,
        label_column=label_column,
        scratch=run_dir / "data",
        progress=progress,
    )


def _model(name, config, tokenizers, labels, start: dict, device, ranks: Ranks):
    """The model on its device, and what trains it: the model itself, or its
    DistributedDataParallel wrapper under torchrun. `start`: the resumed run's checkpoint
    (`saved`), whose weights it takes, or a language model's run (`init_from`) a new
    classifier starts its encoder from, noted in `notes`."""
    model = build_model(name, config, tokenizers, labels)
    if start["saved"] is not None:
        checkpoint.load_weights(model, start["saved"]["weights"], start["where"])
    elif start["init_from"]:
        from charrnn.kinds.classify import init_from_lm

        start["notes"].append(init_from_lm(model, start["init_from"], tokenizers["text"]))
    model.to(device)
    if ranks.world_size == 1:
        return model, model
    ids = [device.index] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _checkpoint_to_resume(run_dir: Path) -> dict:
    """The last checkpoint of the run directory `--resume` names, or why there is none."""
    if run_dir.is_file():
        raise UsageError(
            "--resume", f"{run_dir} is a file", f"pass the run directory: {run_dir.parent}"
        )
    if not run_dir.is_dir():
        raise CharrnnError(str(run_dir), "no such run directory", "check the path")
    if not (run_dir / "last.pt").is_file():
        raise CharrnnError(
            str(run_dir),
            "has no checkpoint to resume (no last.pt)",
            f"start it over with charrnn train INPUT -o {run_dir}"
            + (" --force" if any((run_dir / n).exists() for n in RUN_FILES) else ""),
        )
    return checkpoint.load(run_dir / "last.pt")


def _resumed_configs(saved: dict, model_name, model_options: dict, train_options: dict):
    """A resumed run's model name, model and training configs (the saved ones with the
    flags given over them), and what the flags changed."""
    if model_name is not None and model_name != saved["model"]["name"]:
        raise UsageError(
            "--model",
            f"cannot change the model on resume (the run is {saved['model']['name']})",
            "drop --model, or start a new run",
        )
    model_config, model_changes = _merge_model(saved["model"]["config"], model_options)
    old = from_dict(TrainConfig, saved["train"]["config"])
    given = {k: v for k, v in train_options.items() if v is not None}
    train_config = TrainConfig(**{**asdict(old), **given})
    changes = {k: [getattr(old, k), v] for k, v in given.items() if getattr(old, k) != v}
    changes.update(model_changes)
    return saved["model"]["name"], model_config, train_config, changes


def _check_new_run(source, model_name, marked: str, model_options, train_options) -> None:
    """What can be told wrong about a new run before any tokenizing."""
    if source is None:
        raise UsageError(
            "INPUT",
            "no training data given",
            "pass a text file, a data directory or a built-in corpus (builtin:shakespeare), "
            "or --resume RUN_DIR",
        )
    if source != "-" and datadir.is_run_dir(source):
        raise UsageError(
            "INPUT",
            f"{source} is a run directory (it holds checkpoints), not training data",
            f"continue it with charrnn train --resume {source}, or pass a text file or a "
            "data directory",
        )
    if model_name is not None:
        models.spec(model_name)  # an unknown model fails before any tokenizing
    _check_early(model_name, marked, model_options, train_options)
    init_from = train_options.get("init_from")
    if init_from and not Path(init_from).exists():  # before any tokenizing
        raise CharrnnError(init_from, "no such run or checkpoint", "check the --init-from path")


def _threads_notes(device, train_config: TrainConfig, watch: CoreWatch | None) -> list[str]:
    """Set the threads of this process; a note when other programs leave fewer cores."""
    threads = devices.configure(device, train_config.threads, watch)
    if watch is not None and threads < min(watch.cores, devices.TORCH_THREADS):
        return [
            f"using {threads} thread(s) of {watch.cores}: other programs keep "
            f"{watch.busy:.1f} core(s) busy (--threads N decides)"
        ]
    return []


def _check_flags_fit_kind(kind: str, model_name: str, model_options, train_options) -> None:
    """Flags of another kind of model, or of another cell, are errors, not ignored."""
    reads = kinds.get(kind).reads
    for key, value in model_options.items():
        owners = kinds.with_field(key)
        if value is not None and kind not in owners:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                flag,
                f"is for {' and '.join(kinds.get(k).models for k in owners)}; this run trains "
                f"on {reads}",
                f"drop {flag}",
            )
    for key, value in train_options.items():
        if kind not in kinds.with_field(key) and value not in TRAIN_OFF.get(key, (None,)):
            flag = "--" + key.replace("_", "-")
            raise UsageError(flag, f"{TRAIN_WHY[key]}; this run trains on {reads}", f"drop {flag}")
    if model_options.get("nonlinearity") is not None and models.spec(model_name).cell != "rnn":
        raise UsageError(
            "--nonlinearity",
            f"is for the plain rnn cell; {model_name} has no choice of nonlinearity",
            "drop --nonlinearity, or use --model rnn (or seq2seq-rnn)",
        )


def _defaults_for_data(
    kind, model_name, model_config, model_options, tokenizers, dataset, train_config,
    train_options, device, precision, ranks, notes: list[str],
) -> tuple[ModelConfig, TrainConfig]:  # fmt: skip
    """A new run's settings where the flags leave them to charrnn and the data decides: a
    language model's size picked for the budget and corpus; a seq2seq model's embeddings and
    label smoothing for its vocabulary. Each choice is noted in `notes`, with the vocabulary
    --vocab auto picked."""
    picked = dataset.meta["vocab"].get("picked")  # parallel and labelled text
    notes += [f"vocabulary {picked}"] if picked else []
    if kind == "lm" and _sized_by_us(model_options):
        model_config, note = _auto_size(
            model_name, model_config, model_options, tokenizers, dataset, train_config, device,
            precision, ranks,
        )  # fmt: skip
        notes.append(note)
    elif kind == "seq2seq":
        from charrnn import sizing

        sizes = [tok.vocab_size for tok in tokenizers.values()]
        model_config, note = sizing.seq2seq_embeddings(model_config, model_options, sizes)
        train_config, smoothing = sizing.seq2seq_label_smoothing(train_config, train_options, sizes)
        notes += [n for n in (note, smoothing) if n]
    return model_config, train_config


def task_val_stats(dataset) -> dict | None:
    """The validation split's statistics, if the data has one."""
    return dataset.stats("val") if "val" in dataset.splits else None


def _sized_by_us(model_options: dict) -> bool:
    """Whether the model's width is left to charrnn (no --hidden-size, and no --embed-size
    that --tie-weights would bind it to)."""
    tied = model_options.get("tie_weights") and model_options.get("embed_size") is not None
    return model_options.get("hidden_size") is None and not tied


def _auto_size(
    name, config, options, tokenizers, dataset, train_config, device, precision, ranks
) -> tuple[ModelConfig, str]:
    """The default language model for this corpus and limit (see charrnn.sizing), measured
    by rank 0 and shared with the others; and a note saying what was picked."""
    from charrnn import sizing

    vocab_size = tokenizers["text"].vocab_size
    train_tokens = dataset.stats("train")["tokens"]
    choice = None
    if ranks.rank == 0:
        choice = sizing.pick(
            name=name,
            config=config,
            vocab_size=vocab_size,
            train_tokens=train_tokens,
            train=train_config,
            device=device,
            precision=precision,
        )
    choice = from_rank0(choice, ranks.world_size)
    sized = {"hidden_size": choice.hidden_size}
    if options.get("dropout") is None:
        sized["dropout"] = choice.dropout
    if options.get("tie_weights"):
        sized["embed_size"] = choice.hidden_size
    limits = train_config.limits()
    budget = (
        f"--time-budget {limits.time_budget:g}s"
        if limits.time_budget
        else f"--max-steps {limits.max_steps}"
        if limits.max_steps
        else f"--epochs {limits.epochs:g}"
    )
    return replace(config, **sized), choice.note(budget)
