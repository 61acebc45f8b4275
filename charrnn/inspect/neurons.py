"""Neuron activations over text, as in Karpathy, Johnson and Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks" (section 4.3, figures 2 and 5): what one unit of a trained
language model does at every character, and which units track simple properties of the text.

A unit is named LAYER:UNIT, the layer counted from 1 (as in the other inspection tables) and
the unit from 0 (its index in the layer's state vector), e.g. 1:42. Its activation is an
LSTM's cell state squashed, tanh(c) in [-1, 1] (the paper's pictures), or the hidden state h.

The model runs step by step in eval mode (no dropout), every layer's state recorded after
each token: the state that predicts the next one. To rank the units, the first `find_length`
tokens are cut into up to `streams` contiguous pieces read side by side, each from a zero
state (as `inspect gates` reads them), and each unit's Pearson correlation with each property
of PROPERTIES is accumulated over them; the text shown is the first `length` tokens, read as
one piece from a zero state, with the model's most likely next tokens at each position.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from charrnn.config import NeuronsConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.inspect import gradflow
from charrnn.inspect.gradflow import State, Subject
from charrnn.tokenizer import UNK_ID, Tokenizer
from charrnn.trained import load_trained, run_data

PROPERTIES = {  # what --find ranks the units by, per character of the text
    "double_quotes": 'inside "..." (or """...""")',
    "single_quotes": "inside '...' (or '''...'''; an apostrophe inside a word is no quote)",
    "brackets": "bracket depth: ( [ { open outside quotes",
    "line_position": "characters since the last line break",
    "to_newline": "characters to the next line break (or the end of the text)",
}
LINE_BREAKS = "\n\r"
OPENERS, CLOSERS = "([{", ")]}"
STRING_PREFIXES = {"b", "f", "r", "u", "br", "rb", "fr", "rf"}  # Python's f'...', rb'...'
MIN_STREAM = 100  # tokens per stream at least: a short text is read in fewer streams
CHUNK = 256  # steps traced at a time while ranking (memory stays small)


@dataclass
class TextSubject(Subject):
    """A model to inspect, the token ids to read, and the tokenizer that spells them."""

    tokenizer: Tokenizer | None = None


@dataclass
class Ranking:
    """A property of the text and the units that track it best."""

    property: str
    description: str
    present: bool  # False: constant over the tokens read (no quotes in the text ...)
    mean: float  # over the tokens read
    top: list[dict] = field(default_factory=list)  # {"unit": "1:42", "r": 0.83}, best first


@dataclass
class Unit:
    """One unit's activations over the text shown."""

    unit: str  # LAYER:UNIT
    r: dict[str, float | None]  # its correlation with each property (None: not present)
    values: list[float]  # per token shown


@dataclass
class Neurons:
    """Neuron activations of one model over one text."""

    name: str
    model: str
    cell: str  # tanh, relu, gru or lstm
    state: str  # tanh(c) or h
    bound: float  # the colour scale: activations lie in [-bound, bound]
    hidden_size: int
    num_layers: int
    vocab: str  # char or bpe
    text: str
    tokens: int  # in the text
    read: int  # of them, read to rank the units: streams x steps
    streams: int
    properties: list[Ranking] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # the text of each token shown
    predictions: list[list[list]] = field(default_factory=list)  # per token: [[text, p], ...]
    next_p: list[float | None] = field(default_factory=list)  # p of the token that came next

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


# -- what to inspect ---------------------------------------------------------------------------


def run_subject(path: str | Path, text: str | None = None, text_name: str = "") -> TextSubject:
    """A trained language model (a checkpoint, or a run directory's best.pt) with the run's
    validation split, or `text` in the model's vocabulary."""
    trained = load_trained(path, "cpu", "fp32")
    gradflow._language_model(trained.kind, str(trained.path), "neurons")
    given = Path(os.path.abspath(path))  # "." named by its folder, a link by itself
    name = given.name if given.is_dir() else f"{given.parent.name}/{given.name}"
    if text is not None:
        ids, where = trained.tokenizer.encode(text), text_name
    else:
        dataset, data = run_data(trained, "give the text to read with --text FILE")
        ids, where = dataset.ids("val"), f"{data} (val)"
    return TextSubject(name, trained.model_name, trained.model, ids, where, trained.tokenizer)


def parse_unit(spec: str) -> tuple[int, int]:
    """LAYER:UNIT (layer from 1, unit from 0) to (layer index from 0, unit)."""
    layer, sep, unit = spec.strip().partition(":")
    numbers = f"{layer}{unit}".isascii() and layer.isdigit() and unit.isdigit()
    if not sep or not numbers or int(layer) < 1:
        raise UsageError(
            "--unit", f"'{spec}' is not LAYER:UNIT", "use e.g. 1:42 (layer from 1, unit from 0)"
        )
    return int(layer) - 1, int(unit)


