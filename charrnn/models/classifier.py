"""Many-to-one classification: read a whole text, pool the recurrent states, predict a label.

    x      = embed(ids)                                     (B, T, E)
    s      = RNNStack(x) over packed sequences              (B, T, H)   both directions: H/2 each
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

import re
from dataclasses import replace

import torch
from torch import Tensor, nn

from charrnn.config import POOLINGS, ModelConfig
from charrnn.models.rnn import Dropout, RNNStack
from charrnn.tokenizer import PAD_ID

__all__ = ["POOLINGS", "Classifier"]


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
        per_direction = replace(c, hidden_size=c.hidden_size // directions)
        self.rnn = RNNStack(c.embed_size, per_direction, bidirectional=c.bidirectional)
        self._register_load_state_dict_pre_hook(_stack_keys)
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
        states, final = self.rnn(x, lengths=lengths)  # zero past each text's end
        attention = None
        if self.config.pooling == "last":
            pooled = self._last(final[0])
        else:
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


def _stack_keys(state_dict, prefix, *args) -> None:
    """Checkpoints of charrnn 0.x before the classifier used RNNStack kept its torch module
    at `rnn.` where RNNStack keeps it at `rnn.rnn.`: read them where they are now."""
    old = re.compile(re.escape(prefix + "rnn.") + r"(weight|bias)_(ih|hh)_l\d+(_reverse)?$")
    for key in [k for k in state_dict if old.match(k)]:
        state_dict[prefix + "rnn.rnn." + key[len(prefix) + 4 :]] = state_dict.pop(key)


def build(config: ModelConfig, vocab_size: int, _, num_classes: int | None) -> Classifier:
    """The classifier of the registry (charrnn.kinds)."""
    return Classifier(vocab_size, num_classes or 2, config)
