"""Language-model data and scoring: truncated-BPTT batches, a full-pass evaluation, and the
`LMTask` the training loop drives.

Training batches (stream mode, as in char-rnn and word_language_model): each epoch the
training ids are cut into B rows (B = batch size x world size, each rank takes its own B),
after a random offset below seq_len so chunk borders move between epochs. Every row is read as
[<bos>, t0, t1, ...], so the model learns what follows a fresh start, and row k of batch i+1
continues row k of batch i: the hidden state is carried across batches and detached.

    ids:  t0 t1 t2 ... | row 1 ...            | row 2 ...
    row 0 inputs:  <bos> t0 t1 ... t(T-2) | t(T-1) ... t(2T-2) | ...   (batch 0 | batch 1 | ...)
    row 0 targets:   t0  t1 t2 ... t(T-1) | t(T)   ... t(2T-1) | ...

Random mode (nanoGPT): every batch holds B random windows, each starting from a zero state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from charrnn.batching import rng
from charrnn.device import autocast
from charrnn.errors import CharrnnError
from charrnn.models.rnn import State, detach_state, select_state
from charrnn.tokenizer import BOS_ID, PAD_ID

IGNORE = -100  # cross_entropy's ignore_index
EVAL_SEGMENT = 4096  # a split is scored in segments of this many tokens...
EVAL_WARMUP = 256  # ...each first reading this many preceding tokens without scoring...
EVAL_GROUP = 64  # ...this many segments side by side


_rng = rng  # seeded by (seed, epoch, ...)


class LMBatches:
    """Training batches over one split's ids (a memmap is fine: rows are gathered per batch)."""

    def __init__(
        self,
        ids: np.ndarray,
        *,
        batch_size: int,
        seq_len: int,
        mode: str = "stream",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        reset_every: int = 0,
    ) -> None:
        self.ids = ids
        self.reset_every = reset_every
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.mode = mode
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        rows = batch_size * world_size
        need = rows * seq_len + seq_len
        if len(ids) < need:
            raise CharrnnError(
                "training split",
                f"too small for one batch ({len(ids):,} tokens; batch size {batch_size} x "
                f"sequence length {seq_len} needs {need:,})",
                "lower --batch-size or --seq-len, or use more text",
            )
        if mode == "stream":
            # the epoch offset is below seq_len, so every epoch has the same number of chunks
            self.steps_per_epoch = (len(ids) - seq_len) // rows // seq_len
        else:
            self.steps_per_epoch = max(1, len(ids) // (rows * seq_len))

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor, Tensor | bool]:
        """Inputs (B, T), targets (B, T), and which rows start afresh: True (all), False
        (none) or a (B,) bool mask. In stream mode a row also restarts, at random, once every
        `reset_every` chunks on average: it then reads <bos> from a zero state, as evaluation
        and sampling start, so the model learns to start well and not only to continue."""
        T = self.seq_len
        if self.mode == "stream":
            rows = self.batch_size * self.world_size
            offset = int(_rng(self.seed, epoch).integers(0, T))
            row_len = (len(self.ids) - offset) // rows
            first = self.rank * self.batch_size
            starts = offset + row_len * np.arange(first, first + self.batch_size)  # (B,)
            begin = index * T
            reset = index == 0
            if not reset and self.reset_every:
                draws = _rng(self.seed, epoch, index, 7).random(rows)[
                    first : first + self.batch_size
                ]
                fresh = draws < 1.0 / self.reset_every  # (B,)
                reset = torch.from_numpy(fresh) if fresh.any() else False
        else:
            gen = _rng(self.seed, epoch, index, self.rank)
            starts = gen.integers(0, len(self.ids) - T + 1, size=self.batch_size)
            begin = 0
            reset = True
        # position j of a row's stream is <bos> for j == 0, else ids[start + j - 1]
        cols = begin + np.arange(T)  # (T,)
        targets = np.take(self.ids, starts[:, None] + cols[None, :]).astype(np.int64)  # (B, T)
        inputs = np.take(self.ids, np.maximum(starts[:, None] + cols[None, :] - 1, 0))
        inputs = inputs.astype(np.int64)
        if begin == 0:
            inputs[:, 0] = BOS_ID
        elif isinstance(reset, Tensor):
            inputs[reset.numpy(), 0] = BOS_ID
        return torch.from_numpy(inputs), torch.from_numpy(targets), reset


