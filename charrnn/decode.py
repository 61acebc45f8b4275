"""Decoding: greedy, sampling filters and beam search, for any model, through a step function.

A model decodes here when it offers a *stepper*: `step(tokens (N,), state) -> (logits (N, V),
state)` and `select(state, index) -> state` (keep, reorder or repeat batch rows). Language
models (`charrnn.kinds.lm.LMStepper`) and seq2seq models share this module; nothing here knows which
one it drives.

Sampling filters apply in this order (each is skipped when off):
  1. repetition penalty (CTRL): logits of tokens already in the text are divided by the
     penalty when positive, multiplied by it when negative;
  2. no-repeat n-gram: tokens that would repeat an n-gram of the text are banned (a row
     left with no token ends, finished "banned");
  3. special tokens (<pad>, <bos>, <unk>) are banned; <eos> ends a sequence;
  4. temperature: logits / T (T = 0 means greedy argmax);
  5. top-k: keep the k most likely tokens (on ties, the lowest ids, as argmax picks);
  6. top-p (nucleus): keep the smallest set of most likely tokens whose mass reaches p;
  7. min-p: keep tokens whose probability is at least min_p x the top probability;
then one token is drawn from what is left. Reported log-probabilities are the model's own
(temperature 1, no filters, the end token included), so they measure how likely the model
finds the text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from charrnn.config import BeamConfig, SampleConfig
from charrnn.errors import UsageError
from charrnn.filters import (
    NgramBan,
    min_p_filter,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)
from charrnn.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

BANNED = (PAD_ID, BOS_ID, UNK_ID)
BLOCK_VALUES = 1 << 22  # sampling draws its noise a block of steps at a time, at most this
BLOCK_STEPS = 256  # many values (16 MiB) a block unless one step needs more, and this many steps
ROW_BLOCK_VALUES = 1 << 15  # a row's block of noise when every row draws its own, and all
ROW_BLOCKS_VALUES = 1 << 24  # the rows' blocks together at most (64 MiB; else as one batch)
BLOCK_SECONDS = 0.05  # streamed text waits at most about this long for its block to end


class Stepper(Protocol):
    """What decoding needs from a model."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...

    def select(self, state: Any, index: Tensor) -> Any: ...


# -- settings --------------------------------------------------------------------------------------


def filter_logits(logits: Tensor, cfg: SampleConfig) -> Tensor:
    """Steps 4-7 above: temperature, top-k, top-p, min-p (temperature > 0). The logits are
    shifted to a maximum of 0 before the division (the distribution is the same), so a tiny
    temperature gives -inf below the top, not inf - inf."""
    if cfg.temperature != 1.0:
        logits = (logits - logits.amax(-1, keepdim=True)) / cfg.temperature
    logits = top_k_filter(logits, cfg.top_k)
    logits = top_p_filter(logits, cfg.top_p)
    return min_p_filter(logits, cfg.min_p)


# -- sampling ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One generated sequence."""

    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    finished: str = ""  # "eos", "stop", "length" or "" while running


