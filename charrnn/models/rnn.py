"""The recurrent stack shared by every model, and the RNN/GRU/LSTM language model.

A state is a tuple of tensors shaped (num_layers * directions, B, H): `(h,)` for RNN and
GRU, `(h, c)` for LSTM. Every model's forward takes a state and returns the new one, so
training carries it across batches and decoding advances one step at a time.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from charrnn.config import ModelConfig
from charrnn.models import packed

State = tuple[Tensor, ...]
_MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# One time step with a layer's own weights. The fused modules' CPU kernels have a large fixed
# cost per call (several times a whole cell step for a length-1 sequence), so decoding, and
# the seq2seq decoder, step through these instead.
_CELL_STEPS = {
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
    "tanh": torch.rnn_tanh_cell,
    "relu": torch.rnn_relu_cell,
}


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout with the mask drawn from random bits: torch's CPU bernoulli_ takes about
    10 ns an element (30 ms of a 350 ms LSTM-768 training step goes to the output's mask),
    random 64-bit words cut into four 15-bit draws about 2 ns. The keep probability is
    rounded to 1/32768; the mask comes from torch's generator, so a resumed run repeats it."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # bits 0..62 are random
    draws = words.view(torch.int16)[:n].bitwise_and_(0x7FFF)  # 15 random bits in each
    keep = round((1.0 - p) * 32768)
    return x * (draws.view(x.shape) < keep) * (32768 / keep)


class Dropout(nn.Dropout):
    """nn.Dropout through `dropout` (the same module in a state dict and a repr)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


def detach_state(state: State) -> State:
    """Cut the graph (truncated backpropagation through time)."""
    return tuple(s.detach() for s in state)


def select_state(state: State, index: Tensor) -> State:
    """Keep (or reorder, or repeat) batch rows `index` of a state."""
    return tuple(s.index_select(1, index) for s in state)