def eval_chunks(
    ids: np.ndarray,
    *,
    seq_len: int,
    segment: int = EVAL_SEGMENT,
    warmup: int = EVAL_WARMUP,
    group: int = EVAL_GROUP,
    rows: np.ndarray | None = None,
) -> Iterator[tuple[Tensor, Tensor, bool]]:
    """A deterministic pass over `ids`: every token is scored exactly once.

    The text is read as [<bos>, ids...] and its targets are cut into segments of `segment`
    tokens, scored side by side, `group` segments at a time. Each segment first reads the
    `warmup` tokens before it (unscored), so its first tokens are predicted with context; like
    training rows (which restart every few thousand tokens, see --reset-every) it starts
    from a zero state fed <bos> and carries its state for a few thousand tokens, the regime
    the model was trained in. Yields (inputs, targets, fresh) chunks of shape (S, <=seq_len):
    the state is carried between chunks and starts from zero where `fresh`; unscored positions
    have target IGNORE. `rows` (segment numbers, ascending) scores those segments only.
    """
    m = len(ids)
    chosen = np.arange(math.ceil(m / segment)) if rows is None else np.asarray(rows)
    for first in range(0, len(chosen), group):
        rows_ = chosen[first : first + group]
        score_from = rows_ * segment  # (S,)
        score_to = np.minimum(score_from + segment, m)
        read_from = np.maximum(score_from - warmup, 0)
        length = int((score_to - read_from).max())
        for begin in range(0, length, seq_len):
            cols = begin + np.arange(min(seq_len, length - begin))  # (T,)
            j = read_from[:, None] + cols[None, :]  # (S, T) target positions
            valid = j < score_to[:, None]
            jc = np.minimum(j, m - 1)
            scored = valid & (j >= score_from[:, None])
            targets = np.where(scored, np.take(ids, jc).astype(np.int64), IGNORE)
            inputs = np.take(ids, np.maximum(jc - 1, 0)).astype(np.int64)
            start = j == read_from[:, None]  # a segment's first input is <bos>
            inputs = np.where(valid, np.where(start, BOS_ID, inputs), PAD_ID)
            yield torch.from_numpy(inputs), torch.from_numpy(targets), begin == 0


