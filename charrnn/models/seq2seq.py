"""RNN encoder-decoder with attention: Luong `dot` and `general`, Bahdanau `additive`, or
`none` (the plain encoder-decoder of Sutskever et al.).

Encoder: embeddings -> stacked RNN/GRU/LSTM over packed sequences (padding costs nothing and
changes nothing), optionally bidirectional with H/2 units per direction so its outputs are H
wide. Its final state, both directions concatenated, passes through a learned bridge
(linear + tanh) to start the decoder.

Decoder, one step (the same code trains with teacher forcing and decodes):

    e_t  = embed(y_{t-1})                                  (B, E)
    x_t  = [e_t ; h~_{t-1}]  with input feeding, else e_t   (B, E + H)
    h_t  = RNN(x_t, state)                                  (B, H)
    a_t  = softmax(score(h_t, memory)) over real tokens     (B, S)   padding masked
    c_t  = a_t . memory                                     (B, H)
    h~_t = tanh(W_c [c_t ; h_t])                            (B, H)   (h~_t = h_t without attention)
    logits = W_o dropout(h~_t)                              (B, V)

Scores: dot h.m, general h.(W m), additive v.tanh(W_q h + W_m m).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from charrnn.config import ModelConfig
from charrnn.models import packed
from charrnn.models.rnn import Dropout, RNNStack, State, select_state
from charrnn.tokenizer import PAD_ID

ATTENTIONS = ("dot", "general", "additive", "none")


class Attention(nn.Module):
    """Scores a decoder state against every encoder output and averages them."""

    def __init__(self, kind: str, size: int, scaled: bool = False) -> None:
        super().__init__()
        self.kind = kind
        # dot and general scores grow with the width and the norms the training gives the
        # states; divided by sqrt(H) they start near 0 and the softmax is not one-hot at once
        self.scale = size**-0.5 if scaled and kind in ("dot", "general") else 1.0
        if kind == "general":
            self.key = nn.Linear(size, size, bias=False)
        elif kind == "additive":
            self.key = nn.Linear(size, size)
            self.query = nn.Linear(size, size, bias=False)
            self.v = nn.Linear(size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """Per-source-token work done once per sentence: (B, S, H) -> (B, S, H)."""
        return memory if self.kind == "dot" else self.key(memory)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, H), keys/memory (B, S, H), mask (B, S) -> context (B, H), weights (B, S)."""
        if self.kind == "additive":
            scores = self.v(packed.tanh(keys + self.query(query)[:, None])).squeeze(-1)
        else:
            scores = torch.bmm(keys, query[:, :, None]).squeeze(-1) * self.scale  # (B, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights[:, None], memory).squeeze(1), weights


class DecoderState(NamedTuple):
    """Everything the decoder carries between steps; every field has the batch first
    except `rnn` (num_layers, B, H)."""

    rnn: State
    feed: Tensor | None  # (B, H): the previous attentional vector, for input feeding
    memory: Tensor  # (B, S, H): encoder outputs
    keys: Tensor | None  # (B, S, H): attention keys of the memory
    mask: Tensor  # (B, S): True at real source tokens
    weights: Tensor | None  # (B, S): the last step's attention
    coverage: Tensor | None = None  # (B, S): decoding only, the attention summed over steps


def select_decoder_state(state: DecoderState, index: Tensor) -> DecoderState:
    """Keep, reorder or repeat batch rows."""
    pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
    return DecoderState(
        select_state(state.rnn, index),
        pick(state.feed),
        pick(state.memory),
        pick(state.keys),
        pick(state.mask),
        pick(state.weights),
        pick(state.coverage),
    )


