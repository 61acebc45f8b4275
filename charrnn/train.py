"""One training loop for every model kind.

The loop knows nothing about language models or seq2seq: a *task* (`charrnn.kinds.lm.LMTask`,
`charrnn.kinds.seq2seq.PairTask`) supplies batches by data position, the loss of a batch, an
evaluation on a fixed sample of the validation split or on all of it, its own state to
checkpoint and its own fields of the training log. The loop does the rest: the optimizer and
learning-rate schedule, mixed precision, gradient clipping and the gradient-norm watch, a
guard against divergence, evaluation with early stopping, atomic checkpoints, exact resume,
time budgets and clean interruption, and the CPU threads. Files are written by rank 0 only,
so the loop can run under torchrun (DistributedDataParallel) unchanged.

A time budget is wall time from the moment the command started: set-up, evaluations, the
final evaluation of the whole validation split and the last checkpoint all fit inside it.
The loop measures what evaluating and saving cost and stops training early enough for them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from charrnn import checkpoint
from charrnn import device as devices
from charrnn.config import TrainConfig
from charrnn.cores import CoreWatch
from charrnn.distributed import agree, any_rank, from_rank0, gather_rank_states, own_rank_state
from charrnn.errors import CharrnnError, UsageError
from charrnn.optim import (
    LoopState,
    WeightAverage,
    clip,
    epoch_limit,
    layer_grad_norms,
    learning_rate,
    limit_reached,
    make_optimizer,
    progress_fraction,
)
from charrnn.trainlog import MetricsLog, train_record, trim_log, warn_sizes, watch_gradients

MAX_BAD_STEPS = 3  # consecutive non-finite steps before rolling back
MAX_ROLLBACKS = 3  # rollbacks before giving up
EVAL_SHARE = 0.025  # evaluations during training take about this share of its time...
EVAL_SPEEDUP = 2.0  # ...scoring a token costing about 1/EVAL_SPEEDUP of training on it
MIN_EVAL_TOKENS = 16384  # the smallest evaluation sample
FINAL_SHARE = 0.25  # with a time budget, the final evaluation scores the whole split when
# that takes at most this share of the budget (else the evaluation sample again)
THREADS_EVERY = 10.0  # seconds between looks at the free cores (default --threads)
WINDOW_KEYS = ("loss", "n", "norm", "norm_max", "clipped", "tokens", "overflows", "seconds")


@dataclass
class Hooks:
    """How the caller watches and steers training (the CLI draws progress from these)."""

    on_event: Callable[[dict], None] = lambda event: None  # every metrics record
    on_step: Callable[[int, float], None] = lambda step, progress: None  # after each step
    should_stop: Callable[[], str | None] = lambda: None  # e.g. "SIGINT" after Ctrl-C


@dataclass
class RunInfo:
    """What makes a run self-contained: written into every checkpoint."""

    kind: str  # lm | seq2seq | classify (charrnn.kinds)
    model_name: str
    model_config: dict
    tokenizers: dict[str, str]  # name -> tokenizer.json text
    data: dict  # {"path": ..., "val": split stats}
    command: str = ""
    labels: list[str] | None = None  # a classifier's labels, by class number


def eval_sample_tokens(cfg: TrainConfig, tokens_per_step: int) -> int:
    """Validation tokens an evaluation during training scores: enough for EVAL_SHARE of the
    training time between evaluations."""
    return max(MIN_EVAL_TOKENS, int(EVAL_SPEEDUP * EVAL_SHARE * cfg.eval_every * tokens_per_step))


def fit(
    run_dir: str | Path,
    model: nn.Module,
    task,
    cfg: TrainConfig,
    info: RunInfo,
    *,
    device: torch.device,
    precision: str = "fp32",
    resume: dict | None = None,
    hooks: Hooks | None = None,
    rank: int = 0,
    world_size: int = 1,
    changes: dict | None = None,
    started: float | None = None,
    watch: CoreWatch | None = None,
    notes: list[str] | None = None,
) -> dict:
    """Train `model` on `task` until a limit, early stopping or interruption; returns a
    summary. `run_dir` receives last.pt, best.pt and metrics.jsonl.

    `started` (time.monotonic()) is when the command began: a time budget counts from there.
    With `watch`, the CPU threads follow the cores other programs leave free. `notes` go to
    the log after the start record (what was chosen for the user, and why).

    Under torchrun (`world_size` > 1, `model` wrapped in DistributedDataParallel, the task
    reading its rank's rows) every rank runs this loop; they agree on when to stop, rank 0
    writes, and checkpoints hold every rank's carried state and random state."""
    loop = _Loop(run_dir, model, task, cfg, info, device, precision, hooks, rank, world_size)
    loop.restore(resume, changes or {})
    return loop.run(started, watch, notes or [])


class _Loop:
    """The state of one training session, and its steps."""

    def __init__(self, run_dir, model, task, cfg, info, device, precision, hooks, rank, ranks):
        self.given, self.cfg = cfg, cfg.limits()  # checkpoints keep the limits given
        self.run_dir = Path(run_dir)
        self.model, self.raw = model, getattr(model, "module", model)  # unwrap DDP
        self.task, self.info, self.device, self.precision = task, info, device, precision
        self.hooks = hooks or Hooks()
        self.rank, self.world_size, self.writer = rank, ranks, rank == 0
        self.opt = make_optimizer(model, self.cfg)
        self.scaler = torch.amp.GradScaler(device.type) if devices.needs_scaler(precision) else None
        self.params = [p for p in model.parameters() if p.requires_grad]
        # made from the weights the model starts with: a resumed run's saved average
        self.average = WeightAverage(self.raw, self.cfg.ema_decay) if self.cfg.ema_decay else None
        self.state = LoopState()
        self.resume: dict | None = None
        self.changes: dict = {}
        self.session_steps = 0
        self.eval_rate = 0.0  # seconds per token an evaluation reads (measured)
        self.save_seconds = 0.0  # the latest checkpoint's writing time
        self.last_full = False  # whether the latest evaluation scored the whole split
        self.finishing = False  # resumed only to make the final evaluation (see restore)

    # -- set-up ----------------------------------------------------------------------------

    def restore(self, resume: dict | None, changes: dict) -> None:
        """Continue from a checkpoint exactly where it stopped, or start afresh (seeded)."""
        self.resume, self.changes = resume, dict(changes)
        if resume is None:
            checkpoint.seed_everything(self.cfg.seed)
            return
        train, task, cfg = resume["train"], self.task, self.cfg
        if train.get("weights") is not None:  # the checkpoint's weights are an average
            checkpoint.load_weights(self.raw, train["weights"], "the checkpoint's trained weights")
        if train["config"].get("optimizer", cfg.optimizer) == cfg.optimizer:
            settings = [
                {k: v for k, v in g.items() if k != "params"} for g in self.opt.param_groups
            ]
            self.opt.load_state_dict(train["optimizer"])
            for group, setting in zip(self.opt.param_groups, settings, strict=True):
                group.update(setting)  # e.g. another --weight-decay on resume
        # else: another --optimizer on resume starts with a fresh state of its own (its
        # moments are not the old one's); the change is reported like any other
        if self.scaler is not None and train.get("scaler"):
            self.scaler.load_state_dict(train["scaler"])
        saved = train["state"]
        state = LoopState(**{k: v for k, v in saved.items() if k in LoopState.__annotations__})
        if "warmup_end" not in saved:  # an older run decayed over the whole run
            state.warmup_end = 0.0
        regrouped = bool(state.epoch_steps) and state.epoch_steps != task.steps_per_epoch
        if regrouped:
            # another --batch-size, --seq-len or number of processes cuts the epoch into
            # another number of batches: go on at the same fraction of the epoch
            state.index = state.index * task.steps_per_epoch // state.epoch_steps
        elif state.index >= task.steps_per_epoch:  # an older checkpoint: the next epoch
            state.epoch, state.index = state.epoch + 1, 0
        own = own_rank_state(train, self.rank, self.world_size)
        task.load_state_dict(own["task"])
        old = train["config"]
        layout = (old.get("batch_size"), old.get("seq_len"), len(train.get("ranks") or [0]))
        if regrouped or layout != (cfg.batch_size, cfg.seq_len, self.world_size):
            task.reset()  # the rows start elsewhere in the text: the carried state is not theirs
        checkpoint.set_rng_state(own["rng"])
        if state.precision != self.precision:  # allowed: the weights are fp32 either way
            self.changes["precision"] = [state.precision, self.precision]
        flag, reached = limit_reached(cfg, state, task.steps_per_epoch)
        if reached and state.finished:  # nothing to train: leave the run as it is
            raise UsageError(
                flag,
                f"the run has already {reached} (step {state.step})",
                f"resume with a larger {flag}",
            )
        # stopped at its limit before its final evaluation (killed): the resume ends it
        self.finishing = bool(reached)
        state.finished = False
        self.state = state

    def run(self, started: float | None, watch: CoreWatch | None, notes: list[str]) -> dict:
        """Train to the end; the summary."""
        state, task = self.state, self.task
        state.epoch_steps = task.steps_per_epoch
        state.precision = self.precision
        if self.resume is not None and self.writer:
            trim_log(self.run_dir / "metrics.jsonl", state.step)
        path = self.run_dir / "metrics.jsonl" if self.writer else None
        self.log = MetricsLog(path, self.hooks.on_event, state.warned)
        self.good = _snapshot(self)  # the last good state, for rollbacks
        task.sample_validation(eval_sample_tokens(self.cfg, task.tokens_per_step))
        self.watch, self.watched = watch, time.monotonic()
        self.speed = 0.0  # tokens per second of the latest train record
        self._start_records(notes)
        self.model.train()
        self.window = state.window  # checkpointed: a resumed run logs the same averages
        for key in WINDOW_KEYS:
            self.window.setdefault(key, 0)
        self.window_start = time.monotonic()
        # the run's clock: its earlier sessions, and this one from the command's start
        self.clock = (time.monotonic() if started is None else started) - state.elapsed
        self.last_record = (self.resume or {}).get("metrics") or None  # the latest evaluation
        self.start = (state.elapsed, self._progress())  # where this session began
        reason = self._train()
        return self._finish(reason)

    def _start_records(self, notes: list[str]) -> None:
        state, cfg, task = self.state, self.cfg, self.task
        params = sum(p.numel() for p in self.params)
        self.log.write(
            {
                "event": "resume" if self.resume else "start",
                "step": state.step,
                "config": asdict(cfg),
                "params": params,
                "precision": self.precision,
                "threads": torch.get_num_threads(),
                "changes": self.changes,
            }
        )
        for note in notes:
            self.log.write({"event": "note", "step": state.step, "message": note})
        warn_sizes(task, params, self.log, state.step)
        run_steps = [cfg.max_steps] if cfg.max_steps else []
        if cfg.epochs:  # the steps taken, and the batches left to the epoch limit
            spe = task.steps_per_epoch
            left = epoch_limit(cfg, spe) - (state.epoch * spe + state.index)
            run_steps.append(state.step + left)
        if run_steps and state.step < cfg.warmup_steps >= min(run_steps):  # the warmup is to come
            self.log.warn_once(
                "long-warmup",
                state.step,
                f"--warmup-steps {cfg.warmup_steps} is not shorter than the run "
                f"({min(run_steps)} steps): the learning rate never reaches --lr; lower "
                "--warmup-steps",
            )

    # -- the loop --------------------------------------------------------------------------

    def _train(self) -> str:
        """Steps until a limit, early stopping or a signal; the reason."""
        while True:
            reason = self._stop_reason()
            if reason:
                return reason
            if not self._step():
                continue  # a non-finite step, skipped
            if self.state.step % self.cfg.eval_every == 0:
                self.last_record = self._evaluate(full=False) or self.last_record
                if self.cfg.patience and self.state.bad_evals >= self.cfg.patience:
                    return f"early stopping ({self.cfg.patience} evaluations without improvement)"
            if self.state.step % (self.cfg.checkpoint_every or self.cfg.eval_every) == 0:
                self._save("last.pt", self.last_record)
            self._follow_free_cores()
            self.hooks.on_step(self.state.step, self._progress())

    def _stop_reason(self) -> str:
        state = self.state
        signal_name = self.hooks.should_stop()
        # the ranks share one clock (the slowest's), so they lay out the learning rate and
        # reach a time budget alike, and stop together on a signal to any of them
        elapsed = time.monotonic() - self.clock
        ahead = elapsed + (self.reserve() if self.session_steps else 0.0)
        signalled, (state.elapsed, ahead) = agree(
            bool(signal_name), (elapsed, ahead), self.world_size, self.device
        )
        if signalled:
            return f"interrupted ({signal_name or 'stopped with another rank'})"
        flag, reason = limit_reached(self.cfg, state, self.task.steps_per_epoch, ahead)
        if flag == "--time-budget" and not self.session_steps and not self.finishing:
            self.log.warn_once(
                "budget-gone",
                state.step,
                f"--time-budget {self.cfg.time_budget:g}s ran out before the first step (set-up "
                f"took {state.elapsed - self.start[0]:.1f}s); give a longer --time-budget",
            )
        return reason

    def reserve(self) -> float:
        """Seconds the run needs after its last step (time budgets only): the final
        evaluation and two checkpoints, as measured so far."""
        if not self.cfg.time_budget:
            return 0.0
        return self._final_eval_seconds(self._final_is_full()) + 2 * self.save_seconds + 0.5

    def _final_eval_seconds(self, full: bool) -> float:
        cost = self.task.eval_cost(full)
        if self.eval_rate:
            return cost * self.eval_rate
        return cost / (EVAL_SPEEDUP * self.speed) if self.speed else 0.0

    def _final_is_full(self) -> bool:
        """Whether the final evaluation scores the whole split: unless a time budget could
        not afford it (see FINAL_SHARE)."""
        budget = self.cfg.time_budget
        return not budget or self._final_eval_seconds(True) <= FINAL_SHARE * budget

    def _check_budget(self) -> None:
        """Warn (once) when the final evaluation would take most of a time budget."""
        budget = self.cfg.time_budget
        final = self._final_eval_seconds(full=True)
        if budget and final > budget / 2:
            tokens = self.task.eval_cost(full=True)
            self.log.warn_once(
                "budget-eval",
                self.state.step,
                f"evaluating the whole validation split ({tokens:,} tokens) takes about "
                f"{final:.0f}s, more than half of --time-budget {budget:g}s; give a longer "
                "--time-budget, or tokenize with a smaller --val-frac",
            )

    def _progress(self) -> float:
        return progress_fraction(self.cfg, self.state, self.task.steps_per_epoch, self.reserve())

    def _step(self) -> bool:
        """One update; False when its loss or gradient was not finite (skipped)."""
        state, cfg, task, scaler = self.state, self.cfg, self.task, self.scaler
        progress = self._progress()
        if state.step >= cfg.warmup_steps and state.warmup_end < 0:
            state.warmup_end = progress
        lr = learning_rate(cfg, state.step, progress, state.lr_scale, max(state.warmup_end, 0.0))
        for group in self.opt.param_groups:
            group["lr"] = lr
        batch = task.batch(state.epoch, state.index)
        task.progress = progress  # e.g. scheduled sampling ramps with it
        with devices.autocast(self.device, self.precision):
            loss = task.loss(self.model, batch)
        self.opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(self.opt)
        grads = [p.grad for p in self.params if p.grad is not None]
        total_norm = torch.nn.utils.get_total_norm(grads)
        norm, loss_value = float(total_norm), float(loss.detach())
        _advance(state, task.steps_per_epoch)
        # fp16 gradients that overflow are routine: the scaler skips the update and lowers
        # its scale (no divergence). The gradients are the same on every rank (averaged),
        # the loss is each rank's own: the ranks decide together.
        overflow = scaler is not None and not math.isfinite(norm)
        bad = not math.isfinite(loss_value) or (scaler is None and not math.isfinite(norm))
        if any_rank(bad, self.world_size, self.device):
            if scaler is not None:
                scaler.update()  # after unscale_, before the next one
            self.good = _diverged(self, loss_value, norm)
            return False
        state.bad_in_row = 0
        layers = None  # per-layer norms, like grad_norm, before any clipping
        if (state.step + 1) % cfg.log_every == 0:
            layers = {} if overflow else layer_grad_norms(self.raw)
        clipped = not overflow and clip(self.params, grads, norm, total_norm, cfg)
        if scaler:
            scaler.step(self.opt)
            scaler.update()
        else:
            self.opt.step()
        if self.average is not None:
            self.average.update(state.step)
        state.step += 1
        state.tokens += task.last_tokens
        self.session_steps += 1
        self._tally(loss_value, norm, clipped, overflow)
        if layers is not None:
            self._log_train(lr, layers)
        return True

    def _tally(self, loss: float, norm: float, clipped: bool, overflow: bool) -> None:
        window = self.window
        window["loss"] += loss
        window["n"] += 1
        if overflow:
            window["overflows"] += 1
            self.state.skipped_steps += 1
        else:
            window["norm"] += norm
            window["norm_max"] = max(window["norm_max"], norm)
        window["clipped"] += clipped
        window["tokens"] += self.task.last_tokens

    def _log_train(self, lr: float, layers: dict) -> None:
        state, window = self.state, self.window
        now = time.monotonic()
        state.elapsed = now - self.clock
        seconds = window["seconds"] + now - self.window_start
        record = train_record(state.step, state.epoch, window, seconds, lr)
        progress = self._progress()
        record.update(
            elapsed=round(state.elapsed, 3),
            tokens=state.tokens,
            progress=round(progress, 4),
            remaining=round(self._remaining(progress), 1),
            layer_grad_norms=layers,
            **self.task.log_fields(),
        )
        self.log.write(record)
        watch_gradients(record, self.cfg, self.log)
        self.speed = record["tokens_per_s"]
        window.update(dict.fromkeys(window, 0))
        self.window_start = now

    def _remaining(self, progress: float) -> float:
        """Seconds left: to the time budget's end, or at this session's pace so far."""
        state = self.state
        guesses = [self.cfg.time_budget - state.elapsed] if self.cfg.time_budget else []
        done = progress - self.start[1]
        if done > 0:
            guesses.append((state.elapsed - self.start[0]) * (1 - progress) / done)
        return max(0.0, min(guesses)) if guesses else 0.0

    def _follow_free_cores(self) -> None:
        """With the default --threads, use the cores other programs leave free (see
        charrnn.cores), looking again every THREADS_EVERY seconds."""
        if self.watch is None or time.monotonic() - self.watched < THREADS_EVERY:
            return
        self.watched = time.monotonic()
        threads = devices.auto_threads(self.watch)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.log.write(
                {
                    "event": "threads",
                    "step": self.state.step,
                    "threads": threads,
                    "cores": self.watch.cores,
                    "busy": round(self.watch.busy, 2),
                }
            )

    # -- evaluation and checkpoints ----------------------------------------------------------

    def _evaluate(self, full: bool) -> dict | None:
        state = self.state
        began = time.monotonic()
        averaged = self.average.applied() if self.average is not None else nullcontext()
        with averaged, devices.autocast(self.device, self.precision):
            result = self.task.evaluate(self.raw, full=full)
        seconds = time.monotonic() - began
        if self.task.eval_cost(full):
            self.eval_rate = seconds / self.task.eval_cost(full)
            self._check_budget()
        state.last_eval_step = state.step
        if result is None:
            return None
        self.last_full = result.full
        # rank 0's scores decide for all: every rank saves (or not) and stops together
        scores = from_rank0(result.as_dict(), self.world_size)
        loss = scores.get("sample_loss", scores["loss"])  # always on the same text
        if self.cfg.best_on != "loss":  # a classifier's accuracy or F1: higher is better
            loss = 1.0 - scores[self.cfg.best_on]
        improved = loss < state.best_val_loss
        if improved:
            state.best_val_loss = loss
            state.bad_evals = 0
        else:
            state.bad_evals += 1
        record = {
            "event": "eval",
            "step": state.step,
            "epoch": state.epoch,
            "elapsed": round(state.elapsed, 3),
            "seconds": round(seconds, 3),
            "best": improved,
            **{f"val_{k}": v for k, v in scores.items()},
        }
        self.log.write(record)
        # a best.pt that went missing (a kill between checkpoints) is made anew
        if improved or not (self.run_dir / "best.pt").exists():
            self._save("best.pt", record)
        return record

    def _save(self, name: str, evaluation: dict | None) -> None:
        began = now = time.monotonic()  # the log window's time so far goes into the checkpoint
        self.window["seconds"] += now - self.window_start
        self.window_start = now
        ranks = gather_rank_states(self.task, self.world_size)  # every rank takes part
        finite = all(torch.isfinite(p).all() for p in self.raw.parameters())
        if finite:
            self.good = _snapshot(self)
        if not self.writer:
            return
        if not finite:
            message = f"not writing {name}: weights are not finite"
            self.log.write({"event": "warning", "step": self.state.step, "message": message})
            return
        payload = _payload(self, self.given)
        payload["metrics"] = evaluation or {}
        if self.scaler is not None:
            payload["train"]["scaler"] = self.scaler.state_dict()
        if self.world_size > 1:
            payload["train"]["ranks"] = ranks
        checkpoint.save(self.run_dir / name, payload)
        self.save_seconds = time.monotonic() - began

    def _finish(self, reason: str) -> dict:
        state = self.state
        state.elapsed = time.monotonic() - self.clock
        if not reason.startswith("interrupted"):
            full = self._final_is_full()
            if state.last_eval_step != state.step or (full and not self.last_full):
                self.last_record = self._evaluate(full=full) or self.last_record
            state.finished = True
        self._save("last.pt", self.last_record)
        summary = {
            "event": "end",
            "step": state.step,
            "epoch": state.epoch,
            "reason": reason,
            "elapsed": round(time.monotonic() - self.clock, 3),
            "tokens": state.tokens,
            "best_val_loss": state.best_val_loss if math.isfinite(state.best_val_loss) else None,
            "skipped_steps": state.skipped_steps,
            "rollbacks": state.rollbacks,
            "last_eval": self.last_record,
        }
        self.log.write(summary)
        self.log.close()
        return summary


def _advance(state: LoopState, steps_per_epoch: int) -> None:
    state.index += 1
    if state.index >= steps_per_epoch:
        state.epoch += 1
        state.index = 0


def _snapshot(loop: _Loop) -> dict:
    return {
        "model": copy.deepcopy(loop.raw.state_dict()),
        "opt": copy.deepcopy(loop.opt.state_dict()),
        "average": loop.average.copy() if loop.average is not None else None,
    }


def _diverged(loop: _Loop, loss_value: float, norm: float) -> dict:
    """A non-finite loss or gradient: skip the update and halve the learning rate; after
    MAX_BAD_STEPS in a row, roll back to the last good checkpoint. Returns the good state."""
    state, good = loop.state, loop.good
    loop.opt.zero_grad(set_to_none=True)
    loop.task.reset()
    state.skipped_steps += 1
    state.lr_scale *= 0.5
    state.bad_in_row += 1
    loop.log.write(
        {
            "event": "warning",
            "step": state.step,
            "message": f"non-finite loss ({loss_value}) or gradient norm ({norm}): "
            f"update skipped, learning rate scaled to {state.lr_scale:g}x",
        }
    )
    if state.bad_in_row < MAX_BAD_STEPS:
        return good
    state.bad_in_row = 0
    state.rollbacks += 1
    if state.rollbacks > MAX_ROLLBACKS:
        raise CharrnnError(
            "training",
            f"diverged again after {MAX_ROLLBACKS} rollbacks (loss is NaN or infinite)",
            "lower --lr, keep --clip-norm on",
        )
    loop.raw.load_state_dict(good["model"])
    loop.opt.load_state_dict(good["opt"])
    if loop.average is not None and good["average"] is not None:
        loop.average.load(good["average"])
    loop.log.write(
        {
            "event": "warning",
            "step": state.step,
            "message": f"rolled back to the last good weights (rollback "
            f"{state.rollbacks} of {MAX_ROLLBACKS})",
        }
    )
    return good


def cpu_weights(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict on the CPU. Tied weights (one tensor under two names) stay one
    tensor: a GPU tensor's .cpu() is a new copy each time, which would store them twice."""
    moved: dict[tuple, Tensor] = {}
    weights = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.device, tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype)
        if key not in moved:
            moved[key] = tensor.detach().cpu()
        weights[name] = moved[key]
    return weights


def _payload(loop: _Loop, cfg: TrainConfig) -> dict:
    """What a checkpoint holds (see charrnn.checkpoint). With weight averaging, `weights` are
    the average (what decoding uses) and train.weights the optimizer's own."""
    model, opt, state, task, info = loop.raw, loop.opt, loop.state, loop.task, loop.info
    average = loop.average
    return {
        "kind": info.kind,
        "command": info.command,
        "model": {
            "name": info.model_name,
            "config": info.model_config,
            **({"labels": info.labels} if info.labels is not None else {}),
        },
        "tokenizers": info.tokenizers,
        "data": info.data,
        "weights": cpu_weights(model) if average is None else average.weights(model),
        "train": {
            "weights": None if average is None else cpu_weights(model),
            "config": asdict(cfg),
            "state": asdict(state),
            "optimizer": _cpu(opt.state_dict()),
            "task": task.state_dict(),
            "rng": checkpoint.rng_state(),
        },
    }


def _cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu(v) for v in value)
    return value