def check_unit(spec: str, num_layers: int, hidden_size: int) -> tuple[int, int]:
    """`parse_unit`, and the unit must be in a model of this size."""
    layer, unit = parse_unit(spec)
    if layer >= num_layers or unit >= hidden_size:
        raise UsageError(
            "--unit",
            f"{spec} is not in a model of {num_layers} layer(s) of {hidden_size} units",
            f"use 1:0 to {num_layers}:{hidden_size - 1}",
        )
    return layer, unit


def unit_name(layer: int, unit: int) -> str:
    """(layer index from 0, unit) to LAYER:UNIT."""
    return f"{layer + 1}:{unit}"


def pieces(tokenizer: Tokenizer, ids: np.ndarray) -> list[str]:
    """The text of each token, joined the text of them all (a BPE token that ends inside a
    UTF-8 character has none; the token after it completes the character); <unk> is U+FFFD."""
    decoder = tokenizer.stream_decoder()
    found = ["\ufffd" if i == UNK_ID else decoder.feed_one(i) for i in np.asarray(ids).tolist()]
    if found:
        found[-1] += decoder.flush()
    return found


# -- the properties ----------------------------------------------------------------------------


def _opens_single(text: str, i: int) -> bool:
    """Whether the ' at text[i] opens a quote: not an apostrophe after a letter (it's), unless
    that word is a Python string prefix (f'...')."""
    start = i
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    return start == i or text[start:i].lower() in STRING_PREFIXES


def _closes(text: str, i: int, quote: str) -> bool:
    """Whether text[i:] closes a quote opened with `quote` (an apostrophe between letters,
    don't, closes no '...')."""
    if not text.startswith(quote, i):
        return False
    inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
    return not (quote == "'" and inside_word)