class Seq2SeqModel(nn.Module):
    """Encoder-decoder with attention over token ids."""

    kind = "seq2seq"

    def __init__(self, source_vocab: int, target_vocab: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.source_vocab, self.vocab_size = source_vocab, target_vocab
        E, H = config.embed_size, config.hidden_size
        self.src_embed = nn.Embedding(source_vocab, E, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(target_vocab, E, padding_idx=PAD_ID)
        self.embed_drop = Dropout(config.embed_dropout)
        encoder_hidden = H // 2 if config.bidirectional else H
        self.encoder = RNNStack(
            E, replace(config, hidden_size=encoder_hidden), bidirectional=config.bidirectional
        )
        states = 2 if config.cell == "lstm" else 1
        self.bridge = nn.ModuleList(nn.Linear(H, H) for _ in range(states))
        self.attention = (
            Attention(config.attention, H, config.scaled_attention)
            if config.attention != "none"
            else None
        )
        self.input_feeding = config.input_feeding and self.attention is not None
        self.decoder = RNNStack(E + (H if self.input_feeding else 0), config)
        self.combine = nn.Linear(2 * H, H, bias=False) if self.attention is not None else None
        self.drop = Dropout(config.dropout)
        self.head = nn.Linear(H, target_vocab)
        for embed in (self.src_embed, self.tgt_embed):
            nn.init.uniform_(embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)
        if config.tie_weights:
            self.head.weight = self.tgt_embed.weight

    def encode(self, src: Tensor, lengths: Tensor) -> DecoderState:
        """src (B, S) padded with <pad>, lengths (B,) -> the decoder's starting state."""
        memory, final = self.encoder(self.embed_drop(self.src_embed(src)), lengths=lengths)
        L, B = self.config.num_layers, src.shape[0]
        if self.config.bidirectional:  # (L*2, B, H/2) -> (L, B, H): [forward ; backward]
            final = tuple(f.view(L, 2, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1) for f in final)
        rnn = tuple(packed.tanh(bridge(f)) for bridge, f in zip(self.bridge, final, strict=True))
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths[:, None].to(
            src.device
        )
        keys = self.attention.keys(memory) if self.attention is not None else None
        feed = memory.new_zeros(B, self.config.hidden_size) if self.input_feeding else None
        return DecoderState(rnn, feed, memory, keys, mask, None)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoder step: tokens (B,) -> logits (B, V), new state."""
        h, state = self.attend(tokens, state)
        return self.logits(h), state

    def logits(self, h: Tensor) -> Tensor:
        """Attentional vectors (..., H) -> logits (..., V)."""
        flat = self.drop(h).flatten(0, -2)
        return packed.linear(self.head, flat).view(*h.shape[:-1], -1)

    def attend(
        self, tokens: Tensor, state: DecoderState, weights: list | None = None
    ) -> tuple[Tensor, DecoderState]:
        """One decoder step up to the output layer: tokens (B,) -> the attentional vector
        h~ (B, H), new state. `weights`: the decoder's for this sequence (RNNStack.step)."""
        x = self.embed_drop(self.tgt_embed(tokens))  # (B, E)
        if self.input_feeding:
            x = torch.cat([x, state.feed], dim=-1)  # (B, E + H)
        h, rnn = self.decoder.step(x, state.rnn, weights)  # (B, H)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(h, state.keys, state.memory, state.mask)
            h = packed.linear(self.combine, torch.cat([context, h], dim=-1), "tanh")  # (B, H)
        feed = h if self.input_feeding else None
        return h, state._replace(rnn=rnn, feed=feed, weights=weights)

    def forward(
        self, src: Tensor, lengths: Tensor, tgt_in: Tensor, sample_prob: float = 0.0
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (B, S), tgt_in (B, T) = <bos> y_1 .. y_{T-1} -> logits
        (B, T, V) and attention weights (B, T, S). With `sample_prob` > 0 (scheduled sampling)
        each next input is, with that probability, drawn from the model's own prediction.
        Without it the output layer runs once over all steps: one large product instead of T
        small ones (about 1.8x faster training at the seq2seq defaults)."""
        state = self.encode(src, lengths)
        outputs, weight_steps = [], []
        token = tgt_in[:, 0]
        decoder = self.decoder.step_weights()  # one --weight-dropout mask for the batch
        for t in range(tgt_in.shape[1]):
            h, state = self.attend(token, state, decoder)
            if sample_prob > 0:
                h = self.logits(h)
            outputs.append(h)
            if state.weights is not None:
                weight_steps.append(state.weights)
            if t + 1 < tgt_in.shape[1]:
                token = tgt_in[:, t + 1]
                if sample_prob > 0:
                    own = torch.multinomial(torch.softmax(h.detach().float(), -1), 1)[:, 0]
                    use = torch.rand(token.shape, device=token.device) < sample_prob
                    token = torch.where(use & (token != PAD_ID), own, token)
        weights = torch.stack(weight_steps, dim=1) if weight_steps else None
        stacked = torch.stack(outputs, dim=1)
        return (stacked if sample_prob > 0 else self.logits(stacked)), weights


def build(config: ModelConfig, vocab_size: int, source_vocab_size: int | None, _=None):
    """The seq2seq model of the registry (charrnn.kinds): `vocab_size` is the target's."""
    return Seq2SeqModel(source_vocab_size or vocab_size, vocab_size, config)
