"""Sampling filters over next-token logits, each tested against hand-computed distributions:
top-k, top-p (nucleus), min-p, temperature, CTRL's repetition penalty and the no-repeat-n-gram
ban. `charrnn.decode` applies them in its documented order."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep exactly the k largest logits per row; the rest become -inf. Among equal logits
    at the k-th place the lowest indices are kept, as argmax breaks ties (top-k 1 is greedy)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    above = logits > kth
    at = logits == kth
    places = k - above.sum(-1, keepdim=True)  # left for the logits equal to the k-th
    keep = above | (at & (at.cumsum(-1) <= places))
    return logits.masked_fill(~keep, -math.inf)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p."""
    if p >= 1.0:
        return logits
    # stable: among tied tokens the lower ids come first, and are the ones kept
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more likely tokens
    drop_sorted = before >= p  # the first token whose prefix already reaches p is kept
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def min_p_filter(logits: Tensor, min_p: float) -> Tensor:
    """Keep tokens whose probability is at least min_p times the most likely one's."""
    if min_p <= 0.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    floor = min_p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < floor, -math.inf)


def repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on tokens already in the text (`seen`: a bool mask, like logits)."""
    if penalty == 1.0:
        return logits
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


class NgramBan:
    """Each batch row's text and n-grams; bans tokens that would repeat an n-gram. Its rows
    follow the batch: `select` keeps, reorders or repeats them exactly as the stepper does."""

    def __init__(self, n: int, histories: Sequence[Sequence[int]]) -> None:
        self.n = n
        self.histories = [list(h) for h in histories]
        self.grams: list[dict[tuple, set[int]]] = []
        for history in self.histories:
            grams: dict[tuple, set[int]] = {}
            for i in range(len(history) - n + 1):
                grams.setdefault(tuple(history[i : i + n - 1]), set()).add(history[i + n - 1])
            self.grams.append(grams)

    def apply(self, logits: Tensor) -> Tensor:
        """Set to -inf, row by row, the tokens that would complete a repeated n-gram."""
        banned_rows, banned_tokens = [], []
        for row, history in enumerate(self.histories):
            if len(history) >= self.n - 1:
                key = tuple(history[len(history) - self.n + 1 :])
                for token in self.grams[row].get(key, ()):
                    banned_rows.append(row)
                    banned_tokens.append(token)
        if not banned_rows:
            return logits
        index = (
            torch.tensor(banned_rows, device=logits.device),
            torch.tensor(banned_tokens, device=logits.device),
        )
        return logits.index_put(index, torch.tensor(-math.inf, device=logits.device))

    def push(self, tokens: Sequence[int]) -> None:
        """Append one token to every row."""
        for row, token in enumerate(tokens):
            history = self.histories[row]
            history.append(token)
            if len(history) >= self.n:
                key = tuple(history[len(history) - self.n : -1])
                self.grams[row].setdefault(key, set()).add(token)

    def select(self, rows: Sequence[int]) -> None:
        """Keep rows `rows`, in that order (a repeated row is copied)."""
        used: set[int] = set()
        histories, grams = [], []
        for row in rows:
            if row in used:
                histories.append(list(self.histories[row]))
                grams.append({k: set(v) for k, v in self.grams[row].items()})
            else:
                used.add(row)
                histories.append(self.histories[row])
                grams.append(self.grams[row])
        self.histories, self.grams = histories, grams
