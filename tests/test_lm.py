"""Language-model batches (truncated BPTT layout) and the full-pass evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn import models
from charrnn.config import ModelConfig
from charrnn.errors import CharrnnError
from charrnn.kinds import lm
from charrnn.tokenizer import BOS_ID

IDS = (np.arange(5000) + 4).astype(np.uint16)  # id = position + 4: unique, never <bos>


def test_stream_rows_continue_across_batches():
    batches = lm.LMBatches(IDS, batch_size=4, seq_len=16, seed=3)
    x0, y0, reset0 = batches.batch(0, 0)
    x1, y1, reset1 = batches.batch(0, 1)
    assert reset0 and not reset1
    assert x0.shape == (4, 16) and y0.dtype == torch.int64
    assert torch.all(x0[:, 0] == BOS_ID)
    # inputs are the targets shifted by one, and row r of batch 1 continues row r of batch 0
    assert torch.equal(x0[:, 1:], y0[:, :-1])
    assert torch.equal(x1[:, 0], y0[:, -1])
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    for r in range(4):
        seq = np.concatenate([y0[r].numpy(), y1[r].numpy()]) - 4  # positions in IDS
        assert np.array_equal(seq, np.arange(seq[0], seq[0] + 32))


def test_stream_epoch_covers_disjoint_rows_and_offsets_move():
    batches = lm.LMBatches(IDS, batch_size=4, seq_len=16, seed=3)
    seen = []
    for i in range(batches.steps_per_epoch):
        seen.append(batches.batch(0, i)[1])
    targets = torch.cat(seen, dim=1)  # (B, steps*T): each row a contiguous run
    for row in targets.numpy() - 4:  # each row is one contiguous run of the text
        assert np.array_equal(row, np.arange(row[0], row[0] + len(row)))
    assert len(set((targets.numpy() - 4).ravel().tolist())) == targets.numel()  # no overlap
    # each epoch starts its rows at another offset below seq_len, so chunk borders move
    firsts = {int(batches.batch(e, 0)[1][0, 0]) - 4 for e in range(8)}
    assert len(firsts) > 1 and all(0 <= f < 16 for f in firsts)


def test_ranks_take_disjoint_rows():
    a = lm.LMBatches(IDS, batch_size=2, seq_len=8, seed=1, rank=0, world_size=2)
    b = lm.LMBatches(IDS, batch_size=2, seq_len=8, seed=1, rank=1, world_size=2)
    whole = lm.LMBatches(IDS, batch_size=4, seq_len=8, seed=1)
    assert a.steps_per_epoch == whole.steps_per_epoch
    assert torch.equal(torch.cat([a.batch(0, 3)[1], b.batch(0, 3)[1]]), whole.batch(0, 3)[1])


def test_random_windows():
    batches = lm.LMBatches(IDS, batch_size=5, seq_len=12, mode="random", seed=0)
    x, y, reset = batches.batch(2, 7)
    assert reset and torch.all(x[:, 0] == BOS_ID) and torch.equal(x[:, 1:], y[:, :-1])
    assert not torch.equal(y, batches.batch(2, 8)[1])
    assert torch.equal(y, batches.batch(2, 7)[1])  # deterministic by position


def test_corpus_too_small_for_one_batch():
    with pytest.raises(CharrnnError, match="too small for one batch"):
        lm.LMBatches(IDS[:100], batch_size=8, seq_len=16)


@pytest.mark.parametrize(
    "segment,warmup,group,length",
    [
        (300, 0, 64, 300),
        (80, 8, 64, 301),
        (125, 64, 3, 2000),
        (4096, 256, 64, 50),
        (50, 16, 7, 5000),
    ],
)
def test_eval_chunks_score_every_token_once(segment, warmup, group, length):
    ids = IDS[:length]
    rows: list[list] = []
    groups = 0
    for inputs, targets, fresh in lm.eval_chunks(
        ids, seq_len=7, segment=segment, warmup=warmup, group=group
    ):
        if fresh:  # a new group of segments, each starting from a zero state
            groups += 1
            rows += [[] for _ in range(len(inputs))]
        for r in range(len(inputs)):
            rows[len(rows) - len(inputs) + r] += list(
                zip(inputs[r].tolist(), targets[r].tolist(), strict=True)
            )
    scored = [(inp, tgt) for row in rows for inp, tgt in row if tgt != lm.IGNORE]
    assert [t for _, t in scored] == ids.tolist()
    assert groups == math.ceil(math.ceil(length / segment) / group)
    if warmup:  # a segment's own first input is <bos>; with warm-up it is never scored
        assert [i for i, _ in scored] == [BOS_ID, *ids[:-1].tolist()]
    assert all(row[0][0] == BOS_ID for row in rows)  # every segment starts fed <bos>


def _naive_nll(model, ids: np.ndarray) -> float:
    seq = torch.tensor([[BOS_ID, *ids.tolist()]])
    with torch.no_grad():
        logits, _ = model(seq[:, :-1])
    return float(F.cross_entropy(logits[0], seq[0, 1:], reduction="sum"))


def test_evaluate_single_stream_equals_naive_pass():
    torch.manual_seed(0)
    model = models.build("gru", ModelConfig(embed_size=8, hidden_size=16), 260).eval()
    ids = (IDS[:700] % 250 + 4).astype(np.uint16)
    nll, count = lm.evaluate(model, ids, seq_len=33, device=torch.device("cpu"), segment=700)
    assert count == 700
    assert nll == pytest.approx(_naive_nll(model, ids), rel=1e-5)
    # segments scored side by side with warm-up give nearly the same number
    nll_seg, _ = lm.evaluate(
        model, ids, seq_len=33, device=torch.device("cpu"), segment=175, warmup=100
    )
    assert nll_seg == pytest.approx(nll, rel=1e-3)


def test_eval_result_units():
    result = lm.EvalResult(nll=100 * math.log(2), tokens=50, chars=200, bytes=400).as_dict()
    assert result["bits_per_token"] == pytest.approx(2.0)
    assert result["bpc"] == pytest.approx(0.5)
    assert result["bits_per_byte"] == pytest.approx(0.25)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))


def test_stream_rows_restart_at_random_with_bos():
    batches = lm.LMBatches(IDS, batch_size=8, seq_len=16, seed=3, reset_every=4)
    masks = [batches.batch(0, i)[2] for i in range(1, batches.steps_per_epoch)]
    restarts = [m for m in masks if isinstance(m, torch.Tensor)]
    # each row restarts once every 4 chunks on average
    rate = sum(int(m.sum()) for m in restarts) / (8 * len(masks))
    assert 0.25 * 0.7 < rate < 0.25 * 1.3, rate
    index = next(i for i, m in enumerate(masks, 1) if isinstance(m, torch.Tensor))
    inputs, targets, mask = batches.batch(0, index)
    assert torch.all(inputs[mask, 0] == BOS_ID)
    assert torch.all(inputs[~mask, 0] != BOS_ID)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # the text itself is unchanged
    never = lm.LMBatches(IDS, batch_size=8, seq_len=16, seed=3, reset_every=0)
    assert all(never.batch(0, i)[2] is False for i in range(1, never.steps_per_epoch))


def test_restarted_rows_start_from_a_zero_state():
    torch.manual_seed(0)
    model = models.build("lstm", ModelConfig(embed_size=8, hidden_size=16, dropout=0.0), 5100)
    task = lm.LMTask(
        IDS, None, None, batch_size=4, seq_len=16, mode="stream", seed=0, device=torch.device("cpu")
    )
    inputs, targets, _ = task.batch(0, 1)
    old = tuple(torch.full((1, 4, 16), 0.5) for _ in range(2))
    task.state = old
    mask = torch.tensor([True, False, True, False])
    task.loss(model, (inputs, targets, mask))
    with torch.no_grad():
        _, fresh = model(inputs[mask])  # restarted rows: from a zero state
        _, carried = model(inputs[~mask], tuple(s[:, ~mask] for s in old))
    for new, a, b in zip(task.state, fresh, carried, strict=True):
        torch.testing.assert_close(new[:, mask], a)
        torch.testing.assert_close(new[:, ~mask], b)
