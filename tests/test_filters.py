"""Sampling filters against hand-computed distributions."""

from __future__ import annotations

import torch

from charrnn import filters


def _logits(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor([probs]))


def _kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits[0]).nonzero().flatten().tolist()


def test_top_k_keeps_k_largest_and_top_k_1_is_greedy():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert _kept(filters.top_k_filter(logits, 2)) == [1, 2]
    assert _kept(filters.top_k_filter(logits, 1)) == [int(logits.argmax())]
    assert torch.equal(filters.top_k_filter(logits, 0), logits)


def test_top_k_keeps_exactly_k_and_breaks_ties_like_argmax():
    tied = torch.tensor([[1.0, 3.0, 2.0, 3.0, 3.0, 0.0]])
    assert _kept(filters.top_k_filter(tied, 1)) == [1]  # argmax's pick among the three 3s
    assert _kept(filters.top_k_filter(tied, 2)) == [1, 3]
    assert _kept(filters.top_k_filter(tied, 4)) == [1, 2, 3, 4]  # all 3s, then the 2
    rows = torch.tensor([[0.0, 0.0, 0.0], [5.0, 1.0, 1.0]])
    assert torch.isfinite(filters.top_k_filter(rows, 2)).tolist() == [
        [True, True, False],
        [True, True, False],
    ]


def test_top_p_keeps_smallest_set_reaching_p():
    logits = _logits(0.125, 0.5, 0.125, 0.25)  # token 1 > token 3 > tokens 0, 2
    assert _kept(filters.top_p_filter(logits, 0.5)) == [1]
    assert _kept(filters.top_p_filter(logits, 0.75)) == [1, 3]  # 0.5 + 0.25 reaches 0.75
    assert len(_kept(filters.top_p_filter(logits, 0.76))) == 3
    assert len(_kept(filters.top_p_filter(logits, 0.9))) == 4  # 0.875 < 0.9: all four
    assert len(_kept(filters.top_p_filter(_logits(0.5, 0.3, 0.15, 0.05), 0.9))) == 3


def test_top_p_keeps_the_lowest_ids_among_ties():
    # as argmax and top-k do; an unstable sort kept ids 10..19 of 20 tied tokens
    for n in (4, 32, 4096):  # 1/n is exact in binary: the mass reaches 0.5 at n / 2
        kept = _kept(filters.top_p_filter(torch.zeros(1, n), 0.5))
        assert kept == list(range(n // 2)), n


def test_top_p_renormalised_probabilities():
    filtered = filters.top_p_filter(_logits(0.5, 0.25, 0.125, 0.125), 0.75)
    probs = torch.softmax(filtered, -1)[0]
    torch.testing.assert_close(probs, torch.tensor([2 / 3, 1 / 3, 0.0, 0.0]))


def test_min_p_relative_to_top_probability():
    logits = _logits(0.5, 0.25, 0.125, 0.125)
    assert _kept(filters.min_p_filter(logits, 0.3)) == [0, 1]  # floor 0.15
    assert _kept(filters.min_p_filter(logits, 0.25)) == [0, 1, 2, 3]


def test_repetition_penalty_is_ctrl_style():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False]])
    out = filters.repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_ngram_ban():
    ban = filters.NgramBan(3, [[5, 6, 7, 5, 6]])
    out = ban.apply(torch.zeros(1, 9))
    assert _kept(out) == [0, 1, 2, 3, 4, 5, 6, 8]  # 7 would repeat "5 6 7"
    ban.push([8])
    assert len(_kept(ban.apply(torch.zeros(1, 9)))) == 9
    ban.select([0, 0])
    ban.push([5, 9])
    assert ban.histories == [[5, 6, 7, 5, 6, 8, 5], [5, 6, 7, 5, 6, 8, 9]]
