"""The training log, metrics.jsonl: one JSON object per line (train, eval, start, resume,
note, threads, warning, end), written by rank 0 and handed to the caller's hooks as it is
written; and the warnings the loop gives once each (model size against the data, warmup
length, exploding and vanishing gradients)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from charrnn.config import TrainConfig
from charrnn.files import io_error, temp_sibling


class MetricsLog:
    """metrics.jsonl (rank 0 only), flushed as written; every record also goes to `on_event`."""

    def __init__(self, path: Path | None, on_event: Callable[[dict], None], warned: list[str]):
        self.path = path
        try:
            self.file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        except OSError as e:
            raise io_error(path, e) from None
        self.on_event = on_event
        self.warned = warned  # keys of the warnings given (kept in the checkpoint)

    def write(self, record: dict) -> None:
        """Append a record and pass it on."""
        if self.file:
            try:
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
            except OSError as e:  # a resume drops a half-written line
                raise io_error(self.path, e) from None
        self.on_event(record)

    def warn_once(self, key: str, step: int, message: str) -> None:
        """A warning record, the first time `key` comes up in the run."""
        if key not in self.warned:
            self.warned.append(key)
            self.write({"event": "warning", "step": step, "message": message})

    def close(self) -> None:
        if self.file:
            self.file.close()


def trim_log(path: Path, step: int) -> None:
    """Drop what metrics.jsonl says of steps after `step`, the checkpoint a resumed run
    continues from (after a kill, that work was lost and is done again), and any line a kill
    left half-written. Rewritten atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    tmp = temp_sibling(path, "tmp")
    try:
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise io_error(path, e) from None


def train_record(step: int, epoch: int, window: dict, seconds: float, lr: float) -> dict:
    """The `train` record of the steps since the last one (`window` holds their sums)."""
    n = max(window["n"], 1)
    updates = max(window["n"] - window["overflows"], 1)  # fp16 overflows have no norm
    record = {
        "event": "train",
        "step": step,
        "epoch": epoch,
        "loss": window["loss"] / n,
        "lr": lr,
        "grad_norm": window["norm"] / updates,
        "grad_norm_max": window["norm_max"],
        "clipped": window["clipped"] / n,
        "tokens_per_s": window["tokens"] / max(seconds, 1e-9),
    }
    if window["overflows"]:
        record["fp16_overflows"] = window["overflows"]  # updates the scaler skipped
    return record


def watch_gradients(record: dict, cfg: TrainConfig, log: MetricsLog) -> None:
    """Warn (once each) about exploding and vanishing gradients."""
    limit = 100 * cfg.clip_norm if cfg.clip_norm else 1e3
    if record["grad_norm_max"] > limit:
        log.warn_once(
            "exploding",
            record["step"],
            f"exploding gradients: norm {record['grad_norm_max']:.3g} at step "
            f"{record['step']}; keep --clip-norm on, lower --lr",
        )
    rnn = [v for k, v in record["layer_grad_norms"].items() if re.search(r"\.l\d+$", k)]
    if len(rnn) >= 2 and rnn[-1] > 0 and rnn[0] / rnn[-1] < 1e-3:
        log.warn_once(
            "vanishing",
            record["step"],
            f"vanishing gradients: the first recurrent layer gets "
            f"{rnn[0] / rnn[-1]:.1e} of the last one's gradient; try --residual, fewer "
            "layers, or lstm/gru cells",
        )


def warn_sizes(task, params: int, log: MetricsLog, step: int) -> None:
    """Warn when the model is far too large or small for the data, or epochs are tiny, or
    there is no validation split."""
    if task.val_stats is None:
        log.warn_once(
            "no-val",
            step,
            "the data has no validation split: no evaluations, no best.pt, no early stopping; "
            "tokenize with --val-frac above 0 (or --val FILE)",
        )
    tokens = task.steps_per_epoch * task.tokens_per_step
    if params > 20 * tokens:
        log.warn_once(
            "too-large",
            step,
            f"the model ({params:,} parameters) is far too large for the "
            f"training data ({tokens:,} tokens per epoch): expect overfitting; lower "
            "--hidden-size or add --dropout",
        )
    elif tokens > 2000 * params:
        log.warn_once(
            "too-small",
            step,
            f"the model ({params:,} parameters) is small for the training "
            f"data ({tokens:,} tokens per epoch); a larger --hidden-size would likely "
            "do better",
        )
    if task.steps_per_epoch < 10:
        log.warn_once(
            "few-batches",
            step,
            f"only {task.steps_per_epoch} batches per epoch; lower "
            "--batch-size or --seq-len for more updates",
        )
