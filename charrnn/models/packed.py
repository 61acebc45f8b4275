"""Decoding steps on the CPU through oneDNN with each layer's weights packed once.

One decoding step multiplies a few rows by every recurrent weight. torch's cell kernels hand
that to a general matrix multiply that handles few rows poorly; oneDNN's inner product with
weights already in its own format (what `torch.utils.mkldnn` uses) is about 1.3x faster for
one row and 2x for 5 to 32 rows on a 2-core CPU. It is used only where it is exact and safe:
the CPU, float32, no gradients (decoding); training and other devices use the cell kernels.
The packed weights are cached and rebuilt when a parameter changes (its version counter).

The gate arithmetic is torch's own (`torch.lstm_cell`, `gru_cell`, `rnn_*_cell`):
    LSTM  i, f, g, o = W [x; h] + b           c' = s(f) c + s(i) tanh(g),  h' = s(o) tanh(c')
          (rows packed as i, f, o, g, so that one sigmoid covers three gates)
    GRU   r, z, n_x = W_i x + b_i,  _, _, n_h = W_h h + b_h
          r = s(r_x + r_h), z = s(z_x + z_h), n = tanh(n_x + r n_h),  h' = (1 - z) n + z h
    RNN   h' = tanh or relu(W [x; h] + b)
"""

from __future__ import annotations

import torch
from torch import Tensor

State = tuple[Tensor, ...]


def usable(x: Tensor) -> bool:
    """Whether a step on `x` can go through oneDNN here."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
    )


def worth_it(cell: str, rows: int, weights: list[list[Tensor]]) -> bool:
    """Whether oneDNN beats the cell kernels for this step. Measured on a 2-core CPU: always
    for several rows (about 2x); for one row only with one large matrix per layer (an LSTM or
    RNN of a million weights or more: 1.2x), since converting to and from oneDNN's format
    costs about 20 microseconds a product, and a GRU needs two products."""
    if rows > 1:
        return True
    size = sum(layer[0].numel() + layer[1].numel() for layer in weights)
    return cell != "gru" and size >= 1_000_000


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return torch._C._nn.mkldnn_linear(x.to_mkldnn(), weight, bias).to_dense()


class PackedLayer:
    """One recurrent layer's weights in oneDNN's format."""

    def __init__(self, cell: str, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
        self.cell = cell
        if cell == "gru":  # the reset gate scales only the recurrent part of n
            self.w_x, self.b_x = w_ih.detach().to_mkldnn(), b_ih.detach().to_mkldnn()
            self.w_h, self.b_h = w_hh.detach().to_mkldnn(), b_hh.detach().to_mkldnn()
        else:  # one product over [x; h]
            w, b = torch.cat([w_ih, w_hh], dim=1).detach(), (b_ih + b_hh).detach()
            if cell == "lstm":  # rows i, f, g, o -> i, f, o, g: one sigmoid covers three gates
                h = w.shape[0] // 4
                order = torch.cat(
                    [torch.arange(2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)]
                )
                w, b = w[order], b[order]
            self.w, self.b = w.contiguous().to_mkldnn(), b.to_mkldnn()

    def step(self, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x (B, I), h (B, H), c (B, H) for LSTM -> new h, new c."""
        if self.cell == "gru":
            r_x, z_x, n_x = _linear(x, self.w_x, self.b_x).chunk(3, dim=1)
            r_h, z_h, n_h = _linear(h, self.w_h, self.b_h).chunk(3, dim=1)
            r = torch.sigmoid(r_x + r_h)
            z = torch.sigmoid(z_x + z_h)
            n = torch.tanh(n_x + r * n_h)
            return n + z * (h - n), None
        gates = _linear(torch.cat([x, h], dim=1), self.w, self.b)
        if self.cell == "lstm":
            size = gates.shape[1] // 4
            i, f, o = torch.sigmoid(gates[:, : 3 * size]).chunk(3, dim=1)
            c = torch.addcmul(f * c, i, torch.tanh(gates[:, 3 * size :]))
            return o * torch.tanh(c), c
        return (torch.relu(gates) if self.cell == "relu" else torch.tanh(gates)), None


def pack(cell: str, weights: list[list[Tensor]]) -> list[PackedLayer] | None:
    """Packed layers from each layer's [w_ih, w_hh, b_ih, b_hh]; None if oneDNN refuses."""
    try:
        return [PackedLayer(cell, *layer) for layer in weights]
    except RuntimeError:
        return None


def version(weights: list[list[Tensor]]) -> tuple:
    """Changes whenever a parameter is updated in place or replaced."""
    return tuple((w._version, w.data_ptr()) for layer in weights for w in layer)
