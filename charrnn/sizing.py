"""The default language model for a corpus and a time budget.

A model that is too large for the time given sees too little text; one that is too small
for the text learns too little of it; one that reads its text many times over forgets how to
generalise unless it is regularised. So the default model's width and dropout follow the
budget and the corpus (a `--hidden-size` or `--dropout` given on the command line always
wins):

1. The training speed of this machine is measured: a few steps of two model sizes (with the
   run's batch, precision, device and threads), a power law through them for the rest.
2. Each width of the ladder would see `tokens(H)` = speed(H) x the training time of the
   budget (the budget less set-up and evaluations), or, under --max-steps or --epochs, the
   tokens those allow.
3. The width is the largest one for which tokens(H) >= TOKENS_PER_PARAM x its parameters
   (enough text per weight to learn them: the speed decides), and whose parameters are at
   most PARAMS_PER_TOKEN x the training tokens of the corpus (the data decides).
4. Dropout follows how many times the budget reads the corpus (epochs): none for one pass,
   rising with log2(epochs) to MAX_AUTO_DROPOUT.

The constants come from measurements on a 2-core CPU with bf16 (docs/numbers.md, "The
default model"; benchmarks/defaults.py checks them): tinyshakespeare (1 M training
characters) and 3 MB of Python source, at 10-minute step counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from charrnn import device as devices
from charrnn import models
from charrnn.config import (
    MAX_AUTO_DROPOUT,
    WORD_PIECE_SMOOTHING,
    WORD_PIECES,
    ModelConfig,
    TrainConfig,
)

LADDER = (128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1280, 1536, 2048)
TOKENS_PER_PARAM = 4.0  # the least training tokens per parameter (speed decides)
PARAMS_PER_TOKEN = 2.6  # the most parameters per training token of the corpus (data decides)
DROPOUT_PER_DOUBLING = 0.1  # dropout added each time the epochs double past the first
SETUP_SECONDS = 6.0  # a run's set-up and final evaluation, besides EVAL_SHARE of the rest
PROBES = (256, 768)  # widths whose speed is measured
PROBE_STEPS = 2  # timed steps of each (after one that warms up)


@dataclass(frozen=True)
class Choice:
    """The model picked, with what it was picked from."""

    hidden_size: int
    dropout: float
    tokens: int  # training tokens the run will see
    epochs: float  # passes over the training split
    speed: float  # tokens per second of this width, measured or interpolated
    params: int

    def note(self, budget: str) -> str:
        """One line for the user: what was picked, and why."""
        return (
            f"model: {self.hidden_size} units ({self.params:,} parameters), dropout "
            f"{self.dropout:g}, picked for {budget}: about {self.tokens / 1e6:.1f}M tokens at "
            f"{self.speed / 1000:.1f}k tokens/s, {self.epochs:.1f} passes over the training "
            "text (--hidden-size and --dropout decide otherwise)"
        )


def params_of(name: str, hidden_size: int, vocab_size: int, config: ModelConfig) -> int:
    """Parameters of registry entry `name` at this width."""
    sized = ModelConfig(**{**config.__dict__, "hidden_size": hidden_size})
    return models.expected_parameters(name, sized, vocab_size)


def measure_speed(
    name: str,
    config: ModelConfig,
    vocab_size: int,
    train: TrainConfig,
    device: torch.device,
    precision: str,
    hidden_size: int,
) -> float:
    """Training tokens per second of a model of this width: PROBE_STEPS timed steps on random
    tokens after one that warms up, with the run's batch shape, precision and threads."""
    sized = ModelConfig(**{**config.__dict__, "hidden_size": hidden_size})
    model = models.build(name, sized, vocab_size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab_size, (train.batch_size, train.seq_len + 1), generator=generator)
    ids = ids.to(device)
    began = 0.0
    for step in range(PROBE_STEPS + 1):
        if step == 1:
            _sync(device)
            began = time.perf_counter()
        with devices.autocast(device, precision):
            logits, _ = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    seconds = time.perf_counter() - began
    return PROBE_STEPS * train.batch_size * train.seq_len / max(seconds, 1e-9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speeds(probed: dict[int, float], widths: tuple[int, ...] = LADDER) -> dict[int, float]:
    """Tokens per second of every width, from a power law through the measured ones."""
    (h1, s1), (h2, s2) = sorted(probed.items())
    slope = math.log(s2 / s1) / math.log(h2 / h1)
    return {h: s1 * (h / h1) ** slope for h in widths}


def choose(
    *,
    name: str,
    config: ModelConfig,
    vocab_size: int,
    train_tokens: int,
    train: TrainConfig,
    speed: dict[int, float],
) -> Choice:
    """The width and dropout for this corpus and limit (see the module's docstring)."""
    rows = []
    for width in LADDER:
        params = params_of(name, width, vocab_size, config)
        tokens = _run_tokens(train, train_tokens, speed[width])
        rows.append((width, params, tokens))
    fits = [
        row
        for row in rows
        if row[2] >= TOKENS_PER_PARAM * row[1] and row[1] <= PARAMS_PER_TOKEN * train_tokens
    ]
    width, params, tokens = fits[-1] if fits else rows[0]
    epochs = tokens / max(train_tokens, 1)
    return Choice(width, dropout_for(epochs), int(tokens), epochs, speed[width], params)


def dropout_for(epochs: float) -> float:
    """Dropout for a run that reads its corpus `epochs` times: none for one pass, then
    DROPOUT_PER_DOUBLING more each time the passes double, to MAX_AUTO_DROPOUT (in steps of
    0.05)."""
    doublings = max(0.0, math.log2(max(epochs, 1.0)))
    return round(min(MAX_AUTO_DROPOUT, DROPOUT_PER_DOUBLING * doublings) * 20) / 20


def _run_tokens(train: TrainConfig, train_tokens: int, speed: float) -> float:
    """Training tokens a run will see: what its steps or epochs allow, or its time budget at
    this speed, whichever is least."""
    from charrnn.train import EVAL_SHARE

    limits = []
    per_step = train.batch_size * train.seq_len
    if train.max_steps:
        limits.append(train.max_steps * per_step)
    if train.epochs:
        limits.append(train.epochs * train_tokens)
    if train.time_budget:
        seconds = max(train.time_budget - SETUP_SECONDS, 1.0) * (1 - 2 * EVAL_SHARE)
        limits.append(seconds * speed)
    return float(min(limits)) if limits else float(np.inf)


def pick(
    *,
    name: str,
    config: ModelConfig,
    vocab_size: int,
    train_tokens: int,
    train: TrainConfig,
    device: torch.device,
    precision: str,
) -> Choice:
    """Measure this machine's speed and choose (a few seconds at most)."""
    train = train.limits()
    probed = {
        width: measure_speed(name, config, vocab_size, train, device, precision, width)
        for width in PROBES
    }
    return choose(
        name=name,
        config=config,
        vocab_size=vocab_size,
        train_tokens=train_tokens,
        train=train,
        speed=speeds(probed),
    )


def seq2seq_embeddings(
    config: ModelConfig, options: dict, vocab_sizes: list[int]
) -> tuple[ModelConfig, str | None]:
    """The embeddings of a new seq2seq model: over word pieces (a BPE vocabulary of
    thousands), as wide as the hidden state and tied to the output layer; over characters,
    the narrow default. Measured on Multi30k fr-en, BPE 8,000, 800 steps (docs/numbers.md):
    embeddings of 256 instead of 64 took the validation loss from 3.88 to 3.35 and greedy
    BLEU from 6.1 to 13.5; tying them besides, further. An --embed-size or --tie-weights
    given on the command line wins. Returns the config and a note for the user, or None
    when nothing changed."""
    if max(vocab_sizes) < WORD_PIECES or options.get("embed_size") is not None:
        return config, None
    tie = options.get("tie_weights") is not False
    picked = replace(config, embed_size=config.hidden_size, tie_weights=tie)
    how = ", tied to the output layer" if tie else ""
    return picked, (
        f"embeddings {picked.embed_size} wide{how}: the vocabulary holds word pieces "
        f"({max(vocab_sizes):,}); --embed-size decides"
    )


def seq2seq_label_smoothing(
    config: TrainConfig, options: dict, vocab_sizes: list[int]
) -> tuple[TrainConfig, str | None]:
    """Label smoothing of a new seq2seq model: WORD_PIECE_SMOOTHING over word pieces (Multi30k
    fr-en, 800 steps: greedy BLEU 23.8 without, 31.7 with 0.1, 34.2 with 0.2, 37.5 with 0.3),
    none over characters (builtin:dates in 2 minutes: 99.45% exact with 0.3, 100% without).
    A --label-smoothing given wins."""
    if max(vocab_sizes) < WORD_PIECES or options.get("label_smoothing") is not None:
        return config, None
    picked = replace(config, label_smoothing=WORD_PIECE_SMOOTHING)
    note = f"label smoothing {WORD_PIECE_SMOOTHING:g} for word pieces; --label-smoothing decides"
    return picked, note
