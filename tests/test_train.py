"""The training loop: exact resume, divergence guard, clipping, limits, schedule."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from charrnn import checkpoint, models, runs
from charrnn.config import ModelConfig, TokenizeConfig, TrainConfig
from charrnn.data import load_dataset, tokenize_corpus
from charrnn.errors import CharrnnError
from charrnn.kinds import lm
from charrnn.kinds.lm import LMTask
from charrnn.models.rnn import RNNLanguageModel
from charrnn.optim import LoopState, epoch_limit, learning_rate, progress_fraction
from charrnn.tokenizer import BOS_ID
from charrnn.train import Hooks, cpu_weights
from charrnn.trained import describe_checkpoint, load_trained

TINY_MODEL = {"embed_size": 16, "hidden_size": 32, "num_layers": 2, "dropout": 0.2}
TINY_TRAIN = {"batch_size": 16, "seq_len": 64, "eval_every": 5, "log_every": 1, "warmup_steps": 3}


@pytest.fixture
def data_dir(tmp_path, shakespeare_like):
    out = tmp_path / "data"
    tokenize_corpus([str(shakespeare_like)], out, TokenizeConfig())
    return out


def _records(run_dir, event="train"):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _train(data_dir, run_dir, *, stop_at=None, resume=False, model="lstm", **options):
    seen = {"step": 0}
    hooks = Hooks(
        on_step=lambda step, p: seen.update(step=step),
        should_stop=lambda: "SIGINT" if stop_at and seen["step"] >= stop_at else None,
    )
    return runs.start_training(
        None if resume else str(data_dir),
        run_dir,
        model_name=None if resume else model,
        model_options={} if resume else dict(TINY_MODEL),
        train_options={**TINY_TRAIN, **options},
        resume=resume,
        hooks=hooks,
    )


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_resume_is_exact(tmp_path, data_dir, model):
    # log records average 4 steps: the one at step 12 spans the interruption at step 11
    full = _train(data_dir, tmp_path / "full", max_steps=24, model=model, log_every=4)
    assert full["step"] == 24 and full["epoch"] >= 1  # crosses an epoch boundary
    half = _train(data_dir, tmp_path / "half", max_steps=24, stop_at=11, model=model, log_every=4)
    assert half["reason"] == "interrupted (SIGINT)" and half["step"] == 11
    resumed = _train(data_dir, tmp_path / "half", resume=True, max_steps=24, log_every=4)
    assert resumed["step"] == 24
    want = [(r["step"], r["loss"]) for r in _records(tmp_path / "full")]
    got = [(r["step"], r["loss"]) for r in _records(tmp_path / "half")]
    assert got == want  # identical, not approximately equal
    a = checkpoint.load(tmp_path / "full" / "last.pt")["weights"]
    b = checkpoint.load(tmp_path / "half" / "last.pt")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seq2seq_resume_is_exact(tmp_path):
    from charrnn.pairs import tokenize_pairs

    lines = "".join(f"{i} cats and {i % 7} dogs\t{i} chats et {i % 7} chiens\n" for i in range(400))
    (tmp_path / "p.tsv").write_text(lines)
    tokenize_pairs([str(tmp_path / "p.tsv")], tmp_path / "pairs")
    options = {"batch_size": 16, "eval_every": 5, "log_every": 1, "warmup_steps": 3}
    options["scheduled_sampling"] = 0.3  # its random draws must resume exactly too

    def train(run_dir, resume=False, stop_at=None):
        seen = {"step": 0}
        hooks = Hooks(
            on_step=lambda step, p: seen.update(step=step),
            should_stop=lambda: "SIGINT" if stop_at and seen["step"] >= stop_at else None,
        )
        return runs.start_training(
            None if resume else str(tmp_path / "pairs"),
            run_dir,
            model_name=None if resume else "seq2seq-gru",
            model_options={} if resume else {"embed_size": 8, "hidden_size": 16, "dropout": 0.2},
            train_options={**options, "max_steps": 24},
            resume=resume,
            hooks=hooks,
        )

    assert train(tmp_path / "full")["epoch"] >= 1  # crosses an epoch boundary
    assert train(tmp_path / "half", stop_at=11)["step"] == 11
    assert train(tmp_path / "half", resume=True)["step"] == 24
    want = [(r["step"], r["loss"], r["sampling_prob"]) for r in _records(tmp_path / "full")]
    assert [(r["step"], r["loss"], r["sampling_prob"]) for r in _records(tmp_path / "half")] == want
    # the logged chance of feeding the decoder its own prediction ramps over the run
    assert [r["sampling_prob"] for r in _records(tmp_path / "full")] == [
        pytest.approx(0.3 * step / 24) for step in range(24)
    ]
    a = checkpoint.load(tmp_path / "full" / "last.pt")["weights"]
    b = checkpoint.load(tmp_path / "half" / "last.pt")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_after_a_kill_logs_each_step_once(tmp_path, data_dir):
    _train(data_dir, tmp_path / "run", max_steps=6)
    log = tmp_path / "run" / "metrics.jsonl"
    lost = [json.dumps({"event": "train", "step": s, "loss": 99.0}) for s in (7, 8)]
    # steps logged after the last checkpoint, then a line cut short by kill -9
    log.write_text(log.read_text() + "\n".join(lost) + '\n{"event": "tra')
    _train(data_dir, tmp_path / "run", resume=True, max_steps=10)
    records = _records(tmp_path / "run")
    steps = [r["step"] for r in records]
    assert steps == list(range(1, 11)) and all(r["loss"] != 99.0 for r in records)


def test_checkpoint_is_self_contained(tmp_path, data_dir):
    _train(data_dir, tmp_path / "run", max_steps=5)
    data = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert data["format"] == "charrnn-checkpoint" and data["version"] == 1
    assert data["model"]["name"] == "lstm" and data["model"]["config"]["hidden_size"] == 32
    assert '"WordLevel"' in data["tokenizers"]["text"]
    train = data["train"]
    assert train["state"]["step"] == 5 and "optimizer" in train and "rng" in train
    assert len(train["task"]["hidden"]) == 2  # LSTM (h, c) carried across batches
    assert set(train["rng"]) >= {"python", "numpy", "torch"}
    assert data["command"] == "" and data["data"]["val"]["chars"] > 0
    assert all(t.device.type == "cpu" for t in data["weights"].values())


def test_tied_weights_are_stored_once_even_when_moving_them_copies(tmp_path, monkeypatch):
    model = models.build("lstm", ModelConfig(embed_size=16, hidden_size=16, tie_weights=True), 9)
    # a GPU tensor's .cpu() is a new copy each time: the CPU's returns the tensor itself
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self: self.clone())
    weights = cpu_weights(model)
    assert weights["embed.weight"] is weights["head.weight"]
    torch.save(weights, tmp_path / "w.pt")
    loaded = torch.load(tmp_path / "w.pt", weights_only=True)
    assert loaded["embed.weight"].data_ptr() == loaded["head.weight"].data_ptr()
    assert weights["rnn.rnn.weight_hh_l0"] is not weights["rnn.rnn.weight_ih_l0"]


def test_a_checkpoint_write_cut_short_leaves_the_old_file(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / "last.pt", {"weights": {"w": torch.ones(3)}})
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def cut_short(obj, f):  # half a file written, then the process is interrupted
        real_save(obj, f)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path / "last.pt", {"weights": {"w": torch.zeros(3)}})
    assert (tmp_path / "last.pt").read_bytes() == before  # the old one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    kept = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(kept["weights"]["w"], torch.ones(3))


def test_every_damaged_byte_of_a_checkpoint_is_a_clear_error(tmp_path, data_dir):
    """Each MARK opcode of the pickle turned into another opcode: torch's loader fails with
    TypeError, AssertionError, ... which must all become one clear error (or load)."""
    _train(data_dir, tmp_path / "run", max_steps=1)
    raw = (tmp_path / "run" / "last.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "run" / "last.pt") as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
        pickle_bytes = z.read(info)
    start = raw.find(pickle_bytes)  # torch stores its members uncompressed
    assert start > 0
    marks = [i for i, b in enumerate(pickle_bytes) if b == ord("(")]
    assert len(marks) > 20
    damaged = tmp_path / "damaged.pt"
    for i in marks:
        for opcode in b"]}N":
            changed = bytearray(raw)
            changed[start + i] = opcode
            damaged.write_bytes(changed)
            try:
                load_trained(damaged)
                describe_checkpoint(damaged)
            except CharrnnError:
                pass


WRONG_SHAPES = [
    {"model": "lstm"},
    {"model": {"name": "lstm", "config": [1, 2]}},
    {"tokenizers": "text"},
    {"tokenizers": {"text": 3}},
    {"weights": [torch.zeros(2)]},
    {"weights": {"head.weight": "x"}},
    {"kind": "gan"},
    {"train": [1]},
    {"train": {"state": "x"}},
    {"train": None},
    {"train": {"state": None}},
]


def test_a_checkpoint_header_of_the_wrong_shape_is_a_clear_error(tmp_path, data_dir):
    _train(data_dir, tmp_path / "run", max_steps=1)
    good = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    for change in WRONG_SHAPES:
        torch.save({**good, **change}, tmp_path / "odd.pt")
        for read in (load_trained, describe_checkpoint):
            with pytest.raises(CharrnnError, match="damaged checkpoint"):
                read(tmp_path / "odd.pt")


def test_divergence_guard_skips_and_rolls_back(tmp_path, data_dir, monkeypatch):
    original = LMTask.loss
    calls = {"n": 0}
    bad = {4, 9, 10, 11}  # one bad step, then three in a row

    def flaky(self, model, batch):
        calls["n"] += 1
        loss = original(self, model, batch)
        return loss * float("nan") if calls["n"] in bad else loss

    monkeypatch.setattr(LMTask, "loss", flaky)
    summary = _train(data_dir, tmp_path / "run", max_steps=12, dropout=None)
    assert summary["skipped_steps"] == 4 and summary["rollbacks"] == 1
    warnings = [r["message"] for r in _records(tmp_path / "run", "warning")]
    assert sum("update skipped" in w for w in warnings) == 4
    assert any("rolled back" in w for w in warnings)
    lrs = {r["step"]: r["lr"] for r in _records(tmp_path / "run")}
    cfg = TrainConfig(**{**TINY_TRAIN, "max_steps": 12})
    assert lrs[3] == pytest.approx(learning_rate(cfg, 2, 2 / 12))
    # the warmup ended at step 3 (progress 3/12); the rollback halved the rate once
    assert lrs[5] == pytest.approx(learning_rate(cfg, 4, 4 / 12, start=3 / 12) * 0.5)
    weights = checkpoint.load(tmp_path / "run" / "last.pt")["weights"]
    assert all(torch.isfinite(w).all() for w in weights.values())


class _InfiniteGradient(torch.autograd.Function):
    """The loss unchanged, its gradient infinite: an fp16 overflow in the backward pass."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_fp16_overflow_skips_the_update_and_lowers_the_scale(tmp_path, data_dir, monkeypatch):
    from charrnn import device as devices

    monkeypatch.setattr(devices, "needs_scaler", lambda precision: True)  # fp16 on CPU
    original = LMTask.loss
    calls = {"n": 0}

    def overflowing(self, model, batch):
        calls["n"] += 1
        loss = original(self, model, batch)
        return _InfiniteGradient.apply(loss) if calls["n"] == 5 else loss

    monkeypatch.setattr(LMTask, "loss", overflowing)
    summary = _train(data_dir, tmp_path / "run", max_steps=8, log_every=4)
    assert summary["step"] == 8 and summary["skipped_steps"] == 1 and summary["rollbacks"] == 0
    assert _records(tmp_path / "run", "warning") == []  # routine for fp16: not a divergence
    records = _records(tmp_path / "run")
    assert records[1]["fp16_overflows"] == 1 and "fp16_overflows" not in records[0]
    assert all(r["grad_norm"] < float("inf") for r in records)
    cfg = TrainConfig(**{**TINY_TRAIN, "max_steps": 8})
    assert records[1]["lr"] == pytest.approx(learning_rate(cfg, 7, 7 / 8, start=3 / 8))
    saved = checkpoint.load(tmp_path / "run" / "last.pt")["train"]["scaler"]
    assert saved["scale"] == 2.0**15  # halved once from 2 ** 16
    # a resume continues with the scaler's state
    assert _train(data_dir, tmp_path / "run", resume=True, max_steps=10)["step"] == 10


