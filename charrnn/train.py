"""One training loop for every model kind.

The loop knows nothing about language models or seq2seq: a *task* (`charrnn.lm.LMTask`,
`charrnn.seq2seq.PairTask`) supplies batches by data position, the loss of a batch, a full
validation pass, its own state to checkpoint and its own fields of the training log. The loop
does the rest: the optimizer and learning-rate schedule, gradient clipping and the
gradient-norm watch, a guard against divergence, evaluation with early stopping, atomic
checkpoints, exact resume, time budgets and clean interruption. Files are written by rank 0
only, so the loop can run under torchrun (DistributedDataParallel) unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from charrnn import checkpoint
from charrnn import device as devices
from charrnn.config import TrainConfig
from charrnn.distributed import agree, any_rank, from_rank0, gather_rank_states, own_rank_state
from charrnn.errors import CharrnnError, UsageError

MAX_BAD_STEPS = 3  # consecutive non-finite steps before rolling back
MAX_ROLLBACKS = 3  # rollbacks before giving up


@dataclass
class Hooks:
    """How the caller watches and steers training (the CLI draws progress from these)."""

    on_event: Callable[[dict], None] = lambda event: None  # every metrics record
    on_step: Callable[[int, float], None] = lambda step, progress: None  # after each step
    should_stop: Callable[[], str | None] = lambda: None  # e.g. "SIGINT" after Ctrl-C


@dataclass
class RunInfo:
    """What makes a run self-contained: written into every checkpoint."""

    kind: str  # lm | seq2seq
    model_name: str
    model_config: dict
    tokenizers: dict[str, str]  # name -> tokenizer.json text
    data: dict  # {"path": ..., "val": split stats}
    command: str = ""


@dataclass
class LoopState:
    """Where training stands; all of it goes into the checkpoint."""

    step: int = 0
    epoch: int = 0
    index: int = 0  # batch index within the epoch
    epoch_steps: int = 0  # batches in an epoch (another --batch-size or --seq-len changes it)
    elapsed: float = 0.0  # seconds of training so far, across resumes
    tokens: int = 0
    best_val_loss: float = math.inf
    bad_evals: int = 0
    lr_scale: float = 1.0  # lowered by the divergence guard
    skipped_steps: int = 0
    rollbacks: int = 0
    bad_in_row: int = 0  # consecutive non-finite steps
    last_eval_step: int = -1
    warmup_end: float = -1.0  # the run's progress when the warmup ended (-1: not yet)
    warned: list[str] = field(default_factory=list)
    window: dict = field(default_factory=dict)  # sums since the last train record


def progress_fraction(cfg: TrainConfig, state: LoopState, steps_per_epoch: int) -> float:
    """How far through the run we are, by whichever limit ends it first."""
    parts = [0.0]
    if cfg.max_steps:
        parts.append(state.step / cfg.max_steps)
    if cfg.epochs:
        parts.append(epochs_done(state, steps_per_epoch) / cfg.epochs)
    if cfg.time_budget:
        parts.append(state.elapsed / cfg.time_budget)
    return min(1.0, max(parts))


def epochs_done(state: LoopState, steps_per_epoch: int) -> float:
    """How many passes over the training data the run has made, by its place in the data
    (not its step count: a resume with another --batch-size cuts epochs into other numbers
    of steps, and a skipped step still uses its batch)."""
    return state.epoch + state.index / steps_per_epoch


def epoch_limit(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The batch at which --epochs is reached, counted from the first: the fraction rounded
    up, with float noise removed (1.1 x 100 batches is 110, not 110.00000000000001 -> 111)."""
    return math.ceil(round(cfg.epochs * steps_per_epoch, 6))


