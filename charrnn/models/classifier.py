"""Many-to-one classification: read a whole text, pool the recurrent states, predict a label.

    x      = embed(ids)                                     (B, T, E)
    s      = RNN(x) over packed sequences                   (B, T, H)   both directions: H/2 each
    pooled = pool(s) over real tokens                       (B, H)
    logits = W dropout(pooled)                              (B, C)

Pooling: `last` is the final state of each direction (the forward one after the last token,
the backward one after the first: the lectures' [h_T ; h'_1]), `mean` and `max` run over the
real tokens, `attention` scores each state, u_t = v.tanh(W s_t), and averages the states by
softmax(u) (Yang et al. 2016): one weight per input token, which tells what the decision
rested on. Sequences are packed, so a text's prediction depends neither on the padding nor
on the other texts of its batch.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from charrnn.config import POOLINGS, ModelConfig
from charrnn.models.rnn import Dropout
from charrnn.tokenizer import PAD_ID

__all__ = ["POOLINGS", "Classifier"]
_MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Classifier(nn.Module):
    """Embeddings, a stacked (by default bidirectional) RNN/GRU/LSTM and a pooled linear head."""

    kind = "classify"

    def __init__(self, vocab_size: int, num_classes: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = replace(config)
        c = config
        directions = 2 if c.bidirectional else 1
        self.embed = nn.Embedding(vocab_size, c.embed_size, padding_idx=PAD_ID)
        self.embed_dropout = Dropout(c.embed_dropout)
        extra = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.rnn = _MODULES[c.cell](
            c.embed_size,
            c.hidden_size // directions,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            bidirectional=c.bidirectional,
            **extra,
        )
        self.dropout = Dropout(c.dropout)
        if c.pooling == "attention":
            self.attend = nn.Linear(c.hidden_size, c.hidden_size)
            self.query = nn.Linear(c.hidden_size, 1, bias=False)
        self.head = nn.Linear(c.hidden_size, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor, weights: bool = False):
        """ids (B, T) padded, lengths (B,) of real tokens (at least 1) -> logits (B, C); with
        `weights`, also the attention pooling's weights (B, T), zero at padding (None for the
        other poolings)."""
        x = self.embed_dropout(self.embed(ids))  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        attention = None
        if self.config.pooling == "last":
            pooled = self._last(state[0] if isinstance(state, tuple) else state)
        else:
            states, _ = pad_packed_sequence(outputs, batch_first=True, total_length=ids.shape[1])
            mask = torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None].to(
                ids.device
            )  # (B, T): True at real tokens
            pooled, attention = self._pool(states, mask)
        logits = self.head(self.dropout(pooled))
        return (logits, attention) if weights else logits

    def _last(self, h: Tensor) -> Tensor:
        """The top layer's final state, both directions side by side: (B, H)."""
        directions = 2 if self.config.bidirectional else 1
        return torch.cat(list(h[-directions:]), dim=-1)

    def _pool(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """states (B, T, H) pooled over the real tokens of `mask` (B, T) -> (B, H)."""
        pooling = self.config.pooling
        if pooling == "mean":
            summed = (states * mask[..., None]).sum(1)
            return summed / mask.sum(1, keepdim=True).to(states.dtype), None
        if pooling == "max":
            return states.masked_fill(~mask[..., None], float("-inf")).amax(1), None
        scores = self.query(torch.tanh(self.attend(states))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1)
        pooled = torch.bmm(weights.to(states.dtype)[:, None], states).squeeze(1)
        return pooled, weights