class RNNStack(nn.Module):
    """Stacked recurrent layers over (B, T, input_size) -> (B, T, H * directions).

    Without residual connections the whole stack is one fused torch.nn RNN/GRU/LSTM module
    (one kernel call per sequence). With them, each layer is its own module so that layer
    i > 0 can add its input to its output: the classic answer to vanishing gradients in
    deep stacks.
    """

    def __init__(self, input_size: int, config: ModelConfig, *, bidirectional: bool = False):
        super().__init__()
        self.cell = config.cell
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.directions = 2 if bidirectional else 1
        kwargs: dict = {"batch_first": True, "bidirectional": bidirectional}
        if config.cell == "rnn":
            kwargs["nonlinearity"] = config.nonlinearity
        module = _MODULES[config.cell]
        self.residual = config.residual
        self.between_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.weight_dropout = config.weight_dropout
        self.rnn_kind = config.nonlinearity if config.cell == "rnn" else config.cell
        self._cell_step = _CELL_STEPS[self.rnn_kind]
        if not self.residual:
            between = config.dropout if config.num_layers > 1 else 0.0
            self.rnn = module(
                input_size, config.hidden_size, config.num_layers, dropout=between, **kwargs
            )
        else:
            width = config.hidden_size * self.directions
            self.layers = nn.ModuleList(
                module(input_size if i == 0 else width, config.hidden_size, **kwargs)
                for i in range(config.num_layers)
            )
            self.between = Dropout(config.dropout)
        self._init_forget_bias()

    def _init_forget_bias(self) -> None:
        # LSTM: start with the forget gate open (bias 1) so gradients flow through c at first.
        if self.cell != "lstm":
            return
        for name, param in self.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("bias_ih"):
                h = self.hidden_size
                with torch.no_grad():
                    param[h : 2 * h].fill_(1.0)

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """The zero state for `batch_size` sequences."""
        shape = (self.num_layers * self.directions, batch_size, self.hidden_size)
        count = 2 if self.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device) for _ in range(count))

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """x: (B, T, input_size) -> output (B, T, H * directions), new state.

        With `lengths` (B,) the batch is packed: padding costs nothing and changes nothing
        (the state is each sequence's own final state; outputs past a length are zero)."""
        total = x.shape[1]
        if lengths is not None:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if not self.residual and not (self.training and self.between_dropout > 0):
            out, new = self._call(self.rnn, x, _to_torch(state, self.cell))
            states = [_from_torch(new)]
        elif not self.residual:
            out, states = self._layer_by_layer(x, state)
        else:
            per_layer = self.directions
            states = []
            for i, layer in enumerate(self.layers):
                layer_state = None
                if state is not None:
                    layer_state = tuple(s[i * per_layer : (i + 1) * per_layer] for s in state)
                inp = x if i == 0 else _map(x, self.between)
                out, new = self._call(layer, inp, _to_torch(layer_state, self.cell))
                if i > 0:  # residual connection from layer 2 on
                    out = _map(out, lambda data, skip=inp: data + _data(skip))
                x = out
                states.append(_from_torch(new))
            out = x
        if lengths is not None:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
        return out, tuple(torch.cat(parts, dim=0) for parts in zip(*states, strict=True))

    def _drop_weights(self, named) -> dict[str, Tensor]:
        """DropConnect: the hidden-to-hidden weights among `named` (name, tensor) with one
        fresh mask each, while training with --weight-dropout; {} otherwise."""
        if not (self.training and self.weight_dropout > 0):
            return {}
        p = self.weight_dropout
        return {n: dropout(w, p, True) for n, w in named if n.startswith("weight_hh")}

    def _call(self, module: nn.Module, x, hx):
        """A fused module's call, with its recurrent weights dropped (see `_drop_weights`):
        one mask per call, so every step of the sequences sees the same recurrent weights."""
        dropped = self._drop_weights(module.named_parameters())
        return functional_call(module, dropped, (x, hx)) if dropped else module(x, hx)

    def _layer_by_layer(self, x, state: State | None):
        """The fused module's layers one call each, with dropout between them drawn from
        torch's generator. The fused call on a GPU would leave that dropout to cuDNN, whose
        random state lives outside torch's: a resumed run could not repeat it exactly."""
        names = self.rnn._flat_weights_names
        width = len(names) // self.num_layers
        batch_sizes = x.batch_sizes if isinstance(x, PackedSequence) else None
        data = _data(x)
        if state is None:
            rows = data.shape[0] if batch_sizes is None else int(batch_sizes[0])
            state = self.init_state(rows, data.device)
        elif batch_sizes is not None:  # a packed batch runs sorted by length
            state = select_state(state, x.sorted_indices)
        run, flags = _VF_CALLS[self.rnn_kind], (True, 1, 0.0, True, self.directions == 2)
        states = []
        for i in range(self.num_layers):
            if i > 0:
                data = dropout(data, self.between_dropout, True)
            layer = [(n, getattr(self.rnn, n)) for n in names[i * width : (i + 1) * width]]
            dropped = self._drop_weights(layer)
            weights = [dropped.get(n, w) for n, w in layer]
            hx = tuple(s[i * self.directions : (i + 1) * self.directions] for s in state)
            hx = hx if self.cell == "lstm" else hx[0]
            with warnings.catch_warnings():  # cuDNN copies one layer's weights: intended
                warnings.filterwarnings("ignore", message="RNN module weights are not part")
                if batch_sizes is None:
                    data, *new = run(data, hx, weights, *flags, True)  # batch_first
                else:
                    data, *new = run(data, batch_sizes, hx, weights, *flags)
            if batch_sizes is not None:  # back to the caller's order
                new = select_state(tuple(new), x.unsorted_indices)
            states.append(tuple(new))
        return (x._replace(data=data) if batch_sizes is not None else data), states

    def layer_weights(self) -> list[list[Tensor]]:
        """Each layer's [weight_ih, weight_hh, bias_ih, bias_hh]."""
        out = []
        for i in range(self.num_layers):
            module, suffix = (self.layers[i], "_l0") if self.residual else (self.rnn, f"_l{i}")
            out.append(
                [
                    getattr(module, name + suffix)
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
            )
        return out

    def step_weights(self) -> list[list[Tensor]] | None:
        """While training with --weight-dropout, the layers' weights for a sequence of `step`
        calls, the recurrent ones dropped with one mask for the whole sequence (draw them
        once a batch and pass them to every step); None otherwise (`step` uses its own)."""
        if not (self.training and self.weight_dropout > 0):
            return None
        p = self.weight_dropout
        return [
            [dropout(w, p, True) if j == 1 else w for j, w in enumerate(layer)]
            for layer in self.layer_weights()
        ]

    def step(
        self, x: Tensor, state: State | None = None, weights: list[list[Tensor]] | None = None
    ) -> tuple[Tensor, State]:
        """One time step, x (B, input_size) -> output (B, H), new state: the same computation
        as `forward` on a length-1 sequence (dropout between layers included), through the
        cell kernels, or for decoding on the CPU through oneDNN (see models/packed.py).
        `weights`: from `step_weights` (default: the layers' own). Unidirectional stacks
        only."""
        if self.directions != 1:
            raise ValueError("step() needs a unidirectional stack")
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        lstm = self.cell == "lstm"
        own = weights is None
        weights = self.layer_weights() if own else weights
        use_packed = (
            own and packed.usable(x) and packed.worth_it(self.rnn_kind, x.shape[0], weights)
        )
        dtype = packed.step_dtype(self.rnn_kind, x.shape[0], weights)
        fast = (
            packed.cached(self, weights, lambda: packed.pack(self.rnn_kind, weights, dtype), dtype)
            if use_packed
            else None
        )
        new: list[list[Tensor]] = [[] for _ in state]
        for i in range(self.num_layers):
            inp = x if i == 0 else dropout(x, self.between_dropout, self.training)
            if fast is not None:
                h, c = fast[i].step(inp, state[0][i], state[1][i] if lstm else None)
                if lstm:
                    new[1].append(c)
            elif lstm:
                h, c = self._cell_step(inp, (state[0][i], state[1][i]), *weights[i])
                new[1].append(c)
            else:
                h = self._cell_step(inp, state[0][i], *weights[i])
            new[0].append(h)
            x = h + inp if (self.residual and i > 0) else h
        # one layer: a view, not a copy (a GPU step is short enough for a copy to show)
        return x, tuple(p[0][None] if len(p) == 1 else torch.stack(p) for p in new)


_VF_CALLS = {
    "lstm": torch._VF.lstm,
    "gru": torch._VF.gru,
    "tanh": torch._VF.rnn_tanh,
    "relu": torch._VF.rnn_relu,
}


def _data(x):
    return x.data if isinstance(x, PackedSequence) else x


def _map(x, fn):
    """Apply `fn` to a tensor, or to the data of a packed sequence."""
    if isinstance(x, PackedSequence):
        return x._replace(data=fn(x.data))
    return fn(x)


def _to_torch(state: State | None, cell: str):
    if state is None:
        return None
    return (state[0], state[1]) if cell == "lstm" else state[0]


def _from_torch(state) -> State:
    return tuple(state) if isinstance(state, tuple) else (state,)


class RNNLanguageModel(nn.Module):
    """Embedding -> stacked RNN/GRU/LSTM -> linear: next-token logits, carrying state."""

    kind = "lm"

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, config.embed_size)
        self.embed_drop = Dropout(config.embed_dropout)
        self.rnn = RNNStack(config.embed_size, config)
        self.drop = Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)
        if config.tie_weights:
            self.head.weight = self.embed.weight

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """The zero state."""
        return self.rnn.init_state(batch_size, device)

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """ids: (B, T) -> logits (B, T, V), new state."""
        x = self.embed_drop(self.embed(ids))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def step(self, ids: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One decoding step: ids (B,) -> logits (B, V), new state."""
        out, state = self.rnn.step(self.embed_drop(self.embed(ids)), state)  # (B, H)
        return packed.linear(self.head, self.drop(out)), state


def build(config: ModelConfig, vocab_size: int, *_) -> RNNLanguageModel:
    """The language model of the registry (charrnn.kinds)."""
    return RNNLanguageModel(vocab_size, config)
