"""The fault table: hostile inputs, absurd flags, damaged and malicious checkpoints, signals
in every phase, full disks, locked runs, closed streams and names too long. Each case checks
the exit code, the one-line `Error: <where>: <what>; <how to fix>` on stderr, no traceback,
and what is on disk afterwards (nothing half-written, the previous checkpoint intact).

In-process cases use the `run` fixture; signals, closed streams and /dev/full need a real
process (`_proc`). Disk-full cases patch the writer (a real full file system needs root).
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_error, ok

from charrnn import checkpoint, runs
from charrnn.runlock import RunLock

TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "4", "--seq-len", "16"]
TINY += ["--eval-every", "5", "-q"]
CLI = [sys.executable, "-m", "charrnn"]


def _proc(args, *, stdin=None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """charrnn in a process of its own (the cache dir is the test session's, by env)."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def _one_error_line(stderr: str, needle: str) -> None:
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "; " in lines[0], stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A text, its data directory and a trained run, shared by the table."""
    root = tmp_path_factory.mktemp("faults")
    text = root / "text.txt"
    rng = np.random.default_rng(0)
    words = ["the", "king", "and", "queen", "of", "my", "love", "night", "day", "sweet"]
    text.write_text(
        "\n".join(" ".join(rng.choice(words, 6)) for _ in range(1500)) + "\n", encoding="utf-8"
    )
    from charrnn.config import TokenizeConfig
    from charrnn.data import tokenize_corpus

    tokenize_corpus([str(text)], root / "data", TokenizeConfig())
    runs.start_training(
        str(root / "data"),
        root / "run",
        model_name="lstm",
        model_options={"embed_size": 8, "hidden_size": 16},
        train_options={"batch_size": 4, "seq_len": 16, "max_steps": 10, "eval_every": 5},
    )
    return root


def _checkpoint_variant(env: Path, name: str, change) -> Path:
    """A copy of the run's last.pt, changed by `change(payload)`, in a run folder of its own."""
    folder = env / f"ck-{name}"
    folder.mkdir(exist_ok=True)
    payload = torch.load(env / "run" / "last.pt", weights_only=True)
    change(payload)
    torch.save(payload, folder / "last.pt")
    return folder


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/charrnn-pwned",))


# -- inputs and flags: (args, exit code, what the line says) ----------------------------------

LONG = "x" * 300  # longer than any file system allows in one name


def _input_cases(env: Path) -> list[tuple[list, int, str]]:
    binary = env / "binary.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    latin = env / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 10)
    empty = env / "empty.txt"
    empty.write_text("")
    no_text = env / "no-text"
    no_text.mkdir(exist_ok=True)
    (no_text / "x.bin").write_bytes(b"\x00" * 10)
    no_tab = env / "no-tab.tsv"
    no_tab.write_text("a\tb\nc d\n" * 5)
    left, right = env / "left.txt", env / "right.txt"
    left.write_text("a\nb\nc\n")
    right.write_text("a\nb\n")
    out = ["-o", env / "out"]
    run_dir, data = env / "run", env / "data"
    return [
        (["tokenize", env / "missing.txt", *out], 1, "no such file or directory"),
        (["tokenize", env / LONG, *out], 1, "file name too long"),
        (["train", env / LONG, *out, *TINY], 1, "file name too long"),
        (["tokenize", binary, *out], 1, "binary file (NUL byte at offset 0)"),
        (["tokenize", latin, *out], 1, "not valid utf-8 at byte offset 3"),
        (["tokenize", empty, *out], 1, "empty corpus"),
        (["tokenize", no_text, *out], 1, "no text files matching"),
        (["tokenize", data, *out], 1, "is a data directory"),
        (["tokenize", run_dir, *out], 1, "is a run directory"),
        (["tokenize", "builtin:poems", *out], 2, "use one of: builtin:shakespeare"),
        (["tokenize", "--pairs", no_tab, *out], 1, "line 2: no TAB"),
        (["tokenize", "--pairs", left, right, *out], 1, "misaligned: 3 source lines"),
        (["train", run_dir, *out], 2, "is a run directory"),
        (["train", data, *out, "--batch-size", "0"], 2, "--batch-size"),
        (["train", data, *out, "--lr", "1e9"], 2, "--lr"),
        (["train", data, *out, "--dropout", "1.0"], 2, "--dropout"),
        (["train", data, *out, "--precision", "half"], 2, "unknown precision"),
        (["train", data, *out, "--precision", "fp16"], 2, "fp16 runs on CUDA only"),
        (["train", data, *out, "--time-budget", "soon"], 2, "--time-budget"),
        (["train", data, *out, "--time-budget", "-5"], 2, "--time-budget"),
        (["train", data, *out, "--model", "transformer"], 2, "unknown model"),
        (["train", data, *out, "--device", "tpu"], 2, "unknown device"),
        (["train", data, *out, "--hidden-size", "100000"], 2, "--hidden-size"),
        (["train", data, *out, "--label-smoothing", "1.5"], 2, "--label-smoothing"),
        (["train", data, *out, "--label-smoothing", "0.1"], 2, "is for seq2seq models"),
        (["sample", run_dir, "--top-p", "1.5"], 2, "--top-p"),
        (["sample", run_dir, "--temperature", "-1"], 2, "--temperature"),
        (["sample", run_dir, "--temperature", "1e99"], 2, "too large"),
        (["sample", run_dir, "--length", "0"], 2, "--length"),
        (["sample", run_dir, "--prompt", "\u00e9\u00e9"], 1, "not in the model's vocabulary"),
        (["sample", run_dir, "--precision", "fp16"], 2, "fp16 runs on CUDA only"),
        (["beam", run_dir, "--beam-size", "0"], 2, "--beam-size"),
        (["beam", run_dir, "--coverage-penalty", "0.2"], 2, "needs a seq2seq model with attention"),
        (["beam", run_dir, "--coverage-penalty", "-1"], 2, "--coverage-penalty"),
        (["beam", run_dir, "--end", "\u00e9"], 2, "no token of the model's vocabulary"),
        (["eval", run_dir, env / "missing.txt"], 1, "no such file"),
        (["eval", "--hyp", left, "--ref", right], 1, "not line-aligned"),
    ]


def test_inputs_and_flags(env, run):
    cases = _input_cases(env)
    for args, code, needle in cases:
        result = run(*args)
        assert_error(result, code, needle)
    assert not (env / "out").exists()  # nothing half-made by any of them


# -- checkpoints ----------------------------------------------------------------------------


def test_damaged_foreign_and_malicious_checkpoints(env, run):
    saved = (env / "run" / "last.pt").read_bytes()
    cases = []
    for name, content in (
        ("garbage", b"garbage" * 100),
        ("truncated", saved[: len(saved) // 2]),
        ("empty", b""),
    ):
        folder = env / f"ck-{name}"
        folder.mkdir(exist_ok=True)
        (folder / "last.pt").write_bytes(content)
        cases.append((folder, 1, "not a readable checkpoint"))
    foreign = env / "ck-foreign"
    foreign.mkdir(exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign / "last.pt")
    cases.append((foreign, 1, "not a charrnn checkpoint"))
    evil = env / "ck-evil"
    evil.mkdir(exist_ok=True)
    with zipfile.ZipFile(evil / "last.pt", "w") as archive:  # torch's format, a hostile pickle
        archive.writestr("archive/data.pkl", pickle.dumps(_Evil()))
    cases.append((evil, 1, "not a readable checkpoint"))
    versions = [("newer", 99, "newer charrnn"), ("text", "2", "is not a number")]
    for name, version, needle in versions:
        folder = _checkpoint_variant(
            env, f"version-{name}", lambda p, v=version: p.update(version=v)
        )
        cases.append((folder, 1, needle))

    def reshape(p):
        p["weights"]["head.weight"] = torch.zeros(3, 3)

    def drop(p):
        del p["weights"]["rnn.rnn.weight_hh_l0"]

    def poison(p):
        p["weights"]["head.weight"][0, 0] = float("nan")

    def extra(p):
        p["weights"]["bogus"] = torch.zeros(1)

    cases += [
        (_checkpoint_variant(env, "shape", reshape), 1, "'head.weight' is 3x3 in the file but"),
        (_checkpoint_variant(env, "missing", drop), 1, "lack 'rnn.rnn.weight_hh_l0'"),
        (_checkpoint_variant(env, "nan", poison), 1, "holds NaN or infinite values"),
        (_checkpoint_variant(env, "extra", extra), 1, "hold 'bogus'"),
        (_checkpoint_variant(env, "kind", lambda p: p.update(kind="gan")), 1, "unknown kind"),
    ]
    for folder, code, needle in cases:
        for command in (["sample", folder, "--length", "5"], ["eval", folder], ["info", folder]):
            if command[0] == "info" and needle.startswith(("'", "lack", "hold")):
                continue  # info reads the header only
            result = run(*command)
            assert_error(result, code, needle)
    assert not Path("/tmp/charrnn-pwned").exists()
    shape = _checkpoint_variant(env, "shape", reshape)
    assert_error(run("train", "--resume", shape, "--max-steps", "20"), 1, "'head.weight' is 3x3")


# -- locks --------------------------------------------------------------------------------------


def test_a_second_training_on_one_directory_stops_at_once(env, run):
    run_dir = env / "locked"
    ok(run("train", env / "data", "-o", run_dir, *TINY, "--max-steps", "5"))
    before = (run_dir / "last.pt").read_bytes()
    lock = RunLock(run_dir)  # another process's training, as far as this one can tell
    lock.acquire()
    try:
        lines = (run_dir / "metrics.jsonl").read_text()
        result = run("train", env / "data", "-o", run_dir, *TINY, "--force")
        assert_error(result, 1, f"in use by another charrnn train (pid {os.getpid()})")
        result = run("train", "--resume", run_dir, "--max-steps", "9")
        assert_error(result, 1, "in use by another charrnn train")
        assert (run_dir / "last.pt").read_bytes() == before  # untouched
        assert (run_dir / "metrics.jsonl").read_text() == lines
        ok(run("sample", run_dir, "--length", "5"))  # readers need no lock
        ok(run("info", run_dir))
    finally:
        lock.release()
    ok(run("train", "--resume", run_dir, "--max-steps", "9"))  # free again


def test_a_lock_left_by_a_killed_process_is_taken_over(env, run):
    run_dir = env / "stale"
    ok(run("train", env / "data", "-o", run_dir, *TINY, "--max-steps", "5"))
    (run_dir / ".lock").write_text("999999\n")  # its process is gone: no kernel lock held
    ok(run("train", "--resume", run_dir, "--max-steps", "8"))
    assert (run_dir / ".lock").read_text().strip() == str(os.getpid())


def test_two_trainings_started_at_once_keep_the_first_intact(env, tmp_path):
    run_dir = tmp_path / "race"
    args = ["train", env / "data", "-o", run_dir, *TINY, "--max-steps", "60", "--seed", "5"]
    first = subprocess.Popen([*CLI, *map(str, args)], stderr=subprocess.PIPE, text=True)
    for _ in range(200):  # until the first holds the lock
        if (run_dir / ".lock").exists() and (run_dir / ".lock").read_text().strip():
            break
        time.sleep(0.05)
    second = _proc(args)
    assert second.returncode == 1
    _one_error_line(second.stderr, f"in use by another charrnn train (pid {first.pid})")
    assert first.wait(timeout=120) == 0
    alone = tmp_path / "alone"
    assert _proc([*args[:3], alone, *args[4:]]).returncode == 0
    a = checkpoint.load(run_dir / "last.pt")["weights"]
    b = checkpoint.load(alone / "last.pt")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the first run is the lone run


# -- disks and names ------------------------------------------------------------------------


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_checkpointing_keeps_the_previous_one(env, run, monkeypatch):
    run_dir = env / "full"
    ok(run("train", env / "data", "-o", run_dir, *TINY, "--max-steps", "5"))
    before = (run_dir / "last.pt").read_bytes()
    best = (run_dir / "best.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _full_disk)
    result = run("train", "--resume", run_dir, "--max-steps", "10", "-q")
    assert_error(result, 1, f"{run_dir}/best.pt: no space left on device; free some space")
    assert (run_dir / "last.pt").read_bytes() == before  # intact
    assert (run_dir / "best.pt").read_bytes() == best
    assert not list(run_dir.glob(".*tmp*"))  # no temporary file left
    monkeypatch.undo()
    ok(run("train", "--resume", run_dir, "--max-steps", "10"))  # and it resumes


def test_torch_reporting_a_full_disk_without_an_errno(env, run, monkeypatch):
    run_dir = env / "full-torch"
    ok(run("train", env / "data", "-o", run_dir, *TINY, "--max-steps", "5"))

    def failing(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 0 vs 64")

    monkeypatch.setattr(torch, "save", failing)
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result((0,) * 10))
    result = run("train", "--resume", run_dir, "--max-steps", "10", "-q")
    assert_error(result, 1, "no space left on device")


def test_a_full_disk_while_tokenizing_leaves_nothing(env, run, monkeypatch):
    from charrnn import data

    def full_when_writing(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).endswith(".bin"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(data, "open", full_when_writing, raising=False)
    assert_error(run("tokenize", env / "text.txt", "-o", env / "full-data"), 1, "no space left")
    assert not (env / "full-data").exists()
    assert not [p for p in env.iterdir() if p.name.startswith(".full-data")]


def test_a_full_disk_for_the_training_log(env, run, monkeypatch):
    from charrnn import trainlog

    monkeypatch.setattr(trainlog.json, "dumps", _full_disk)
    result = run("train", env / "data", "-o", env / "full-log", *TINY, "--max-steps", "5")
    assert_error(result, 1, "metrics.jsonl: no space left on device")


def test_a_read_only_output(env, run, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(Path, "mkdir", read_only)
    assert_error(run("tokenize", env / "text.txt", "-o", env / "ro"), 1, "read-only file system")


def test_long_but_legal_output_names_work(env, run):
    name = "n" * 250  # a legal name; a temporary name built from it must stay legal too
    ok(run("tokenize", env / "text.txt", "-o", env / name, "-q"))
    ok(run("train", env / name, "-o", env / "runs" / name, *TINY, "--max-steps", "5"))
    assert (env / "runs" / name / "last.pt").is_file()


def test_stdout_full_or_closed_and_stdin_closed(env):
    with open("/dev/full", "w") as full:
        for args in (
            ["sample", env / "run", "--length", "20"],
            ["info", env / "run", "--json"],
            ["tokenize", env / "text.txt", "-o", env / "x-full", "--json"],
        ):
            result = _proc(args, stdout=full)
            assert result.returncode == 1
            _one_error_line(result.stderr, "stdout: no space left on device")
    result = subprocess.run(
        [*CLI, "info", str(env / "run")], stderr=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert result.returncode == 1
    _one_error_line(result.stderr, "stdout: is closed")
    for args in (
        ["tokenize", "-", "-o", env / "x-stdin"],
        ["sample", env / "run", "--prompt", "-"],
    ):
        result = subprocess.run(
            [*CLI, *map(str, args)], capture_output=True, text=True, timeout=60,
            preexec_fn=lambda: os.close(0),
        )  # fmt: skip
        assert result.returncode == 1
        _one_error_line(result.stderr, "is closed")
    assert not (env / "x-stdin").exists()
    # the data was whole before its summary failed to print: it stays, and loads
    from charrnn.data import load_dataset

    assert load_dataset(env / "x-full").splits == ["train", "val"]


def test_fifos_and_process_substitution_are_streams(env, run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat {env / 'text.txt'} > {fifo}"])
    ok(run("tokenize", fifo, "-o", tmp_path / "from-fifo", "-q"))
    writer.wait(timeout=30)
    assert (tmp_path / "from-fifo" / "train.bin").stat().st_size > 0
    assert not list((tmp_path / "from-fifo").glob("stream-*"))  # the spooled text is gone
    done = subprocess.run(
        ["bash", "-c", f"{' '.join(CLI)} tokenize <(cat {env / 'text.txt'}) -o {tmp_path / 'ps'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# -- signals, phase by phase ------------------------------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signalled(args, sig, *, when, stdin=None) -> subprocess.CompletedProcess:
    """Run charrnn, send `sig` once `when()` holds, and wait for it to end. The child gets
    the default SIGINT disposition, as a command typed at a terminal has: a suite started in
    the background (`make test &`) would otherwise pass on an ignored SIGINT, which charrnn
    rightly leaves ignored."""
    proc = subprocess.Popen(
        [*CLI, *map(str, args)], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=_default_sigint,
    )  # fmt: skip
    for _ in range(600):
        if when() or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_reading_and_tokenizing(env, tmp_path, sig, code):
    # stdin that never ends: the command is reading it when the signal comes
    reader, writer = os.pipe()
    os.write(writer, b"some text\n" * 1000)
    args = ["tokenize", "-", "-o", tmp_path / "data"]
    marker = tmp_path / "started"
    with open(reader, "rb") as stdin:
        result = _signalled(args, sig, when=lambda: _sleep_done(marker, 2.5), stdin=stdin)
    os.close(writer)
    assert result.returncode == code
    _one_error_line(result.stderr, "stopped before the end")
    assert not (tmp_path / "data").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data")]


def _sleep_done(marker: Path, seconds: float) -> bool:
    if not marker.exists():
        marker.write_text(str(time.monotonic()))
    return time.monotonic() - float(marker.read_text()) >= seconds


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_training_saves_and_resumes(env, tmp_path, sig, code):
    run_dir = tmp_path / "run"
    args = ["train", env / "data", "-o", run_dir, *TINY, "--max-steps", "100000"]
    args += ["--checkpoint-every", "1000000"]
    result = _signalled(args, sig, when=lambda: _logged(run_dir, "train"))
    assert result.returncode == code, result.stderr
    assert "saving a checkpoint and stopping" in result.stderr and "Traceback" not in result.stderr
    saved = checkpoint.load(run_dir / "last.pt")
    assert saved["train"]["state"]["step"] > 0
    assert _proc(["train", "--resume", run_dir, "--max-steps", "120"]).returncode == 0


def test_a_signal_during_the_final_evaluation_exits_with_its_code(env, tmp_path):
    run_dir = tmp_path / "run"
    slow = tmp_path / "slow_eval.py"  # a final evaluation long enough to be interrupted
    slow.write_text(
        "import time, runpy, sys\n"
        "from charrnn.kinds import lm\n"
        "real = lm.LMTask.evaluate\n"
        "def evaluate(self, model, full=False):\n"
        "    if full:\n"
        f"        open({str(tmp_path / 'in-final')!r}, 'w').close(); time.sleep(3)\n"
        "    return real(self, model, full)\n"
        "lm.LMTask.evaluate = evaluate\n"
        "sys.argv = ['charrnn', *sys.argv[1:]]\n"
        "runpy.run_module('charrnn', run_name='__main__')\n"
    )
    args = ["train", env / "data", "-o", run_dir, *TINY, "--max-steps", "3"]
    proc = subprocess.Popen(
        [sys.executable, str(slow), *map(str, args)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for _ in range(600):
        if (tmp_path / "in-final").exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    state = checkpoint.load(run_dir / "last.pt")["train"]["state"]
    assert state["finished"] and state["step"] == 3  # the evaluation ended, all was saved


def test_a_signal_while_sampling_or_scoring(env):
    long_text = env / "long.txt"  # long enough to be scoring it when the signal comes
    long_text.write_text((env / "text.txt").read_text() * 60)
    for args in (
        ["sample", env / "run", "--length", "10000000"],
        ["eval", env / "run", long_text],
    ):
        marker = env / f"signal-{args[0]}"
        marker.unlink(missing_ok=True)
        result = _signalled(args, signal.SIGTERM, when=lambda m=marker: _sleep_done(m, 2.5))
        if result.returncode == 0:
            continue  # it ended before the signal came: nothing to check
        assert result.returncode == 143, result.stderr
        _one_error_line(result.stderr, "SIGTERM: stopped before the end")


def _logged(run_dir: Path, event: str) -> bool:
    log = run_dir / "metrics.jsonl"
    return log.is_file() and f'"event": "{event}"' in log.read_text()


def test_a_kill_after_the_last_step_is_finished_by_resume(env, run):
    run_dir = env / "killed-at-end"
    ok(run("train", env / "data", "-o", run_dir, *TINY, "--max-steps", "10"))
    # what a kill between the last checkpoint and the final evaluation leaves
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    payload["train"]["state"]["finished"] = False
    torch.save(payload, run_dir / "last.pt")
    (run_dir / "best.pt").unlink()
    result = ok(run("train", "--resume", run_dir, "--json"))
    assert result.json()["step"] == 10 and (run_dir / "best.pt").is_file()
    assert result.json()["last_eval"]["val_bpc"] > 0
    # now finished: a plain resume says the limit is reached
    assert_error(run("train", "--resume", run_dir), 2, "already reached --max-steps 10")


def test_nan_weights_are_refused_not_sampled(env, run):
    def poison(p):
        for tensor in p["weights"].values():
            tensor.fill_(float("nan"))

    folder = _checkpoint_variant(env, "all-nan", poison)
    assert_error(run("sample", folder, "--length", "10", "--json"), 1, "NaN or infinite")


def test_the_table_has_enough_cases(env):
    assert len(_input_cases(env)) >= 30
