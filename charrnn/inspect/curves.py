"""Training curves from a run's metrics.jsonl (see charrnn/trainlog.py for its records): the
series `charrnn plot` draws and the summary it prints.

Losses are in bits: bits per character where a run's tokens are its characters (a character
vocabulary: every evaluation counts as many tokens as characters), else bits per token (BPE,
where the training loss has no exact character count). A validation curve holds the
evaluations that compare with each other (those early stopping and best.pt use); the last
evaluation of a run, which scores the whole split, is kept apart as `final`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CharrnnError
from charrnn.files import io_error

METRICS = "metrics.jsonl"
TRAIN_FIELDS = ("loss", "lr", "grad_norm", "grad_norm_max", "clipped", "tokens_per_s")
X_AXES = ("step", "time")


def _series(*names: str) -> dict[str, list[float]]:
    return {name: [] for name in ("step", "elapsed", *names)}


@dataclass
class RunCurves:
    """One run's curves: parallel lists per series, each with its `step` and `elapsed`."""

    name: str
    path: Path  # the metrics.jsonl read
    unit: str = "bits/token"  # of every loss here: bits/char, bits/token or bits/text
    train: dict[str, list[float]] = field(default_factory=lambda: _series(*TRAIN_FIELDS))
    val: dict[str, list[float]] = field(default_factory=lambda: _series("loss"))
    layers: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    final: dict | None = None  # the whole split's score at the end: step, elapsed, loss
    clip_norm: float = 0.0  # --clip-norm of the latest session (0: off)
    skipped: int = 0  # lines that are not records
    partial: bool = False  # the last line is cut short: the run is still writing it

    def best(self) -> dict | None:
        """The evaluation with the lowest validation loss (the first of equals): where the
        validation loss stopped improving."""
        losses = self.val["loss"]
        if not losses:
            return None
        i = min(range(len(losses)), key=losses.__getitem__)
        return {"step": self.val["step"][i], "elapsed": self.val["elapsed"][i], "loss": losses[i]}

    def summary(self) -> dict:
        """Steps, best validation loss and where, last training loss, typical tokens/s."""
        train, best = self.train, self.best()
        final = [self.final["elapsed"]] if self.final else []
        steps = max(train["step"][-1:] + self.val["step"][-1:], default=0)
        return {
            "name": self.name,
            "path": str(self.path),
            "unit": self.unit,
            "steps": steps,
            "elapsed": max(
                train["elapsed"][-1:] + self.val["elapsed"][-1:] + final[-1:], default=0.0
            ),
            "best_val": best["loss"] if best else None,
            "best_step": best["step"] if best else None,
            "final_val": self.final["loss"] if self.final else None,
            "last_train_loss": train["loss"][-1] if train["loss"] else None,
            "tokens_per_s": statistics.median(train["tokens_per_s"])
            if train["tokens_per_s"]
            else None,
            "evaluations": len(self.val["step"]),
            "train_records": len(train["step"]),
            "skipped_lines": self.skipped,
            "partial_line": self.partial,
        }

    def as_dict(self) -> dict:
        """The summary and every series (JSON-ready)."""
        return {
            **self.summary(),
            "clip_norm": self.clip_norm,
            "final": self.final,
            "series": {"train": self.train, "val": self.val, "layer_grad_norms": self.layers},
        }


def metrics_path(run: str | Path) -> Path:
    """A run directory's metrics.jsonl (given the directory, a checkpoint in it, or the file
    itself), which must exist."""
    path = Path(run)
    try:
        path.stat()
    except OSError as e:
        raise io_error(run, e) from None
    if path.suffix == ".pt":  # best.pt or last.pt: its run's log
        path = path.parent
    if not path.is_dir():
        return path
    if not (path / METRICS).is_file():
        raise CharrnnError(
            str(run),
            f"holds no {METRICS} (not a run directory, or a run that has not started)",
            "pass a run directory written by charrnn train",
        )
    return path / METRICS


def read_records(path: Path) -> tuple[list[dict], int, bool]:
    """The records of a metrics.jsonl, the count of lines that are not records, and whether
    the last line is cut short (a line without its newline: one a run is still writing)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise io_error(path, e) from None
    lines = raw.decode("utf-8", errors="replace").split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    records, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            records.append(record)
        else:
            skipped += 1
    return records, skipped, bool(tail.strip())


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _add_train(curves: RunCurves, record: dict) -> None:
    train = curves.train
    train["step"].append(record.get("step", 0))
    train["elapsed"].append(_number(record.get("elapsed")))
    for name in TRAIN_FIELDS:
        value = _number(record.get(name))
        train[name].append(value / math.log(2) if name == "loss" else value)
    for layer, norm in (record.get("layer_grad_norms") or {}).items():
        series = curves.layers.setdefault(layer, _series("grad_norm"))
        series["step"].append(record.get("step", 0))
        series["elapsed"].append(_number(record.get("elapsed")))
        series["grad_norm"].append(_number(norm))


def _add_eval(curves: RunCurves, record: dict, per_char: list[bool]) -> None:
    point = {"step": record.get("step", 0), "elapsed": _number(record.get("elapsed"))}
    per_char.append(
        record.get("val_tokens") not in (None, 0)
        and record.get("val_tokens") == record.get("val_chars")
    )
    if "val_accuracy" in record:  # a classifier's loss is per text
        curves.unit = "bits/text"
    loss = _number(record.get("val_loss")) / math.log(2)
    if "val_sample_loss" in record:  # the last evaluation: the whole split and the sample
        curves.final = {**point, "loss": loss}
        if point["step"] in curves.val["step"]:
            return
        loss = _number(record["val_sample_loss"]) / math.log(2)
    for name, value in (*point.items(), ("loss", loss)):
        curves.val[name].append(value)


def _run_name(path: Path) -> str:
    """A run's name: its directory's (or a metrics file's own, without the suffix)."""
    return Path(os.path.abspath(path.parent)).name if path.name == METRICS else path.stem


def read_run(run: str | Path, name: str | None = None) -> RunCurves:
    """The curves of a run directory (or of a metrics.jsonl file)."""
    path = metrics_path(run)
    records, skipped, partial = read_records(path)
    curves = RunCurves(
        name=name or _run_name(path) or str(run), path=path, skipped=skipped, partial=partial
    )
    per_char: list[bool] = []
    for record in records:
        event = record["event"]
        if event == "train":
            _add_train(curves, record)
        elif event == "eval" and "val_loss" in record:
            _add_eval(curves, record, per_char)
        elif event in ("start", "resume") and isinstance(record.get("config"), dict):
            curves.clip_norm = _number(record["config"].get("clip_norm", 0.0))
    if not curves.train["step"] and not curves.val["step"]:
        raise CharrnnError(
            str(run),
            "no training records yet (a run logs its first after --log-every steps)",
            "wait for the run to log, or pass a run directory written by charrnn train",
        )
    if per_char and all(per_char):
        curves.unit = "bits/char"
    return curves


def read_runs(runs: list[str | Path]) -> list[RunCurves]:
    """The curves of several runs, named by their directories (by the paths given where two
    directories share a name)."""
    names = [_run_name(metrics_path(run)) for run in runs]
    return [
        read_run(run, name if names.count(name) == 1 else str(run))
        for run, name in zip(runs, names, strict=True)
    ]
