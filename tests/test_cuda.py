"""On a GPU: every command with `--device cuda`, mixed precision, checkpoints moving between
the GPU and the CPU, and decoding on the GPU agreeing with the CPU. Skipped without CUDA (CI
has none); run on a GPU machine with `python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ok

from charrnn import checkpoint, decode, generate, models
from charrnn.config import ModelConfig
from charrnn.tokenizer import BOS_ID, CharTokenizer
from charrnn.trained import Trained

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = ["--embed-size", "16", "--hidden-size", "32", "--batch-size", "8", "--seq-len", "32"]
SMALL += ["--eval-every", "10", "-q"]


@pytest.fixture
def data(tmp_path, run, shakespeare_like):
    ok(run("tokenize", shakespeare_like, "-o", tmp_path / "data", "-q"))
    return tmp_path / "data"


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_resume_eval_sample_beam_on_cuda(tmp_path, run, data, model, precision):
    run_dir = tmp_path / "run"
    args = ["--model", model, *SMALL, "--precision", precision, "--device", "cuda"]
    first = ok(run("train", data, "-o", run_dir, *args, "--max-steps", "20", "--json")).json()
    assert first["step"] == 20 and first["device"].startswith("cuda")
    again = ok(run("train", "--resume", run_dir, "--max-steps", "30", "--json", "-q")).json()
    assert again["step"] == 30
    cuda = ok(run("eval", run_dir, "--device", "cuda", "--json")).json()
    cpu = ok(run("eval", run_dir, "--device", "cpu", "--json")).json()
    assert cuda["bpc"] == pytest.approx(cpu["bpc"], rel=1e-4)  # the same weights on both
    sample = ["sample", run_dir, "--prompt", "the ", "--length", "40", "--seed", "3"]
    a = ok(run(*sample, "--device", "cuda", "--num-samples", "4", "--json")).stdout
    assert a == ok(run(*sample, "--device", "cuda", "--num-samples", "4", "--json")).stdout
    assert len(a.splitlines()) == 4
    beam = ["beam", run_dir, "--prompt", "the ", "--max-len", "30", "--json"]
    on_cuda = ok(run(*beam, "--device", "cuda")).json()
    on_cpu = ok(run(*beam, "--device", "cpu")).json()
    assert on_cuda["text"] == on_cpu["text"]
    assert on_cuda["logprob"] == pytest.approx(on_cpu["logprob"], abs=1e-3)


def test_checkpoint_written_on_cuda_loads_on_cpu_weights_only(tmp_path, run, data):
    run_dir = tmp_path / "run"
    ok(run("train", data, "-o", run_dir, *SMALL, "--device", "cuda", "--max-steps", "5"))
    raw = torch.load(run_dir / "last.pt", weights_only=True)  # where it was saved
    assert raw  # plain tensors and containers only
    ck = checkpoint.load(run_dir / "last.pt", map_location="cpu")
    assert ck["weights"] and all(t.device.type == "cpu" for t in _tensors(raw))
    tied = tmp_path / "tied"
    ok(
        run(
            "train",
            data,
            "-o",
            tied,
            *SMALL,
            "--device",
            "cuda",
            "--max-steps",
            "2",
            "--tie-weights",
            "--embed-size",
            "32",
            "--hidden-size",
            "32",
        )
    )
    weights = checkpoint.load(tied / "last.pt")["weights"]
    assert weights["embed.weight"].data_ptr() == weights["head.weight"].data_ptr()  # stored once
    # trained on the CPU, continued on the GPU
    cpu_dir = tmp_path / "cpu"
    ok(run("train", data, "-o", cpu_dir, *SMALL, "--device", "cpu", "--max-steps", "5"))
    moved = ok(
        run("train", "--resume", cpu_dir, "--device", "cuda", "--max-steps", "8", "--json")
    ).json()
    assert moved["step"] == 8 and moved["device"].startswith("cuda")


def test_batched_sampling_and_beam_on_cuda_match_one_by_one():
    torch.manual_seed(0)
    model = models.build("lstm", ModelConfig(embed_size=16, hidden_size=32), 30).eval()
    tok = CharTokenizer.build("abcdefghijklmnopqrstuvwxyz")
    trained = Trained(Path("x"), "lm", "lstm", model.cuda(), tok, {}, torch.device("cuda"))
    prompts = [[BOS_ID, 5, 6], [BOS_ID], [BOS_ID, 7, 8, 9, 10]]
    cfg = decode.BeamConfig(beam_size=4, max_len=12)
    together = generate.beam(trained, prompts, cfg)
    alone = [generate.beam(trained, [p], cfg)[0] for p in prompts]
    assert [[h["text"] for h in n] for n in together] == [[h["text"] for h in n] for n in alone]
    greedy = generate.sample(trained, prompts, decode.SampleConfig(length=12, temperature=0))
    beam1 = generate.beam(trained, prompts, decode.BeamConfig(beam_size=1, max_len=12))
    assert [g.text for g in greedy] == [b[0]["text"] for b in beam1]


def test_a_lines_samples_on_cuda_do_not_depend_on_the_other_lines(tmp_path, run, data):
    run_dir = tmp_path / "run"
    ok(run("train", data, "-o", run_dir, *SMALL, "--device", "cuda", "--max-steps", "3"))
    args = ("sample", run_dir, "--prompt", "the ", "--length", "300", "--seed", "3", "--json")
    # 600 rows would once have drawn their noise in smaller blocks than one row does
    many = ok(run(*args, "--device", "cuda", "--num-samples", "600")).stdout.splitlines()
    one = ok(run(*args, "--device", "cuda")).stdout.splitlines()
    assert json.loads(many[0])["text"] == json.loads(one[0])["text"]


def test_seq2seq_on_cuda(tmp_path, run):
    run_dir = tmp_path / "dates"
    tiny = ["--embed-size", "16", "--hidden-size", "32", "--batch-size", "16", "-q"]
    ok(run("train", "builtin:dates", "-o", run_dir, *tiny, "--device", "cuda", "--max-steps", "30"))
    sources = "1 March 2001\nJuly 4, 1976\n"
    out = ok(
        run("sample", run_dir, "--prompt", "-", "--per-line", "--device", "cuda", stdin=sources)
    )
    assert len(out.stdout.splitlines()) == 2
    beam_cuda = ok(
        run("beam", run_dir, "--prompt", "-", "--per-line", "--device", "cuda", stdin=sources)
    )
    beam_cpu = ok(
        run("beam", run_dir, "--prompt", "-", "--per-line", "--device", "cpu", stdin=sources)
    )
    assert beam_cuda.stdout == beam_cpu.stdout
    scores = ok(run("eval", run_dir, "--device", "cuda", "--json")).json()
    assert 0 <= scores["bleu"] <= 100


def _tensors(value):
    """Every tensor in a nest of dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
