"""Gradient flow through time in a recurrent language model.

Backpropagation through time multiplies the gradient by one step Jacobian per step back:

    dL_T/ds_{T-k} = dL_T/ds_T . ds_T/ds_{T-1} ... ds_{T-k+1}/ds_{T-k}

so its norm shrinks (vanishes) or grows (explodes) roughly geometrically with k, at a rate
set by the Jacobians' largest singular values, each bounded for a vanilla RNN by the largest
singular value of its recurrent matrix W_hh (tanh' and relu' are at most 1). This module
measures all three on text: for windows of T tokens (cut evenly from the text, each read
from a zero state), the norm of the gradient of the loss of the last prediction with respect
to each layer's hidden state h k steps earlier (the total derivative, through every path,
averaged over windows), for k = 0..T-1; the largest singular value of each layer's step
Jacobian ds_{t+1}/ds_t (s = h, or [h; c] for an LSTM; the layer's input held fixed),
averaged over the text; and W_hh's (for GRU and LSTM, the gates' blocks stacked).

The model is unrolled one step at a time with torch's cell functions (the computation of
`model(ids)` in eval mode, so no dropout), in float64, so that a vanishing gradient shows
its true size instead of flushing to zero below 1e-38.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from charrnn import corpus, models
from charrnn.config import FlowConfig, ModelConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.tokenizer import CharTokenizer
from charrnn.trained import load_trained, run_data

State = tuple[Tensor, ...]
MAX_TEXT_CHARS = 1 << 24  # a huge --text is read up to here: windows need little of it
_RECURRENCES = {"tanh": torch.rnn_tanh_cell, "relu": torch.rnn_relu_cell, "gru": torch.gru_cell}


@dataclass
class Subject:
    """A model to inspect and the token ids its windows are cut from."""

    name: str  # its label in tables and pictures
    model_name: str
    model: nn.Module
    ids: np.ndarray
    text: str  # where the ids come from


@dataclass
class LayerFlow:
    layer: int  # 0 = the first recurrent layer
    grad_norm: list[float]  # k = 0..T-1: mean over windows of |dL_T / dh_{T-k}|
    jacobian_norm: float  # mean over the text of the largest singular value of ds'/ds
    weight_norm: float  # the largest singular value of W_hh


@dataclass
class Flow:
    """Gradient flow of one model over one text."""

    name: str
    model: str
    cell: str  # tanh, relu, gru or lstm
    hidden_size: int
    num_layers: int
    text: str
    tokens: int  # in the text the windows were cut from
    windows: int
    length: int
    layers: list[LayerFlow] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready, with each layer's `ratio_50`: its gradient norm 50 steps back over its
        last step's (None for windows of 50 tokens or fewer)."""
        out = asdict(self)
        for layer in out["layers"]:
            norms = layer["grad_norm"]
            far = len(norms) > 50 and norms[0] > 0
            layer["ratio_50"] = norms[50] / norms[0] if far else None
        return out


# -- what to inspect ----------------------------------------------------------------------------


def read_text(source: str) -> str:
    """The text of a file, a folder, a built-in corpus or - (stdin), up to MAX_TEXT_CHARS."""
    pieces, total = [], 0
    with tempfile.TemporaryDirectory(prefix="charrnn-") as spool:
        for piece in corpus.read_text(corpus.resolve([source], spool_dir=Path(spool))):
            pieces.append(piece[: MAX_TEXT_CHARS - total])
            total += len(pieces[-1])
            if total >= MAX_TEXT_CHARS:
                break
    return "".join(pieces)


def _language_model(kind: str, where: str, command: str) -> None:
    if kind != "lm":
        raise CharrnnError(
            where,
            f"is a {kind} model: inspect {command} supports only language models yet",
            "pass a run of an rnn, gru or lstm language model (see charrnn models)",
        )


def run_subject(
    path: str | Path, text: str | None = None, text_name: str = "", *, command: str = "gradients"
) -> Subject:
    """A trained model (a checkpoint, or a run directory's best.pt) with the run's
    validation split, or `text` in the model's vocabulary; `command` (inspect gradients,
    inspect gates ...) names the inspection in errors."""
    trained = load_trained(path, "cpu", "fp32")
    _language_model(trained.kind, str(trained.path), command)
    given = Path(os.path.abspath(path))  # "." named by its folder, a link by itself
    name = given.name if given.is_dir() else f"{given.parent.name}/{given.name}"
    if text is not None:
        ids = trained.tokenizer.encode(text)
        return Subject(name, trained.model_name, trained.model, ids, text_name)
    dataset, data = run_data(trained, "give the text to read with --text FILE")
    return Subject(name, trained.model_name, trained.model, dataset.ids("val"), f"{data} (val)")


