"""Precision (fp32, bf16 autocast) and CPU threads: what `auto` picks, and bf16 against fp32.

bf16 keeps 8 bits of mantissa: each number is rounded to within 2^-9 (0.2%) of itself. A
product of two bf16 numbers accumulated in fp32 (as oneDNN and torch's autocast do) is off by
about that much times the square root of its length in relative terms at worst, and far less
on average, so a layer's outputs agree with fp32 to about 1e-2 relative, and a loss averaged
over many tokens to about 1e-3. The tolerances below are those.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from charrnn import checkpoint, cores, models, runs
from charrnn import device as devices
from charrnn.config import ModelConfig
from charrnn.errors import UsageError
from charrnn.models import packed
from charrnn.models.rnn import RNNStack
from charrnn.trained import load_trained

CPU = torch.device("cpu")


def _fast_bf16(monkeypatch, fast: bool) -> None:
    monkeypatch.setattr(devices, "cpu_bf16", lambda: fast)


def test_auto_picks_bf16_only_on_a_cpu_that_has_it(monkeypatch):
    _fast_bf16(monkeypatch, True)
    assert devices.resolve_precision("auto", CPU) == "bf16"
    assert devices.resolve_precision("fp32", CPU) == "fp32"
    _fast_bf16(monkeypatch, False)
    assert devices.resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(UsageError, match="bf16 is not fast on this CPU"):
        devices.resolve_precision("bf16", CPU)
    with pytest.raises(UsageError, match="fp16 runs on CUDA only"):
        devices.resolve_precision("fp16", CPU)
    with pytest.raises(UsageError, match="unknown precision 'half'"):
        devices.resolve_precision("half", CPU)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def fake(text):
        (tmp_path / "cpuinfo").write_text(text)
        return lambda path, *a, **k: real_open(
            tmp_path / "cpuinfo" if path == "/proc/cpuinfo" else path, *a, **k
        )

    monkeypatch.setattr(builtins, "open", fake("processor: 0\nflags\t: fpu avx512f avx512_bf16\n"))
    assert devices.cpu_bf16()
    monkeypatch.setattr(builtins, "open", fake("processor: 0\nflags\t: fpu avx2 avx512f\n"))
    assert not devices.cpu_bf16()
    monkeypatch.setattr(builtins, "open", fake("Features\t: fp asimd bf16 i8mm\n"))  # Arm
    assert devices.cpu_bf16()


def test_bf16_training_step_agrees_with_fp32():
    torch.manual_seed(0)
    model = models.build("lstm", ModelConfig(embed_size=16, hidden_size=64, dropout=0.0), 40)
    ids = torch.randint(4, 40, (8, 65))
    results = {}
    for precision in ("fp32", "bf16"):
        model.zero_grad()
        with devices.autocast(CPU, precision):
            logits, _ = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results[precision] = (loss.item(), grads, logits.dtype)
    assert results["bf16"][2] == torch.bfloat16 and results["fp32"][2] == torch.float32
    assert results["bf16"][0] == pytest.approx(results["fp32"][0], rel=1e-3)
    cosine = F.cosine_similarity(results["bf16"][1], results["fp32"][1], dim=0)
    assert cosine > 0.999  # the same direction of descent
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("rows", [1, 32])
def test_bf16_decoding_step_agrees_with_fp32_and_keeps_fp32_state(cell, rows, monkeypatch):
    monkeypatch.setattr(packed, "pays", lambda weights, rows: True)  # small layers too
    monkeypatch.setattr(packed, "bf16_pays", lambda weights, rows: True)
    torch.manual_seed(3)
    stack = RNNStack(48, ModelConfig(cell=cell, hidden_size=96, num_layers=2)).eval()
    x = torch.randn(rows, 48)
    state = tuple(torch.randn(2, rows, 96) * 0.5 for _ in range(2 if cell == "lstm" else 1))
    layers = {
        dtype: packed.pack(stack.rnn_kind, stack.layer_weights(), dtype)
        for dtype in (torch.float32, torch.bfloat16)
    }
    with torch.no_grad():
        out = {}
        for dtype, packed_layers in layers.items():
            h, c = packed_layers[0].step(x, state[0][0], state[1][0] if cell == "lstm" else None)
            out[dtype] = (h, c)
    h32, c32 = out[torch.float32]
    h16, c16 = out[torch.bfloat16]
    assert h16.dtype == torch.float32 and (c16 is None or c16.dtype == torch.float32)
    torch.testing.assert_close(h16, h32, rtol=2e-2, atol=2e-2)
    if cell == "lstm":
        torch.testing.assert_close(c16, c32, rtol=2e-2, atol=2e-2)
    # through the stack: under bf16 autocast the packed weights are bf16, and rebuilt as such
    with torch.no_grad(), devices.autocast(CPU, "bf16"):
        via_stack, new_state = stack.step(x, state)
    assert via_stack.dtype == torch.float32 and all(s.dtype == torch.float32 for s in new_state)
    assert stack._packed_cache[0][1] == torch.bfloat16
    with torch.no_grad():
        reference, _ = stack.step(x, state)
    torch.testing.assert_close(via_stack, reference, rtol=3e-2, atol=3e-2)


def test_bf16_training_checkpoints_resumes_and_samples(tmp_path, shakespeare_like, monkeypatch):
    from charrnn import decode, generate

    _fast_bf16(monkeypatch, True)
    options = {"batch_size": 8, "seq_len": 32, "eval_every": 10, "precision": "auto"}
    first = runs.start_training(
        str(shakespeare_like),
        tmp_path / "run",
        model_name="lstm",
        model_options={"embed_size": 16, "hidden_size": 32},
        train_options={**options, "max_steps": 10},
        cache_dir=tmp_path / "cache",
    )
    assert first["precision"] == "bf16"
    saved = checkpoint.load(tmp_path / "run" / "last.pt")
    assert all(t.dtype == torch.float32 for t in saved["weights"].values())
    assert saved["train"]["state"]["precision"] == "bf16"
    # a machine without bf16 resumes the run in fp32, and says so in the log
    _fast_bf16(monkeypatch, False)
    more = runs.start_training(
        None, tmp_path / "run", model_name=None, model_options={},
        train_options={"max_steps": 15}, resume=True,
    )  # fmt: skip
    assert more["precision"] == "fp32" and more["step"] == 15
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"precision": ["bf16", "fp32"]' in log
    # and samples from it in either precision
    _fast_bf16(monkeypatch, True)
    texts = []
    for precision in ("fp32", "bf16"):
        trained = load_trained(tmp_path / "run", precision=precision)
        inputs, _ = generate.encode_inputs(trained, ["the "])
        out = generate.sample(trained, inputs, decode.SampleConfig(length=20), seed=1)
        texts.append(out[0].text)
    assert all(len(t) > 0 for t in texts)


def test_bf16_asked_for_on_a_cpu_without_it_is_one_clear_line(run, tmp_path, monkeypatch):
    from conftest import assert_error

    _fast_bf16(monkeypatch, False)
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 500)
    result = run("train", text, "-o", tmp_path / "r", "--precision", "bf16", "--max-steps", "1")
    assert_error(result, 2, "--precision: bf16 is not fast on this CPU")
    assert not (tmp_path / "r").exists()  # nothing half-made


@pytest.mark.parametrize(
    "cores_,others,threads", [(2, 0.0, 2), (2, 0.2, 2), (2, 0.5, 1), (2, 1.0, 1), (2, 2.0, 1)]
)
def test_threads_follow_the_free_cores(cores_, others, threads):
    assert cores.threads_for(cores_, others) == threads
    assert cores.threads_for(8, 3.0) == 5


def test_core_watch_subtracts_this_process(monkeypatch):
    readings = iter(
        [
            cores._Reading(busy=1000, total=4000, own=10.0, wall=100.0),
            # one second later: 2 cores x 100 ticks, 150 busy; this process used 0.5 s of it
            cores._Reading(busy=1150, total=4200, own=10.5, wall=101.0),
        ]
    )
    monkeypatch.setattr(cores, "_read", lambda cpus: next(readings))
    monkeypatch.setattr(cores, "usable_cores", lambda: [0, 1])
    monkeypatch.setattr(cores, "quota_cores", lambda: None)
    watch = cores.CoreWatch()
    assert watch.others() == pytest.approx(1.0)  # 1.5 cores busy, 0.5 of them ours
    assert watch.busy == pytest.approx(1.0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_seq2seq_scores_under_bf16_autocast(cell):
    # evaluation runs teacher forcing without gradients under autocast: the encoder's bridge
    # hands the decoder a bf16 state, and the decoder's packed step (a model large enough
    # for it: 256 units) must take it
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, embed_size=64, hidden_size=256, dropout=0.0)
    model = models.build(f"seq2seq-{cell}", config, 30, 30).eval()
    src = torch.randint(4, 30, (4, 9))
    tgt = torch.randint(4, 30, (4, 7))
    lengths = torch.tensor([9, 8, 5, 3])
    scores = {}
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), devices.autocast(CPU, precision):
            logits, _ = model(src, lengths, tgt)
        scores[precision] = F.log_softmax(logits.float(), -1)
    torch.testing.assert_close(scores["bf16"], scores["fp32"], rtol=5e-2, atol=5e-2)