def learning_rate(
    cfg: TrainConfig, step: int, progress: float, lr_scale: float = 1.0, start: float = 0.0
) -> float:
    """Linear warmup to lr over cfg.warmup_steps, then (cosine) decay to lr * min_lr_frac over
    the rest of the run: `start` is the run's progress when the warmup ended."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps * lr_scale
    decay = 1.0
    if cfg.schedule == "cosine":
        rest = min(1.0, max(0.0, (progress - start) / (1 - start))) if start < 1 else 1.0
        decay = cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * rest))
    return cfg.lr * decay * lr_scale


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer; weight decay applies to matrices only (not biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.99))
    if cfg.optimizer == "rmsprop":  # char-rnn's choice
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=0.95)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)


def _layer_of(name: str) -> str:
    # "rnn.rnn.weight_hh_l1_reverse" -> "rnn.rnn.l1"; "head.weight" -> "head"
    module, _, leaf = name.rpartition(".")
    layer = re.search(r"_l(\d+)", leaf)
    return f"{module}.l{layer.group(1)}" if layer else module or leaf


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """Gradient norm per layer: the vanishing/exploding-gradient watch."""
    squares: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            key = _layer_of(name)
            squares[key] = squares.get(key, 0.0) + float(p.grad.detach().float().pow(2).sum())
    return {k: math.sqrt(v) for k, v in squares.items()}


def _trim_log(path: Path, step: int) -> None:
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


class _Metrics:
    """metrics.jsonl (rank 0 only), one JSON object per line, flushed as written."""

    def __init__(self, path: Path | None, hooks: Hooks) -> None:
        self.file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self.hooks = hooks

    def write(self, record: dict) -> None:
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        self.hooks.on_event(record)

    def close(self) -> None:
        if self.file:
            self.file.close()


def fit(
    run_dir: str | Path,
    model: nn.Module,
    task,
    cfg: TrainConfig,
    info: RunInfo,
    *,
    device: torch.device,
    resume: dict | None = None,
    hooks: Hooks | None = None,
    rank: int = 0,
    world_size: int = 1,
    changes: dict | None = None,
) -> dict:
    """Train `model` on `task` until a limit, early stopping or interruption; returns a
    summary. `run_dir` receives last.pt, best.pt and metrics.jsonl.

    Under torchrun (`world_size` > 1, `model` wrapped in DistributedDataParallel, the task
    reading its rank's rows) every rank runs this loop; they agree on when to stop, rank 0
    writes, and checkpoints hold every rank's carried state and random state."""
    hooks = hooks or Hooks()
    given, cfg = cfg, cfg.limits()  # checkpoints keep the limits given, not the default
    run_dir = Path(run_dir)
    writer = rank == 0
    raw = getattr(model, "module", model)  # unwrap DistributedDataParallel
    opt = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type) if devices.needs_scaler(device, cfg.amp) else None
    params = [p for p in model.parameters() if p.requires_grad]
    state = LoopState()
    if resume is not None:
        train = resume["train"]
        if train["config"].get("optimizer", cfg.optimizer) == cfg.optimizer:
            settings = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
            opt.load_state_dict(train["optimizer"])
            for group, setting in zip(opt.param_groups, settings, strict=True):
                group.update(setting)  # e.g. another --weight-decay on resume
        # else: another --optimizer on resume starts with a fresh state of its own (its
        # moments are not the old one's); the change is reported like any other
        if scaler is not None and train.get("scaler"):
            scaler.load_state_dict(train["scaler"])
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
        own = own_rank_state(train, rank, world_size)
        task.load_state_dict(own["task"])
        old = train["config"]
        layout = (old.get("batch_size"), old.get("seq_len"), len(train.get("ranks") or [0]))
        if regrouped or layout != (cfg.batch_size, cfg.seq_len, world_size):
            task.reset()  # the rows start elsewhere in the text: the carried state is not theirs
        checkpoint.set_rng_state(own["rng"])
        flag, reached = _limit_reached(cfg, state, task.steps_per_epoch)
        if reached:  # nothing to train: leave the run as it is
            raise UsageError(
                flag,
                f"the run has already {reached} (step {state.step})",
                f"resume with a larger {flag}",
            )
    else:
        checkpoint.seed_everything(cfg.seed)
    state.epoch_steps = task.steps_per_epoch
    if resume is not None and writer:
        _trim_log(run_dir / "metrics.jsonl", state.step)
    metrics = _Metrics(run_dir / "metrics.jsonl" if writer else None, hooks)
    good = _snapshot(raw, opt)  # the last good state, for rollbacks

    def save(name: str, evaluation: dict | None) -> None:
        nonlocal good, window_start
        now = time.monotonic()  # the log window's time so far goes into the checkpoint
        window["seconds"] += now - window_start
        window_start = now
        ranks = gather_rank_states(task, world_size)  # every rank takes part
        finite = all(torch.isfinite(p).all() for p in raw.parameters())
        if finite:
            good = _snapshot(raw, opt)
        if not writer:
            return
        if not finite:
            metrics.write(
                {
                    "event": "warning",
                    "step": state.step,
                    "message": f"not writing {name}: weights are not finite",
                }
            )
            return
        payload = _payload(raw, opt, state, task, given, info, evaluation)
        if scaler is not None:
            payload["train"]["scaler"] = scaler.state_dict()
        if world_size > 1:
            payload["train"]["ranks"] = ranks
        checkpoint.save(run_dir / name, payload)

    def evaluate() -> dict | None:
        result = task.evaluate(raw)
        state.last_eval_step = state.step
        if result is None:
            return None
        # rank 0's scores decide for all: every rank saves (or not) and stops together
        scores = from_rank0(result.as_dict(), world_size)
        improved = scores["loss"] < state.best_val_loss
        if improved:
            state.best_val_loss = scores["loss"]
            state.bad_evals = 0
        else:
            state.bad_evals += 1
        record = {
            "event": "eval",
            "step": state.step,
            "epoch": state.epoch,
            "elapsed": round(state.elapsed, 3),
            "best": improved,
            **{f"val_{k}": v for k, v in scores.items()},
        }
        metrics.write(record)
        if improved:
            save("best.pt", record)
        return record

    metrics.write(
        {
            "event": "resume" if resume else "start",
            "step": state.step,
            "config": asdict(cfg),
            "params": sum(p.numel() for p in params),
            "changes": changes or {},
        }
    )
    _warn_sizes(task, sum(p.numel() for p in params), metrics, state)
    run_steps = [cfg.max_steps] if cfg.max_steps else []
    if cfg.epochs:  # the steps taken, and the batches left to the epoch limit
        spe = task.steps_per_epoch
        left = epoch_limit(cfg, spe) - (state.epoch * spe + state.index)
        run_steps.append(state.step + left)
    if run_steps and state.step < cfg.warmup_steps >= min(run_steps):  # the warmup is to come
        _warn_once(
            "long-warmup",
            f"--warmup-steps {cfg.warmup_steps} is not shorter than the run ({min(run_steps)} "
            "steps): the learning rate never reaches --lr; lower --warmup-steps",
            metrics,
            state,
        )
    model.train()
    stop_reason = ""
    window = state.window  # checkpointed: a resumed run logs the same averages
    for key in ("loss", "n", "norm", "norm_max", "clipped", "tokens", "overflows", "seconds"):
        window.setdefault(key, 0)
    window_start = time.monotonic()
    clock = time.monotonic() - state.elapsed
    last_record: dict | None = (resume or {}).get("metrics") or None  # the latest evaluation
    while True:
        signal_name = hooks.should_stop()
        # the ranks share one clock (the slowest's), so they lay out the learning rate and
        # reach a time budget alike, and stop together on a signal to any of them
        signalled, state.elapsed = agree(
            bool(signal_name), time.monotonic() - clock, world_size, device
        )
        progress = progress_fraction(cfg, state, task.steps_per_epoch)
        _, stop_reason = _limit_reached(cfg, state, task.steps_per_epoch)
        if signalled:
            stop_reason = f"interrupted ({signal_name or 'stopped with another rank'})"
        if stop_reason:
            break
        if state.step >= cfg.warmup_steps and state.warmup_end < 0:
            state.warmup_end = progress
        lr = learning_rate(cfg, state.step, progress, state.lr_scale, max(state.warmup_end, 0.0))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = task.batch(state.epoch, state.index)
        task.progress = progress  # e.g. scheduled sampling ramps with it
        with devices.autocast(device, cfg.amp):
            loss = task.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(opt)
        grads = [p.grad for p in params if p.grad is not None]
        total_norm = torch.nn.utils.get_total_norm(grads)
        norm = float(total_norm)
        loss_value = float(loss.detach())
        _advance(state, task.steps_per_epoch)
        finite = math.isfinite(loss_value)
        # fp16 gradients that overflow are routine: the scaler skips the update and lowers
        # its scale (no divergence). The gradients are the same on every rank (averaged),
        # the loss is each rank's own: the ranks decide together.
        overflow = scaler is not None and not math.isfinite(norm)
        if any_rank(not finite or (scaler is None and not math.isfinite(norm)), world_size, device):
            if scaler is not None:
                scaler.update()  # after unscale_, before the next one
            good = _diverged(state, raw, opt, task, good, metrics, loss_value, norm)
            continue
        state.bad_in_row = 0
        layers = None  # per-layer norms, like grad_norm, before any clipping
        if (state.step + 1) % cfg.log_every == 0:
            layers = {} if overflow else layer_grad_norms(raw)
        clipped = False
        if overflow:
            pass
        elif cfg.clip_norm and norm > cfg.clip_norm:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.clip_norm, total_norm)
            clipped = True
        if cfg.clip_value and not overflow:
            peak = float(torch.nn.utils.get_total_norm(grads, norm_type=math.inf))
            if peak > cfg.clip_value:
                torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
                clipped = True
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        state.step += 1
        state.tokens += task.last_tokens
        window["loss"] += loss_value
        window["n"] += 1
        if overflow:
            window["overflows"] += 1
            state.skipped_steps += 1
        else:
            window["norm"] += norm
            window["norm_max"] = max(window["norm_max"], norm)
        window["clipped"] += clipped
        window["tokens"] += task.last_tokens
        if layers is not None:
            now = time.monotonic()
            state.elapsed = now - clock
            seconds = window["seconds"] + now - window_start
            record = {**_train_record(state, window, seconds, lr, layers), **task.log_fields()}
            metrics.write(record)
            _watch_gradients(record, cfg, metrics, state)
            window.update(dict.fromkeys(window, 0))
            window_start = now
        if state.step % cfg.eval_every == 0:
            last_record = evaluate() or last_record
            if cfg.patience and state.bad_evals >= cfg.patience:
                stop_reason = f"early stopping ({cfg.patience} evaluations without improvement)"
                break
        every = cfg.checkpoint_every or cfg.eval_every
        if state.step % every == 0:
            save("last.pt", last_record)
        hooks.on_step(state.step, progress_fraction(cfg, state, task.steps_per_epoch))
    state.elapsed = time.monotonic() - clock
    if state.last_eval_step != state.step and not stop_reason.startswith("interrupted"):
        last_record = evaluate() or last_record
    save("last.pt", last_record)
    summary = {
        "event": "end",
        "step": state.step,
        "epoch": state.epoch,
        "reason": stop_reason,
        "elapsed": round(state.elapsed, 3),
        "tokens": state.tokens,
        "best_val_loss": state.best_val_loss if math.isfinite(state.best_val_loss) else None,
        "skipped_steps": state.skipped_steps,
        "rollbacks": state.rollbacks,
        "last_eval": last_record,
    }
    metrics.write(summary)
    metrics.close()
    return summary


