"""Decoding against hand-computed distributions and hand-made log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from charrnn import decode
from charrnn.decode import BeamConfig, SampleConfig
from charrnn.errors import UsageError
from charrnn.generate import TextAssembler
from charrnn.tokenizer import EOS_ID, CharTokenizer

NEG = -math.inf


def _logits(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor([probs]))


def _kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits[0]).nonzero().flatten().tolist()


def test_temperature_scales_logits_before_the_filters():
    logits = _logits(0.6, 0.3, 0.1)
    # at T=1 top-p 0.85 keeps two tokens; at T=0.5 the distribution sharpens to
    # (0.36, 0.09, 0.01)/0.46 = (0.783, 0.196, 0.022): 0.783 < 0.85, so still two
    kept_t1 = _kept(decode.filter_logits(logits, SampleConfig(top_p=0.85)))
    kept_sharp = _kept(decode.filter_logits(logits, SampleConfig(temperature=0.25, top_p=0.85)))
    assert kept_t1 == [0, 1] and kept_sharp == [0]  # T=0.25: 0.6^4/(sum) = 0.988 >= 0.85
    scaled = decode.filter_logits(logits, SampleConfig(temperature=2.0))
    torch.testing.assert_close(scaled.softmax(-1), (logits / 2).softmax(-1))  # p^(1/T), normalised
    # a tiny temperature is greedy, not inf - inf: the top logit stays, the others are -inf
    for cfg in (SampleConfig(temperature=1e-39), SampleConfig(temperature=1e-39, top_k=2)):
        assert _kept(decode.filter_logits(torch.tensor([[-3.0, -1.0, -2.0]]), cfg)) == [1]


class TableStepper:
    """A 'model' whose next-token log-probabilities depend only on the last token."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int) -> None:
        self.table = torch.full((vocab, vocab), NEG)
        for prev, nexts in table.items():
            for token, prob in nexts.items():
                self.table[prev, token] = math.log(prob)
        self.calls = 0

    def start(self, last_tokens):
        state = torch.tensor(last_tokens)
        return self.table[state], state

    def step(self, tokens, state):
        self.calls += 1
        return self.table[tokens], tokens

    def select(self, state, index):
        return state[index]


A, B, C = 4, 5, 6
# greedy goes A (0.6) then A (0.55): 0.33; beam finds B B (0.4 * 0.9 = 0.36)
TABLE = {1: {A: 0.6, B: 0.4}, A: {A: 0.55, B: 0.45}, B: {B: 0.9, EOS_ID: 0.1}, C: {EOS_ID: 1.0}}


def test_beam_finds_what_greedy_misses_and_beam_1_is_greedy():
    stepper = TableStepper(TABLE, 7)
    logits, state = stepper.start([1])
    greedy = decode.sample(
        stepper, logits, state, SampleConfig(temperature=0, length=2), histories=[[1]]
    )
    assert greedy[0].tokens[0] == A
    logits, state = stepper.start([1])
    one = decode.beam_search(
        stepper, logits, state, BeamConfig(beam_size=1, max_len=2), histories=[[1]]
    )
    assert one[0][0].tokens == greedy[0].tokens
    assert one[0][0].logprob == pytest.approx(greedy[0].logprob)
    logits, state = stepper.start([1])
    two = decode.beam_search(
        stepper, logits, state, BeamConfig(beam_size=2, max_len=2, n_best=2), histories=[[1]]
    )
    assert two[0][0].tokens == [B, B]
    assert two[0][0].logprob == pytest.approx(math.log(0.36))
    assert two[0][1].logprob == pytest.approx(math.log(0.33))