def sample(
    stepper: Stepper,
    logits: Tensor,
    state: Any,
    cfg: SampleConfig,
    *,
    histories: Sequence[Sequence[int]],
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    should_end: Callable[[int, int], bool] | None = None,
    banned: Sequence[int] = BANNED,
    max_lens: Sequence[int] | None = None,
    on_block: Callable[[list[int], list[list[int]]], None] | None = None,
) -> list[Sample]:
    """Draw one continuation per row of `logits` (the model's prediction after each prompt).

    All rows advance together as one batch; a finished row leaves the batch. `histories` are
    the prompts' tokens (for the repetition filters). `should_end(row, token)` is called for
    every new token (after it is recorded) and may end the row (stop strings, streaming).
    `banned` tokens are never drawn (a language model also bans <eos>: it has no end).
    `max_lens` caps each row's tokens (default cfg.length). `on_block(rows, tokens)` receives
    each row's new tokens after every block of steps (see `block_steps`), when rows finish,
    and at least every BLOCK_SECONDS (block streaming: a slow model's text does not wait for a
    full block). A row whose every token is banned (--no-repeat-ngram over a small
    vocabulary) ends there, finished "banned". `generator` serves every row, or is one per
    row: each row then draws from its own, and samples the same whatever else is decoded with
    it.

    Tokens are drawn with the Gumbel-max trick (argmax of logits/T plus Gumbel noise, exactly a
    draw from the softmax), with the noise for a block of steps drawn at once; log-probabilities
    are summed in blocks too. Per token this costs a few tensor operations besides the model.
    """
    rows, vocab = logits.shape
    device = logits.device
    shared = generator is None or isinstance(generator, torch.Generator)
    samples = [Sample() for _ in range(rows)]
    limits = list(max_lens) if max_lens is not None else [cfg.length] * rows
    block = _block(rows, vocab, limits, not shared)
    alive = list(range(rows))  # batch position -> row
    seen, ngram, ban = _filters(cfg, histories, banned, vocab, device)
    draw = _Draw(cfg, ban, block, generator if shared else list(generator))
    eos_banned = EOS_ID in banned
    # Without per-token work (streaming, stop strings, repetition filters) a step only needs
    # the rows' ends: one tensor comparison, not a Python loop over the rows.
    per_token = should_end is not None or seen is not None or ngram is not None
    pending = _Pending(samples, block, on_block)
    nearest_limit = min(limits)
    for t in range(max(limits)):
        scores = logits if logits.dtype == torch.float32 else logits.float()
        if seen is not None:
            scores = repetition_penalty(scores, seen, cfg.repetition_penalty)
        if ngram is not None:
            scores = ngram.apply(scores)
        tokens = draw(scores, t)
        if ngram is not None:  # the bans may leave a row nothing: it ends without a token
            dead = torch.isneginf((scores + ban).amax(-1))
            tokens = tokens.masked_fill(dead, PAD_ID)
        pending.steps.append((logits, tokens))
        if (
            not per_token
            and t + 1 < nearest_limit
            and (eos_banned or not bool((tokens == EOS_ID).any()))
        ):
            if pending.full():
                pending.settle(alive)
            logits, state = stepper.step(tokens, state)
            continue
        token_list = tokens.tolist()
        if seen is not None:
            seen[torch.arange(len(alive), device=device), tokens] = True
        if ngram is not None:
            ngram.push(token_list)
        keep = _still_running(token_list, alive, samples, limits, t, should_end)
        if len(keep) < len(alive):
            pending.settle(alive)
            if not keep:
                return samples
            index = torch.tensor(keep, device=device)
            state, tokens = stepper.select(state, index), tokens[index]
            alive = [alive[i] for i in keep]
            nearest_limit = min(limits[row] for row in alive)
            draw.keep(keep, index)
            seen = None if seen is None else seen[index]
            if ngram is not None:
                ngram.select(keep)
        elif pending.full():
            pending.settle(alive)
        logits, state = stepper.step(tokens, state)
    pending.settle(alive)
    for row in alive:
        samples[row].finished = samples[row].finished or "length"
    return samples


class _Draw:
    """Each step's tokens: the argmax (temperature 0), or the Gumbel-max draw, with the noise
    made a block of steps at a time (from one generator, or one per row: `generator` a list,
    following the rows still in the batch)."""

    def __init__(self, cfg: SampleConfig, ban: Tensor, block: int, generator):
        self.cfg, self.ban, self.block = cfg, ban, block
        self.per_row = generator if isinstance(generator, list) else None
        self.generator = None if self.per_row is not None else generator
        self.filtered = cfg.top_k > 0 or cfg.top_p < 1.0 or cfg.min_p > 0.0
        self.noise: Tensor | None = None
        self.steps: tuple[Tensor, ...] = ()  # noise's rows, one per step of the block

    def __call__(self, scores: Tensor, t: int) -> Tensor:
        cfg = self.cfg
        if cfg.temperature == 0:
            return (scores + self.ban).argmax(dim=-1)
        if t % self.block == 0 or self.noise is None:
            rows, vocab = scores.shape
            noise = _noise(self.block, rows, vocab, self.generator, self.per_row, scores.device)
            if not self.filtered:  # argmax(l/T + g) = argmax(l + T g): fold T and the ban in
                noise = noise * cfg.temperature + self.ban
            self._set(noise)
        if self.filtered:
            return (filter_logits(scores + self.ban, cfg) + self.steps[t % self.block]).argmax(-1)
        return (scores + self.steps[t % self.block]).argmax(dim=-1)

    def _set(self, noise: Tensor | None) -> None:
        self.noise = noise
        self.steps = () if noise is None else noise.unbind(0)  # one view per step, made once

    def keep(self, keep: list[int], index: Tensor) -> None:
        """Only the batch positions `keep` (as a tensor: `index`) go on."""
        if self.per_row is not None:
            self.per_row = [self.per_row[i] for i in keep]
        if self.noise is not None:
            self._set(self.noise[:, index])


