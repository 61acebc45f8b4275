"""Gate saturation in GRU and LSTM language models, as in Karpathy, Johnson and Fei-Fei 2015,
"Visualizing and Understanding Recurrent Networks" (section 4.2, figure 3).

A gate is a sigmoid in (0, 1), one per unit and step. Over a text, each unit's gate is
left-saturated (below 0.1: shut) on some fraction of the steps and right-saturated (above
0.9: open) on another; a unit near (0, 0) works in the gate's middle range, one near (0, 1)
keeps it open nearly always (an LSTM forget gate that remembers for long), one near (1, 0)
keeps it shut. GRU: the update gate z (h' = (1 - z) n + z h: z near 1 keeps the old state)
and the reset gate r; LSTM: the input gate i, the forget gate f and the output gate o.

The model runs step by step in eval mode (no dropout), each layer's gates computed by hand
from its weights in torch's gate order (LSTM i, f, g, o; GRU r, z, n), and the state advanced
from them as torch's cells do. The text's first `length` tokens are cut into up to `streams`
contiguous pieces read side by side, each from a zero state (as `model(ids)` reads a batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from charrnn import models
from charrnn.config import GATE_MOSTLY, GATE_RARELY, GatesConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.inspect import gradflow
from charrnn.inspect.gradflow import State, Subject

GATES = {"gru": ("update", "reset"), "lstm": ("input", "forget", "output")}  # as recorded
MIN_STREAM = 100  # tokens per stream at least: a short text is read in fewer streams
CHUNK = 256  # steps traced at a time (their gates: gates x streams x CHUNK x hidden_size)


@dataclass
class GateStats:
    """One gate of one layer over a text."""

    gate: str  # update, reset (GRU); input, forget, output (LSTM)
    left: float  # the fraction of (unit, step) values below the left threshold
    right: float  # ... above the right threshold
    mean: float  # the mean activation
    units_left: int  # units left-saturated on more than GATE_MOSTLY of the steps
    units_right: int  # ... right-saturated
    units_unsaturated: int  # units saturated (either side) on less than GATE_RARELY of them
    unit_left: list[float]  # per unit: the fraction of steps left-saturated
    unit_right: list[float]  # ... right-saturated


@dataclass
class LayerGates:
    layer: int  # 0 = the first recurrent layer
    gates: list[GateStats]


@dataclass
class Saturation:
    """Gate saturation of one model over one text."""

    name: str
    model: str
    cell: str  # gru or lstm
    hidden_size: int
    num_layers: int
    text: str
    tokens: int  # in the text
    read: int  # of them, read: streams x steps
    streams: int
    left_below: float
    right_above: float
    layers: list[LayerGates] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


# -- what to inspect ---------------------------------------------------------------------------


def gated_models() -> list[str]:
    """The registry's language models that have gates."""
    return [n for n, s in models.MODELS.items() if s.kind == "lm" and s.cell in GATES]


def check_init(model_name: str) -> None:
    """Raise `UsageError` unless `model_name` is a gated language model of the registry."""
    gradflow.check_init(model_name, "gates")
    if models.MODELS[model_name].cell not in GATES:
        raise UsageError(
            "--init", f"{model_name} has no gates", f"use one of: {', '.join(gated_models())}"
        )


def _check_gated(subject: Subject, where: str) -> None:
    cell = subject.model.rnn.cell
    if cell not in GATES:
        raise CharrnnError(
            where,
            f"{subject.model_name} language models have no gates",
            f"pass a run of a gated one ({', '.join(gated_models())})",
        )


def run_subject(path: str | Path, text: str | None = None, text_name: str = "") -> Subject:
    """A trained GRU or LSTM language model with the run's validation split, or `text`."""
    subject = gradflow.run_subject(path, text, text_name, command="gates")
    _check_gated(subject, str(path))
    return subject


def init_subject(
    model_name: str, text: str, text_name: str, *, hidden_size: int, num_layers: int, seed: int
) -> Subject:
    """A freshly initialised GRU or LSTM language model, seeded, with a character vocabulary
    of `text`."""
    check_init(model_name)
    return gradflow.init_subject(
        model_name,
        text,
        text_name,
        hidden_size=hidden_size,
        num_layers=num_layers,
        seed=seed,
        command="gates",
    )


# -- the gates ---------------------------------------------------------------------------------


def layer_gates(
    cell: str, weights: list[Tensor], inputs: Tensor, state: State
) -> tuple[Tensor, Tensor, State]:
    """One GRU or LSTM layer (weights: [W_ih, W_hh, b_ih, b_hh]) over inputs (B, T, in) from
    `state`, step by step: its outputs h (B, T, H), its gates (G, B, T, H) in GATES[cell]'s
    order, and its last state."""
    w_ih, w_hh, b_ih, b_hh = weights
    projected = inputs @ w_ih.T + b_ih  # (B, T, G'H): every step's input part at once
    h = state[0]  # (B, H)
    c = state[1] if cell == "lstm" else None
    outputs, gates = [], []
    for t in range(inputs.shape[1]):
        recurrent = h @ w_hh.T + b_hh  # (B, G'H)
        if cell == "lstm":
            i, f, g, o = (projected[:, t] + recurrent).chunk(4, 1)  # torch's order, (B, H) each
            i, f, o = i.sigmoid(), f.sigmoid(), o.sigmoid()
            c = f * c + i * g.tanh()
            h = o * c.tanh()
            gates.append(torch.stack((i, f, o)))  # (3, B, H)
        else:
            x_r, x_z, x_n = projected[:, t].chunk(3, 1)  # torch's order
            h_r, h_z, h_n = recurrent.chunk(3, 1)
            r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
            n = (x_n + r * h_n).tanh()
            h = n + z * (h - n)  # (1 - z) n + z h
            gates.append(torch.stack((z, r)))  # (2, B, H)
        outputs.append(h)
    last = (h, c) if cell == "lstm" else (h,)
    return torch.stack(outputs, 1), torch.stack(gates, 2), last