def check_init(model_name: str, command: str = "gradients") -> None:
    """Raise `UsageError` unless `model_name` is a language model of the registry."""
    entry = models.MODELS.get(model_name)
    if entry is None or entry.kind != "lm":
        known = ", ".join(name for name, spec in models.MODELS.items() if spec.kind == "lm")
        if entry is None:
            raise UsageError("--init", f"unknown model '{model_name}'", f"use one of: {known}")
        raise UsageError(
            "--init",
            f"{model_name} is a {entry.kind} model: inspect {command} supports only language "
            "models yet",
            f"use one of: {known}",
        )


def init_subject(
    model_name: str,
    text: str,
    text_name: str,
    *,
    hidden_size: int,
    num_layers: int,
    seed: int,
    command: str = "gradients",
) -> Subject:
    """A freshly initialised language model of registry entry `model_name`, seeded, with a
    character vocabulary of `text`."""
    check_init(model_name, command)
    tokenizer = CharTokenizer.build(text)
    config = ModelConfig(hidden_size=hidden_size, num_layers=num_layers, dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build(model_name, config, tokenizer.vocab_size)
    ids = tokenizer.encode(text)
    return Subject(f"{model_name} at init", model_name, model.eval(), ids, text_name)


def windows(ids: np.ndarray, count: int, length: int, where: str) -> Tensor:
    """`count` windows of `length` + 1 tokens (inputs and the last target), spread evenly
    over `ids`: (count, length + 1), int64."""
    if len(ids) == 0:
        raise CharrnnError(where, "the text is empty", "give some text")
    if len(ids) < length + 1:
        shorter = f", or --length {len(ids) - 1} or less" if len(ids) > 2 else ""
        raise CharrnnError(
            where,
            f"has {len(ids):,} tokens, too few for a window of {length} and its target",
            f"give a longer text{shorter}",
        )
    starts = np.linspace(0, len(ids) - length - 1, count).round().astype(np.int64)
    rows = [np.asarray(ids[s : s + length + 1], dtype=np.int64) for s in starts]
    return torch.from_numpy(np.stack(rows))


# -- the measurements --------------------------------------------------------------------------


def layer_step(kind: str, weights: list[Tensor], inp: Tensor, state: State) -> State:
    """One step of one layer (weights: [W_ih, W_hh, b_ih, b_hh]): inp (B, in) and state
    ((B, H),), for an LSTM ((B, H), (B, H)), to the new state."""
    if kind == "lstm":
        return tuple(torch.lstm_cell(inp, state, *weights))
    return (_RECURRENCES[kind](inp, state[0], *weights),)


@dataclass
class Unrolled:
    """A language model run over windows one step at a time."""

    states: list[list[State]]  # [t][layer]: the state after step t (h keeps its gradient)
    inputs: list[list[Tensor]]  # [t][layer]: what the layer read at step t, (B, in)
    logits: Tensor  # (B, V): the prediction after the last step


def unroll(model: nn.Module, ids: Tensor) -> Unrolled:
    """Run a language model over ids (B, T) step by step from a zero state that requires
    grad (so every later state is in the graph and retains its gradient): the computation of
    `model(ids)` in eval mode."""
    stack = model.rnn
    weights = stack.layer_weights()
    embedded = model.embed(ids)  # (B, T, E)
    zero = model.init_state(ids.shape[0], ids.device)  # each (L, B, H)
    state = [
        tuple(s[i].to(embedded.dtype).requires_grad_() for s in zero)
        for i in range(stack.num_layers)
    ]
    states, inputs = [], []
    for t in range(ids.shape[1]):
        x = embedded[:, t]  # (B, E)
        read = []
        for i in range(stack.num_layers):
            read.append(x)
            state[i] = layer_step(stack.rnn_kind, weights[i], x, state[i])
            state[i][0].retain_grad()
            x = state[i][0] + x if stack.residual and i > 0 else state[i][0]  # (B, H)
        states.append(list(state))
        inputs.append(read)
    return Unrolled(states, inputs, model.head(x))


def gradient_norms(unrolled: Unrolled, targets: Tensor) -> Tensor:
    """(L, T): the mean over windows of |dL/dh| for each layer's h k = 0..T-1 steps before
    the last, L being the cross-entropy of the last prediction (each window's own)."""
    F.cross_entropy(unrolled.logits, targets, reduction="sum").backward()
    steps, layers = len(unrolled.states), len(unrolled.states[0])
    norms = torch.zeros(layers, steps, dtype=torch.float64)
    for k in range(steps):
        for i, state in enumerate(unrolled.states[steps - 1 - k]):
            if state[0].grad is not None:  # None: no path to the loss (norm 0)
                norms[i, k] = state[0].grad.double().norm(dim=1).mean()
    return norms


def top_singular_values(
    fn, at: Tensor, *, iterations: int, tolerance: float, generator: torch.Generator
) -> Tensor:
    """The largest singular value of the Jacobian J of a row-wise map `fn` at each row of
    `at` (R, S), batched over the rows: Lanczos iteration on J^T J (a power iteration that
    keeps the whole Krylov subspace, so it converges in tens of steps where the plain one
    needs hundreds), through forward- and reverse-mode products; no Jacobian is built. (R,)"""
    _, backward = torch.func.vjp(fn, at)  # u -> J^T u

    def gram(v: Tensor) -> Tensor:  # J^T J v, (R, S)
        with warnings.catch_warnings():  # torch's first jvp scripts its own helpers
            warnings.filterwarnings(
                "ignore", "`torch.jit.script` is deprecated", DeprecationWarning
            )
            return backward(torch.func.jvp(fn, (at,), (v,))[1])[0]

    q = torch.randn(at.shape, generator=generator, dtype=at.dtype)
    q = q / q.norm(dim=1, keepdim=True)
    previous, beta = torch.zeros_like(q), torch.zeros(at.shape[0], dtype=at.dtype)
    alphas, betas = [], []  # the tridiagonal matrix of J^T J in the Krylov basis, per row
    sigma = torch.zeros(at.shape[0], dtype=at.dtype)
    for _ in range(min(iterations, at.shape[1])):
        w = gram(q) - beta[:, None] * previous
        alphas.append((w * q).sum(1))
        w = w - alphas[-1][:, None] * q
        tridiagonal = torch.diag_embed(torch.stack(alphas, 1))
        if betas:
            off = torch.diag_embed(torch.stack(betas, 1), offset=1)
            tridiagonal = tridiagonal + off + off.transpose(1, 2)
        estimate = torch.linalg.eigvalsh(tridiagonal)[:, -1].clamp_min(0).sqrt()
        beta = w.norm(dim=1)
        betas.append(beta)
        previous, q = q, w / beta.clamp_min(torch.finfo(w.dtype).tiny)[:, None]
        done = bool(((estimate - sigma).abs() <= tolerance * estimate).all())
        sigma = estimate
        if done:
            break
    return sigma


def flat_step(kind: str, weights: list[Tensor], inp: Tensor, hidden_size: int):
    """`layer_step` on a flat state s (B, S), S = H or [h; c] (2H), with `inp` held fixed."""

    def step(s: Tensor) -> Tensor:
        return torch.cat(layer_step(kind, weights, inp, s.split(hidden_size, 1)), 1)

    return step


def jacobian_norms(
    stack: nn.Module, unrolled: Unrolled, config: FlowConfig, generator: torch.Generator
) -> list[float]:
    """Per layer: the mean of the largest singular value of ds_{t+1}/ds_t (the layer's input
    at t+1 held fixed) over `config.jacobian_points` steps spread evenly over the windows'
    steps after the first."""
    steps = range(1, len(unrolled.states))
    rows = len(steps) * unrolled.logits.shape[0]
    points = np.linspace(0, rows - 1, min(config.jacobian_points, rows)).round()
    chosen = torch.from_numpy(np.unique(points.astype(np.int64)))
    means = []
    for i, weights in enumerate(stack.layer_weights()):
        weights = [w.detach() for w in weights]
        inp = torch.cat([unrolled.inputs[t][i] for t in steps])[chosen].detach()  # (R, in)
        before = torch.cat(  # (R, S): S = H, or 2H for an LSTM's [h; c]
            [torch.cat(unrolled.states[t - 1][i], dim=1) for t in steps]
        )[chosen].detach()
        sigma = top_singular_values(
            flat_step(stack.rnn_kind, weights, inp, stack.hidden_size),
            before,
            iterations=config.iterations,
            tolerance=config.tolerance,
            generator=generator,
        )
        means.append(float(sigma.mean()))
    return means


def gradient_flow(subject: Subject, config: FlowConfig) -> Flow:
    """Gradient norms through time, step Jacobian norms and W_hh norms of every layer."""
    config.check()
    batch = windows(subject.ids, config.windows, config.length, subject.text)
    model = copy.deepcopy(subject.model).double().eval()
    model.requires_grad_(False)  # gradients of the states only
    stack = model.rnn
    unrolled = unroll(model, batch[:, :-1])
    norms = gradient_norms(unrolled, batch[:, -1])
    generator = torch.Generator().manual_seed(config.seed)
    jacobians = jacobian_norms(stack, unrolled, config, generator)
    flow = Flow(
        name=subject.name,
        model=subject.model_name,
        cell=stack.rnn_kind,
        hidden_size=stack.hidden_size,
        num_layers=stack.num_layers,
        text=subject.text,
        tokens=len(subject.ids),
        windows=config.windows,
        length=config.length,
    )
    for i, weights in enumerate(stack.layer_weights()):
        flow.layers.append(
            LayerFlow(
                layer=i,
                grad_norm=norms[i].tolist(),
                jacobian_norm=jacobians[i],
                weight_norm=float(torch.linalg.matrix_norm(weights[1], ord=2)),
            )
        )
    return flow