def _block(rows: int, vocab: int, limits: list[int], own_generators: bool) -> int:
    """Steps whose noise is drawn at once (no noise for steps never taken)."""
    if own_generators and rows * row_block_steps(vocab) * vocab <= ROW_BLOCKS_VALUES:
        # each row draws its noise in blocks of one size whatever else is decoded with it:
        # a GPU's random numbers depend on how many are drawn at once (a CPU's do not)
        return row_block_steps(vocab)
    return min(block_steps(rows, vocab), max(limits))


def _filters(cfg: SampleConfig, histories, banned: Sequence[int], vocab: int, device):
    """What the repetition filters track (the tokens each row has seen, its n-grams) and
    the logits' ban: -inf at banned tokens, 0 elsewhere."""
    seen = None
    if cfg.repetition_penalty != 1.0:
        seen = torch.zeros(len(histories), vocab, dtype=torch.bool, device=device)
        for row, history in enumerate(histories):
            seen[row, list(history)] = True
    ngram = NgramBan(cfg.no_repeat_ngram, histories) if cfg.no_repeat_ngram else None
    ban = torch.zeros(vocab, device=device)
    ban[list(banned)] = -math.inf  # added to the logits: banned tokens never win
    return seen, ngram, ban


def _noise(block: int, rows: int, vocab: int, generator, per_row, device) -> Tensor:
    """Gumbel noise for a block of steps (block, rows, vocab): from one generator, or row by
    row from each row's own, one block after another."""
    if per_row is None:
        return _gumbel((block, rows, vocab), generator, device)
    return torch.stack([_gumbel((block, vocab), g, device) for g in per_row], dim=1)


def _still_running(
    token_list: list[int], alive: list[int], samples: list[Sample], limits, t: int, should_end
) -> list[int]:
    """The batch positions whose rows go on after step `t`; the others are marked finished:
    "eos", "banned" (no token was left to draw), "stop" (`should_end`) or "length"."""
    keep = []
    for i, token in enumerate(token_list):
        row = alive[i]
        if token == EOS_ID:
            samples[row].finished = "eos"
        elif token == PAD_ID:
            samples[row].finished = "banned"
        elif should_end is not None and should_end(row, token):
            samples[row].finished = "stop"
        elif t + 1 >= limits[row]:  # every live row has drawn t + 1 tokens
            samples[row].finished = "length"
        else:
            keep.append(i)
    return keep


