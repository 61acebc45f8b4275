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
    GRU   r, z, n_x = W_i x + b_i,  _, _, n_h = W_h h + b_h
          r = s(r_x + r_h), z = s(z_x + z_h), n = tanh(n_x + r n_h),  h' = (1 - z) n + z h
    RNN   h' = tanh or relu(W [x; h] + b)   (the activation fused into the product)
Every tanh outside a product is computed as tanh(x) = 2 s(2x) - 1: torch's CPU tanh costs about
ten times its sigmoid (58 against 6 microseconds for 32 x 768 values), which made the cell's
arithmetic a fifth of a 32-row LSTM step. The factor 2 inside goes into the weights where it
can (doubling a weight is exact): the LSTM's rows are packed as i, f, o, 2g, so that one
sigmoid fused into the product covers all four gates, and the GRU's n rows are doubled.

Under bf16 autocast (`--precision bf16`) the recurrent weights are packed in bfloat16 and each
product multiplies bf16 inputs (a CPU with AVX512-BF16 or AMX does that two to three times
faster), its bias and activation fused; the gates are read into fp32 at once, and the cell's
arithmetic and the carried state stay fp32 (an LSTM's cell state is never rounded to bf16). A
small output layer (a character vocabulary) stays fp32, where it is faster.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

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


_DECODING: ContextVar[torch.dtype | None] = ContextVar("packed_dtype", default=None)


@contextmanager
def decoding(dtype: torch.dtype):
    """Decode in `dtype` (fp32 or bf16) where it pays, without autocast: autocast's dispatch
    would cost every small operation of the sampling loop a little."""
    token = _DECODING.set(dtype)
    try:
        yield
    finally:
        _DECODING.reset(token)


def product_dtype() -> torch.dtype:
    """The dtype products are multiplied in: `decoding`'s, else bf16 under bf16 autocast on
    the CPU, else fp32."""
    chosen = _DECODING.get()
    if chosen is not None:
        return chosen
    bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.bfloat16 if bf16 else torch.float32


def pays(weights: int, rows: int) -> bool:
    """Whether oneDNN beats torch's general kernels for one product of `weights` weights by
    `rows` rows. Each product costs oneDNN about 15 microseconds more to set up and less per
    multiply-add; measured on a 2-core CPU (benchmarks/decode.py's machine), it pays for
    layers of 150,000 weights or more from 600,000 multiply-adds, or from two rows (an LSTM of
    768 units, one row: 1.2x; a 512 x 768 output layer, five rows: 2.1x, one row: 1.0x), and
    never for a character model's output layer (69 x 768: torch's kernel is 3.4x faster for
    one row, 1.4x for 32)."""
    return weights >= 150_000 and (weights * rows >= 600_000 or rows > 1)


def bf16_pays(weights: int, rows: int) -> bool:
    """Whether a product is faster in bf16 than in fp32 (on a CPU with AVX512-BF16): from a
    million weights, or two million multiply-adds (a 4,096 x 768 output layer: 1.3x for one
    row, 1.8x for 32; LSTM-768's recurrent weights: 1.3x for one row, 1.8x for 32; a 512 x 768
    layer: 1.0x at five rows, 1.4x at 32)."""
    return weights >= 1_000_000 or weights * rows >= 2_000_000


def worth_it(cell: str, rows: int, weights: list[list[Tensor]]) -> bool:
    """Whether a recurrent step should go through oneDNN: a GRU makes two products a layer,
    an LSTM or RNN one."""
    return pays(_product_size(cell, weights), rows)


def step_dtype(cell: str, rows: int, weights: list[list[Tensor]]) -> torch.dtype:
    """The dtype a recurrent step's products run in: bf16 under bf16 autocast where it pays."""
    size = _product_size(cell, weights)
    return product_dtype() if bf16_pays(size, rows) else torch.float32


def _product_size(cell: str, weights: list[list[Tensor]]) -> int:
    """Weights in one layer's product (a GRU makes two a layer, an LSTM or RNN one)."""
    size = sum(layer[0].numel() + layer[1].numel() for layer in weights)
    return size // len(weights) // (2 if cell == "gru" else 1)


def cached(owner: object, weights: list[list[Tensor]], build, dtype=torch.float32):
    """`build()`, kept on `owner` (outside its parameters and state dict) until a weight
    changes or the packing dtype does."""
    key = (version(weights), dtype)
    hit = owner.__dict__.get("_packed_cache")
    if hit is None or hit[0] != key:
        hit = (key, build())
        object.__setattr__(owner, "_packed_cache", hit)
    return hit[1]


def linear(layer: nn.Linear, x: Tensor, act: str = "none") -> Tensor:
    """layer(x), or tanh(layer(x)) with act="tanh", for x (B, in), in fp32; through oneDNN where
    it is usable and pays (an output layer over a BPE vocabulary: 1.3x for one row, 3x for
    five), in bf16 under bf16 autocast where that pays (see `bf16_pays`). While training
    (gradients on) it is layer(x) under the caller's autocast."""
    if torch.is_grad_enabled():
        out = layer(x)
        return torch.tanh(out) if act == "tanh" else out
    weight, bias = layer.weight, layer.bias
    if usable(x) and pays(weight.numel(), x.shape[0]):
        bf16 = bf16_pays(weight.numel(), x.shape[0])
        dtype = product_dtype() if bf16 else torch.float32
        parts = [[weight] if bias is None else [weight, bias]]
        try:
            packed_weight = cached(layer, parts, lambda: _reorder(weight, dtype), dtype)
            return _product(x, packed_weight, None if bias is None else bias.detach(), act)
        except (RuntimeError, AttributeError):  # a torch build without these oneDNN operators
            pass
    with torch.autocast(x.device.type, enabled=False):  # a small layer: fp32 is faster
        out = layer(x.float())
    return tanh(out) if act == "tanh" else out


def tanh(x: Tensor) -> Tensor:
    """torch.tanh(x); for decoding on the CPU as 2 s(2x) - 1, 4x faster from a few thousand
    values (see above), equal to float rounding."""
    if x.numel() < 2048 or not usable(x):
        return torch.tanh(x)
    return torch.mul(x, 2).sigmoid_().mul_(2).sub_(1)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, act: str = "none") -> Tensor:
    """x @ weight.T + bias, then `act` ("none", "sigmoid", "tanh" or "relu") fused into the
    product."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, act, [], "")


def _product(x: Tensor, weight: Tensor, bias: Tensor | None, act: str = "none") -> Tensor:
    """`_linear` in fp32 for x in fp32 and a weight packed in fp32 or bf16 (then the bias and
    activation are fused into the bf16 product, and its result read into fp32 once: mixed
    operands would make every later operation slower)."""
    if weight.dtype == torch.float32:
        return _linear(x, weight, bias, act)
    bias = None if bias is None else bias.to(weight.dtype)
    return _linear(x.to(weight.dtype), weight, bias, act).float()


def _reorder(weight: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype).contiguous())


class PackedLayer:
    """One recurrent layer's weights in oneDNN's format (fp32 or bf16)."""

    def __init__(
        self,
        cell: str,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
        dtype: torch.dtype = torch.float32,
    ):
        self.cell = cell
        if cell == "gru":  # the reset gate scales only the recurrent part of n
            (w_x, b_x), (w_h, b_h) = (_double_n(w, b) for w, b in ((w_ih, b_ih), (w_hh, b_hh)))
            self.w_x, self.b_x = _reorder(w_x, dtype), b_x.to(dtype)
            self.w_h, self.b_h = _reorder(w_h, dtype), b_h.to(dtype)
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
        self.w, self.b = _reorder(w, dtype), b.to(dtype)

    def step(self, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x (B, I), h (B, H), c (B, H) for LSTM -> new h, new c (all fp32; a state that
        comes in bf16, from an encoder under autocast, is read as fp32)."""
        h = h.float()
        c = None if c is None else c.float()
        if self.cell == "gru":
            gx, gh = _product(x, self.w_x, self.b_x), _product(h, self.w_h, self.b_h)
            size = h.shape[1]
            r, z = torch.add(gx[:, : 2 * size], gh[:, : 2 * size]).sigmoid_().chunk(2, dim=1)
            # s(2 n_x + r 2 n_h) = s(2 n): n = 2 s(2 n) - 1
            n = torch.addcmul(gx[:, 2 * size :], r, gh[:, 2 * size :]).sigmoid_()
            return torch.lerp(n.mul_(2).sub_(1), h, z), None
        xh = torch.cat([x, h], dim=1)
        if self.cell == "lstm":
            i, f, o, g = _product(xh, self.w, self.b, "sigmoid").chunk(4, dim=1)  # g: s(2g)
            # c' = f c + i (2 g - 1);  h' = o (2 s(2 c') - 1)
            c = torch.mul(f, c).sub_(i).addcmul_(i, g, value=2)
            return torch.addcmul(o.neg(), o, torch.mul(c, 2).sigmoid_(), value=2), c
        return _product(xh, self.w, self.b, self.cell), None


def _double_n(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """A GRU product's weight and bias with the n rows (the last third) doubled."""
    w, b = w.detach().clone(), b.detach().clone()
    n = w.shape[0] // 3
    w[2 * n :] *= 2
    b[2 * n :] *= 2
    return w, b


def pack(
    cell: str, weights: list[list[Tensor]], dtype: torch.dtype = torch.float32
) -> list[PackedLayer] | None:
    """Packed layers from each layer's [w_ih, w_hh, b_ih, b_hh]; None if oneDNN refuses."""
    try:
        return [PackedLayer(cell, *layer, dtype=dtype) for layer in weights]
    except (RuntimeError, AttributeError):  # a torch build without these oneDNN operators
        return None


def version(weights: list[list[Tensor]]) -> tuple:
    """Changes whenever a parameter is updated in place or replaced."""
    return tuple((w._version, w.data_ptr()) for layer in weights for w in layer)
