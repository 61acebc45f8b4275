"""The seq2seq model, its batches and scoring, checked against step-by-step and per-pair
references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn import models
from charrnn.config import ModelConfig
from charrnn.data import load_dataset
from charrnn.kinds.seq2seq import PairBatches, Seq2SeqStepper, make_batch, score_pairs
from charrnn.pairs import tokenize_pairs
from charrnn.tokenizer import BOS_ID, EOS_ID, PAD_ID

ATTENTIONS = ["dot", "general", "additive", "none"]
SEQ2SEQ = [name for name, entry in models.MODELS.items() if entry.kind == "seq2seq"]


def _model(name="seq2seq-gru", **kw):
    torch.manual_seed(0)
    config = ModelConfig(**{"embed_size": 8, "hidden_size": 12, **kw})
    return models.build(name, config, vocab_size=15, source_vocab_size=17).eval()


def _batch():
    src = torch.tensor([[5, 6, 7, EOS_ID, PAD_ID], [8, 9, 10, 11, EOS_ID], [12, EOS_ID, 0, 0, 0]])
    lengths = torch.tensor([4, 5, 2])
    tgt_in = torch.tensor([[BOS_ID, 5, 6], [BOS_ID, 7, 8], [BOS_ID, 9, 10]])
    return src, lengths, tgt_in


@pytest.mark.parametrize("name", SEQ2SEQ)
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("onednn", [False, True])
def test_stepwise_decoding_equals_teacher_forcing(name, attention, onednn, monkeypatch):
    """Teacher forcing runs the output layer once over all steps; decoding, step by step."""
    from charrnn.models import packed

    # with onednn, every decoding product takes the packed oneDNN path, however small
    monkeypatch.setattr(packed, "pays", lambda weights, rows: onednn)
    model = _model(name, attention=attention, num_layers=2, scaled_attention=onednn)
    src, lengths, tgt_in = _batch()
    logits, weights = model(src, lengths, tgt_in)
    with torch.no_grad():
        state = model.encode(src, lengths)
        for t in range(tgt_in.shape[1]):
            step_logits, state = model.step(tgt_in[:, t], state)
            torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
    assert (weights is None) == (attention == "none")


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_scaled_attention_divides_the_scores_by_sqrt_hidden(attention):
    plain, scaled = (_model(attention=attention, scaled_attention=s) for s in (False, True))
    src, lengths, tgt_in = _batch()
    with torch.no_grad():
        state = plain.encode(src, lengths)
        h = torch.randn(3, 12)
        _, weights = plain.attention(h, state.keys, state.memory, state.mask)
        _, weights_scaled = scaled.attention(h, state.keys, state.memory, state.mask)
        if attention == "additive":  # its v learns the scale: nothing to divide
            torch.testing.assert_close(weights_scaled, weights)
            return
        scores = torch.bmm(state.keys, h[:, :, None]).squeeze(-1)
        expected = torch.softmax(scores.masked_fill(~state.mask, -math.inf) / 12**0.5, -1)
        torch.testing.assert_close(weights_scaled, expected)
        assert not torch.allclose(weights_scaled, weights)


def test_checkpoints_from_before_scaled_attention_load_unscaled():
    from charrnn.config import KIND_DEFAULTS, from_dict

    saved = {"cell": "gru", "hidden_size": 12, "attention": "general"}  # no such field then
    assert from_dict(ModelConfig, saved).scaled_attention is False
    assert KIND_DEFAULTS["seq2seq"]["model"]["scaled_attention"] is True


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_changes_nothing_and_attention_masks_it(attention, bidirectional):
    model = _model("seq2seq-lstm", attention=attention, bidirectional=bidirectional)
    src, lengths, tgt_in = _batch()
    logits, weights = model(src, lengths, tgt_in)
    for row, n in enumerate(lengths.tolist()):
        alone, alone_w = model(
            src[row : row + 1, :n], lengths[row : row + 1], tgt_in[row : row + 1]
        )
        torch.testing.assert_close(logits[row], alone[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(weights[row, :, :n], alone_w[0], rtol=1e-5, atol=1e-5)
        assert torch.all(weights[row, :, n:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3))


def test_without_input_feeding_and_tied_embeddings():
    model = _model(input_feeding=False, embed_size=12, tie_weights=True)
    assert model.head.weight is model.tgt_embed.weight
    assert model.decoder.rnn.input_size == 12
    logits, _ = model(*_batch())
    assert logits.shape == (3, 3, 15)


def test_scheduled_sampling_feeds_own_predictions():
    model = _model()
    src, lengths, tgt_in = _batch()
    torch.manual_seed(1)
    forced, _ = model(src, lengths, tgt_in, sample_prob=0.0)
    torch.manual_seed(1)
    own, _ = model(src, lengths, tgt_in, sample_prob=1.0)
    torch.testing.assert_close(own[:, 0], forced[:, 0])  # the first input is always <bos>
    assert not torch.allclose(own[:, 1:], forced[:, 1:])


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    words = ["a", "bb", "ccc", "dddd", "eeeee"]
    lines = [
        " ".join(rng.choice(words, rng.integers(1, 8))) + "\t" + "".join(rng.choice(words, 2))
        for _ in range(300)
    ]
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n")
    tokenize_pairs([str(tmp_path / "p.tsv")], tmp_path / "d")
    return load_dataset(tmp_path / "d")


def test_batches_cover_each_pair_once_grouped_by_length(pairs):
    split = pairs.split("train")
    batches = PairBatches(split, batch_size=8, seed=1)
    plan = batches.plan(0)
    assert plan.shape == (len(split) // 8, 8)
    assert len(set(plan.ravel().tolist())) == plan.size
    lengths = np.diff(split.source_offsets)[plan]
    assert (lengths.max(1) - lengths.min(1)).mean() < 2  # neighbours in length
    assert not np.array_equal(plan, batches.plan(1)) and np.array_equal(plan, batches.plan(0))
    src, lens, tgt_in, tgt_out = batches.batch(0, 0)
    assert torch.all(tgt_in[:, 0] == BOS_ID)
    assert int((tgt_out == EOS_ID).sum()) == 8
    assert torch.all(src[torch.arange(8), lens - 1] == EOS_ID)


def test_pairs_left_out_of_an_epoch_are_random_not_the_longest():
    class Split:  # pairs 0..999, pair i with a source of i + 1 tokens
        source_offsets = np.concatenate([[0], np.cumsum(np.arange(1, 1001))])

        def __len__(self):
            return 1000

    batches = PairBatches(Split(), batch_size=16, seed=3)  # 62 batches: 8 pairs left out
    left_out = [i for e in range(20) for i in set(range(1000)) - set(batches.plan(e).ravel())]
    assert len(left_out) == 160
    assert 300 < np.mean(left_out) < 700  # they were the longest of the last pool: about 960


def test_score_pairs_equals_a_naive_loop(pairs):
    model = models.build(
        "seq2seq-gru",
        ModelConfig(embed_size=8, hidden_size=12),
        pairs.target_tokenizer.vocab_size,
        pairs.source_tokenizer.vocab_size,
    )
    split = pairs.split("val")
    result = score_pairs(model, split, pairs.stats("val"), torch.device("cpu"), batch_size=7)
    total, tokens = 0.0, 0
    for i in range(len(split)):
        src, lengths, tgt_in, tgt_out = make_batch(split, [i])
        with torch.no_grad():
            logits, _ = model.eval()(src, lengths, tgt_in)
        total += float(F.cross_entropy(logits[0], tgt_out[0], reduction="sum"))
        tokens += tgt_out.shape[1]
    assert result.tokens == tokens and result.nll == pytest.approx(total, rel=1e-5)
    assert result.chars == pairs.stats("val")["target"]["chars"] + len(split)


def test_stepper_batch_equals_one_by_one():
    model = _model()
    sources = [[5, 6, EOS_ID], [7, 8, 9, 10, 11, EOS_ID], [12, EOS_ID]]
    stepper = Seq2SeqStepper(model, torch.device("cpu"))
    logits, state = stepper.start(sources)
    tokens = torch.tensor([3 + 4, 9, 11])
    logits2, _ = stepper.step(tokens, state)
    for i, s in enumerate(sources):
        one, one_state = stepper.start([s])
        torch.testing.assert_close(logits[i], one[0], rtol=1e-5, atol=1e-5)
        two, _ = stepper.step(tokens[i : i + 1], one_state)
        torch.testing.assert_close(logits2[i], two[0], rtol=1e-5, atol=1e-5)


def test_attention_health_by_hand():
    from charrnn.kinds.seq2seq import attention_health

    # pair 0: source of 4 tokens, every step looks at its end token only (a collapse);
    # pair 1: source of 2 tokens (2 padded), attention spread evenly; its 3rd step is padding
    weights = torch.zeros(2, 3, 4)
    weights[0, :, 3] = 1.0
    weights[1, :, :2] = 0.5
    lengths = torch.tensor([4, 2])
    steps = torch.tensor([[True, True, True], [True, True, False]])
    health = attention_health(weights, lengths, steps)
    assert health["attention_entropy"].tolist() == pytest.approx([0.0, 1.0])
    assert health["attention_on_end"].tolist() == pytest.approx([1.0, 0.5])
    # one step on the first token and one spread over three of four: mean of (0, log 3 / log 4)
    weights = torch.zeros(1, 2, 4)
    weights[0, 0, 0] = 1.0
    weights[0, 1, 1:] = 1 / 3
    health = attention_health(weights, torch.tensor([4]), torch.tensor([[True, True]]))
    assert health["attention_entropy"][0] == pytest.approx(0.5 * math.log(3) / math.log(4))
    assert health["attention_on_end"][0] == pytest.approx(0.5 / 3)


def test_evaluations_report_attention_health(pairs):
    torch.manual_seed(0)
    sizes = (pairs.target_tokenizer.vocab_size, pairs.source_tokenizer.vocab_size)
    model = models.build("seq2seq-gru", ModelConfig(embed_size=8, hidden_size=16), *sizes)
    split = pairs.split("val")
    result = score_pairs(model, split, pairs.stats("val"), torch.device("cpu")).as_dict()
    assert 0 < result["attention_entropy"] <= 1 and 0 < result["attention_on_end"] < 1
    config = ModelConfig(embed_size=8, hidden_size=16, attention="none")
    plain = models.build("seq2seq-gru", config, *sizes)
    assert "attention_entropy" not in score_pairs(plain, split, None, torch.device("cpu")).as_dict()


def test_label_smoothing_by_hand(pairs):
    from charrnn.kinds.seq2seq import PairTask

    torch.manual_seed(0)
    sizes = (pairs.target_tokenizer.vocab_size, pairs.source_tokenizer.vocab_size)
    model = models.build("seq2seq-gru", ModelConfig(embed_size=8, hidden_size=16), *sizes)
    model.eval()  # no dropout: the two losses see the same logits
    split = pairs.split("train")
    cpu = torch.device("cpu")
    plain = PairTask(split, None, None, batch_size=8, seed=0, device=cpu)
    smooth = PairTask(split, None, None, batch_size=8, seed=0, device=cpu, label_smoothing=0.2)
    batch = plain.batch(0, 0)
    src, lengths, tgt_in, tgt_out = batch
    logits, _ = model(src, lengths, tgt_in)
    logp = torch.log_softmax(logits.float(), -1)
    real = tgt_out != -100
    nll = -logp.gather(2, tgt_out.clamp_min(0)[..., None]).squeeze(2)[real].mean()
    uniform = -logp.mean(-1)[real].mean()  # the cross-entropy against a uniform target
    with torch.no_grad():
        assert float(plain.loss(model, batch)) == pytest.approx(float(nll), rel=1e-5)
        want = 0.8 * nll + 0.2 * uniform
        assert float(smooth.loss(model, batch)) == pytest.approx(float(want), rel=1e-5)


def test_decoding_sums_the_attention_for_the_coverage_penalty():
    torch.manual_seed(0)
    config = ModelConfig(embed_size=8, hidden_size=16, dropout=0.0)
    model = models.build("seq2seq-lstm", config, 12, 12).eval()
    stepper = Seq2SeqStepper(model, torch.device("cpu"))
    with torch.no_grad():
        _, state = stepper.start([[5, 6, EOS_ID], [7, EOS_ID]])  # the second one is padded
        state = stepper.track_coverage(state)
        first = state.weights.clone()
        _, state = stepper.step(torch.tensor([4, 4]), state)
    torch.testing.assert_close(state.coverage, first + state.weights)
    assert float(state.coverage[1, 2]) == 0.0  # padding is never attended to
    # GNMT's term by hand: sum over the real source tokens of log(min(coverage, 1))
    by_hand = [
        sum(math.log(min(float(state.coverage[row, i]), 1.0)) for i in range(length))
        for row, length in enumerate((3, 2))
    ]
    torch.testing.assert_close(stepper.coverage_scores(state), torch.tensor(by_hand))