def _advance(state: LoopState, steps_per_epoch: int) -> None:
    state.index += 1
    if state.index >= steps_per_epoch:
        state.epoch += 1
        state.index = 0


def _limit_reached(cfg: TrainConfig, state: LoopState, steps_per_epoch: int) -> tuple[str, str]:
    """(the flag, the stop reason) of the first limit reached, or ("", "")."""
    if cfg.max_steps and state.step >= cfg.max_steps:
        return "--max-steps", f"reached --max-steps {cfg.max_steps}"
    if cfg.epochs and state.epoch * steps_per_epoch + state.index >= epoch_limit(
        cfg, steps_per_epoch
    ):
        return "--epochs", f"reached --epochs {cfg.epochs:g}"
    if cfg.time_budget and state.elapsed >= cfg.time_budget:
        return "--time-budget", f"reached --time-budget ({cfg.time_budget:g}s)"
    return "", ""


def _train_record(state: LoopState, window: dict, seconds: float, lr: float, layers: dict) -> dict:
    n = max(window["n"], 1)
    updates = max(window["n"] - window["overflows"], 1)  # fp16 overflows have no norm
    record = {
        "event": "train",
        "step": state.step,
        "epoch": state.epoch,
        "loss": window["loss"] / n,
        "lr": lr,
        "grad_norm": window["norm"] / updates,
        "grad_norm_max": window["norm_max"],
        "clipped": window["clipped"] / n,
        "tokens_per_s": window["tokens"] / max(seconds, 1e-9),
        "elapsed": round(state.elapsed, 3),
        "tokens": state.tokens,
        "layer_grad_norms": layers,
    }
    if window["overflows"]:
        record["fp16_overflows"] = window["overflows"]  # updates the scaler skipped
    return record