def test_beam_eos_min_len_and_length_penalty():
    table = {1: {B: 1.0}, B: {B: 0.5, EOS_ID: 0.5}}
    stepper = TableStepper(table, 7)
    run = lambda **kw: decode.beam_search(  # noqa: E731
        stepper,
        *stepper.start([1]),
        BeamConfig(beam_size=3, max_len=6, n_best=3, **kw),
        histories=[[1]],
    )
    hyps = run()[0]
    assert [h.tokens for h in hyps][0] == [B]  # B <eos> has the highest raw probability
    assert all(h.finished == "eos" for h in hyps)
    assert hyps[0].logprob == pytest.approx(math.log(0.5))
    at_least_3 = run(min_len=3)[0]  # <eos> is banned until 3 tokens are out
    assert [h.tokens for h in at_least_3][0] == [B, B, B]
    assert min(len(h.tokens) for h in at_least_3) == 3
    assert at_least_3[0].logprob == pytest.approx(math.log(0.125))
    for h in run(length_penalty="gnmt", alpha=2.0)[0]:
        steps = len(h.tokens) + (h.finished == "eos")  # <eos> counts as a step
        assert h.score == pytest.approx(h.logprob / ((5 + steps) / 6) ** 2)
    avg = run(length_penalty="avg")[0]
    assert [h.tokens for h in avg] == [[B], [B, B], [B, B, B]]
    for h in avg:
        assert h.score == pytest.approx(h.logprob / (len(h.tokens) + 1))
    # a per-token average favours long outputs where each token is likely: after B, another
    # B has 0.9 and the end 0.1; the total prefers stopping early, the average going on
    longer = TableStepper({1: {B: 1.0}, B: {B: 0.9, EOS_ID: 0.1}}, 7)
    # (the search ends with a full beam of 3 finished hypotheses: B, BB and BBB, then <eos>)
    for penalty, best in (("none", [B]), ("avg", [B, B, B])):
        hyps = decode.beam_search(
            longer,
            *longer.start([1]),
            BeamConfig(beam_size=3, max_len=6, length_penalty=penalty),
            histories=[[1]],
        )
        assert hyps[0][0].tokens == best


class CoveringStepper(TableStepper):
    """A TableStepper whose tokens attend to a two-token source: A looks at the first source
    token, B at the second, <eos> at neither. Its state is (last token, attention received by
    source token 1, by source token 2)."""

    LOOKS = {A: (1.0, 0.0), B: (0.0, 1.0)}

    def start(self, last_tokens):
        state = torch.tensor([[t, 0.0, 0.0] for t in last_tokens])
        return self.table[state[:, 0].long()], state

    def step(self, tokens, state):
        looks = torch.tensor([self.LOOKS.get(int(t), (0.0, 0.0)) for t in tokens])
        return self.table[tokens], torch.cat([tokens[:, None].float(), state[:, 1:] + looks], 1)

    def track_coverage(self, state):
        return state  # its state always carries the attention received

    def coverage_scores(self, state):
        return state[:, 1:].clamp(1e-6, 1.0).log().sum(-1)


def test_coverage_penalty_favours_outputs_that_cover_the_source():
    # "A" <eos>: 0.6 x 0.9 = 0.54, but source token 2 never attended to (log 1e-6 = -13.8);
    # "A B" <eos>: 0.6 x 0.1 x 1.0 = 0.06, every source token covered (coverage term 0)
    table = {1: {A: 0.6, B: 0.4}, A: {EOS_ID: 0.9, B: 0.1}, B: {EOS_ID: 1.0}}
    stepper = CoveringStepper(table, 7)

    def best(beta):
        cfg = BeamConfig(beam_size=3, max_len=4, n_best=2, coverage_penalty=beta)
        return decode.beam_search(stepper, *stepper.start([1]), cfg, histories=[[1]])[0]

    plain = best(0.0)
    assert plain[0].tokens == [A] and plain[0].score == pytest.approx(math.log(0.54))
    covered = best(0.2)
    assert covered[0].tokens == [A, B]
    assert covered[0].score == pytest.approx(math.log(0.06))  # + 0.2 x 0
    assert covered[1].tokens == [A]
    assert covered[1].score == pytest.approx(math.log(0.54) + 0.2 * math.log(1e-6))
    assert covered[1].logprob == pytest.approx(math.log(0.54))  # the model's own


def test_coverage_penalty_needs_attention():
    stepper = TableStepper(TABLE, 7)
    with pytest.raises(UsageError, match="attention"):
        decode.beam_search(
            stepper, *stepper.start([1]), BeamConfig(coverage_penalty=0.2), histories=[[1]]
        )