def sample_segments(length: int, tokens: int, segment: int = EVAL_SEGMENT) -> np.ndarray | None:
    """Segment numbers, evenly spread over a text of `length` tokens, that hold about `tokens`
    tokens; None when that is the whole text."""
    n = math.ceil(length / segment)
    k = math.ceil(tokens / segment)
    return None if k >= n else np.unique(np.arange(k) * n // k)


@torch.no_grad()
def segment_losses(
    model: nn.Module,
    ids: np.ndarray,
    *,
    seq_len: int,
    device: torch.device,
    segment: int = EVAL_SEGMENT,
    warmup: int = EVAL_WARMUP,
    rows: np.ndarray | None = None,
    precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """Negative log-likelihood (nats) and scored tokens of each segment (see `eval_chunks`),
    of `rows` or of all, in `precision` (the loss itself is always summed in fp32)."""
    was_training = model.training
    model.eval()
    state: State | None = None
    nll: list[np.ndarray] = []  # per segment, a group of them at a time
    counts: list[np.ndarray] = []
    for inputs, targets, fresh in eval_chunks(
        ids, seq_len=seq_len, segment=segment, warmup=warmup, rows=rows
    ):
        if fresh:
            nll.append(np.zeros(len(inputs)))
            counts.append(np.zeros(len(inputs), dtype=np.int64))
        counts[-1] += (targets != IGNORE).sum(1).numpy()
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast(device, precision):
            logits, state = model(inputs, None if fresh else state)
        losses = F.cross_entropy(
            logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
        )  # (S, T)
        nll[-1] += losses.sum(1).double().cpu().numpy()
    model.train(was_training)
    if not nll:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(nll), np.concatenate(counts)


def evaluate(
    model: nn.Module,
    ids: np.ndarray,
    *,
    seq_len: int,
    device: torch.device,
    segment: int = EVAL_SEGMENT,
    warmup: int = EVAL_WARMUP,
    precision: str = "fp32",
) -> tuple[float, int]:
    """Sum of negative log-likelihoods (nats) and number of scored tokens over `ids`."""
    nll, counts = segment_losses(
        model,
        ids,
        seq_len=seq_len,
        device=device,
        segment=segment,
        warmup=warmup,
        precision=precision,
    )
    return float(nll.sum()), int(counts.sum())


@dataclass
class EvalResult:
    """Scores of an evaluation; bits are normalised by tokens, characters and bytes. An
    evaluation during training scores a fixed sample of the split (`full` False); the last
    one scores all of it and keeps the sample's loss beside it (`sample_loss`), so that it is
    compared with the earlier ones on the same text."""

    nll: float  # summed, nats
    tokens: int
    chars: int
    bytes: int
    full: bool = True
    sample_loss: float | None = None
    extra: dict = field(default_factory=dict)  # a model kind's own figures (attention health)

    def as_dict(self) -> dict:
        """loss (nats/token), perplexity, and bits per token, character and byte."""
        loss = self.nll / max(self.tokens, 1)
        bits = self.nll / math.log(2)
        scores = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_token": bits / max(self.tokens, 1),
            "bpc": bits / max(self.chars, 1),
            "bits_per_byte": bits / max(self.bytes, 1),
            "tokens": self.tokens,
            "chars": self.chars,
            "bytes": self.bytes,
        }
        if not self.full:  # scored on the evaluation sample only
            scores["sample"] = True
        if self.sample_loss is not None:
            scores["sample_loss"] = self.sample_loss
        return {**scores, **self.extra}

    def comparable_loss(self) -> float:
        """The loss to compare evaluations by: on the training-time sample when there is one."""
        return self.sample_loss if self.sample_loss is not None else self.nll / max(self.tokens, 1)


def scaled_result(
    nll: np.ndarray, counts: np.ndarray, stats: dict | None, sample: np.ndarray | None, full: bool
) -> EvalResult:
    """An EvalResult from per-part losses (segments, pairs): of all parts when `full`, else of
    the parts in `sample`; characters and bytes are the split's, in proportion to the tokens
    scored. A full result keeps the sample's loss beside it."""
    stats = stats or {}
    parts = slice(None) if full or sample is None else sample
    tokens = int(counts[parts].sum())
    total = max(int(stats.get("tokens", 0)), 1)
    share = tokens / total if stats.get("tokens") else 1.0
    result = EvalResult(
        float(nll[parts].sum()),
        tokens,
        round(stats.get("chars", tokens) * share) if stats.get("chars") else tokens,
        round(stats.get("bytes", tokens) * share) if stats.get("bytes") else tokens,
        full=full or sample is None,
    )
    if full and sample is not None:
        result.sample_loss = float(nll[sample].sum()) / max(int(counts[sample].sum()), 1)
    return result


def _place(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Values of some rows, spread into an array indexed by row number (zeros elsewhere)."""
    out = np.zeros(int(rows.max()) + 1, dtype=values.dtype)
    out[rows] = values
    return out


class LMTask:
    """What the training loop needs from a language model: batches, the loss with a carried
    state, a full validation pass, and the state to checkpoint."""

    kind = "lm"

    def __init__(
        self,
        train_ids: np.ndarray,
        val_ids: np.ndarray | None,
        val_stats: dict | None,
        *,
        batch_size: int,
        seq_len: int,
        mode: str,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        reset_every: int = 0,
    ) -> None:
        self.batches = LMBatches(
            train_ids,
            batch_size=batch_size,
            seq_len=seq_len,
            mode=mode,
            seed=seed,
            rank=rank,
            world_size=world_size,
            reset_every=reset_every,
        )
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.tokens_per_step = batch_size * seq_len * world_size
        self.last_tokens = self.tokens_per_step  # tokens in the latest batch (all ranks)
        self.progress = 0.0  # set by the training loop (unused here)
        self.val_ids = val_ids if val_ids is not None and len(val_ids) else None
        self.val_stats = val_stats
        self.val_tokens = len(self.val_ids) if self.val_ids is not None else 0
        self.eval_rows: np.ndarray | None = None  # the evaluation sample's segments (None: all)
        self.seq_len = seq_len
        self.device = device
        self.state: State | None = None

    @classmethod
    def for_run(cls, dataset, train_config, device, where: dict) -> LMTask:
        """The task of a run over a text data directory."""
        val = "val" in dataset.splits
        return cls(
            dataset.ids("train"),
            dataset.ids("val") if val else None,
            dataset.stats("val") if val else None,
            batch_size=train_config.batch_size,
            seq_len=train_config.seq_len,
            mode=train_config.batching,
            seed=train_config.seed,
            device=device,
            reset_every=train_config.reset_every,
            **where,
        )

    def batch(self, epoch: int, index: int):
        """The batch at this data position, on the device."""
        inputs, targets, reset = self.batches.batch(epoch, index)
        return inputs.to(self.device), targets.to(self.device), reset

    def loss(self, model: nn.Module, batch) -> Tensor:
        """Mean cross-entropy of a batch, carrying (and detaching) the hidden state."""
        inputs, targets, reset = batch
        state = None if reset is True or self.state is None else self.state
        if isinstance(reset, Tensor) and state is not None:  # restart some rows: zero state
            keep = (~reset).to(inputs.device, torch.float32)[None, :, None]  # (1, B, 1)
            state = tuple(s * keep for s in state)
        logits, state = model(inputs, state)  # (B, T, V)
        # carried in fp32 whatever the precision: under bf16 autocast the fused kernel
        # answers in bf16, and a run may resume in another precision
        self.state = tuple(s.float() for s in detach_state(state))
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def reset(self) -> None:
        """Forget the carried state (after a skipped or rolled-back step)."""
        self.state = None

    def log_fields(self) -> dict:
        """The task's own fields of a training log record: none."""
        return {}

    def sample_validation(self, tokens: int) -> None:
        """Evaluations (but the full ones) score a fixed sample of about `tokens` tokens:
        whole segments, evenly spread over the validation split."""
        self.eval_rows = sample_segments(self.val_tokens, tokens) if self.val_tokens else None

    def evaluate(self, model: nn.Module, full: bool = False) -> EvalResult | None:
        """Score the validation split's evaluation sample, or all of it (`full`); None when
        there is no validation split."""
        if self.val_ids is None:
            return None
        rows = None if full else self.eval_rows
        nll, counts = segment_losses(
            model, self.val_ids, seq_len=self.seq_len, device=self.device, rows=rows
        )
        if rows is not None:  # losses of the sample only: put them in their places
            nll, counts = _place(nll, rows), _place(counts, rows)
        return scaled_result(nll, counts, self.val_stats, self.eval_rows, full)

    def eval_cost(self, full: bool) -> int:
        """Tokens an evaluation reads (warm-up included): what its time grows with."""
        if self.val_ids is None:
            return 0
        if full or self.eval_rows is None:
            return self.val_tokens + EVAL_WARMUP * math.ceil(self.val_tokens / EVAL_SEGMENT)
        return len(self.eval_rows) * (EVAL_SEGMENT + EVAL_WARMUP)

    def state_dict(self) -> dict:
        """The carried hidden state (plain tensors, for checkpoints)."""
        return {"hidden": [s.cpu() for s in self.state] if self.state is not None else None}

    def load_state_dict(self, data: dict) -> None:
        """Restore the carried hidden state."""
        hidden = data.get("hidden")
        if hidden is not None and hidden[0].shape[1] != self.batches.batch_size:
            hidden = None  # another --batch-size on resume cuts the stream into other rows
        self.state = (
            tuple(s.to(self.device).float() for s in hidden) if hidden is not None else None
        )


class LMStepper:
    """A language model seen one token at a time, for `charrnn.decode`."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    def start(self, prompts: list[list[int]]) -> tuple[Tensor, State]:
        """Feed each prompt through the model in one call per distinct length (no padding, so
        nothing changes the state); return the logits after each prompt's last token (N, V)
        and the state there, rows in the order given."""
        by_length: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(i)
        logits_parts, state_parts, order = [], [], []
        for rows in by_length.values():
            ids = torch.tensor([prompts[i] for i in rows], device=self.device)  # (G, L)
            if ids.shape[1] == 1:  # just <bos>: one step (the fused kernel's set-up costs more)
                logits, state = self.model.step(ids[:, 0], None)
            else:
                logits, state = self.model(ids)
                logits = logits[:, -1]  # (G, V)
            logits_parts.append(logits)
            state_parts.append(state)
            order += rows
        # under bf16 autocast the fused kernel answers in bf16: decoding carries fp32
        logits = torch.cat(logits_parts).float()
        state = tuple(torch.cat(parts, dim=1).float() for parts in zip(*state_parts, strict=True))
        back = torch.empty(len(order), dtype=torch.long, device=self.device)
        back[torch.tensor(order, device=self.device)] = torch.arange(len(order), device=self.device)
        return logits.index_select(0, back), select_state(state, back)

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """One step for every row: tokens (N,) -> logits (N, V)."""
        return self.model.step(tokens, state)

    def select(self, state: State, index: Tensor) -> State:
        """Keep, reorder or repeat rows."""
        return select_state(state, index)