def quotes_and_brackets(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per character, after reading it: inside "..." (1/0), inside '...' (1/0), and the bracket
    depth. A quote's characters count as inside, the closing one's as outside; a backslash
    escapes the next character inside quotes; a one-character quote left open ends at a blank
    line, a triple quote only at its closing twin. Brackets inside quotes do not count, and a
    closing bracket with none open is ignored."""
    size = len(text)
    double, single = np.zeros(size), np.zeros(size)
    depth = np.zeros(size)
    quote, level, escaped, blank, i = "", 0, False, True, 0
    while i < size:
        c, width = text[i], 1
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif _closes(text, i, quote):
                quote, width = "", len(quote)
            elif c == "\n" and blank and len(quote) == 1:
                quote = ""  # a blank line ends a quote left open
        elif c in "\"'":
            triple = text.startswith(c * 3, i)
            if c == '"' or _opens_single(text, i):
                quote = c * 3 if triple else c
                width = len(quote)
        elif c in OPENERS:
            level += 1
        elif c in CLOSERS:
            level = max(0, level - 1)
        blank = c == "\n" or (blank and c in " \t\r")
        span = slice(i, i + width)
        double[span], single[span] = quote[:1] == '"', quote[:1] == "'"
        depth[span] = level
        i += width
    return double, single, depth


def line_positions(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Per character: how many characters since the last line break (0 on a break: \\n or \\r;
    the start of the text counts as one), and how many to the next break after it (or to the
    end of the text)."""
    size = len(text)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    breaks = np.isin(points, [ord(c) for c in LINE_BREAKS])
    index = np.arange(size)
    last = np.maximum.accumulate(np.where(breaks, index, -1))
    after = np.append(np.where(breaks, index, size), size)[1:]  # is the next one a break?
    following = np.minimum.accumulate(after[::-1])[::-1]
    return (index - last).astype(np.float64), (following - index).astype(np.float64)


def signals(text: str) -> dict[str, np.ndarray]:
    """Each property of PROPERTIES per character of `text`, float64."""
    double, single, depth = quotes_and_brackets(text)
    since, to_next = line_positions(text)
    values = (double, single, depth, since, to_next)
    return dict(zip(PROPERTIES, values, strict=True))


def token_signals(parts: list[str]) -> np.ndarray:
    """The properties per token (P, N): each at the token's last character (a token with no
    text of its own takes the one before it, or 0 at the start)."""
    text = "".join(parts)
    by_char = np.stack(list(signals(text).values()))  # (P, chars)
    ends = np.cumsum([len(p) for p in parts], dtype=np.int64) - 1
    found = by_char[:, ends.clip(0)] if len(text) else np.zeros((len(PROPERTIES), len(parts)))
    found[:, ends < 0] = 0.0
    return found


# -- the activations ---------------------------------------------------------------------------


@dataclass
class Trace:
    """A language model run over ids, every layer's state recorded after every token."""

    hidden: list[Tensor]  # [layer]: h, (B, T, H)
    cell: list[Tensor]  # [layer]: an LSTM's c, (B, T, H); empty for other cells
    outputs: Tensor  # (B, T, H): the top layer's output, what the head reads
    state: State  # the last state, as the model's: each (L, B, H)


def trace(model: nn.Module, ids: Tensor, state: State | None = None) -> Trace:
    """Run a language model over ids (B, T) from `state` (None: zero), step by step through
    torch's cell functions, recording every layer's states: the computation of
    `model(ids, state)` in eval mode."""
    stack = model.rnn
    if state is None:
        state = model.init_state(ids.shape[0], ids.device)
    hidden, cell, last = [], [], []
    with torch.no_grad():
        x = model.embed(ids)  # (B, T, E)
        for i, weights in enumerate(stack.layer_weights()):
            now = tuple(s[i].to(x.dtype) for s in state)  # (B, H) each
            steps = []
            for t in range(ids.shape[1]):
                now = gradflow.layer_step(stack.rnn_kind, weights, x[:, t], now)
                steps.append(now)
            h = torch.stack([s[0] for s in steps], 1)  # (B, T, H)
            hidden.append(h)
            if stack.cell == "lstm":
                cell.append(torch.stack([s[1] for s in steps], 1))
            x = h + x if stack.residual and i > 0 else h
            last.append(now)
    return Trace(hidden, cell, x, tuple(torch.stack(parts) for parts in zip(*last, strict=True)))


def state_kind(model: nn.Module, state: str) -> str:
    """What a unit's activation is (config.state resolved for this model): cell or hidden."""
    cell = model.rnn.cell
    if state == "cell" and cell != "lstm":
        raise UsageError(
            "--state", f"a {cell} model has no cell state", "use --state hidden (or auto)"
        )
    return "cell" if state == "cell" or (state == "auto" and cell == "lstm") else "hidden"


def activations(traced: Trace, kind: str) -> Tensor:
    """Every unit's activation: (L, B, T, H), tanh(c) for kind cell, else h."""
    return torch.stack([c.tanh() for c in traced.cell] if kind == "cell" else traced.hidden)


# -- ranking -----------------------------------------------------------------------------------


def streams(count: int, wanted: int) -> tuple[int, int]:
    """How `count` tokens are read: up to `wanted` rows of at least MIN_STREAM tokens each
    (one row for a shorter text), and the steps of each."""
    rows = max(1, min(wanted, count // MIN_STREAM))
    return rows, count // rows


def correlations(model: nn.Module, ids: Tensor, signal: np.ndarray, kind: str) -> Tensor:
    """Pearson's r of every unit with every property: (P, L, H), float64, over ids (B, T) read
    in rows from a zero state, `signal` (P, B, T) the properties at each token. A unit that
    never moves gets 0; a property that never moves, NaN."""
    centred = torch.from_numpy(signal - signal.mean((1, 2), keepdims=True))  # (P, B, T)
    sums, shift, state = None, None, None
    for start in range(0, ids.shape[1], CHUNK):  # a chunk at a time: memory stays small
        traced = trace(model, ids[:, start : start + CHUNK], state)
        state = traced.state
        values = activations(traced, kind).double()  # (L, B, t, H)
        if shift is None:  # subtracted from every value: sums of squares stay exact
            shift = values.mean((1, 2), keepdim=True)
        values = values - shift
        part = centred[:, :, start : start + CHUNK]  # (P, B, t)
        found = (
            values.sum((1, 2)),  # (L, H)
            values.square().sum((1, 2)),  # (L, H)
            torch.einsum("pbt,lbth->plh", part, values),  # (P, L, H)
        )
        sums = found if sums is None else tuple(a + b for a, b in zip(sums, found, strict=True))
    count = ids.numel()
    total, squares, products = sums
    unit_var = (squares - total.square() / count).clamp_min(0)  # (L, H), x count
    signal_var = torch.from_numpy(np.square(centred.numpy()).sum((1, 2)))  # (P,), x count
    r = products / (unit_var.sqrt() * signal_var.sqrt()[:, None, None])
    moving = unit_var > 1e-12 * squares.clamp_min(1e-300)  # (L, H): not constant
    r = torch.where(moving, r, torch.zeros_like(r)).clamp(-1, 1)
    r[signal_var == 0] = torch.nan
    return r


def rank(r: Tensor, signal: np.ndarray, top: int) -> list[Ranking]:
    """Per property, the `top` units with the largest |r| (r: (P, L, H))."""
    found = []
    hidden_size = r.shape[2]
    for p, name in enumerate(PROPERTIES):
        values = signal[p]
        present = bool(values.max() > values.min())
        ranking = Ranking(name, PROPERTIES[name], present, float(values.mean()))
        if present:
            flat = r[p].flatten()
            best = flat.abs().topk(min(top, flat.numel())).indices.tolist()
            ranking.top = [
                {"unit": unit_name(*divmod(i, hidden_size)), "r": float(flat[i])} for i in best
            ]
        found.append(ranking)
    return found


def chosen_units(rankings: list[Ranking], find: bool) -> list[str]:
    """The units to show when none was asked for: the best of each property present (with
    --find) or the best of them all, best first; 1:0 when no property is present."""
    best = sorted(
        (ranking.top[0] for ranking in rankings if ranking.present),
        key=lambda entry: -abs(entry["r"]),
    )
    names = list(dict.fromkeys(entry["unit"] for entry in best))
    return (names if find else names[:1]) or [unit_name(0, 0)]


# -- the text shown ----------------------------------------------------------------------------


def predictions(
    model: nn.Module, traced: Trace, ids: Tensor, tokenizer: Tokenizer, count: int
) -> tuple[list[list[list]], list[float | None]]:
    """After each token of ids (1, T): the `count` most likely next tokens with their
    probabilities, and the probability of the token that came next (None after the last)."""
    with torch.no_grad():
        probs = torch.softmax(model.head(traced.outputs[0]).double(), -1)  # (T, V)
    best = probs.topk(min(count, probs.shape[1]))
    spelled = [
        [[tokenizer.token_text(i), p] for i, p in zip(ids_, ps, strict=True)]
        for ids_, ps in zip(best.indices.tolist(), best.values.tolist(), strict=True)
    ]
    came = probs[:-1].gather(1, ids[0, 1:, None])[:, 0].tolist()  # (T - 1,)
    return spelled, [*came, None]


def neurons(
    subject: TextSubject,
    config: NeuronsConfig | None = None,
    *,
    units: list[str] | None = None,
    find: bool = False,
) -> Neurons:
    """Rank the units of the subject's model by how well they track the properties of its
    text, and record the chosen ones (`units`, LAYER:UNIT; else see `chosen_units`) over the
    first `config.length` tokens, with the model's next-token predictions."""
    config = config or NeuronsConfig()
    config.check()
    if len(subject.ids) == 0:
        raise CharrnnError(subject.text, "the text is empty", "give some text")
    model = subject.model.eval()  # no dropout
    stack = model.rnn
    kind = state_kind(model, config.state)
    wanted = [check_unit(u, stack.num_layers, stack.hidden_size) for u in units or []]
    rows, steps = streams(min(len(subject.ids), config.find_length), config.streams)
    read = np.asarray(subject.ids[: rows * steps], dtype=np.int64)
    signal = token_signals(pieces(subject.tokenizer, read)).reshape(-1, rows, steps)
    r = correlations(model, torch.from_numpy(read.reshape(rows, steps)), signal, kind)
    rankings = rank(r, signal, config.top)
    names = [unit_name(*w) for w in wanted] or chosen_units(rankings, find)
    shown = torch.from_numpy(np.asarray(subject.ids[: config.length], dtype=np.int64))[None]
    traced = trace(model, shown)
    values = activations(traced, kind)[:, 0]  # (L, T, H)
    spelled, came = predictions(model, traced, shown, subject.tokenizer, config.predictions)
    found = Neurons(
        name=subject.name,
        model=subject.model_name,
        cell=stack.rnn_kind,
        state="tanh(c)" if kind == "cell" else "h",
        bound=1.0 if stack.rnn_kind != "relu" else max(float(values.abs().max()), 1e-12),
        hidden_size=stack.hidden_size,
        num_layers=stack.num_layers,
        vocab=subject.tokenizer.kind,
        text=subject.text,
        tokens=len(subject.ids),
        read=rows * steps,
        streams=rows,
        properties=rankings,
        shown=pieces(subject.tokenizer, shown[0].numpy()),
        predictions=spelled,
        next_p=came,
    )
    for name in names:
        layer, unit = parse_unit(name)
        tracked = {
            ranking.property: float(r[p, layer, unit]) if ranking.present else None
            for p, ranking in enumerate(rankings)
        }
        found.units.append(Unit(name, tracked, values[layer, :, unit].tolist()))
    return found
