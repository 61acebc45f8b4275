"""Runs: set up a new or resumed training run from command-line inputs, and load trained
models back from checkpoints for decoding and evaluation."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from charrnn import checkpoint, corpus, models
from charrnn import data as datamod
from charrnn import device as devices
from charrnn.config import ModelConfig, TokenizeConfig, TrainConfig, from_dict
from charrnn.errors import CharrnnError, UsageError
from charrnn.lm import LMTask
from charrnn.tokenizer import Tokenizer, from_json
from charrnn.train import Hooks, RunInfo, fit

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")


# -- data ----------------------------------------------------------------------------------------


def prepare_data(
    source: str,
    *,
    cache_dir: Path | None,
    vocab: TokenizeConfig = TokenizeConfig(),
    scratch: Path | None = None,
    progress=None,
) -> datamod.Dataset:
    """A data directory as is; raw text (a file, directory, builtin:NAME or -) tokenized once
    into `cache_dir` (keyed by the sources' paths, sizes and times and the options) and
    reused by later runs. Stdin cannot be cached: it goes to `scratch`."""
    if source != "-" and datamod.is_dataset(source):
        return datamod.load_dataset(source)
    if source == "-" or cache_dir is None:
        if scratch is None:
            raise UsageError("INPUT", "stdin needs a place to keep its tokens", "pass a file")
        target = scratch
        if datamod.is_dataset(target):
            shutil.rmtree(target)
    else:
        key = _cache_key(source, vocab)
        target = Path(cache_dir) / key
        if datamod.is_dataset(target):
            return datamod.load_dataset(target)
    try:
        datamod.tokenize_corpus([source], target, vocab, progress=progress)
    except CharrnnError:
        if datamod.is_dataset(target):  # another process tokenized it at the same time
            return datamod.load_dataset(target)
        raise
    return datamod.load_dataset(target)


def _cache_key(source: str, vocab: TokenizeConfig) -> str:
    files = [
        [str(s.path.resolve()), s.size, s.path.stat().st_mtime_ns]
        for s in corpus.resolve([source], glob=vocab.glob)
    ]
    blob = json.dumps({"files": files, "options": asdict(vocab)}, sort_keys=True)
    name = Path(source).name.replace(":", "-") or "corpus"
    return f"{name}-{vocab.vocab}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


# -- training ------------------------------------------------------------------------------------


def _check_run_dir(run_dir: Path, force: bool) -> None:
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not force:
        raise CharrnnError(
            str(run_dir),
            "already holds a run",
            f"continue it with --resume {run_dir}, or pass --force to start over",
        )
    for name in existing:
        (run_dir / name).unlink()


def _merge_model(saved: dict, given: dict) -> ModelConfig:
    """The checkpoint's architecture; a conflicting flag is an error, never an override."""
    config = from_dict(ModelConfig, saved)
    for key, value in given.items():
        if value is not None and getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                flag,
                f"cannot change the architecture on resume (the run has "
                f"{key}={getattr(config, key)!r}, you asked for {value!r})",
                f"drop {flag}, or start a new run",
            )
    return config


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
    command: str = "",
    hooks: Hooks | None = None,
    progress=None,
) -> dict:
    """Train a new model, or continue `run_dir` (resume=True) exactly where it stopped.

    `model_options` / `train_options` hold the flags the user gave (None = not given):
    defaults come from ModelConfig / TrainConfig, or from the checkpoint on resume.
    """
    run_dir = Path(run_dir)
    hooks = hooks or Hooks()
    saved = None
    if resume:
        if not run_dir.is_dir():
            raise CharrnnError(str(run_dir), "no such run directory", "check the path")
        if not (run_dir / "last.pt").is_file():
            raise CharrnnError(
                str(run_dir),
                "has no checkpoint to resume (no last.pt)",
                "start a new run with charrnn train INPUT -o RUN_DIR",
            )
        saved = checkpoint.load(run_dir / "last.pt")
        if model_name is not None and model_name != saved["model"]["name"]:
            raise UsageError(
                "--model",
                f"cannot change the model on resume (the run is {saved['model']['name']})",
                "drop --model, or start a new run",
            )
        model_name = saved["model"]["name"]
        model_config = _merge_model(saved["model"]["config"], model_options)
        old = from_dict(TrainConfig, saved["train"]["config"])
        given = {k: v for k, v in train_options.items() if v is not None}
        train_config = TrainConfig(**{**asdict(old), **given})
        changes = {k: [getattr(old, k), v] for k, v in given.items() if getattr(old, k) != v}
        data_path = saved["data"].get("path")
        if (
            source is not None
            and data_path
            and datamod.is_dataset(source)
            and Path(source).resolve() != Path(data_path).resolve()
        ):
            raise UsageError(
                "INPUT",
                f"the run was trained on {data_path}",
                "resume without INPUT, or start a new run",
            )
        if not data_path or not datamod.is_dataset(data_path):
            raise CharrnnError(
                str(run_dir),
                f"the run's data directory {data_path} is gone",
                "re-create it with the same charrnn tokenize command",
            )
        dataset = datamod.load_dataset(data_path)
    else:
        if source is None:
            raise UsageError(
                "INPUT",
                "no training data given",
                "pass a text file, a data directory or builtin:python, or --resume RUN_DIR",
            )
        model_name = model_name or "lstm"
        models.spec(model_name)
        model_config = ModelConfig(**{k: v for k, v in model_options.items() if v is not None})
        train_config = TrainConfig(**{k: v for k, v in train_options.items() if v is not None})
        changes = {}
        model_config.check()
        train_config.check()
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_run_dir(run_dir, force)
        dataset = prepare_data(
            source, cache_dir=cache_dir, vocab=vocab, scratch=run_dir / "data", progress=progress
        )
    train_config.check()
    device = devices.resolve(train_config.device)
    devices.configure(device, train_config.threads)
    if train_config.amp and device.type != "cuda":
        raise UsageError(
            "--amp",
            f"mixed precision needs a CUDA device (this run is on {device.type})",
            "drop --amp, or use --device cuda",
        )
    checkpoint.seed_everything(train_config.seed)
    tok = dataset.tokenizer
    model = models.build(model_name, model_config, tok.vocab_size)
    if saved is not None:
        model.load_state_dict(saved["weights"])
    model.to(device)
    val = "val" in dataset.splits
    task = LMTask(
        dataset.ids("train"),
        dataset.ids("val") if val else None,
        dataset.stats("val") if val else None,
        batch_size=train_config.batch_size,
        seq_len=train_config.seq_len,
        mode=train_config.batching,
        seed=train_config.seed,
        device=device,
    )
    info = RunInfo(
        kind="lm",
        model_name=model_name,
        model_config=asdict(model.config),
        tokenizers={"text": tok.to_json()},
        data={"path": str(dataset.path.resolve()), "val": dataset.stats("val") if val else None},
        command=command,
    )
    for stale in run_dir.glob(".*.pt.tmp-*"):  # left by a process killed while saving
        stale.unlink(missing_ok=True)
    summary = fit(
        run_dir,
        model,
        task,
        train_config,
        info,
        device=device,
        resume=saved,
        hooks=hooks,
        changes=changes,
    )
    return {
        **summary,
        "run_dir": str(run_dir),
        "model": model_name,
        "params": models.count_parameters(model),
        "device": str(device),
        "data": str(dataset.path),
        "changes": changes,
    }