def test_resume_may_cut_the_epoch_into_other_batches(tmp_path, data_dir):
    _train(data_dir, tmp_path / "probe", max_steps=1)
    steps = checkpoint.load(tmp_path / "probe" / "last.pt")["train"]["state"]["epoch_steps"]
    # stop at the last batch of the first epoch, then resume with batches 4x as large: that
    # batch index is past the end of the new epoch
    _train(data_dir, tmp_path / "run", max_steps=steps + 5, stop_at=steps - 1)
    summary = _train(data_dir, tmp_path / "run", resume=True, batch_size=64, max_steps=steps + 1)
    assert summary["step"] == steps + 1
    state = checkpoint.load(tmp_path / "run" / "last.pt")["train"]["state"]
    assert state["epoch_steps"] < steps and state["epoch"] == 1


def test_resume_applies_a_new_weight_decay(tmp_path, data_dir):
    _train(data_dir, tmp_path / "run", max_steps=2, weight_decay=0.01)
    _train(data_dir, tmp_path / "run", resume=True, max_steps=3, weight_decay=0.5)
    groups = checkpoint.load(tmp_path / "run" / "last.pt")["train"]["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]  # matrices only


def test_the_default_time_budget_is_not_kept_as_the_runs_limit(tmp_path, data_dir, monkeypatch):
    from charrnn import config

    monkeypatch.setattr(config, "DEFAULT_TIME_BUDGET", 1.0)
    first = _train(data_dir, tmp_path / "run")  # no limit given: the default budget
    assert "time-budget" in first["reason"]
    saved = checkpoint.load(tmp_path / "run" / "last.pt")["train"]["config"]
    assert saved["time_budget"] is None
    more = _train(data_dir, tmp_path / "run", resume=True, max_steps=first["step"] + 2)
    assert more["step"] == first["step"] + 2 and "max-steps" in more["reason"]


def test_training_without_a_validation_split_says_so(tmp_path, shakespeare_like):
    tokenize_corpus([str(shakespeare_like)], tmp_path / "data", TokenizeConfig(val_frac=0.0))
    summary = _train(tmp_path / "data", tmp_path / "run", max_steps=6)
    assert summary["last_eval"] is None and not (tmp_path / "run" / "best.pt").exists()
    warnings = [r["message"] for r in _records(tmp_path / "run", "warning")]
    assert any("no validation split" in w for w in warnings)


def test_divergence_gives_up_after_repeated_rollbacks(tmp_path, data_dir, monkeypatch):
    original = LMTask.loss
    monkeypatch.setattr(LMTask, "loss", lambda self, m, b: original(self, m, b) * float("inf"))
    with pytest.raises(CharrnnError, match="diverged"):
        _train(data_dir, tmp_path / "run", max_steps=50)


def test_logged_gradient_norm_is_before_clipping(tmp_path, data_dir):
    _train(data_dir, tmp_path / "free", max_steps=2, clip_norm=0.0)
    _train(data_dir, tmp_path / "clipped", max_steps=2, clip_norm=1e-3, clip_value=1e-4)
    free, clipped = _records(tmp_path / "free"), _records(tmp_path / "clipped")
    assert clipped[0]["grad_norm"] == pytest.approx(free[0]["grad_norm"], rel=1e-6)
    assert clipped[0]["clipped"] == 1.0 and free[0]["clipped"] == 0.0
    assert set(free[0]["layer_grad_norms"]) == {"embed", "rnn.rnn.l0", "rnn.rnn.l1", "head"}
    for record in (free[0], clipped[0]):  # the layers' norms are taken before clipping too
        layers = record["layer_grad_norms"].values()
        assert math.hypot(*layers) == pytest.approx(record["grad_norm"], rel=1e-3)


def _peak_gradients():
    """The largest gradient element each optimizer step sees (after any clipping), and the
    hook's handle."""
    peaks: list[float] = []

    def hook(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        peaks.append(max(float(g.abs().max()) for g in grads))

    return peaks, register_optimizer_step_pre_hook(hook)


def test_clip_value_bounds_every_gradient_element(tmp_path, data_dir):
    peaks, handle = _peak_gradients()
    try:
        _train(data_dir, tmp_path / "free", max_steps=3, clip_norm=0.0, eval_every=1000)
        free = list(peaks)
        peaks.clear()
        _train(data_dir, tmp_path / "value", max_steps=3, clip_norm=0.0, clip_value=1e-4)
    finally:
        handle.remove()
    assert len(free) == 3 and min(free) > 1e-3  # the gradients are well above the bound
    assert len(peaks) == 3 and max(peaks) <= 1e-4 + 1e-12 and min(peaks) == pytest.approx(1e-4)
    assert all(r["clipped"] == 1.0 for r in _records(tmp_path / "value"))


def test_epochs_limit_ends_the_run_at_that_fraction_of_the_data(tmp_path, data_dir):
    one = _train(data_dir, tmp_path / "one", epochs=1, eval_every=1000)
    assert one["reason"] == "reached --epochs 1" and one["epoch"] == 1
    steps_per_epoch = one["step"]
    half = _train(data_dir, tmp_path / "half", epochs=1.5, eval_every=1000)
    assert half["reason"] == "reached --epochs 1.5" and half["epoch"] == 1
    assert half["step"] == -(-3 * steps_per_epoch // 2)  # ceil(1.5 epochs)


def test_epochs_count_passes_over_the_data_across_a_resume_with_another_batch_size(
    tmp_path, data_dir
):
    run = tmp_path / "run"
    first = _train(data_dir, run, epochs=1, eval_every=1000)
    resumed = _train(data_dir, run, resume=True, epochs=2, batch_size=8, eval_every=1000)
    assert resumed["reason"] == "reached --epochs 2" and resumed["epoch"] == 2
    state = checkpoint.load(run / "last.pt")["train"]["state"]
    assert state["index"] == 0 and state["epoch_steps"] > first["step"]  # smaller batches
    assert resumed["step"] == first["step"] + state["epoch_steps"]  # one more whole epoch


def test_a_resume_with_another_seq_len_drops_the_carried_state(tmp_path, data_dir, monkeypatch):
    _train(data_dir, tmp_path / "run", max_steps=3, reset_every=0)
    carried = []  # whether each training batch starts from a carried state
    original = RNNLanguageModel.forward

    def spy(self, ids, state=None):
        if self.training:
            carried.append(state is not None)
        return original(self, ids, state)

    monkeypatch.setattr(RNNLanguageModel, "forward", spy)
    _train(data_dir, tmp_path / "run", resume=True, max_steps=5, reset_every=0)
    assert carried == [True, True]  # the same batches: the stream goes on
    carried.clear()
    _train(data_dir, tmp_path / "run", resume=True, max_steps=7, reset_every=0, seq_len=96)
    assert carried == [False, True]  # other rows: start them from a zero state
    # another --seq-len that happens to give as many batches an epoch: still other rows
    train_ids = len(load_dataset(data_dir).ids("train"))
    per_epoch = {n: (train_ids - n) // 16 // n for n in range(60, 200)}
    twin = next(n for n in per_epoch if n != 96 and per_epoch[n] == per_epoch[96])
    carried.clear()
    _train(data_dir, tmp_path / "run", resume=True, max_steps=9, reset_every=0, seq_len=twin)
    assert carried == [False, True]


def test_a_warmup_as_long_as_the_run_is_warned_about(tmp_path, data_dir):
    def warnings(run_dir):
        return [r["message"] for r in _records(run_dir, "warning") if "warmup" in r["message"]]

    _train(data_dir, tmp_path / "steps", max_steps=4, warmup_steps=4, eval_every=1000)
    assert warnings(tmp_path / "steps") == [
        "--warmup-steps 4 is not shorter than the run (4 steps): the learning rate never "
        "reaches --lr; lower --warmup-steps"
    ]
    _train(data_dir, tmp_path / "epochs", epochs=0.25, warmup_steps=50, eval_every=1000)
    assert len(warnings(tmp_path / "epochs")) == 1
    _train(data_dir, tmp_path / "fine", max_steps=4, warmup_steps=3, eval_every=1000)
    assert warnings(tmp_path / "fine") == []
    # a resume in smaller batches, after the warmup: its epochs are not the run's length
    resumed = tmp_path / "resumed"
    _train(data_dir, resumed, epochs=1, warmup_steps=5, eval_every=1000)
    _train(data_dir, resumed, resume=True, epochs=1.5, batch_size=32, eval_every=1000)
    assert warnings(resumed) == []


def test_fractional_epochs_are_not_thrown_off_by_float_rounding():
    assert 1.1 * 100 > 110 and epoch_limit(TrainConfig(epochs=1.1), 100) == 110
    assert epoch_limit(TrainConfig(epochs=0.5), 7) == 4  # rounded up: a batch is not cut


def test_random_batching_starts_every_window_afresh(tmp_path, data_dir, monkeypatch):
    calls = []  # (every row starts with <bos>, no state carried in) per training batch
    original = RNNLanguageModel.forward

    def spy(self, ids, state=None):
        if self.training:
            calls.append((bool((ids[:, 0] == BOS_ID).all()), state is None))
        return original(self, ids, state)

    monkeypatch.setattr(RNNLanguageModel, "forward", spy)
    _train(data_dir, tmp_path / "random", max_steps=4, batching="random", eval_every=1000)
    assert calls == [(True, True)] * 4
    calls.clear()
    _train(data_dir, tmp_path / "stream", max_steps=4, reset_every=0, eval_every=1000)
    assert [fresh for _, fresh in calls] == [True, False, False, False]  # state carried


def test_time_budget_stops_evaluates_and_saves(tmp_path, data_dir):
    summary = _train(data_dir, tmp_path / "run", time_budget=1.5, eval_every=10_000)
    assert "time-budget" in summary["reason"]
    assert summary["last_eval"]["val_bpc"] > 0  # a final evaluation happened
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "best.pt").exists()


def test_early_stopping(tmp_path, data_dir):
    summary = _train(
        data_dir,
        tmp_path / "run",
        max_steps=100,
        eval_every=2,
        patience=2,
        lr=1e-30,
        schedule="constant",
        weight_decay=0.0,
        dropout=None,
    )
    assert summary["reason"].startswith("early stopping") and summary["step"] == 6


def test_schedule_warmup_and_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_frac=0.1, max_steps=100)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 0.09) == pytest.approx(1.0)  # warmup reaches the peak
    # then the cosine runs over the rest of the run, from where the warmup ended
    assert learning_rate(cfg, 10, 0.1, start=0.1) == pytest.approx(1.0)
    assert learning_rate(cfg, 55, 0.55, start=0.1) == pytest.approx(0.55)  # halfway: 0.1 + 0.45
    assert learning_rate(cfg, 99, 1.0, start=0.1) == pytest.approx(0.1)
    constant = TrainConfig(lr=1.0, warmup_steps=0, schedule="constant")
    assert learning_rate(constant, 50, 0.7) == 1.0
    timed = TrainConfig(time_budget=100.0, max_steps=1000)
    assert progress_fraction(timed, LoopState(step=10, elapsed=50.0), 10) == 0.5
    assert TrainConfig().limits().time_budget == 600.0


def test_evaluations_score_a_fixed_sample_and_the_last_one_all_of_it(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 30, size=60_000).astype(np.uint16)
    val = ids[:50_000]
    stats = {"tokens": len(val), "chars": 2 * len(val), "bytes": 3 * len(val)}
    task = LMTask(
        ids, val, stats, batch_size=4, seq_len=32, mode="stream", seed=0, device=torch.device("cpu")
    )
    task.sample_validation(16_384)
    assert task.eval_rows.tolist() == [0, 3, 6, 9]  # 4 of 13 segments of 4,096, spread out
    torch.manual_seed(0)
    model = RNNLanguageModel(30, ModelConfig(embed_size=8, hidden_size=16, dropout=0.0))
    sample, full = task.evaluate(model), task.evaluate(model, full=True)
    assert not sample.full and sample.tokens == 4 * 4096 and full.tokens == len(val)
    assert sample.chars == 2 * sample.tokens  # in proportion to the split's characters
    assert full.sample_loss == pytest.approx(sample.nll / sample.tokens, rel=1e-9)
    assert full.as_dict()["sample_loss"] == full.comparable_loss() != full.as_dict()["loss"]
    nll, counts = lm.segment_losses(model, val, seq_len=32, device=torch.device("cpu"))
    assert sample.nll == pytest.approx(nll[[0, 3, 6, 9]].sum(), rel=1e-9)
    assert full.nll == pytest.approx(nll.sum(), rel=1e-9)


def test_training_evaluates_the_sample_then_the_whole_split_at_the_end(
    tmp_path, shakespeare_like, monkeypatch
):
    from charrnn import train

    text = tmp_path / "long.txt"  # a validation split of three segments of 4,096
    text.write_text(shakespeare_like.read_text() * 6)
    tokenize_corpus([str(text)], tmp_path / "data", TokenizeConfig())
    # a sample of one segment: every evaluation but the last is a sample
    monkeypatch.setattr(train, "eval_sample_tokens", lambda cfg, tokens: 100)
    summary = _train(tmp_path / "data", tmp_path / "run", max_steps=12, eval_every=5)
    evals = _records(tmp_path / "run", "eval")
    assert [e["step"] for e in evals] == [5, 10, 12]
    assert all(e["val_sample"] for e in evals[:2]) and "val_sample" not in evals[-1]
    assert "val_sample_loss" in evals[-1] and summary["last_eval"] == evals[-1]
    # the best is chosen on the sample, which the last evaluation also reports
    best = min(e.get("val_sample_loss", e["val_loss"]) for e in evals)
    assert summary["best_val_loss"] == pytest.approx(best)


def test_a_time_budget_counts_from_the_commands_start(tmp_path, data_dir):
    import time

    started = time.monotonic() - 30.0  # set-up (reading, tokenizing) took 30 s of it
    summary = runs.start_training(
        str(data_dir),
        tmp_path / "run",
        model_name="lstm",
        model_options=dict(TINY_MODEL),
        train_options={**TINY_TRAIN, "time_budget": 31.0},
        started=started,
    )
    assert "time-budget" in summary["reason"] and summary["elapsed"] >= 30.0
    assert summary["step"] < 1000  # a second of training, not 31
    # and a budget already spent trains nothing, and says why
    summary = runs.start_training(
        str(data_dir),
        tmp_path / "late",
        model_name="lstm",
        model_options=dict(TINY_MODEL),
        train_options={**TINY_TRAIN, "time_budget": 5.0},
        started=time.monotonic() - 30.0,
    )
    assert summary["step"] == 0 and (tmp_path / "late" / "last.pt").is_file()
    warnings = [w["message"] for w in _records(tmp_path / "late", "warning")]
    assert any("ran out before the first step" in w for w in warnings)


def test_a_final_evaluation_longer_than_half_the_budget_is_warned(tmp_path, data_dir, monkeypatch):
    from charrnn import train

    # as if the whole validation split took 40 s to score (the sample 0.1 s)
    monkeypatch.setattr(
        train._Loop, "_final_eval_seconds", lambda self, full: 40.0 if full else 0.1
    )
    runs.start_training(
        str(data_dir),
        tmp_path / "run",
        model_name="lstm",
        model_options=dict(TINY_MODEL),
        train_options={**TINY_TRAIN, "time_budget": 60.0, "max_steps": 3},
    )
    warnings = [w["message"] for w in _records(tmp_path / "run", "warning")]
    assert any("more than half of --time-budget 60s" in w for w in warnings), warnings


def test_the_time_left_for_the_final_evaluation_ends_training_early():
    from charrnn.optim import limit_reached

    cfg = TrainConfig(time_budget=100.0)
    state = LoopState(step=5, elapsed=90.0)
    assert limit_reached(cfg, state, 10) == ("", "")
    assert limit_reached(cfg, state, 10, ahead=90.0 + 12.0)[0] == "--time-budget"
    # the schedule ends where training does: at the budget less what follows it
    assert progress_fraction(cfg, state, 10, reserve=10.0) == pytest.approx(1.0)
    assert progress_fraction(cfg, state, 10) == pytest.approx(0.9)


def test_weight_average_against_a_naive_loop():
    """The average after each update is the hand-written EMA with the ramped decay; applied()
    puts the average in and the trained weights back exactly; a tied weight stays one tensor."""
    from charrnn.optim import WeightAverage

    torch.manual_seed(0)
    model = RNNLanguageModel(12, ModelConfig(embed_size=8, hidden_size=8, tie_weights=True))
    average = WeightAverage(model, 0.9)
    naive = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(step)
        keep = min(0.9, (1 + step) / (10 + step))
        for n, p in model.named_parameters():
            naive[n] = keep * naive[n] + (1 - keep) * p.detach()
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    with average.applied():
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), naive[n])
    assert all(torch.equal(p, trained[n]) for n, p in model.named_parameters())
    weights = average.weights(model)
    assert weights["head.weight"] is weights["embed.weight"]
    torch.testing.assert_close(weights["rnn.rnn.weight_hh_l0"], naive["rnn.rnn.weight_hh_l0"])


