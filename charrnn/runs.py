"""Runs: set up a new or resumed training run from command-line inputs (loading trained
models back is `charrnn.trained`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch

from charrnn import checkpoint, corpus, datadir, models
from charrnn import data as datamod
from charrnn import device as devices
from charrnn.config import (
    SEQ2SEQ_FIELDS,
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
from charrnn.lm import LMTask
from charrnn.pairs import PAIR_BUILTINS, PairDataset, tokenize_pairs
from charrnn.runlock import RunLock
from charrnn.seq2seq import PairTask
from charrnn.tokenizer import Tokenizer, from_json
from charrnn.train import Hooks, RunInfo, fit
from charrnn.trained import build_model, saved_data_path

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")


LM_ONLY = ("seq_len", "batching", "reset_every")  # how a text stream is cut into batches


# -- data ----------------------------------------------------------------------------------------


def prepare_data(
    source: str,
    *,
    cache_dir: Path | None,
    vocab: TokenizeConfig = TokenizeConfig(),
    pairs: bool = False,
    scratch: Path | None = None,
    vocabulary=None,
    progress=None,
):
    """A data directory as is; raw text (a file, directory, builtin:NAME or -) tokenized once
    into `cache_dir` (keyed by the sources' paths, sizes and times and the options) and
    reused by later runs. Stdin cannot be cached: it goes to `scratch`. With `pairs` (or a
    built-in pair task such as builtin:dates) the text is parallel: source TAB target. With
    `vocabulary` (a tokenizer, or a pair of them for parallel text) the text is encoded
    with it instead of a new one."""
    pairs = pairs or source in PAIR_BUILTINS
    if source != "-" and datadir.is_dataset(source):
        return datamod.load_dataset(source)
    if source == "-" or cache_dir is None or corpus.is_stream(source):  # nothing to key a cache
        if scratch is None:
            raise UsageError("INPUT", "stdin needs a place to keep its tokens", "pass a file")
        target = scratch
        if datadir.is_dataset(target):
            shutil.rmtree(target)
    else:
        key = _cache_key(source, vocab, pairs, vocabulary)
        target = Path(cache_dir) / key
        if datadir.is_dataset(target):
            return datamod.load_dataset(target)
    try:
        if pairs:
            tokenize_pairs([source], target, vocab, vocabulary=vocabulary, progress=progress)
        else:
            datamod.tokenize_corpus(
                [source], target, vocab, vocabulary=vocabulary, progress=progress
            )
    except CharrnnError:
        if datadir.is_dataset(target):  # another process tokenized it at the same time
            return datamod.load_dataset(target)
        raise
    return datamod.load_dataset(target)


def _last_checkpoint(run_dir) -> dict | None:
    """A run's last.pt, or None if it cannot be read (resuming then reports why)."""
    try:
        return checkpoint.load(Path(run_dir) / "last.pt")
    except CharrnnError:
        return None


def _stored_path(data: Path, run_dir: Path) -> str:
    """The data path a checkpoint keeps: relative when the data lies inside the run."""
    data, run_dir = data.resolve(), run_dir.resolve()
    return str(data.relative_to(run_dir)) if data.is_relative_to(run_dir) else str(data)


def _same_data(source: str, data_path: str, cache_dir, vocab: TokenizeConfig, pairs: bool) -> bool:
    """Whether INPUT names the data a run was trained on: the data directory itself, or raw
    text whose cached tokenization it is."""
    if source == "-":
        return False
    if datadir.is_dataset(source):
        return Path(source).resolve() == Path(data_path).resolve()
    if cache_dir is None:
        return False
    key = _cache_key(source, vocab, pairs or source in PAIR_BUILTINS)
    return (Path(cache_dir) / key).resolve() == Path(data_path).resolve()


def _check_same_data(dataset, saved: dict, source: str) -> None:
    """Raise unless `dataset` holds the data a run was trained on: the same vocabulary and the
    same validation split."""
    now = {name: tok.to_json() for name, tok in _tokenizers(dataset).items()}
    if now != saved["tokenizers"]:
        raise CharrnnError(
            str(source),
            "it holds another vocabulary than the run's",
            "resume with the exact text (or data directory) the run was trained on",
        )
    val = dataset.stats("val") if "val" in dataset.splits else None
    if val != (saved.get("data") or {}).get("val"):
        raise CharrnnError(
            str(source),
            "its validation split differs from the run's: it is other data",
            "resume with the exact text (or data directory) the run was trained on",
        )


def _cache_key(source: str, vocab: TokenizeConfig, pairs: bool, vocabulary=None) -> str:
    files = (
        [source]
        if source in PAIR_BUILTINS
        else [
            [str(s.path.resolve()), s.size, s.path.stat().st_mtime_ns]
            for s in corpus.resolve([source], glob=vocab.glob)
        ]
    )
    # "reader": how text is read (2: a UTF-8 byte order mark is dropped), so that a change
    # there tokenizes again instead of reusing what the old reading made
    options = {"files": files, "options": asdict(vocab), "pairs": pairs, "reader": 2}
    if vocabulary is not None:  # text encoded with a run's own tokenizer(s)
        toks = vocabulary if isinstance(vocabulary, tuple) else (vocabulary,)
        blob = "".join(t.to_json() for t in toks)
        options["vocabulary"] = hashlib.sha256(blob.encode()).hexdigest()
    blob = json.dumps(options, sort_keys=True)
    name = Path(source).name.replace(":", "-") or "corpus"
    kind = "pairs" if pairs else "text"
    return f"{name}-{kind}-{vocab.vocab}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _tokenizers(dataset) -> dict[str, Tokenizer]:
    if isinstance(dataset, PairDataset):
        return {"source": dataset.source_tokenizer, "target": dataset.target_tokenizer}
    return {"text": dataset.tokenizer}


def _check_kind(model_name: str, dataset) -> str:
    """The run's kind; a language model on parallel text (or the reverse) is a usage error."""
    kind = "seq2seq" if isinstance(dataset, PairDataset) else "lm"
    entry = models.spec(model_name)
    if entry.kind != kind:
        data = "parallel text" if kind == "seq2seq" else "plain text"
        fitting = [n for n, e in models.MODELS.items() if e.kind == kind]
        raise UsageError(
            "--model",
            f"{model_name} is a {entry.kind} model but the data is {data}",
            f"use one of: {', '.join(fitting)}",
        )
    return kind


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


REGULARISERS = ("dropout", "embed_dropout")  # model settings a resumed run may change


def _check_early(model_name, pairs: bool, model_options: dict, train_options: dict) -> None:
    """Bad flag values fail before any tokenizing: checked against the defaults of the kind
    the run will be, or, while that is unknown (a data directory decides), of either kind."""
    if model_name is not None or pairs:
        kinds = [models.spec(model_name).kind if model_name else "seq2seq"]
    else:
        kinds = ["lm", "seq2seq"]
    for i, kind in enumerate(kinds):
        try:
            for config in configs_for(kind, model_options, train_options):
                config.check()
            return
        except UsageError:
            if i == len(kinds) - 1:
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
            pairs=pairs,
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
    pairs,
    command,
    hooks,
    progress,
    ranks,
    saved,
    started,
) -> dict:
    run_dir = Path(run_dir)
    if resume:
        saved = saved or _checkpoint_to_resume(run_dir)
        model_name, model_config, train_config, changes = _resumed_configs(
            saved, model_name, model_options, train_options
        )
        pairs = pairs or saved.get("kind") == "seq2seq"  # the run knows its kind
        dataset = _resumed_data(saved, run_dir, source, cache_dir, vocab, pairs, progress)
    else:
        _check_new_run(source, model_name, pairs, model_options, train_options)
        changes = {}

        def prepare():
            corpus.make_dir(run_dir)
            _check_run_dir(run_dir, force)
            return prepare_data(
                source,
                cache_dir=cache_dir,
                vocab=vocab,
                pairs=pairs,
                scratch=run_dir / "data",
                progress=progress,
            )

        dataset = rank0_first(ranks, prepare)
        kind = "seq2seq" if isinstance(dataset, PairDataset) else "lm"
        model_name = model_name or models.DEFAULT[kind]
        model_config, train_config = configs_for(kind, model_options, train_options)
    train_config.check()
    device = device_for(ranks, train_config.device)
    watch = CoreWatch() if train_config.threads is None and device.type == "cpu" else None
    notes = _threads_notes(device, train_config, watch)
    precision = devices.resolve_precision(train_config.precision, device)
    checkpoint.seed_everything(train_config.seed)
    kind = _check_kind(model_name, dataset)
    _check_flags_fit_kind(kind, model_name, model_options, train_options)
    tokenizers = _tokenizers(dataset)
    if saved is None:
        model_config, train_config = _defaults_for_data(
            kind, model_name, model_config, model_options, tokenizers, dataset, train_config,
            train_options, device, precision, ranks, notes,
        )  # fmt: skip
    model, trained = _model(model_name, model_config, tokenizers, saved, run_dir, device, ranks)
    where = {"rank": ranks.rank, "world_size": ranks.world_size}
    task = _task(kind, dataset, train_config, device, where)
    info = RunInfo(
        kind=kind,
        model_name=model_name,
        model_config=asdict(model.config),
        tokenizers={name: tok.to_json() for name, tok in tokenizers.items()},
        data={"path": _stored_path(dataset.path, run_dir), "val": task_val_stats(dataset)},
        command=command,
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


def _model(name, config, tokenizers, saved, run_dir: Path, device, ranks: Ranks):
    """The model on its device (with the resumed run's weights), and what trains it: the
    model itself, or its DistributedDataParallel wrapper under torchrun."""
    model = build_model(name, config, tokenizers)
    if saved is not None:
        checkpoint.load_weights(model, saved["weights"], str(run_dir / "last.pt"))
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


def _resumed_data(saved, run_dir, source, cache_dir, vocab, pairs: bool, progress):
    """The data a resumed run continues on: its own data directory, or INPUT standing in
    for it when that holds the same data."""
    data_path = saved_data_path(saved, run_dir)
    data_there = bool(data_path) and datadir.is_dataset(data_path)
    if source is None or (data_there and _same_data(source, data_path, cache_dir, vocab, pairs)):
        if not data_there:
            raise CharrnnError(
                str(run_dir),
                f"the run's data directory {data_path} is gone",
                "resume with the text it was trained on (charrnn train INPUT --resume "
                "RUN_DIR tokenizes it again), or with its data directory where it lies now",
            )
        dataset = datamod.load_dataset(data_path)
        _check_same_data(dataset, saved, data_path)  # not tokenized again in place
        return dataset
    if data_there or source == "-":
        raise UsageError(
            "INPUT",
            f"the run was trained on {data_path}, not on {source}",
            "resume without INPUT (a run keeps its data), or start a new run",
        )
    # the run's data is gone (moved, or a cache cleared or on another machine): INPUT
    # stands in for it if it holds the same data, moved or tokenized again
    if datadir.is_dataset(source):
        dataset = datamod.load_dataset(source)
    else:  # encoded with the run's own vocabulary, so only the split can differ
        own = {name: from_json(text) for name, text in saved["tokenizers"].items()}
        dataset = prepare_data(
            source,
            cache_dir=cache_dir,
            vocab=vocab,
            pairs=pairs,
            vocabulary=own["text"] if "text" in own else (own["source"], own["target"]),
            progress=progress,
        )
    _check_same_data(dataset, saved, source)
    return dataset


def _check_new_run(source, model_name, pairs: bool, model_options, train_options) -> None:
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
    _check_early(model_name, pairs or source in PAIR_BUILTINS, model_options, train_options)


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
    """Flags of the other kind of model, or of another cell, are errors, not ignored."""
    if kind == "lm":
        given = [k for k in SEQ2SEQ_FIELDS if model_options.get(k) is not None]
        given += [k for k in ("scheduled_sampling", "label_smoothing") if train_options.get(k)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(
                flag, "is for seq2seq models; this run is a language model", f"drop {flag}"
            )
    else:
        given = [k for k in LM_ONLY if train_options.get(k) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(
                flag,
                "cuts a text stream into batches; a seq2seq model trains on sentence pairs",
                f"drop {flag}",
            )
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
    label smoothing for its vocabulary. Each choice is noted in `notes`."""
    if kind == "lm" and _sized_by_us(model_options):
        model_config, note = _auto_size(
            model_name, model_config, model_options, tokenizers, dataset, train_config, device,
            precision, ranks,
        )  # fmt: skip
        notes.append(note)
    elif kind == "seq2seq":
        from charrnn import sizing

        picked = dataset.meta["vocab"].get("picked")  # by --vocab auto
        notes += [f"vocabulary {picked}"] if picked else []
        sizes = [tok.vocab_size for tok in tokenizers.values()]
        model_config, note = sizing.seq2seq_embeddings(model_config, model_options, sizes)
        train_config, smoothing = sizing.seq2seq_label_smoothing(train_config, train_options, sizes)
        notes += [n for n in (note, smoothing) if n]
    return model_config, train_config


def task_val_stats(dataset) -> dict | None:
    """The validation split's statistics, if the data has one."""
    return dataset.stats("val") if "val" in dataset.splits else None


def _task(kind: str, dataset, train_config: TrainConfig, device, where: dict):
    """What the training loop trains on: batches, losses and evaluations of this kind."""
    val = "val" in dataset.splits
    if kind == "lm":
        return LMTask(
            dataset.ids("train"),
            dataset.ids("val") if val else None,
            task_val_stats(dataset),
            batch_size=train_config.batch_size,
            seq_len=train_config.seq_len,
            mode=train_config.batching,
            seed=train_config.seed,
            device=device,
            reset_every=train_config.reset_every,
            **where,
        )
    return PairTask(
        dataset.split("train"),
        dataset.split("val") if val else None,
        task_val_stats(dataset),
        batch_size=train_config.batch_size,
        seed=train_config.seed,
        device=device,
        scheduled_sampling=train_config.scheduled_sampling,
        label_smoothing=train_config.label_smoothing,
        **where,
    )


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