def test_beam_batch_equals_one_by_one():
    stepper = TableStepper(TABLE, 7)
    starts = [1, A, B, C]
    batch = decode.beam_search(
        stepper,
        *stepper.start(starts),
        BeamConfig(beam_size=3, max_len=4, n_best=2),
        histories=[[s] for s in starts],
    )
    for i, s in enumerate(starts):
        alone = decode.beam_search(
            stepper,
            *stepper.start([s]),
            BeamConfig(beam_size=3, max_len=4, n_best=2),
            histories=[[s]],
        )
        assert [(h.tokens, round(h.score, 6)) for h in alone[0]] == [
            (h.tokens, round(h.score, 6)) for h in batch[i]
        ]


def test_ties_break_towards_the_lowest_index_like_argmax():
    stepper = TableStepper({1: {A: 0.5, B: 0.5}, A: {A: 0.5, B: 0.5}, B: {A: 0.5, B: 0.5}}, 7)
    hyps = decode.beam_search(
        stepper, *stepper.start([1]), BeamConfig(beam_size=1, max_len=3), histories=[[1]]
    )
    assert hyps[0][0].tokens == [A, A, A]


def test_beam_1_is_greedy_under_ties_and_rounding():
    tied = list(range(4, 12))  # eight equally likely tokens: topk alone picks among them freely
    stepper = TableStepper({1: {t: 1 / 8 for t in tied}, **{t: {EOS_ID: 1.0} for t in tied}}, 12)
    greedy = decode.sample(
        stepper, *stepper.start([1]), SampleConfig(temperature=0, length=3), histories=[[1]]
    )
    beam1 = decode.beam_search(
        stepper, *stepper.start([1]), BeamConfig(beam_size=1, max_len=3), histories=[[1]]
    )
    assert greedy[0].tokens == beam1[0][0].tokens == [4]
    # logits 1 ulp apart become equal log-probabilities: the larger logit still wins
    row = torch.full((1, 4096), 0.99)
    row[0, 5], row[0, 9] = 1.0, torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    logprobs = torch.log_softmax(row, -1)[0]
    assert logprobs[5] == logprobs[9]
    beam1 = decode.beam_search(
        stepper, row, torch.tensor([1]), BeamConfig(beam_size=1, max_len=1), histories=[[1]]
    )
    assert beam1[0][0].tokens == [9] == [int(row.argmax())]


def test_a_row_with_every_token_banned_ends_without_one():
    # tokens A, B, C only: with --no-repeat-ngram 1 a row can use each once, then has none
    stepper = TableStepper({t: {A: 0.5, B: 0.3, C: 0.2} for t in (1, A, B, C)}, 7)
    for cfg in (
        SampleConfig(temperature=0, length=10, no_repeat_ngram=1),
        SampleConfig(top_k=2, length=10, no_repeat_ngram=1),
    ):
        out = decode.sample(
            stepper,
            *stepper.start([1, 1]),
            cfg,
            histories=[[1], [1]],
            generator=torch.Generator().manual_seed(0),
        )
        for s in out:
            assert sorted(s.tokens) == [A, B, C] and s.finished == "banned"
            expected = sum(math.log(p) for p in (0.5, 0.3, 0.2))  # each drawn once, any order
            assert s.logprob == pytest.approx(expected)
    hyps = decode.beam_search(
        stepper,
        *stepper.start([1, 1]),
        BeamConfig(beam_size=2, n_best=2, max_len=10, no_repeat_ngram=1),
        histories=[[1], [1]],
    )
    for per_input in hyps:  # every input still gets its hypotheses
        assert [h.finished for h in per_input] == ["banned", "banned"]
        assert sorted(per_input[0].tokens) == [A, B, C]


