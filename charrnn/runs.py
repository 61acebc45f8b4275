"""Runs: set up a new or resumed training run from command-line inputs, and load trained
models back from checkpoints for decoding and evaluation."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from charrnn import checkpoint, corpus, models
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
    if source != "-" and datamod.is_dataset(source):
        return datamod.load_dataset(source)
    if source == "-" or cache_dir is None or corpus.is_stream(source):  # nothing to key a cache
        if scratch is None:
            raise UsageError("INPUT", "stdin needs a place to keep its tokens", "pass a file")
        target = scratch
        if datamod.is_dataset(target):
            shutil.rmtree(target)
    else:
        key = _cache_key(source, vocab, pairs, vocabulary)
        target = Path(cache_dir) / key
        if datamod.is_dataset(target):
            return datamod.load_dataset(target)
    try:
        if pairs:
            tokenize_pairs([source], target, vocab, vocabulary=vocabulary, progress=progress)
        else:
            datamod.tokenize_corpus(
                [source], target, vocab, vocabulary=vocabulary, progress=progress
            )
    except CharrnnError:
        if datamod.is_dataset(target):  # another process tokenized it at the same time
            return datamod.load_dataset(target)
        raise
    return datamod.load_dataset(target)


def _last_checkpoint(run_dir) -> dict | None:
    """A run's last.pt, or None if it cannot be read (resuming then reports why)."""
    try:
        return checkpoint.load(Path(run_dir) / "last.pt")
    except CharrnnError:
        return None


def saved_data_path(saved: dict, run_dir: Path) -> str | None:
    """Where a checkpoint's training data lies. Data kept inside the run (text from stdin)
    is stored relative to the run, so a run directory can be moved or copied whole."""
    path = (saved.get("data") or {}).get("path")
    if path and not Path(path).is_absolute():
        return str(run_dir / path)
    return path


def _stored_path(data: Path, run_dir: Path) -> str:
    """The data path a checkpoint keeps: relative when the data lies inside the run."""
    data, run_dir = data.resolve(), run_dir.resolve()
    return str(data.relative_to(run_dir)) if data.is_relative_to(run_dir) else str(data)


def _same_data(source: str, data_path: str, cache_dir, vocab: TokenizeConfig, pairs: bool) -> bool:
    """Whether INPUT names the data a run was trained on: the data directory itself, or raw
    text whose cached tokenization it is."""
    if source == "-":
        return False
    if datamod.is_dataset(source):
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