class _Pending:
    """The (raw logits, tokens) of the steps since the batch last changed, turned into the
    rows' tokens and log-probabilities a block at a time (`settle`), and handed to
    `on_block` when streaming."""

    def __init__(self, samples: list[Sample], block: int, on_block) -> None:
        self.samples, self.block, self.on_block = samples, block, on_block
        self.steps: list[tuple[Tensor, Tensor]] = []
        self.due = time.monotonic() + BLOCK_SECONDS  # when streaming, settle by then

    def full(self) -> bool:
        """A block of steps waits to be settled, or streamed text has waited long enough."""
        return len(self.steps) >= self.block or (
            self.on_block is not None and time.monotonic() >= self.due
        )

    def settle(self, alive: list[int]) -> None:
        if not self.steps:
            return
        raw = torch.stack([lg for lg, _ in self.steps]).float()  # (S, R, V)
        picked = torch.stack([tk for _, tk in self.steps])  # (S, R)
        logp = torch.log_softmax(raw, -1).gather(-1, picked[..., None]).squeeze(-1)
        logp = logp.masked_fill(picked == PAD_ID, 0.0)  # no token: every one was banned
        blocks = []
        for row, total, drawn in zip(alive, logp.sum(0).tolist(), picked.T.tolist(), strict=True):
            sample_ = self.samples[row]
            sample_.logprob += total
            # <eos> ends a row (its log-probability counts); <pad> marks a row that had no token
            drawn = drawn[:-1] if drawn[-1] in (EOS_ID, PAD_ID) else drawn
            sample_.tokens += drawn
            blocks.append(drawn)
        self.steps.clear()
        if self.on_block is not None:
            self.on_block(list(alive), blocks)
            self.due = time.monotonic() + BLOCK_SECONDS


