"""Seq2seq data and scoring: length-grouped batches of pairs, the teacher-forced loss with
scheduled sampling, a full validation pass, and the stepper `charrnn.decode` drives.

The encoder reads a source's ids and <eos>; the decoder reads <bos> y_1 .. y_n and must
predict y_1 .. y_n <eos>.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from charrnn.batching import GroupedBatches
from charrnn.kinds.lm import IGNORE, EvalResult, scaled_result
from charrnn.models.seq2seq import DecoderState, select_decoder_state
from charrnn.pairs import PairSplit
from charrnn.tokenizer import BOS_ID, EOS_ID, PAD_ID

COVERAGE_FLOOR = 1e-6  # a source token never attended to costs log(1e-6) = -13.8 x beta


def _pad(rows: list[np.ndarray], fill: int) -> Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


def make_batch(split: PairSplit, rows) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(src (B, S), lengths (B,), tgt_in (B, T), tgt_out (B, T)) for pairs `rows`."""
    sources, targets_in, targets_out = [], [], []
    for i in rows:
        src, tgt = split.pair(int(i))
        sources.append(np.append(src.astype(np.int64), EOS_ID))
        tgt = tgt.astype(np.int64)
        targets_in.append(np.insert(tgt, 0, BOS_ID))
        targets_out.append(np.append(tgt, EOS_ID))
    lengths = torch.tensor([len(s) for s in sources])
    return _pad(sources, PAD_ID), lengths, _pad(targets_in, PAD_ID), _pad(targets_out, IGNORE)


class PairBatches(GroupedBatches):
    """Batches of pairs grouped by source length (see charrnn.batching)."""

    def __init__(self, split: PairSplit, **options) -> None:
        super().__init__(np.diff(split.source_offsets), unit="pairs", **options)
        self.split = split

    def batch(self, epoch: int, index: int):
        """The batch at this data position."""
        return make_batch(self.split, self.rows(epoch, index))


class PairTask:
    """What the training loop needs from a seq2seq model."""

    kind = "seq2seq"

    def __init__(
        self,
        train: PairSplit,
        val: PairSplit | None,
        val_stats: dict | None,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        scheduled_sampling: float = 0.0,
        label_smoothing: float = 0.0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.batches = PairBatches(
            train, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size
        )
        self.steps_per_epoch = self.batches.steps_per_epoch
        mean_target = float(np.diff(train.target_offsets).mean()) + 1
        self.tokens_per_step = int(round(batch_size * world_size * mean_target))
        self.last_tokens = self.tokens_per_step
        self.val = val if val is not None and len(val) else None
        self.val_stats = val_stats
        self.eval_rows: np.ndarray | None = None  # the evaluation sample's pairs (None: all)
        # each validation target's tokens, its end included: what scoring it costs
        self.val_lengths = np.diff(self.val.target_offsets) + 1 if self.val else np.zeros(0)
        self.device = device
        self.scheduled_sampling = scheduled_sampling
        self.label_smoothing = label_smoothing
        self.progress = 0.0  # set by the training loop: scheduled sampling ramps with it

    @classmethod
    def for_run(cls, dataset, train_config, device, where: dict) -> PairTask:
        """The task of a run over a data directory of parallel text."""
        val = "val" in dataset.splits
        return cls(
            dataset.split("train"),
            dataset.split("val") if val else None,
            dataset.stats("val") if val else None,
            batch_size=train_config.batch_size,
            seed=train_config.seed,
            device=device,
            scheduled_sampling=train_config.scheduled_sampling,
            label_smoothing=train_config.label_smoothing,
            **where,
        )

    def batch(self, epoch: int, index: int):
        """The batch at this data position, on the device."""
        return tuple(t.to(self.device) for t in self.batches.batch(epoch, index))

    def loss(self, model: nn.Module, batch) -> Tensor:
        """Mean cross-entropy over target tokens; with scheduled sampling, the chance of
        feeding the model its own prediction grows linearly with training progress."""
        src, lengths, tgt_in, tgt_out = batch
        logits, _ = model(src, lengths, tgt_in, sample_prob=self.scheduled_sampling * self.progress)
        self.last_tokens = int((tgt_out != IGNORE).sum()) * self.batches.world_size
        return F.cross_entropy(
            logits.flatten(0, 1).float(),
            tgt_out.flatten(),
            ignore_index=IGNORE,
            label_smoothing=self.label_smoothing,  # evaluations score the plain loss
        )

    def reset(self) -> None:
        """Nothing is carried between batches."""

    def log_fields(self) -> dict:
        """The task's own fields of a training log record: with scheduled sampling, the
        chance that the decoder is fed its own prediction at this point of training."""
        if not self.scheduled_sampling:
            return {}
        return {"sampling_prob": round(self.scheduled_sampling * self.progress, 6)}

    def sample_validation(self, tokens: int) -> None:
        """Evaluations (but the full ones) score a fixed sample of pairs with about `tokens`
        target tokens, evenly spread over the validation split."""
        self.eval_rows = sample_pairs(self.val_lengths, tokens) if self.val else None

    @torch.no_grad()
    def evaluate(self, model: nn.Module, full: bool = False) -> EvalResult | None:
        """Teacher-forced loss over the validation pairs' evaluation sample, or all of them
        (`full`); bits per target character count the end of each target as one character,
        like a newline."""
        if self.val is None:
            return None
        rows = None if full else self.eval_rows
        nll, counts, health = pair_losses(model, self.val, self.device, rows=rows)
        stats = _with_ends(self.val_stats, len(self.val))
        result = scaled_result(nll, counts, stats, self.eval_rows, full)
        result.extra = _mean_health(health, None if full else self.eval_rows)
        return result

    def eval_cost(self, full: bool) -> int:
        """Target tokens an evaluation reads: what its time grows with."""
        rows = slice(None) if full or self.eval_rows is None else self.eval_rows
        return int(self.val_lengths[rows].sum())

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, data: dict) -> None:
        pass