@dataclass
class Trace:
    """A GRU or LSTM language model run over ids, its gates recorded."""

    gates: list[Tensor]  # [layer]: (G, B, T, H)
    outputs: Tensor  # (B, T, H): the top layer's output, what the head reads
    state: State  # the last state, as the model's: each (L, B, H)


def trace(model: nn.Module, ids: Tensor, state: State | None = None) -> Trace:
    """Run a GRU or LSTM language model over ids (B, T) from `state` (None: zero), recording
    every layer's gates: the computation of `model(ids, state)` in eval mode."""
    stack = model.rnn
    if state is None:
        state = model.init_state(ids.shape[0], ids.device)
    with torch.no_grad():
        x = model.embed(ids)  # (B, T, E)
        gates, last = [], []
        for i, weights in enumerate(stack.layer_weights()):
            layer_state = tuple(s[i].to(x.dtype) for s in state)  # (B, H) each
            out, layer, new = layer_gates(stack.cell, weights, x, layer_state)
            x = out + x if stack.residual and i > 0 else out  # (B, T, H)
            gates.append(layer)
            last.append(new)
    return Trace(gates, x, tuple(torch.stack(parts) for parts in zip(*last, strict=True)))


# -- saturation --------------------------------------------------------------------------------


def streams(ids: np.ndarray, config: GatesConfig) -> Tensor:
    """The first `config.length` tokens of `ids`, cut into up to `config.streams` contiguous
    rows of at least MIN_STREAM tokens (one row for a shorter text): (B, T), int64."""
    count = min(len(ids), config.length)
    rows = max(1, min(config.streams, count // MIN_STREAM))
    steps = count // rows
    kept = np.asarray(ids[: rows * steps], dtype=np.int64)
    return torch.from_numpy(kept.reshape(rows, steps))


def gate_counts(model: nn.Module, batch: Tensor, config: GatesConfig) -> tuple[Tensor, ...]:
    """Per layer, gate and unit (L, G, H), over the steps of every row of batch (B, T): how
    often the gate was below `config.left`, above `config.right`, and its activations' sum."""
    stack = model.rnn
    shape = (stack.num_layers, len(GATES[stack.cell]), stack.hidden_size)
    left, right, total = (torch.zeros(shape, dtype=torch.float64) for _ in range(3))
    state = None
    for start in range(0, batch.shape[1], CHUNK):  # a chunk at a time: memory stays small
        traced = trace(model, batch[:, start : start + CHUNK], state)
        state = traced.state
        for i, gates in enumerate(traced.gates):  # (G, B, T, H)
            left[i] += (gates < config.left).sum((1, 2))
            right[i] += (gates > config.right).sum((1, 2))
            total[i] += gates.sum((1, 2), dtype=torch.float64)
    return left, right, total


def gate_stats(name: str, left: Tensor, right: Tensor, mean: float) -> GateStats:
    """A gate's summary from its units' saturated fractions, left and right (H,)."""
    return GateStats(
        gate=name,
        left=float(left.mean()),
        right=float(right.mean()),
        mean=mean,
        units_left=int((left > GATE_MOSTLY).sum()),
        units_right=int((right > GATE_MOSTLY).sum()),
        units_unsaturated=int((left + right < GATE_RARELY).sum()),
        unit_left=left.tolist(),
        unit_right=right.tolist(),
    )


def saturation(subject: Subject, config: GatesConfig | None = None) -> Saturation:
    """How often each unit's gates are saturated over (the start of) the subject's text."""
    config = config or GatesConfig()
    config.check()
    if len(subject.ids) == 0:
        raise CharrnnError(subject.text, "the text is empty", "give some text")
    model = subject.model.eval()  # no dropout
    _check_gated(subject, subject.name)
    stack = model.rnn
    batch = streams(subject.ids, config)
    left, right, total = gate_counts(model, batch, config)
    steps = batch.numel()
    found = Saturation(
        name=subject.name,
        model=subject.model_name,
        cell=stack.cell,
        hidden_size=stack.hidden_size,
        num_layers=stack.num_layers,
        text=subject.text,
        tokens=len(subject.ids),
        read=steps,
        streams=batch.shape[0],
        left_below=config.left,
        right_above=config.right,
    )
    for i in range(stack.num_layers):
        gates = []
        for g, name in enumerate(GATES[stack.cell]):
            mean = float(total[i, g].mean()) / steps
            gates.append(gate_stats(name, left[i, g] / steps, right[i, g] / steps, mean))
        found.layers.append(LayerGates(layer=i, gates=gates))
    return found