def test_streaming_blocks_come_at_least_every_block_seconds(monkeypatch):
    stepper = TableStepper({1: {A: 0.5, B: 0.5}, A: {A: 0.5, B: 0.5}, B: {A: 0.5, B: 0.5}}, 7)
    blocks = []

    def draw():
        blocks.clear()
        decode.sample(
            stepper,
            *stepper.start([1]),
            SampleConfig(length=20),
            histories=[[1]],
            on_block=lambda rows, tokens: blocks.append(len(tokens[0])),
        )
        return list(blocks)

    assert draw() == [20]  # a fast model: one block
    monkeypatch.setattr(decode, "BLOCK_SECONDS", 0.0)
    assert draw() == [1] * 20  # a slow one (every step takes longer than BLOCK_SECONDS)


def test_finished_rows_leave_the_batch():
    stepper = TableStepper({1: {C: 1.0}, C: {EOS_ID: 1.0}, A: {A: 1.0}}, 7)
    logits, state = stepper.start([1, A])
    out = decode.sample(
        stepper, logits, state, SampleConfig(temperature=0, length=10), histories=[[1], [A]]
    )
    assert out[0].tokens == [C] and out[0].finished == "eos"
    assert out[1].tokens == [A] * 10 and out[1].finished == "length"


def test_sampling_follows_the_filtered_distribution():
    stepper = TableStepper({1: {A: 0.5, B: 0.25, C: 0.25}}, 7)
    logits, state = stepper.start([1] * 4000)
    gen = torch.Generator().manual_seed(0)
    out = decode.sample(
        stepper,
        logits,
        state,
        SampleConfig(length=1, top_p=0.6),
        histories=[[1]] * 4000,
        generator=gen,
    )
    counts = {t: sum(o.tokens == [t] for o in out) for t in (A, B, C)}
    # top-p 0.6 keeps A (0.5) and the first of the tied 0.25s: 2/3 vs 1/3
    assert counts[A] / 4000 == pytest.approx(2 / 3, abs=0.03)
    assert counts[C] == 0  # the tie at 0.25 keeps the lower id, B
    assert all(
        o.logprob == pytest.approx(math.log({A: 0.5, B: 0.25, C: 0.25}[o.tokens[0]]))
        for o in out[:20]
    )


def test_same_seed_same_samples():
    stepper = TableStepper({1: {A: 0.5, B: 0.5}, A: {A: 0.5, B: 0.5}, B: {A: 0.5, B: 0.5}}, 7)

    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return [
            s.tokens
            for s in decode.sample(
                stepper,
                *stepper.start([1, 1]),
                SampleConfig(length=30),
                histories=[[1], [1]],
                generator=gen,
            )
        ]

    assert draw(3) == draw(3) and draw(3) != draw(4)


def test_each_rows_noise_comes_in_draws_of_one_shape_however_it_is_batched(monkeypatch):
    """A GPU's random numbers depend on how many are drawn at once: a row that draws the same
    shapes from its own generator gets the same numbers alone or in any batch."""
    stepper = TableStepper({1: {A: 0.5, B: 0.5}, A: {A: 0.5, B: 0.5}, B: {A: 0.5, B: 0.5}}, 7)
    shapes: dict[int, list] = {}  # generator -> the shapes drawn from it
    real = decode._gumbel

    def spy(shape, generator, device):
        shapes.setdefault(id(generator), []).append(tuple(shape))
        return real(shape, generator, device)

    monkeypatch.setattr(decode, "_gumbel", spy)

    def draw(limits):
        shapes.clear()
        gens = [torch.Generator().manual_seed(k) for k in range(len(limits))]
        decode.sample(
            stepper,
            *stepper.start([1] * len(limits)),
            SampleConfig(length=max(limits)),
            histories=[[1]] * len(limits),
            generator=gens,
            max_lens=limits,
        )
        return shapes[id(gens[0])]

    alone = draw([300])
    assert alone == [(decode.row_block_steps(7), 7)] * 2  # 300 steps: two blocks of 256
    assert draw([300, 40, 600]) == alone and draw([300] * 50) == alone