def test_training_with_weight_averaging_evaluates_saves_and_resumes_it_exactly(tmp_path, data_dir):
    """best.pt and last.pt hold the average (what decoding and eval use) and the optimizer's
    own weights beside it; the final evaluation scored the average; a resume is exact."""
    full = _train(data_dir, tmp_path / "full", max_steps=16, ema_decay=0.8, log_every=4)
    saved = checkpoint.load(tmp_path / "full" / "last.pt")
    averaged, own = saved["weights"], saved["train"]["weights"]
    assert any(not torch.equal(averaged[k], own[k]) for k in averaged)
    trained = load_trained(tmp_path / "full" / "last.pt")
    dataset = load_dataset(data_dir)
    nll, tokens = lm.evaluate(
        trained.model, dataset.ids("val"), seq_len=64, device=torch.device("cpu")
    )
    assert full["last_eval"]["val_loss"] == pytest.approx(nll / tokens, rel=1e-4)
    half = _train(data_dir, tmp_path / "half", max_steps=16, ema_decay=0.8, stop_at=7, log_every=4)
    assert half["step"] == 7
    _train(data_dir, tmp_path / "half", resume=True, max_steps=16, log_every=4)
    again = checkpoint.load(tmp_path / "half" / "last.pt")
    for key in averaged:
        assert torch.equal(again["weights"][key], averaged[key])
        assert torch.equal(again["train"]["weights"][key], own[key])
    plain = _train(data_dir, tmp_path / "plain", max_steps=16, log_every=4, ema_decay=0.0)
    assert plain["last_eval"]["val_loss"] != full["last_eval"]["val_loss"]
    assert checkpoint.load(tmp_path / "plain" / "last.pt")["train"]["weights"] is None