def block_steps(rows: int, vocab: int) -> int:
    """How many steps sampling handles as one block: noise drawn at once, log-probabilities
    summed at once, text handed on at once. Each block costs a few tensor operations, so long
    blocks make them cheap per token; a block's noise and logits stay within BLOCK_VALUES
    (or one step's worth, for a batch of many rows over a large vocabulary)."""
    return max(1, min(BLOCK_STEPS, BLOCK_VALUES // (rows * vocab)))


def row_block_steps(vocab: int) -> int:
    """The block of steps each row draws its own noise for (see `sample`): it depends on the
    vocabulary only, and a row's block holds at most ROW_BLOCK_VALUES values."""
    return max(1, min(BLOCK_STEPS, ROW_BLOCK_VALUES // vocab))


def _gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Standard Gumbel noise, -log(-log(U)) for U uniform in (0, 1), as float32. U is drawn in
    float64: float32's 24 random bits cap the noise near 16.6 (U = 1 - 2^-24), so tokens some
    17 nats below the top could hardly ever be drawn, and a large vocabulary's tail of such
    tokens lost most of its share. In float64 the cap is near 36.7, beyond any share that
    shows (e^-36 is about 2e-16)."""
    uniform = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return uniform.clamp_(min=1e-300).log_().neg_().log_().neg_().float()


# -- beam search ---------------------------------------------------------------------------------


@dataclass
class Hypothesis:
    """A finished beam: tokens, summed log-probability and length-penalised score."""

    tokens: list[int]
    logprob: float
    score: float
    finished: str  # "eos" or "length"


def length_score(logprob: float, length: int, cfg: BeamConfig, coverage: float = 0.0) -> float:
    """The ranking score of a finished hypothesis of `length` tokens; `coverage` is the
    coverage term of its attention (GNMT: beta x sum over source tokens of log(min(attention
    received, 1))), added as it is."""
    if cfg.length_penalty == "avg":
        return logprob / max(length, 1) + coverage
    if cfg.length_penalty == "gnmt":
        return logprob / (((5 + length) / 6) ** cfg.alpha) + coverage
    return logprob + coverage


def track_coverage(stepper: Stepper, state: Any) -> Any:
    """The state, now summing each row's attention (for --coverage-penalty): only a stepper
    with attention can."""
    state = getattr(stepper, "track_coverage", lambda _: None)(state)
    if state is None:
        raise UsageError(
            "--coverage-penalty", "needs a seq2seq model with attention", "drop --coverage-penalty"
        )
    return state


def coverage_terms(stepper: Stepper, state: Any, cfg: BeamConfig, rows: int) -> list[float]:
    """beta x each row's coverage term (zeros with --coverage-penalty 0)."""
    if not cfg.coverage_penalty:
        return [0.0] * rows
    return (cfg.coverage_penalty * stepper.coverage_scores(state)).tolist()


def beam_search(
    stepper: Stepper,
    logits: Tensor,
    state: Any,
    cfg: BeamConfig,
    *,
    histories: Sequence[Sequence[int]],
    ends: Sequence[int] = (EOS_ID,),
    max_lens: Sequence[int] | None = None,
    on_step: Callable[[int, Tensor, Tensor], None] | None = None,
    banned: Sequence[int] = BANNED,
) -> list[list[Hypothesis]]:
    """The `cfg.n_best` best continuations of each row of `logits` (one row per input).

    All beams of all inputs advance as one batch; an input whose search is over leaves the
    batch, so an input's result does not depend on what else is decoded with it. `ends` are
    token ids that finish a hypothesis (<eos>, or a newline for a line-based language model);
    `max_lens` caps each input's new tokens (default cfg.max_len). `on_step(length, tokens,
    scores)` receives, after every step, the live beams' tokens (inputs, K, length) and
    scores (inputs, K), for live displays. `banned` tokens are never chosen."""
    inputs, vocab = logits.shape
    K = cfg.beam_size
    device = logits.device
    max_lens = list(max_lens) if max_lens is not None else [cfg.max_len] * inputs
    # Every input starts with K copies of its state; only the first copy is live at step 0
    # (the others score -inf), so the first top-k picks K distinct tokens.
    state = stepper.select(state, torch.arange(inputs, device=device).repeat_interleave(K))
    logits = logits.repeat_interleave(K, dim=0)
    scores = torch.full((inputs, K), -math.inf, device=device)
    scores[:, 0] = 0.0
    # every live beam's tokens, one row per beam (on the CPU: reordered by one gather a step)
    seqs = torch.zeros((inputs * K, 0), dtype=torch.long)
    ngram = None
    if cfg.no_repeat_ngram:
        ngram = NgramBan(cfg.no_repeat_ngram, histories)
        ngram.select([i for i in range(inputs) for _ in range(K)])
    finished: list[list[Hypothesis]] = [[] for _ in range(inputs)]
    alive = list(range(inputs))  # batch block -> input
    ends_t = torch.tensor(list(ends), dtype=torch.long, device=device)
    ends_set = set(ends)
    ban = torch.zeros(vocab, device=device)
    ban[list(banned)] = -math.inf
    length = 0
    if cfg.coverage_penalty:
        state = track_coverage(stepper, state)
    while alive:
        cover = coverage_terms(stepper, state, cfg, len(alive) * K)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (A*K, V)
        logprobs = logprobs + ban
        if length < cfg.min_len and len(ends):
            logprobs = logprobs.index_fill(-1, ends_t, -math.inf)
        if ngram is not None:
            logprobs = ngram.apply(logprobs)
        total = (scores[:, :, None] + logprobs.view(len(alive), K, vocab)).view(len(alive), -1)
        raw = logits.float().view(len(alive), -1)
        candidates = _best(total, raw, 2 * K)  # 2K: room for finished ones
        length += 1
        keep_blocks = []
        for b, inp in enumerate(alive):
            beams = _next_beams(
                candidates[b], scores[b], seqs[b * K : (b + 1) * K], cover[b * K : (b + 1) * K],
                vocab, length, max_lens[inp], ends_set, cfg, finished[inp],
            )  # fmt: skip
            if beams is not None:
                keep_blocks.append((b, inp, beams))
        if not keep_blocks:
            break
        new_alive, rows, next_tokens, next_scores = [], [], [], []
        for b, inp, new_beams in keep_blocks:
            for beam, token, score in new_beams:
                rows.append(b * K + beam)
                next_tokens.append(token)
                next_scores.append(score)
            new_alive.append(inp)
        picked = torch.tensor(rows)
        seqs = torch.cat([seqs[picked], torch.tensor(next_tokens)[:, None]], dim=1)
        if ngram is not None:
            ngram.select(rows)
            ngram.push(next_tokens)
        state = stepper.select(state, picked.to(device))
        scores = torch.tensor(next_scores, device=device).view(len(new_alive), K)
        alive = new_alive
        if on_step is not None:
            on_step(length, seqs.view(len(alive), K, -1), scores)
        logits, state = stepper.step(torch.tensor(next_tokens, device=device), state)
    out = []
    for hyps in finished:
        hyps.sort(key=lambda h: h.score, reverse=True)
        out.append(hyps[: cfg.n_best])
    return out


def _next_beams(
    candidates, scores: Tensor, seqs: Tensor, cover, vocab: int, length: int, max_len: int,
    ends_set: set[int], cfg: BeamConfig, done: list[Hypothesis],
) -> list[tuple[int, int, float]] | None:  # fmt: skip
    """One input's step of beam search: from its best candidates (score, beam * vocab +
    token), the hypotheses that end go to `done`, and the K best that go on are returned as
    (beam, token, score), padded with dead beams; None when its search is over. `scores`,
    `seqs` and `cover` are its K beams' rows."""
    K = cfg.beam_size
    new_beams: list[tuple[int, int, float]] = []
    for score, flat in candidates:
        beam, token = divmod(flat, vocab)
        if score == -math.inf:
            break
        if token in ends_set:
            seq = seqs[beam].tolist() + ([] if token == EOS_ID else [token])
            done.append(
                Hypothesis(seq, score, length_score(score, length, cfg, cover[beam]), "eos")
            )
        elif len(new_beams) < K:
            new_beams.append((beam, token, score))
        if len(new_beams) == K:  # an <eos> ranked below the K-th live beam is ignored
            break
    if not new_beams and not done:  # every continuation is banned
        for beam in range(K):
            score = float(scores[beam])
            if score > -math.inf:
                final = length_score(score, length - 1, cfg, cover[beam])
                done.append(Hypothesis(seqs[beam].tolist(), score, final, "banned"))
    at_limit = length >= max_len
    if at_limit:
        for beam, token, score in new_beams:
            final = length_score(score, length, cfg, cover[beam])
            done.append(Hypothesis(seqs[beam].tolist() + [token], score, final, "length"))
    if at_limit or not new_beams or _search_over(done, new_beams, length, cfg):
        return None
    while len(new_beams) < K:  # pad with dead beams
        new_beams.append((new_beams[0][0], new_beams[0][1], -math.inf))
    return new_beams


def _best(total: Tensor, raw: Tensor, n: int) -> list[list[tuple[float, int]]]:
    """Each row's n best (score, flat index) candidates, best first. Equal scores rank by
    the raw logit, then by index, as argmax breaks ties: so beam size 1 is exactly greedy
    decoding, also where adding the running score rounds two log-probabilities together.
    torch.topk picks arbitrarily among equal values, so a row with a tie at the n-th place
    (its (n+1)-th best equals its n-th) is ranked over all its candidates that good."""
    n = min(n, total.shape[1])
    k = min(n + 1, total.shape[1])  # one more, to see ties at the n-th place
    top_scores, top_index = torch.topk(total, k, dim=-1)
    rows = []
    for row, (scores, index) in enumerate(
        zip(top_scores.tolist(), top_index.tolist(), strict=True)
    ):
        nth = scores[n - 1]
        if k > n and scores[n] == nth > -math.inf:  # rare: exact ties at the border
            where = torch.nonzero(total[row] >= nth).squeeze(1)
            scores, index = total[row, where].tolist(), where.tolist()
        else:
            scores, index = scores[:n], index[:n]
        if len(set(scores)) < len(scores):  # equal scores: the raw logits decide, then ids
            logit = raw[row, index].tolist()
            ranked = sorted(
                zip(scores, logit, index, strict=True), key=lambda c: (-c[0], -c[1], c[2])
            )
            scores, index = [c[0] for c in ranked[:n]], [c[2] for c in ranked[:n]]
        rows.append(list(zip(scores, index, strict=True)))
    return rows


def _search_over(
    done: list[Hypothesis], live: list[tuple[int, int, float]], length: int, cfg: BeamConfig
) -> bool:
    """An input is finished when it has a full beam of finished hypotheses, or (without a
    length penalty, where scores only fall as hypotheses grow) when no live one can still beat
    the n-best finished ones."""
    if len(done) >= cfg.beam_size:
        return True
    if cfg.length_penalty == "none" and len(done) >= cfg.n_best:
        worst_kept = sorted((h.score for h in done), reverse=True)[cfg.n_best - 1]
        return max(score for _, _, score in live) <= worst_kept
    return False