def sample_pairs(lengths: np.ndarray, tokens: int) -> np.ndarray | None:
    """Pair numbers, evenly spread, whose targets (of `lengths` tokens each) hold about
    `tokens` tokens; None when that is all of them."""
    if tokens >= lengths.sum():
        return None
    k = max(1, round(len(lengths) * tokens / lengths.sum()))
    return np.unique(np.arange(k) * len(lengths) // k)


def _with_ends(stats: dict | None, pairs: int) -> dict:
    """A split's target statistics with each pair's end token counted as one token, character
    and byte."""
    target = (stats or {}).get("target", {})
    return {key: target[key] + pairs for key in ("tokens", "chars", "bytes") if target.get(key)}


@torch.no_grad()
def pair_losses(
    model: nn.Module,
    split: PairSplit,
    device: torch.device,
    batch_size: int = 64,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Teacher-forced negative log-likelihood (nats) and target tokens of each pair of `split`
    (of `rows` only, the rest left 0), and each pair's attention health (see
    `attention_health`; empty for a model without attention)."""
    was_training = model.training
    model.eval()
    nll = np.zeros(len(split))
    counts = np.zeros(len(split), dtype=np.int64)
    health: dict[str, np.ndarray] = {}
    chosen = np.arange(len(split)) if rows is None else np.asarray(rows)
    order = chosen[np.argsort(np.diff(split.source_offsets)[chosen], kind="stable")]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        src, lengths, tgt_in, tgt_out = (t.to(device) for t in make_batch(split, batch))
        logits, weights = model(src, lengths, tgt_in)
        losses = F.cross_entropy(
            logits.float().transpose(1, 2), tgt_out, ignore_index=IGNORE, reduction="none"
        )  # (B, T)
        nll[batch] = losses.sum(1).double().cpu().numpy()
        counts[batch] = (tgt_out != IGNORE).sum(1).cpu().numpy()
        if weights is not None:
            for name, values in attention_health(weights, lengths, tgt_out != IGNORE).items():
                health.setdefault(name, np.zeros(len(split)))[batch] = values
    model.train(was_training)
    return nll, counts, health


def attention_health(weights: Tensor, lengths: Tensor, steps: Tensor) -> dict[str, np.ndarray]:
    """Per pair, averaged over its target steps (`steps` (B, T) marks the real ones):
    `attention_entropy`, the entropy of each step's attention over the source divided by its
    largest possible value, log(source length): 0 when every step looks at one token, 1 when
    it spreads evenly; and `attention_on_end`, the weight on the source's end token. An
    attention that collapsed onto the end token reads 0 and 1."""
    weights = weights.float()  # (B, T, S)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (B, T)
    most = lengths.to(weights.device).float().log().clamp_min(1e-12)[:, None]  # (B, 1)
    last = (lengths.to(weights.device) - 1)[:, None, None].expand(-1, weights.shape[1], 1)
    on_end = weights.gather(2, last).squeeze(2)  # (B, T)
    mask = steps.float()
    per_pair = mask.sum(1).clamp_min(1)
    return {
        "attention_entropy": ((entropy / most) * mask).sum(1).div(per_pair).cpu().numpy(),
        "attention_on_end": (on_end * mask).sum(1).div(per_pair).cpu().numpy(),
    }


def score_pairs(
    model: nn.Module,
    split: PairSplit,
    stats: dict | None,
    device: torch.device,
    batch_size: int = 64,
) -> EvalResult:
    """Teacher-forced negative log-likelihood of every target in `split`."""
    nll, counts, health = pair_losses(model, split, device, batch_size)
    result = scaled_result(nll, counts, _with_ends(stats, len(split)), None, True)
    result.extra = _mean_health(health, None)
    return result


def _mean_health(health: dict[str, np.ndarray], rows: np.ndarray | None) -> dict:
    """The attention health of the pairs scored (`rows`, or all), as plain numbers."""
    chosen = slice(None) if rows is None else rows
    return {name: round(float(values[chosen].mean()), 4) for name, values in health.items()}


class Seq2SeqStepper:
    """A seq2seq model's decoder seen one token at a time, for `charrnn.decode`."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    def start(self, sources: list[list[int]]) -> tuple[Tensor, DecoderState]:
        """Encode all sources (ids with <eos>) in one packed batch and take the first step:
        logits (N, V) for the first target token, and the decoder state."""
        lengths = torch.tensor([len(s) for s in sources])
        src = _pad([np.asarray(s, dtype=np.int64) for s in sources], PAD_ID).to(self.device)
        state = self.model.encode(src, lengths)
        # under bf16 autocast the encoder answers in bf16: the decoder carries fp32
        state = state._replace(
            rnn=tuple(t.float() for t in state.rnn),
            **{
                name: getattr(state, name).float()
                for name in ("feed", "memory", "keys")
                if getattr(state, name) is not None
            },
        )
        bos = torch.full((len(sources),), BOS_ID, dtype=torch.long, device=self.device)
        return self.step(bos, state)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        logits, new = self.model.step(tokens, state)
        if state.coverage is None:  # summed only when asked for (track_coverage)
            return logits, new
        return logits, new._replace(coverage=state.coverage + new.weights.float())

    def track_coverage(self, state: DecoderState) -> DecoderState | None:
        """The state (after the first step) set to sum its attention from here on; None for
        a model without attention."""
        if state.weights is None:
            return None
        return state._replace(coverage=state.weights.float())

    def select(self, state: DecoderState, index: Tensor) -> DecoderState:
        return select_decoder_state(state, index)

    def coverage_scores(self, state: DecoderState) -> Tensor | None:
        """GNMT's coverage term of each row (without its beta): the sum over the real source
        tokens of log(min(attention received so far, 1)); 0 when every source token got at
        least a whole step's attention, very negative when some were never looked at. None
        for a model without attention."""
        if state.coverage is None:
            return None
        covered = state.coverage.clamp(min=COVERAGE_FLOOR, max=1.0).log()
        return covered.masked_fill(~state.mask, 0.0).sum(-1)


@torch.no_grad()
def attention_map(
    model: nn.Module, source: list[int], target: list[int], device: torch.device
) -> np.ndarray | None:
    """Attention weights of the decoder over the source while it reads `target` (teacher
    forced): (len(target) + 1, len(source)), the last row for <eos>. None without attention."""
    src = torch.tensor([source], device=device)
    tgt_in = torch.tensor([[BOS_ID, *target]], device=device)
    _, weights = model(src, torch.tensor([len(source)]), tgt_in)
    return None if weights is None else weights[0].cpu().numpy()


def max_lengths(sources: list[list[int]], ratio: float, cap: int) -> list[int]:
    """Each source's decoding limit: ratio x its length in tokens, <eos> included (at least
    1), at most `cap`."""
    return [max(1, min(cap, math.ceil(ratio * len(s)))) for s in sources]
