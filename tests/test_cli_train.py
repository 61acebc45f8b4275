"""`charrnn train`, `charrnn eval`, `charrnn models` from the command line: every registry
entry end to end, bad input, signals and kill -9."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import assert_error, ok

from charrnn import checkpoint, models
from charrnn.config import TrainConfig

SMALL = [
    "--embed-size",
    "8",
    "--hidden-size",
    "16",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-every",
    "3",
    "-q",
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def data(env, run, shakespeare_like):
    assert run("tokenize", shakespeare_like, "-o", env / "data", "-q").code == 0
    return env / "data"


LM_MODELS = [name for name, entry in models.MODELS.items() if entry.kind == "lm"]


@pytest.mark.parametrize("name", LM_MODELS)
def test_every_registry_entry_end_to_end(env, data, run, shakespeare_like, name):
    run_dir = env / f"run-{name}"
    first = ok(
        run("train", data, "-o", run_dir, "--model", name, *SMALL, "--max-steps", "6", "--json")
    ).json()
    assert first["step"] == 6 and first["model"] == name
    assert first["params"] == models.expected_parameters(
        name,
        models.ModelConfig(embed_size=8, hidden_size=16),
        4 + len(set(shakespeare_like.read_text()[:18000])),
    )
    again = ok(run("train", "--resume", run_dir, "--max-steps", "9", "--json", "-q")).json()
    assert again["step"] == 9
    scores = ok(run("eval", run_dir, "--json")).json()
    assert scores["split"] == "val" and 0 < scores["bpc"] < 8
    assert scores["tokens"] == scores["chars"]  # a char model
    text = ok(run("eval", run_dir / "last.pt", shakespeare_like, "--json")).json()
    assert text["chars"] == len(shakespeare_like.read_text())
    info = ok(run("info", run_dir, "--json")).json()
    assert info["model"]["name"] == name and info["train"]["step"] == 9
    assert "attention" not in info["model"]["config"]  # seq2seq fields only for seq2seq


def test_raw_text_is_tokenized_once_and_cached(env, run, shakespeare_like):
    a = ok(
        run("train", shakespeare_like, "-o", env / "a", *SMALL, "--max-steps", "2", "--json")
    ).json()
    cached = list((env / "cache").iterdir())
    assert len(cached) == 1 and a["data"] == str(cached[0])
    stamp = (cached[0] / "train.bin").stat().st_mtime_ns
    b = ok(
        run("train", shakespeare_like, "-o", env / "b", *SMALL, "--max-steps", "2", "--json")
    ).json()
    assert b["data"] == a["data"] and (cached[0] / "train.bin").stat().st_mtime_ns == stamp


def test_train_json_stdout_is_one_document(env, data, run):
    result = ok(run("train", data, "-o", env / "r", *SMALL, "--max-steps", "3", "--json"))
    summary = json.loads(result.stdout)
    assert summary["reason"] == "reached --max-steps 3"
    assert summary["last_eval"]["val_bpc"] > 0


def test_resume_may_change_training_settings_and_logs_them(env, data, run):
    ok(run("train", data, "-o", env / "r", *SMALL, "--max-steps", "3"))
    ok(run("train", "--resume", env / "r", "--max-steps", "5", "--lr", "1e-3", "-q"))
    records = [json.loads(line) for line in (env / "r" / "metrics.jsonl").read_text().splitlines()]
    resumed = [r for r in records if r["event"] == "resume"]
    assert resumed and resumed[0]["changes"]["lr"] == [TrainConfig.lr, 1e-3]
    # the batch size (the carried state has other rows), the optimizer (a fresh state) and
    # dropout (not architecture) may change too
    more = ["--batch-size", "8", "--optimizer", "sgd", "--dropout", "0.1", "--max-steps", "7"]
    ok(run("train", "--resume", env / "r", *more, "-q"))
    records = [json.loads(line) for line in (env / "r" / "metrics.jsonl").read_text().splitlines()]
    changes = [r for r in records if r["event"] == "resume"][-1]["changes"]
    assert changes["batch_size"][1] == 8 and changes["optimizer"] == ["adamw", "sgd"]
    assert changes["dropout"][1] == 0.1
    assert checkpoint.load(env / "r" / "last.pt")["model"]["config"]["dropout"] == 0.1
    assert_error(run("train", "--resume", env / "r", "--dropout", "2", "-q"), 2, "dropout")


def test_a_run_stopped_before_its_first_checkpoint(env, data, run):
    """Killed before its first evaluation: a log, no checkpoint. Each command says so and
    points to --force."""
    early = env / "early"
    early.mkdir()
    (early / "metrics.jsonl").write_text('{"event": "start", "step": 0}\n')
    assert_error(run("train", data, "-o", early, *SMALL), 1, "cannot be resumed (it has no")
    assert_error(run("train", "--resume", early), 1, f"-o {early} --force")
    for command in ("info", "sample", "eval"):
        assert_error(run(command, early), 1, "has not saved a checkpoint yet")
    ok(run("train", data, "-o", early, *SMALL, "--max-steps", "2", "--force"))
    assert (early / "last.pt").is_file() and (early / "best.pt").is_file()
    # killed after a best.pt but before its first last.pt (--checkpoint-every > --eval-every)
    (early / "last.pt").unlink()
    assert_error(run("train", data, "-o", early, *SMALL), 1, "cannot be resumed (it has no")
    assert_error(run("train", "--resume", early), 1, f"-o {early} --force")


def test_bad_input_table(env, data, run, shakespeare_like):
    good = env / "good"
    ok(run("train", data, "-o", good, *SMALL, "--max-steps", "3"))
    saved = (good / "last.pt").read_bytes()
    tiny = env / "tiny.txt"
    tiny.write_text("to be or not to be\n" * 3)
    corrupt = env / "corrupt"
    corrupt.mkdir()
    (corrupt / "last.pt").write_bytes(b"garbage" * 100)
    truncated = env / "truncated"
    truncated.mkdir()
    (truncated / "last.pt").write_bytes(saved[: len(saved) // 2])
    newer = env / "newer"
    newer.mkdir()
    payload = torch.load(good / "last.pt", weights_only=True)
    torch.save({**payload, "version": 99}, newer / "last.pt")
    foreign = env / "foreign"
    foreign.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign / "last.pt")
    (env / "empty-run").mkdir()
    badmeta = env / "badmeta"
    badmeta.mkdir()
    (badmeta / "meta.json").write_text("{oops")
    out = ["-o", env / "new"]
    no_gpu = (
        (["cuda"], "not available") if not torch.cuda.is_available() else (["cuda:99"], "exist")
    )
    cases = [
        (["train", env / "missing.txt", *out], 1, "no such file"),
        (["train", badmeta, *out], 1, "corrupt meta data"),
        (["train", tiny, *out, "-q"], 1, "too small for one batch"),
        (["train", data, *out, "--seq-len", "0"], 2, "--seq-len"),
        (["train", "--resume", env / "r", "--force"], 2, "--force: starts a run over"),
        (["train", data, *out, "--batch-size", "0"], 2, "--batch-size"),
        (["train", data, *out, "--lr", "-1"], 2, "--lr"),
        (["train", data, *out, "--dropout", "1.5"], 2, "--dropout"),
        (["train", data, *out, "--hidden-size", "0"], 2, "--hidden-size"),
        (["train", data, *out, "--num-layers", "0"], 2, "--num-layers"),
        (["train", data, *out, "--device", *no_gpu[0]], 2, no_gpu[1]),
        (["train", data, *out, "--device", "tpu"], 2, "unknown device"),
        (["train", data, *out, "--time-budget", "soon"], 2, "--time-budget"),
        (["train", data, *out, "--model", "transformer"], 2, "unknown model"),
        (["train", data, *out, "--tie-weights"], 2, "--tie-weights"),
        (["train", data, *out, "--precision", "fp16", "--device", "cpu"], 2, "--precision"),
        (["train", data, *out, "--precision", "half"], 2, "unknown precision"),
        (["train", data], 2, "--out"),
        (["train", "-o", env / "x"], 2, "no training data"),
        (["train", data, "-o", good, *SMALL], 1, "already holds a run"),
        (["train", "--resume", env / "nope"], 1, "no such run directory"),
        (["train", "--resume", env / "empty-run"], 1, "no checkpoint to resume"),
        (["train", "--resume", corrupt], 1, "corrupt, truncated"),
        (["train", "--resume", truncated], 1, "corrupt, truncated"),
        (["train", "--resume", newer], 1, "newer charrnn"),
        (["train", "--resume", foreign], 1, "not a charrnn checkpoint"),
        (["train", "--resume", good, "--hidden-size", "32"], 2, "cannot change the architecture"),
        (["train", "--resume", good, "--model", "gru"], 2, "cannot change the model"),
        (["train", "--resume", good, "--max-steps", "2"], 2, "already reached --max-steps 2"),
        (["train", "--resume", good / "last.pt"], 2, "pass the run directory"),
        (["train", shakespeare_like, "--resume", good], 2, "the run was trained on"),
        (["train", good, *out], 2, "is a run directory"),
        (["train", data, *out, "--nonlinearity", "relu"], 2, "--nonlinearity"),
        (["sample", env / "empty-run"], 1, "no checkpoint in this directory"),
        (["eval", env / "missing.pt"], 1, "no such file"),
        (["eval", corrupt / "last.pt"], 1, "corrupt, truncated"),
        (["eval", foreign / "last.pt"], 1, "not a charrnn checkpoint"),
        (["eval", good, env / "missing.txt"], 1, "no such file"),
        (["train", data, "-o", tiny, *SMALL], 1, "is a file, not a folder"),
        (["train", data, "-o", tiny / "sub", *SMALL], 1, "choose another path"),
        (["tokenize", tiny, "-o", tiny / "sub"], 1, "choose another path"),
        (["tokenize", "--pairs", "builtin:python", "-o", env / "d"], 2, "is plain text, not"),
        (["sample", data], 1, "is a data directory (tokenized text), not a run"),
        (["train", "--resume", good, "--vocab", "bpe"], 2, "a resumed run keeps its vocabulary"),
        (["models", "--vocab-size", "0"], 2, "--vocab-size"),
        (["eval", good, good], 2, "is a run directory (it holds checkpoints), not text"),
        (["eval", shakespeare_like, good], 2, "the model to score comes first"),  # swapped
        (["train", data, "-o", data, *SMALL], 2, "is a data directory"),
        (["info", env / "nope"], 1, "no such file or directory"),
        (["eval", good, "--beam-size", "3"], 2, "--beam-size: is for seq2seq models"),
        (["eval", good, "-", "--split", "val"], 2, "--split: chooses a split of a data"),
        (["tokenize", tiny, "-o", env / "t", "--shuffle"], 2, "--shuffle: is for parallel text"),
        (
            ["tokenize", tiny, "-o", env / "t", "--max-chars", "5"],
            2,
            "--max-chars: is for parallel",
        ),
        (
            ["tokenize", tiny, "-o", env / "t", "--pairs", "--seed", "3"],
            2,
            "--seed: seeds --shuffle",
        ),
        (["eval", good, shakespeare_like, "--split", "train"], 2, "--split: chooses a split"),
        (["train", data, *out, "--vocab", "bpe"], 2, "--vocab: says how to tokenize raw text"),
        (["train", "--resume", good, "--val-frac", "0.5"], 2, "a resumed run keeps its"),
    ]
    for args, code, needle in cases:
        assert_error(run(*args), code, needle)
    assert (good / "last.pt").read_bytes() == saved  # nothing lost
    assert not (env / "new").exists()
    ok(run("tokenize", "builtin:dates", "-o", env / "pairs", "-q"))  # --pairs implied
    assert_error(run("eval", good, env / "pairs"), 1, "holds parallel text")
    # a TSV given without --pairs is tokenized as text, with a warning
    tsv = env / "p.tsv"
    tsv.write_text("".join(f"word {i}\tmot {i}\n" for i in range(20)))
    warned = ok(run("tokenize", tsv, "-o", env / "tsv-as-text", "-q"))
    assert "looks like parallel text" in warned.stderr and "add --pairs" in warned.stderr
    # a new run that fails before its first checkpoint leaves nothing, stdin text included
    assert_error(run("train", "-", "-o", env / "piped", *SMALL, stdin="too short\n"), 1, "small")
    assert not (env / "piped").exists()


def test_a_run_from_stdin_keeps_its_data_and_can_move(env, run, shakespeare_like):
    text = shakespeare_like.read_text()
    ok(run("train", "-", "-o", env / "r", *SMALL, "--max-steps", "2", stdin=text))
    (env / "r").rename(env / "moved")
    ok(run("train", "--resume", env / "moved", "--max-steps", "4"))
    assert ok(run("eval", env / "moved", "--json")).json()["tokens"] > 0


def test_no_command_prints_the_overview(run, capsys):
    from charrnn.cli._app import main

    with pytest.raises(SystemExit) as done:
        main([])
    printed = capsys.readouterr()
    assert done.value.code == 2 and printed.out.startswith("Usage: charrnn") and not printed.err


def test_resume_accepts_the_raw_text_it_was_trained_on(env, run, shakespeare_like):
    ok(run("train", shakespeare_like, "-o", env / "r", *SMALL, "--max-steps", "2"))
    summary = ok(
        run("train", shakespeare_like, "--resume", env / "r", "--max-steps", "4", "--json")
    ).json()
    assert summary["step"] == 4
    # the cached tokens are cleared: without INPUT that is an error that says what to do;
    # with the same INPUT the text is tokenized again and the run goes on
    shutil.rmtree(env / "cache")
    gone = run("train", "--resume", env / "r", "--max-steps", "6")
    assert_error(gone, 1, "charrnn train INPUT --resume RUN_DIR tokenizes it again")
    again = run("train", shakespeare_like, "--resume", env / "r", "--max-steps", "6", "--json")
    assert ok(again).json()["step"] == 6


def test_resume_accepts_its_data_directory_moved_but_not_other_data(env, data, run, tmp_path):
    ok(run("train", data, "-o", env / "r", *SMALL, "--max-steps", "2"))
    moved = tmp_path / "moved-data"
    shutil.move(data, moved)
    assert_error(run("train", "--resume", env / "r", "--max-steps", "4"), 1, "where it lies now")
    summary = ok(run("train", moved, "--resume", env / "r", "--max-steps", "4", "--json")).json()
    assert summary["step"] == 4
    ok(run("train", "--resume", env / "r", "--max-steps", "5"))  # the run now keeps the new path
    # a data directory with the same vocabulary but other text is not the run's data
    shutil.move(moved, tmp_path / "gone")
    other = tmp_path / "other.txt"
    other.write_text("the king is here\n" * 999)
    ok(run("tokenize", other, "-o", tmp_path / "other", "--tokenizer", tmp_path / "gone", "-q"))
    resumed = run("train", tmp_path / "other", "--resume", env / "r", "--max-steps", "6")
    assert_error(resumed, 1, "other data")
    # the run's data tokenized again in place, with another vocabulary: an error, not a crash
    shutil.move(tmp_path / "gone", moved)
    ok(run("tokenize", other, "-o", moved, "--force", "--lowercase", "-q"))
    assert_error(run("train", "--resume", env / "r", "--max-steps", "6"), 1, "another vocabulary")


def test_a_seq2seq_run_resumes_from_its_raw_pairs_without_pairs_flag(env, run, tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("".join(f"{i} cats\t{i} chats\n" for i in range(300)))
    tiny = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "4", "-q"]
    ok(run("train", pairs, "--pairs", "-o", env / "s", *tiny, "--max-steps", "2"))
    shutil.rmtree(env / "cache")  # the run knows it is seq2seq and its vocabularies
    summary = ok(run("train", pairs, "--resume", env / "s", "--max-steps", "3", "--json")).json()
    assert summary["step"] == 3


def test_bpe_bits_per_character_count_characters_and_bytes(env, run, shakespeare_like, tmp_path):
    # a BPE token spans several characters, and é takes two UTF-8 bytes: the three
    # normalisations differ, and each is the total bits over its own count
    text = shakespeare_like.read_text().replace("e", "\u00e9")
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    data = tmp_path / "bpe"
    ok(run("tokenize", tmp_path / "t.txt", "-o", data, "--vocab", "bpe", "--vocab-size", "300"))
    ok(run("train", data, "-o", env / "b", *SMALL, "--max-steps", "3"))
    scores = ok(run("eval", env / "b", "--json")).json()
    assert scores["tokens"] < scores["chars"] < scores["bytes"]
    bits = scores["bits_per_token"] * scores["tokens"]
    assert scores["bits_per_token"] == pytest.approx(scores["loss"] / math.log(2))
    assert scores["bpc"] == pytest.approx(bits / scores["chars"])
    assert scores["bits_per_byte"] == pytest.approx(bits / scores["bytes"])


def test_eval_rejects_data_encoded_with_another_vocabulary(env, data, run, tmp_path):
    ok(run("train", data, "-o", env / "r", *SMALL, "--max-steps", "2"))
    other = tmp_path / "other.txt"
    other.write_text("completely different alphabet: xyzzy 12345 !!!\n" * 200)
    ok(run("tokenize", other, "-o", env / "other", "-q"))
    assert_error(run("eval", env / "r", env / "other"), 1, "different vocabulary")


def test_eval_counts_unknown_characters(env, data, run, tmp_path):
    ok(run("train", data, "-o", env / "r", *SMALL, "--max-steps", "2"))
    text = tmp_path / "t.txt"
    text.write_text("the king \u00e9\u00e9 and \u65e5\n")
    scores = ok(run("eval", env / "r", text, "--json")).json()
    assert scores["unknown"] == 3 and scores["unknown_chars"] == {"\u00e9": 2, "\u65e5": 1}


def test_models_lists_every_entry(run):
    rows = ok(run("models", "--json")).json()
    assert [r["name"] for r in rows] == list(models.MODELS)
    assert all(r["parameters"] and r["description"] for r in rows)
    assert all(r["example"]["config"]["cell"] == r["cell"] for r in rows)
    assert {r["cell"] for r in rows} == {"rnn", "gru", "lstm"}
    assert "lstm" in ok(run("models")).stdout


def _spawn(env, data, run_dir, *extra):
    cmd = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(data),
        "-o",
        str(run_dir),
        *map(str, SMALL[:-1]),
        "--time-budget",
        "60s",
        "--checkpoint-every",
        "1",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHARRNN_CACHE_DIR": str(env / "cache")},
    )


def _wait_for_steps(run_dir, steps, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count('"event": "train"') >= steps:
            return
        time.sleep(0.05)
    raise AssertionError("training did not start")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_exits(env, data, sig, code):
    run_dir = env / "run"
    proc = _spawn(env, data, run_dir, "--log-every", "1")
    _wait_for_steps(run_dir, 3, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    state = checkpoint.load(run_dir / "last.pt")["train"]["state"]
    assert state["step"] >= 3
    end = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert end["event"] == "end" and end["reason"].startswith("interrupted")
    assert end["step"] == state["step"]


def test_kill_9_leaves_a_loadable_checkpoint(env, data):
    run_dir = env / "run"
    proc = _spawn(env, data, run_dir, "--log-every", "1")
    _wait_for_steps(run_dir, 8, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    loaded = checkpoint.load(run_dir / "last.pt")
    assert loaded["train"]["state"]["step"] >= 1
    assert all(torch.isfinite(w).all() for w in loaded["weights"].values())


@pytest.mark.parametrize("command", ["tokenize", "train", "sample", "beam", "eval", "info"])
def test_help_names_arguments_and_shows_flags_as_flags(run, command):
    text = ok(run(command, "--help")).stdout
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: charrnn {command} [OPTIONS]") and "<" not in usage
    assert "--json" in text and "--json <bool>" not in text and "--quiet <bool>" not in text


def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(monkeypatch):
    import builtins

    from charrnn import __main__ as entry

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):  # Ctrl-C while torch is being imported
        if name == "charrnn.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as done:
        entry.main()
    assert done.value.code == 130


def test_every_training_flag_reaches_the_run(env, data, run):
    given = {
        "--embed-size": 12,
        "--hidden-size": 20,
        "--num-layers": 2,
        "--dropout": 0.1,
        "--embed-dropout": 0.05,
        "--batch-size": 3,
        "--seq-len": 16,
        "--reset-every": 50,
        "--batching": "random",
        "--lr": 0.002,
        "--min-lr-frac": 0.2,
        "--warmup-steps": 1,
        "--schedule": "constant",
        "--optimizer": "adam",
        "--weight-decay": 0.05,
        "--epochs": 5,
        "--max-steps": 3,
        "--clip-norm": 2.0,
        "--clip-value": 0.5,
        "--eval-every": 2,
        "--patience": 9,
        "--checkpoint-every": 2,
        "--log-every": 1,
        "--seed": 5,
    }
    args = [str(x) for pair in given.items() for x in pair]
    ok(run("train", data, "-o", env / "r", "--model", "gru", "--residual", *args, "-q"))
    saved = checkpoint.load(env / "r" / "last.pt")
    model, config = saved["model"]["config"], saved["train"]["config"]
    for flag, value in given.items():
        key = flag[2:].replace("-", "_")
        assert (model | config)[key] == value, flag
    assert model["residual"] and saved["model"]["name"] == "gru"


def test_progress_without_a_terminal_is_a_labelled_line_every_30_seconds(capsys, monkeypatch):
    from charrnn.cli import cmd_train

    clock = {"now": 1000.0}
    monkeypatch.setattr(cmd_train.time, "monotonic", lambda: clock["now"])
    display = cmd_train.TrainDisplay(quiet=False, started=[])
    start = {"event": "start", "step": 0, "params": 1000, "config": {"clip_norm": 1.0}}
    display.event({**start, "precision": "bf16", "threads": 2})

    def train(step, seconds):
        clock["now"] = 1000.0 + seconds
        record = {"event": "train", "step": step, "loss": 2.0, "tokens_per_s": 9000.0}
        record.update(grad_norm=0.5, clipped=0.1, elapsed=seconds, remaining=300.0 - seconds)
        display.event({**record, "progress": seconds / 300})

    for step, seconds in ((10, 4.0), (20, 9.0), (30, 11.0), (40, 25.0), (50, 41.5), (60, 70.0)):
        train(step, seconds)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "training from step 0: 1,000 parameters, bf16, 2 thread(s)"
    progress = lines[1:]
    # the first line 10 s after the start, then every 30 s
    assert [line.split(":")[0] for line in progress] == ["step 30 (4%)", "step 50 (14%)"]
    assert (
        "loss 2.000 | 9.0k tok/s | |g| 0.50 (10% clipped) | elapsed 0m11s, left 4m49s"
        in (progress[0])
    )