# -- loading trained models ------------------------------------------------------------------------


@dataclass
class Trained:
    """A trained model ready for decoding or evaluation."""

    path: Path
    kind: str
    model_name: str
    model: nn.Module
    tokenizer: Tokenizer
    checkpoint: dict
    device: torch.device


def load_trained(path: str | Path, device: torch.device | str = "cpu") -> Trained:
    """Load a checkpoint (a .pt file, or a run directory: best.pt, else last.pt)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    data = checkpoint.load(path)
    where = str(path)
    try:
        name = data["model"]["name"]
        known = {f.name for f in fields(ModelConfig)}
        config = ModelConfig(**{k: v for k, v in data["model"]["config"].items() if k in known})
        tok = from_json(data["tokenizers"]["text"], f"{where}: tokenizer")
        model = models.build(name, config, tok.vocab_size)
        model.load_state_dict(data["weights"])
    except (KeyError, TypeError, RuntimeError, CharrnnError) as e:
        if isinstance(e, UsageError):
            e = CharrnnError(where, e.what, "pass a checkpoint written by this charrnn")
        raise CharrnnError(
            where,
            f"checkpoint does not fit its model ({str(e)[:100]})",
            "pass a file written by charrnn train",
        ) from None
    device = torch.device(device) if isinstance(device, str) else device
    model.to(device).eval()
    return Trained(path, data["kind"], name, model, tok, data, device)


def describe_checkpoint(path: str | Path) -> dict:
    """What a checkpoint (or a run directory's last.pt and best.pt) holds, for `charrnn info`."""
    path = Path(path)
    files = (
        [path / n for n in ("last.pt", "best.pt") if (path / n).is_file()]
        if path.is_dir()
        else [path]
    )
    data = checkpoint.load(files[0])
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
            "config": data["model"]["config"],
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
        },
        "metrics": data.get("metrics") or {},
        "best_metrics": best,
    }