def _warn_once(key: str, message: str, metrics: _Metrics, state: LoopState) -> None:
    if key not in state.warned:
        state.warned.append(key)
        metrics.write({"event": "warning", "step": state.step, "message": message})


def _watch_gradients(record: dict, cfg: TrainConfig, metrics: _Metrics, state: LoopState) -> None:
    """Warn (once each) about exploding and vanishing gradients."""
    limit = 100 * cfg.clip_norm if cfg.clip_norm else 1e3
    if record["grad_norm_max"] > limit:
        _warn_once(
            "exploding",
            f"exploding gradients: norm {record['grad_norm_max']:.3g} at step "
            f"{record['step']}; keep --clip-norm on, lower --lr",
            metrics,
            state,
        )
    rnn = [v for k, v in record["layer_grad_norms"].items() if re.search(r"\.l\d+$", k)]
    if len(rnn) >= 2 and rnn[-1] > 0 and rnn[0] / rnn[-1] < 1e-3:
        _warn_once(
            "vanishing",
            f"vanishing gradients: the first recurrent layer gets "
            f"{rnn[0] / rnn[-1]:.1e} of the last one's gradient; try --residual, fewer "
            "layers, or lstm/gru cells",
            metrics,
            state,
        )


def _warn_sizes(task, params: int, metrics: _Metrics, state: LoopState) -> None:
    """Warn when the model is far too large or small for the data, or epochs are tiny, or
    there is no validation split."""
    if task.val_stats is None:
        _warn_once(
            "no-val",
            "the data has no validation split: no evaluations, no best.pt, no early stopping; "
            "tokenize with --val-frac above 0 (or --val FILE)",
            metrics,
            state,
        )
    tokens = task.steps_per_epoch * task.tokens_per_step
    if params > 20 * tokens:
        _warn_once(
            "too-large",
            f"the model ({params:,} parameters) is far too large for the "
            f"training data ({tokens:,} tokens per epoch): expect overfitting; lower "
            "--hidden-size or add --dropout",
            metrics,
            state,
        )
    elif tokens > 2000 * params:
        _warn_once(
            "too-small",
            f"the model ({params:,} parameters) is small for the training "
            f"data ({tokens:,} tokens per epoch); a larger --hidden-size would likely "
            "do better",
            metrics,
            state,
        )
    if task.steps_per_epoch < 10:
        _warn_once(
            "few-batches",
            f"only {task.steps_per_epoch} batches per epoch; lower "
            "--batch-size or --seq-len for more updates",
            metrics,
            state,
        )


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict())}


def _diverged(state, model, opt, task, good, metrics, loss_value, norm):
    """A non-finite loss or gradient: skip the update and halve the learning rate; after
    MAX_BAD_STEPS in a row, roll back to the last good checkpoint."""
    opt.zero_grad(set_to_none=True)
    task.reset()
    state.skipped_steps += 1
    state.lr_scale *= 0.5
    state.bad_in_row += 1
    metrics.write(
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
    model.load_state_dict(good["model"])
    opt.load_state_dict(good["opt"])
    metrics.write(
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


def _payload(
    model, opt, state: LoopState, task, cfg: TrainConfig, info: RunInfo, evaluation: dict | None
) -> dict:
    weights = cpu_weights(model)
    loop = {k: v for k, v in asdict(state).items()}
    return {
        "kind": info.kind,
        "command": info.command,
        "model": {"name": info.model_name, "config": info.model_config},
        "tokenizers": info.tokenizers,
        "data": info.data,
        "weights": weights,
        "train": {
            "config": asdict(cfg),
            "state": loop,
            "optimizer": _cpu(opt.state_dict()),
            "task": task.state_dict(),
            "rng": checkpoint.rng_state(),
        },
        "metrics": evaluation or {},
    }


def _cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu(v) for v in value)
    return value
