"""The default language model: the width and dropout picked for a corpus and a budget."""

from __future__ import annotations

import math

import pytest

from charrnn import sizing
from charrnn.config import ModelConfig, TrainConfig

CONFIG = ModelConfig()
VOCAB = 69


def _speeds(at_512: float) -> dict[int, float]:
    """A machine whose speed falls with the square of the width, at_512 tokens/s at 512."""
    return {h: at_512 * (512 / h) ** 2 for h in sizing.LADDER}


def _choose(train_tokens: int, speed: dict, **train) -> sizing.Choice:
    return sizing.choose(
        name="lstm",
        config=CONFIG,
        vocab_size=VOCAB,
        train_tokens=train_tokens,
        train=TrainConfig(**train).limits(),
        speed=speed,
    )


def test_the_rule_by_hand():
    # 100 M tokens of text (never repeated) and a budget whose training time is 1,000 s at
    # exactly 10k tokens/s for every width: 10 M tokens, so the largest width with at most
    # 10M / TOKENS_PER_PARAM parameters
    speed = dict.fromkeys(sizing.LADDER, 10_000.0)
    seconds = 1000 / (1 - 2 * 0.025) + sizing.SETUP_SECONDS
    choice = _choose(100_000_000, speed, time_budget=seconds)
    assert choice.tokens == pytest.approx(10_000_000, rel=1e-6)
    allowed = 10_000_000 / sizing.TOKENS_PER_PARAM
    fitting = [h for h in sizing.LADDER if sizing.params_of("lstm", h, VOCAB, CONFIG) <= allowed]
    assert choice.hidden_size == fitting[-1]
    assert choice.dropout == 0.0  # a tenth of one pass over the text


def test_more_time_gives_a_larger_model_and_a_faster_machine_too():
    widths = [
        _choose(10**9, _speeds(30_000), time_budget=t).hidden_size for t in (120, 300, 600, 3600)
    ]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    slow = _choose(10**9, _speeds(10_000), time_budget=600).hidden_size
    fast = _choose(10**9, _speeds(100_000), time_budget=600).hidden_size
    assert slow < fast


def test_a_small_corpus_caps_the_model_and_regularises_it():
    big = _choose(10**9, _speeds(30_000), time_budget=3600)
    small = _choose(200_000, _speeds(30_000), time_budget=3600)
    assert small.hidden_size < big.hidden_size
    assert small.params <= sizing.PARAMS_PER_TOKEN * 200_000 or small.hidden_size == 128
    assert small.epochs > 10 and small.dropout == sizing.MAX_AUTO_DROPOUT
    assert big.dropout == 0.0


def test_dropout_grows_with_the_passes_over_the_corpus():
    assert [
        sizing.dropout_for(epochs) for epochs in (0.5, 1.0, 2.0, 4.0, 8.0, 100.0)
    ] == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3, 0.3])


def test_a_corpus_too_small_for_any_width_gets_the_smallest():
    choice = _choose(1_000, _speeds(30_000), time_budget=600)
    assert choice.hidden_size == sizing.LADDER[0]


def test_steps_and_epochs_limit_the_tokens_without_a_budget():
    speed = _speeds(30_000)
    by_steps = _choose(10**8, speed, max_steps=1000)
    assert by_steps.tokens == 1000 * 32 * 128
    by_epochs = _choose(10**6, speed, epochs=3.0)
    assert by_epochs.tokens == 3 * 10**6 and by_epochs.epochs == pytest.approx(3.0)


def test_speeds_follow_a_power_law_through_two_measurements():
    speeds = sizing.speeds({256: 80_000.0, 768: 14_000.0})
    assert speeds[256] == pytest.approx(80_000) and speeds[768] == pytest.approx(14_000)
    slope = math.log(14_000 / 80_000) / math.log(3)
    assert speeds[512] == pytest.approx(80_000 * 2**slope)


def test_measuring_a_speed_runs_real_steps():
    train = TrainConfig(batch_size=4, seq_len=16)
    import torch

    speed = sizing.measure_speed("lstm", CONFIG, VOCAB, train, torch.device("cpu"), "fp32", 32)
    assert speed > 0


def test_the_note_says_what_and_why():
    choice = sizing.Choice(512, 0.2, 12_000_000, 4.5, 33_500.0, 1_223_493)
    note = choice.note("--time-budget 600s")
    assert note.startswith("model: 512 units (1,223,493 parameters), dropout 0.2")
    assert "12.0M tokens at 33.5k tokens/s, 4.5 passes" in note and "--hidden-size" in note


def test_train_picks_the_model_and_flags_win(tmp_path, run, shakespeare_like):
    from conftest import ok

    small = ["--batch-size", "4", "--seq-len", "16", "--max-steps", "3", "--json"]
    picked = ok(run("train", shakespeare_like, "-o", tmp_path / "a", *small)).json()
    assert picked["model_config"]["hidden_size"] in sizing.LADDER
    log = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert '"event": "note"' in log and "picked for --max-steps 3" in log
    given = ["--hidden-size", "24", "--dropout", "0.15"]
    chosen = ok(run("train", shakespeare_like, "-o", tmp_path / "b", *small, *given)).json()
    assert chosen["model_config"]["hidden_size"] == 24
    assert chosen["model_config"]["dropout"] == 0.15
    assert "picked for" not in (tmp_path / "b" / "metrics.jsonl").read_text()


def test_seq2seq_embeddings_follow_the_vocabulary():
    from charrnn.sizing import seq2seq_embeddings

    base = ModelConfig(hidden_size=256)
    chars, note = seq2seq_embeddings(base, {}, [40, 13])
    assert chars == base and note is None  # characters: the narrow default
    pieces, note = seq2seq_embeddings(base, {}, [8000, 8000])
    assert (pieces.embed_size, pieces.tie_weights) == (256, True)
    assert "word pieces (8,000)" in note and "tied" in note
    untied, _ = seq2seq_embeddings(base, {"tie_weights": False}, [8000, 8000])
    assert (untied.embed_size, untied.tie_weights) == (256, False)
    given, note = seq2seq_embeddings(base, {"embed_size": 128}, [8000, 8000])
    assert given == base and note is None  # --embed-size wins


def test_seq2seq_label_smoothing_follows_the_vocabulary():
    from charrnn.sizing import seq2seq_label_smoothing

    base = TrainConfig()
    chars, note = seq2seq_label_smoothing(base, {}, [40, 13])
    assert chars.label_smoothing == 0.0 and note is None  # dates: sharper without
    pieces, note = seq2seq_label_smoothing(base, {}, [8000, 8000])
    assert pieces.label_smoothing == 0.3 and "label smoothing 0.3" in note
    given, note = seq2seq_label_smoothing(base, {"label_smoothing": 0.05}, [8000, 8000])
    assert given == base and note is None  # the flag wins (already in the config)


def test_no_repeat_default_follows_the_kind_and_vocabulary():
    from types import SimpleNamespace

    from charrnn.generate import no_repeat_default

    def trained(kind, vocab):
        return SimpleNamespace(
            kind=kind, translates=kind == "seq2seq", tokenizer=SimpleNamespace(vocab_size=vocab)
        )

    assert no_repeat_default(trained("seq2seq", 8000)) == 3
    assert no_repeat_default(trained("seq2seq", 40)) == 0  # dates repeat their digits
    assert no_repeat_default(trained("lm", 8000)) == 0
