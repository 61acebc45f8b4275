"""The optimizer, the learning-rate schedule and how far a run has come: what the training
loop asks of each step. A run ends at whichever limit comes first (--max-steps, --epochs,
--time-budget); the schedule follows the same limit."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from charrnn.config import TrainConfig


@dataclass
class LoopState:
    """Where training stands; all of it goes into the checkpoint."""

    step: int = 0
    epoch: int = 0
    index: int = 0  # batch index within the epoch
    epoch_steps: int = 0  # batches in an epoch (another --batch-size or --seq-len changes it)
    elapsed: float = 0.0  # seconds of the run so far (set-up included), across resumes
    tokens: int = 0
    best_val_loss: float = math.inf  # on the evaluation sample (see EvalResult)
    bad_evals: int = 0
    lr_scale: float = 1.0  # lowered by the divergence guard
    skipped_steps: int = 0
    rollbacks: int = 0
    bad_in_row: int = 0  # consecutive non-finite steps
    last_eval_step: int = -1
    warmup_end: float = -1.0  # the run's progress when the warmup ended (-1: not yet)
    precision: str = "fp32"  # the arithmetic of the latest session (see charrnn.device)
    finished: bool = False  # the final evaluation is done (a kill before it is undone)
    warned: list[str] = field(default_factory=list)
    window: dict = field(default_factory=dict)  # sums since the last train record


def progress_fraction(
    cfg: TrainConfig, state: LoopState, steps_per_epoch: int, reserve: float = 0.0
) -> float:
    """How far through the run we are, by whichever limit ends it first. With a time budget,
    training ends `reserve` seconds early (the final evaluation and checkpoint take them)."""
    parts = [0.0]
    if cfg.max_steps:
        parts.append(state.step / cfg.max_steps)
    if cfg.epochs:
        parts.append(epochs_done(state, steps_per_epoch) / cfg.epochs)
    if cfg.time_budget:
        parts.append(state.elapsed / max(cfg.time_budget - reserve, 1e-9))
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


def limit_reached(
    cfg: TrainConfig, state: LoopState, steps_per_epoch: int, ahead: float | None = None
) -> tuple[str, str]:
    """(the flag, the stop reason) of the first limit reached, or ("", ""). `ahead`: the
    elapsed time plus what the run still has to do after its last step (see `reserve`)."""
    if cfg.max_steps and state.step >= cfg.max_steps:
        return "--max-steps", f"reached --max-steps {cfg.max_steps}"
    if cfg.epochs and state.epoch * steps_per_epoch + state.index >= epoch_limit(
        cfg, steps_per_epoch
    ):
        return "--epochs", f"reached --epochs {cfg.epochs:g}"
    if cfg.time_budget and max(state.elapsed, ahead or 0.0) >= cfg.time_budget:
        return "--time-budget", f"reached --time-budget ({cfg.time_budget:g}s)"
    return "", ""


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


def clip(params: list, grads: list, norm: float, total_norm, cfg: TrainConfig) -> bool:
    """Clip the gradients by their global norm (`norm`, already measured) and element by
    element, as configured; whether either clipped."""
    clipped = False
    if cfg.clip_norm and norm > cfg.clip_norm:
        torch.nn.utils.clip_grads_with_norm_(params, cfg.clip_norm, total_norm)
        clipped = True
    if cfg.clip_value:
        peak = float(torch.nn.utils.get_total_norm(grads, norm_type=math.inf))
        if peak > cfg.clip_value:
            torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
            clipped = True
    return clipped


class WeightAverage:
    """An exponential moving average of the trained weights (Polyak averaging; AWD-LSTM's
    averaged SGD): evaluations, best.pt and last.pt use the average while the optimizer goes
    on with the trained weights. The decay at step n is min(decay, (1 + n) / (10 + n)), so
    that a short run is not held near its first weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    def update(self, step: int) -> None:
        """Move the average towards the weights after update number `step` (from 0)."""
        keep = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for average, p in zip(self.shadow, self.params, strict=True):
                average.lerp_(p.detach(), 1.0 - keep)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after."""
        with torch.no_grad():
            trained = [p.detach().clone() for p in self.params]
            for p, average in zip(self.params, self.shadow, strict=True):
                p.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, own in zip(self.params, trained, strict=True):
                    p.copy_(own)

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s state dict on the CPU with the averages in place of the trained weights
        (a tied weight is one tensor under both names)."""
        averages = {
            (p.data_ptr(), p.shape): a for p, a in zip(self.params, self.shadow, strict=True)
        }
        copies: dict[tuple, torch.Tensor] = {}
        weights = {}
        for name, t in model.state_dict().items():
            key = (t.data_ptr(), t.shape)
            if key not in copies:
                copies[key] = averages.get(key, t).detach().cpu().clone()
            weights[name] = copies[key]
        return weights

    def copy(self) -> list[torch.Tensor]:
        return [a.clone() for a in self.shadow]

    def load(self, shadow: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for average, saved in zip(self.shadow, shadow, strict=True):
                average.copy_(saved)


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