def _build(name: str, config: ModelConfig, tokenizers: dict[str, Tokenizer]) -> nn.Module:
    if "text" in tokenizers:
        return models.build(name, config, tokenizers["text"].vocab_size)
    return models.build(
        name, config, tokenizers["target"].vocab_size, tokenizers["source"].vocab_size
    )


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
    if datamod.is_dataset(run_dir):
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
    if (resume and not run_dir.is_dir()) or datamod.is_dataset(run_dir):
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
    hooks = hooks or Hooks()
    if resume:
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
        saved = saved or checkpoint.load(run_dir / "last.pt")
        if model_name is not None and model_name != saved["model"]["name"]:
            raise UsageError(
                "--model",
                f"cannot change the model on resume (the run is {saved['model']['name']})",
                "drop --model, or start a new run",
            )
        model_name = saved["model"]["name"]
        model_config, model_changes = _merge_model(saved["model"]["config"], model_options)
        old = from_dict(TrainConfig, saved["train"]["config"])
        given = {k: v for k, v in train_options.items() if v is not None}
        train_config = TrainConfig(**{**asdict(old), **given})
        changes = {k: [getattr(old, k), v] for k, v in given.items() if getattr(old, k) != v}
        changes.update(model_changes)
        data_path = saved_data_path(saved, run_dir)
        data_there = bool(data_path) and datamod.is_dataset(data_path)
        pairs = pairs or saved.get("kind") == "seq2seq"  # the run knows its kind
        if source is None or (
            data_there and _same_data(source, data_path, cache_dir, vocab, pairs)
        ):
            if not data_there:
                raise CharrnnError(
                    str(run_dir),
                    f"the run's data directory {data_path} is gone",
                    "resume with the text it was trained on (charrnn train INPUT --resume "
                    "RUN_DIR tokenizes it again), or with its data directory where it lies now",
                )
            dataset = datamod.load_dataset(data_path)
            _check_same_data(dataset, saved, data_path)  # not tokenized again in place
        elif data_there or source == "-":
            raise UsageError(
                "INPUT",
                f"the run was trained on {data_path}, not on {source}",
                "resume without INPUT (a run keeps its data), or start a new run",
            )
        else:
            # the run's data is gone (moved, or a cache cleared or on another machine): INPUT
            # stands in for it if it holds the same data, moved or tokenized again
            if datamod.is_dataset(source):
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
    else:
        if source is None:
            raise UsageError(
                "INPUT",
                "no training data given",
                "pass a text file, a data directory or a built-in corpus (builtin:shakespeare), "
                "or --resume RUN_DIR",
            )
        if source != "-" and datamod.is_run_dir(source):
            raise UsageError(
                "INPUT",
                f"{source} is a run directory (it holds checkpoints), not training data",
                f"continue it with charrnn train --resume {source}, or pass a text file or a "
                "data directory",
            )
        if model_name is not None:
            models.spec(model_name)  # an unknown model fails before any tokenizing
        for config in configs_for("lm", model_options, train_options):
            config.check()  # bad flag values fail before any tokenizing
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
    threads = devices.configure(device, train_config.threads, watch)
    notes = []
    if watch is not None and threads < min(watch.cores, devices.TORCH_THREADS):
        notes.append(
            f"using {threads} thread(s) of {watch.cores}: other programs keep "
            f"{watch.busy:.1f} core(s) busy (--threads N decides)"
        )
    precision = devices.resolve_precision(train_config.precision, device)
    checkpoint.seed_everything(train_config.seed)
    kind = _check_kind(model_name, dataset)
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
    tokenizers = _tokenizers(dataset)
    if saved is None and kind == "lm" and _sized_by_us(model_options):
        model_config, note = _auto_size(
            model_name, model_config, model_options, tokenizers, dataset, train_config, device,
            precision, ranks,
        )  # fmt: skip
        notes.append(note)
    model = _build(model_name, model_config, tokenizers)
    if saved is not None:
        checkpoint.load_weights(model, saved["weights"], str(run_dir / "last.pt"))
    model.to(device)
    trained = model
    if ranks.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    where = {"rank": ranks.rank, "world_size": ranks.world_size}
    val = "val" in dataset.splits
    val_stats = dataset.stats("val") if val else None
    if kind == "lm":
        task = LMTask(
            dataset.ids("train"),
            dataset.ids("val") if val else None,
            val_stats,
            batch_size=train_config.batch_size,
            seq_len=train_config.seq_len,
            mode=train_config.batching,
            seed=train_config.seed,
            device=device,
            reset_every=train_config.reset_every,
            **where,
        )
    else:
        task = PairTask(
            dataset.split("train"),
            dataset.split("val") if val else None,
            val_stats,
            batch_size=train_config.batch_size,
            seed=train_config.seed,
            device=device,
            scheduled_sampling=train_config.scheduled_sampling,
            label_smoothing=train_config.label_smoothing,
            **where,
        )
    info = RunInfo(
        kind=kind,
        model_name=model_name,
        model_config=asdict(model.config),
        tokenizers={name: tok.to_json() for name, tok in tokenizers.items()},
        data={"path": _stored_path(dataset.path, run_dir), "val": val_stats},
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
        hooks=hooks,
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


# -- loading trained models ------------------------------------------------------------------------


@dataclass
class Trained:
    """A trained model ready for decoding or evaluation."""

    path: Path
    kind: str
    model_name: str
    model: nn.Module
    tokenizer: Tokenizer  # the output side (a seq2seq model's target)
    checkpoint: dict
    device: torch.device
    source_tokenizer: Tokenizer | None = None  # seq2seq: the input side
    precision: str = "fp32"  # decoding and scoring arithmetic (see charrnn.device)


def load_trained(
    path: str | Path, device: torch.device | str = "cpu", precision: str = "fp32"
) -> Trained:
    """Load a checkpoint (a .pt file, or a run directory: best.pt, else last.pt), to decode
    and score in `precision` (auto, fp32, bf16; see charrnn.device)."""
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), path)
    data = checkpoint.load(path)  # a directory without checkpoints gets its own message
    where = str(path)
    try:
        name = data["model"]["name"]
        known = {f.name for f in fields(ModelConfig)}
        config = ModelConfig(**{k: v for k, v in data["model"]["config"].items() if k in known})
        tokenizers = {
            key: from_json(text, f"{where}: {key} tokenizer")
            for key, text in data["tokenizers"].items()
        }
        model = _build(name, config, tokenizers)
    except (KeyError, TypeError, AttributeError, ValueError, CharrnnError) as e:
        detail = " ".join((e.message() if isinstance(e, CharrnnError) else str(e)).split())
        raise CharrnnError(
            where,
            f"checkpoint does not describe a model charrnn can build ({detail[:100]})",
            "pass a file written by charrnn train",
        ) from None
    checkpoint.load_weights(model, data["weights"], where)
    device = torch.device(device) if isinstance(device, str) else device
    model.to(device).eval()
    output = tokenizers.get("text") or tokenizers["target"]
    return Trained(
        path,
        data["kind"],
        name,
        model,
        output,
        data,
        device,
        tokenizers.get("source"),
        devices.resolve_precision(precision, device),
    )


def describe_checkpoint(path: str | Path) -> dict:
    """What a checkpoint (or a run directory's last.pt and best.pt) holds, for `charrnn info`."""
    path = Path(path)
    files = (
        [path / n for n in ("last.pt", "best.pt") if (path / n).is_file()]
        if path.is_dir()
        else [path]
    )
    data = checkpoint.load(files[0] if files else path)  # no checkpoint: load says why
    seen, params = set(), 0
    for tensor in data["weights"].values():
        if tensor.data_ptr() not in seen:  # tied weights count once
            seen.add(tensor.data_ptr())
            params += tensor.numel()
    state = data.get("train", {}).get("state", {})
    tokenizers = {
        name: from_json(text, f"{files[0]}: tokenizer").describe()
        for name, text in data["tokenizers"].items()
    }
    best = checkpoint.load(files[1]).get("metrics") if len(files) > 1 else None
    return {
        "path": str(path),
        "files": [str(f) for f in files],
        "kind": data["kind"],
        "format": data["format"],
        "version": data["version"],
        "charrnn_version": data.get("charrnn_version"),
        "created": data.get("created"),
        "command": data.get("command"),
        "model": {
            "name": data["model"]["name"],
            "config": model_fields(data["model"]["config"], data["kind"]),
            "params": params,
        },
        "tokenizers": tokenizers,
        "data": data.get("data"),
        "train": {
            k: state.get(k)
            for k in (
                "step",
                "epoch",
                "elapsed",
                "tokens",
                "best_val_loss",
                "skipped_steps",
                "rollbacks",
            )
        }
        | (  # how far through the data: whole epochs and the part of the current one
            {"epochs": round(state["epoch"] + state["index"] / state["epoch_steps"], 2)}
            if state.get("epoch_steps")
            else {}
        ),
        "metrics": data.get("metrics") or {},
        "best_metrics": best,
    }
