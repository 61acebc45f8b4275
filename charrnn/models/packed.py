"""Decoding steps on the CPU through oneDNN with each layer's weights packed once.

One decoding step multiplies a few rows by every recurrent weight. torch's cell kernels hand
that to a general matrix multiply that handles few rows poorly; oneDNN's inner product
(`torch.ops.mkldnn._linear_pointwise`, what torch.compile uses on the CPU) with weights
reordered once into its own blocked format is 1.1 to 1.5x faster for one row of a large
layer and 1.5 to 3.7x for 2 to 32 rows on a 2-core CPU (`worth_it` says where). It is used
only where it is safe: the CPU, float32, no gradients (decoding); training and other devices
use the cell kernels. The packed weights are cached and rebuilt when a parameter changes
(its version counter). Results agree with the cell kernels to float rounding.

The gate arithmetic is torch's own (`torch.lstm_cell`, `gru_cell`, `rnn_*_cell`):
    LSTM  i, f, g, o = W [x; h] + b           c' = s(f) c + s(i) tanh(g),  h' = s(o) tanh(c')
          (rows packed as i, f, o, 2g, so that one sigmoid fused into the product covers all
          four gates: tanh(g) = 2 s(2g) - 1, and doubling a weight is exact)
    GRU   r, z, n_x = W_i x + b_i,  _, _, n_h = W_h h + b_h
          r = s(r_x + r_h), z = s(z_x + z_h), n = tanh(n_x + r n_h),  h' = (1 - z) n + z h
    RNN   h' = tanh or relu(W [x; h] + b)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


def usable(x: Tensor) -> bool:
    """Whether a step on `x` can go through oneDNN here."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
    )


def pays(weights: int, rows: int) -> bool:
    """Whether oneDNN beats torch's general kernels for one product of `weights` weights by
    `rows` rows. Each product costs oneDNN about 20 microseconds more to set up; measured on
    a 2-core CPU, it pays from 600,000 weights for one row (an LSTM of 384 units over a
    64-wide input: 1.03x; 768 units: 1.5x) and from 150,000 for two rows or more."""
    return weights >= (600_000 if rows == 1 else 150_000)


def worth_it(cell: str, rows: int, weights: list[list[Tensor]]) -> bool:
    """Whether a recurrent step should go through oneDNN: a GRU makes two products a layer,
    an LSTM or RNN one."""
    size = sum(layer[0].numel() + layer[1].numel() for layer in weights)
    return pays(size // len(weights) // (2 if cell == "gru" else 1), rows)


def cached(owner: object, weights: list[list[Tensor]], build):
    """`build()`, kept on `owner` (outside its parameters and state dict) until a weight
    changes."""
    key = version(weights)
    hit = owner.__dict__.get("_packed_cache")
    if hit is None or hit[0] != key:
        hit = (key, build())
        object.__setattr__(owner, "_packed_cache", hit)
    return hit[1]


def linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """layer(x) for x (B, in), through oneDNN where it is usable and pays (an output layer
    over a BPE vocabulary: 1.3x for one row, 3x for five)."""
    weight, bias = layer.weight, layer.bias
    if not (usable(x) and pays(weight.numel(), x.shape[0])):
        return layer(x)
    parts = [[weight] if bias is None else [weight, bias]]
    try:
        packed_weight = cached(layer, parts, lambda: _reorder(weight))
        return _linear(x, packed_weight, None if bias is None else bias.detach())
    except (RuntimeError, AttributeError):  # a torch build without these oneDNN operators
        return layer(x)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, act: str = "none") -> Tensor:
    """x @ weight.T + bias, then `act` ("none" or "sigmoid") fused into the product."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, act, [], "")


def _reorder(weight: Tensor) -> Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())


class PackedLayer:
    """One recurrent layer's weights in oneDNN's format."""

    def __init__(self, cell: str, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
        self.cell = cell
        if cell == "gru":  # the reset gate scales only the recurrent part of n
            self.w_x, self.b_x = _reorder(w_ih), b_ih.detach().clone()
            self.w_h, self.b_h = _reorder(w_hh), b_hh.detach().clone()
            return
        w, b = torch.cat([w_ih, w_hh], dim=1).detach(), (b_ih + b_hh).detach()
        if cell == "lstm":  # rows i, f, g, o -> i, f, o, 2g: one fused sigmoid covers all four
            h = w.shape[0] // 4
            order = torch.cat(
                [torch.arange(2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)]
            )
            w, b = w[order], b[order]
            w[3 * h :] *= 2  # exact: tanh(g) = 2 s(2g) - 1
            b[3 * h :] *= 2
        self.w, self.b = _reorder(w), b

    def step(self, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x (B, I), h (B, H), c (B, H) for LSTM -> new h, new c."""
        if self.cell == "gru":
            r_x, z_x, n_x = _linear(x, self.w_x, self.b_x).chunk(3, dim=1)
            r_h, z_h, n_h = _linear(h, self.w_h, self.b_h).chunk(3, dim=1)
            r = torch.sigmoid(r_x + r_h)
            z = torch.sigmoid(z_x + z_h)
            n = torch.tanh(n_x + r * n_h)
            return n + z * (h - n), None
        xh = torch.cat([x, h], dim=1)
        if self.cell == "lstm":
            i, f, o, g = _linear(xh, self.w, self.b, "sigmoid").chunk(4, dim=1)
            c = torch.addcmul(f * c, i, g.mul_(2).sub_(1))
            return o * torch.tanh(c), c
        gates = _linear(xh, self.w, self.b)
        return (torch.relu_(gates) if self.cell == "relu" else torch.tanh_(gates)), None


def pack(cell: str, weights: list[list[Tensor]]) -> list[PackedLayer] | None:
    """Packed layers from each layer's [w_ih, w_hh, b_ih, b_hh]; None if oneDNN refuses."""
    try:
        return [PackedLayer(cell, *layer) for layer in weights]
    except (RuntimeError, AttributeError):  # a torch build without these oneDNN operators
        return None


def version(weights: list[list[Tensor]]) -> tuple:
    """Changes whenever a parameter is updated in place or replaced."""
    return tuple((w._version, w.data_ptr()) for layer in weights for w in layer)