def test_text_assembler_holds_back_possible_stop_strings():
    tok = CharTokenizer.build("ab\n")
    ids = {c: int(tok.encode(c)[0]) for c in "ab\n"}
    text = TextAssembler(tok.stream_decoder(), stops=["\n\n"])
    assert text.feed(ids["a"]) == "a"
    assert text.feed(ids["\n"]) == ""  # might start "\n\n"
    assert text.feed(ids["b"]) == "\nb"
    assert text.feed(ids["\n"]) == ""
    assert text.feed(ids["\n"]) == "" and text.done  # the stop string is never emitted
    # the earliest stop string ends the text, whatever order the stops were given in
    for stops in (["ab", "b"], ["b", "ab"]):
        text = TextAssembler(tok.stream_decoder(), stops=stops)
        assert "".join(text.feed(ids[c]) for c in "aab") + text.finish() == "a"
    capped = TextAssembler(tok.stream_decoder(), max_chars=2)
    assert capped.feed(ids["a"]) + capped.feed(ids["b"]) == "ab" and capped.done


def test_a_limit_that_cuts_before_a_stop_string_is_the_reason():
    class Pieces:  # a stream decoder of multi-character tokens, as BPE's are
        def feed_one(self, token):
            return {1: "abcd", 2: "efXY"}[token]

        def flush(self):
            return ""

    for max_chars, text, reason in (
        (5, "abcde", "length"),
        (6, "abcdef", "stop"),
        (9, "abcdef", "stop"),
    ):
        assembler = TextAssembler(Pieces(), stops=["XY"], max_chars=max_chars)
        out = assembler.feed(1) + assembler.feed(2) + assembler.finish()
        assert (out, assembler.reason) == (text, reason), max_chars


@pytest.mark.parametrize(
    "bad",
    [
        dict(length=0),
        dict(temperature=-1),
        dict(top_k=-1),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(min_p=1.0),
        dict(repetition_penalty=0.0),
        dict(no_repeat_ngram=-1),
    ],
)
def test_sample_config_ranges(bad):
    with pytest.raises(UsageError):
        SampleConfig(**bad).check()


@pytest.mark.parametrize(
    "bad",
    [
        dict(beam_size=0),
        dict(n_best=6),
        dict(max_len=0),
        dict(min_len=500),
        dict(length_penalty="log"),
        dict(coverage_penalty=-0.1),
        dict(coverage_penalty=math.nan),
    ],
)
def test_beam_config_ranges(bad):
    with pytest.raises(UsageError):
        BeamConfig(**bad).check()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_per_row_length_limits_across_noise_blocks(temperature):
    stepper = TableStepper({1: {A: 0.5, B: 0.5}, A: {A: 0.5, B: 0.5}, B: {A: 0.5, B: 0.5}}, 7)
    limits = [2, 5, 130, 64]  # 130 spans several blocks of drawn noise
    out = decode.sample(
        stepper,
        *stepper.start([1] * 4),
        SampleConfig(temperature=temperature, length=500),
        histories=[[1]] * 4,
        max_lens=limits,
        generator=torch.Generator().manual_seed(0),
    )
    assert [len(o.tokens) for o in out] == limits
    assert all(o.finished == "length" for o in out)
    assert all(o.logprob == pytest.approx(len(o.tokens) * math.log(0.5)) for o in out)


def test_gumbel_noise_reaches_the_far_tail(monkeypatch):
    # float32 uniforms stop at 1 - 2^-24, which capped the noise near 16.6: tokens 17 nats
    # below the top were almost never drawn, however many of them a large vocabulary holds
    rand = torch.rand

    def near_one(shape, *, generator=None, device=None, dtype=torch.float32):
        return torch.full(shape, 1 - 2.0**-40, dtype=dtype, device=device)

    monkeypatch.setattr(torch, "rand", near_one)
    noise = decode._gumbel((2, 3), None, "cpu")
    assert noise.dtype == torch.float32 and bool((noise > 27).all())  # -log(2^-40) = 27.7
    monkeypatch.setattr(torch, "rand", rand)
    g = torch.Generator().manual_seed(0)
    sample = decode._gumbel((200_000,), g, "cpu").double()
    assert abs(sample.mean().item() - 0.5772) < 0.01  # Euler's constant
    assert abs(sample.var().item() - math.pi**2 / 6) < 0.03
