"""Versioned, self-contained checkpoints, written atomically.

A checkpoint is one `torch.save` file of plain dicts, lists, numbers, strings and tensors
(loadable with `torch.load(path, weights_only=True)`):

    format, version, charrnn_version, created, command
    kind           "lm" | "seq2seq" | "classify" (charrnn.kinds)
    model          {"name": registry entry, "config": ModelConfig fields, "labels": a
                   classifier's label names by class number}
    tokenizers     {"text": tokenizer.json text} (seq2seq: {"source": ..., "target": ...})
    weights        the model's state_dict (on CPU, so it loads anywhere): with --ema-decay,
                   the moving average of the weights, which decoding and scoring use
    data           {"path": data directory, "val": split statistics}
    train          config, step, epoch, index, elapsed, optimizer state, lr scale, RNG states,
                   task state (the carried hidden state), best validation loss, patience count;
                   with --ema-decay, the optimizer's own weights ("weights"; else None)
    metrics        the latest evaluation
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from charrnn import __version__
from charrnn.errors import CharrnnError
from charrnn.files import temp_sibling, write_failure
from charrnn.kinds import KINDS

FORMAT = "charrnn-checkpoint"
VERSION = 1


def save(path: str | Path, payload: dict) -> None:
    """Write `payload` to `path` atomically: a temporary file in the same directory, flushed
    to disk, then renamed over the old one. Killing the process at any moment leaves either
    the old or the new file, never a broken one."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "charrnn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **payload,
    }
    tmp = temp_sibling(path, f"tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # the old file stays as it was
        if isinstance(e, OSError | RuntimeError):
            raise write_failure(path, e) from None
        raise


def load(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint (weights_only: no code runs while loading)."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return load(path / name, map_location=map_location)
        if (path / "meta.json").is_file():
            raise CharrnnError(
                where,
                "is a data directory (tokenized text), not a run",
                f"train a model on it first: charrnn train {path} -o RUN_DIR",
            )
        if (path / "metrics.jsonl").is_file():
            raise CharrnnError(
                where,
                "a run that has not saved a checkpoint yet (it writes one at its first evaluation)",
                "wait for it, or start it over with charrnn train INPUT -o DIR --force",
            )
        raise CharrnnError(
            where,
            "no checkpoint in this directory (no best.pt or last.pt)",
            "pass a run directory written by charrnn train, or a .pt file",
        )
    if not path.exists():
        raise CharrnnError(where, "no such file or directory", "check the path")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # a damaged pickle fails in many ways (TypeError, AssertionError, ...)
        raise CharrnnError(
            where,
            "not a readable checkpoint (corrupt, truncated, or not a torch file)",
            "pass a file written by charrnn train",
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CharrnnError(
            where,
            "not a charrnn checkpoint (no charrnn header)",
            "pass a file written by charrnn train",
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CharrnnError(
            where,
            f"damaged checkpoint (format version {version!r} is not a number)",
            "pass a file written by charrnn train",
        )
    if version > VERSION:
        raise CharrnnError(
            where,
            f"written by a newer charrnn (checkpoint format {version}, "
            f"this charrnn {__version__} reads up to {VERSION})",
            "upgrade charrnn",
        )
    for key in ("kind", "model", "tokenizers", "weights"):
        if key not in data:
            raise CharrnnError(
                where, f"incomplete checkpoint (no '{key}')", "pass a file written by charrnn train"
            )
    problem = _malformed(data)
    if problem:
        raise CharrnnError(
            where, f"damaged checkpoint ({problem})", "pass a file written by charrnn train"
        )
    return data


def _malformed(data: dict) -> str:
    """What in a checkpoint's header does not have the shape charrnn writes ("" if nothing)."""
    model, tokenizers, weights = data["model"], data["tokenizers"], data["weights"]
    if data["kind"] not in KINDS:
        return f"unknown kind {data['kind']!r}"
    if not (
        isinstance(model, dict)
        and isinstance(model.get("name"), str)
        and isinstance(model.get("config"), dict)
    ):
        return "'model' is not a name and a configuration"
    if not (
        isinstance(tokenizers, dict)
        and tokenizers
        and all(isinstance(k, str) and isinstance(v, str) for k, v in tokenizers.items())
    ):
        return "'tokenizers' is not a set of tokenizer texts"
    if not (
        isinstance(weights, dict)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items())
    ):
        return "'weights' is not a set of named tensors"
    for key in ("data", "metrics"):  # may be None: no data recorded, no evaluation yet
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"'{key}' is not a mapping"
    train = data.get("train", {})
    if not isinstance(train, dict):
        return "'train' is not a mapping"
    for key in ("state", "config"):
        if key in train and not isinstance(train[key], dict):
            return f"'train.{key}' is not a mapping"
    return ""


def rng_state() -> dict:
    """Every random number generator's state, as plain data."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    random.setstate(_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # a machine with fewer GPUs than the one that saved it restores the ones it has
        for index, gpu_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(gpu_state, index)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_weights(model, weights: dict, where: str) -> None:
    """Load a checkpoint's `weights` into `model`, or raise one line naming the first tensor
    that does not fit (missing, unexpected, another shape) or is not finite."""
    own = model.state_dict()
    fix = "pass a file written by charrnn train"
    for name, tensor in own.items():
        if name not in weights:
            raise CharrnnError(where, f"weights lack '{name}', which the model needs", fix)
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise CharrnnError(
                where,
                f"weight '{name}' is {_shape(weights[name])} in the file but "
                f"{_shape(tensor)} for the model its configuration describes",
                fix,
            )
    extra = next((name for name in weights if name not in own), None)
    if extra is not None:
        raise CharrnnError(where, f"weights hold '{extra}', which the model does not have", fix)
    broken = next(
        (n for n, t in weights.items() if t.is_floating_point() and not torch.isfinite(t).all()),
        None,
    )
    if broken is not None:
        raise CharrnnError(
            where,
            f"weight '{broken}' holds NaN or infinite values (the run diverged)",
            "use an earlier checkpoint (a run's best.pt), or train again with a lower --lr",
        )
    model.load_state_dict(weights)


def _shape(tensor) -> str:
    return "x".join(str(n) for n in tensor.shape) or "a scalar"
