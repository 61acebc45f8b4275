"""`charrnn sample` and `charrnn beam` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import assert_error, ok

from charrnn import runs
from charrnn.cli import cmd_decode


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny char LSTM trained for a few steps on generated text."""
    import random

    from charrnn.config import TokenizeConfig
    from charrnn.data import tokenize_corpus

    tmp = tmp_path_factory.mktemp("decode")
    rng = random.Random(0)
    words = ["the", "king", "queen", "and", "of", "to", "my", "thy", "love", "night", "day"]
    text = (
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) for _ in range(800))
        + "\n"
    )
    (tmp / "c.txt").write_text(text)
    tokenize_corpus([str(tmp / "c.txt")], tmp / "data", TokenizeConfig())
    runs.start_training(
        str(tmp / "data"),
        tmp / "run",
        model_name="lstm",
        model_options={"embed_size": 16, "hidden_size": 32},
        train_options={
            "batch_size": 8,
            "seq_len": 32,
            "max_steps": 40,
            "eval_every": 40,
            "lr": 1e-2,
        },
    )
    return tmp / "run" / "best.pt"


def test_seed_makes_sampling_repeatable(run, model):
    a = ok(run("sample", model, "--length", "60", "--seed", "7")).stdout
    b = ok(run("sample", model, "--length", "60", "--seed", "7")).stdout
    c = ok(run("sample", model, "--length", "60", "--seed", "8")).stdout
    assert a == b and a != c


def test_prompt_is_echoed_and_continued(run, model):
    out = ok(run("sample", model, "--prompt", "the king", "--length", "20", "--seed", "1")).stdout
    assert out.startswith("the king") and len(out) > len("the king")
    bare = ok(
        run("sample", model, "--prompt", "the king", "--length", "20", "--seed", "1", "--no-echo")
    ).stdout
    assert out == "the king" + bare


def test_json_lines_one_per_sample(run, model):
    result = ok(
        run(
            "sample",
            model,
            "--prompt",
            "the",
            "--num-samples",
            "3",
            "--length",
            "15",
            "--seed",
            "2",
            "--json",
            "--top-p",
            "0.9",
        )
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and [r["sample"] for r in rows] == [0, 1, 2]
    assert all(r["tokens"] == 15 and r["logprob"] < 0 and r["prompt"] == "the" for r in rows)
    assert rows[0]["settings"]["top_p"] == 0.9


def test_greedy_is_temperature_zero_and_top_k_1(run, model):
    args = ("sample", model, "--prompt", "the ", "--length", "30")
    greedy = ok(run(*args, "--temperature", "0")).stdout
    assert greedy == ok(run(*args, "--top-k", "1", "--seed", "5")).stdout


def test_output_ends_with_one_newline(run, model):
    for length in range(1, 40):  # some samples end with a newline of their own
        text = ok(run("sample", model, "--seed", "3", "--length", str(length))).stdout
        assert text.endswith("\n") and not text.endswith("\n\n")


def test_per_line_one_output_line_per_input_line(run, model):
    # only \n (or \r\n) ends a line: a form feed or U+2028 stays inside its prompt
    stdin = "the king\r\nmy\x0clove\n\nthy\u2028night\n"
    args = ("sample", model, "--per-line", "--length", "40", "--seed", "3", "--unknown", "skip")
    lines = ok(run(*args, stdin=stdin)).stdout.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 4  # escaped newlines keep one line each
    as_json = ok(run(*args, "--json", stdin=stdin)).stdout.split("\n")[:-1]
    texts = [json.loads(line)["text"] for line in as_json]
    assert [cmd_decode.escape_line(t) for t in texts] == lines[:-1]
    assert [json.loads(line)["line"] for line in as_json] == [1, 2, 3, 4]
    # a byte order mark before the first line is not part of its prompt
    marked = ok(run(*args, "--json", stdin="\ufeff" + stdin)).stdout.split("\n")[:-1]
    assert json.loads(marked[0])["prompt"] == "the king" and marked == as_json


def test_a_lines_sample_does_not_depend_on_the_other_lines(run, model, monkeypatch):
    from charrnn.cli import cmd_decode

    args = ("sample", model, "--per-line", "--length", "30", "--seed", "3", "--json")
    both = ok(run(*args, stdin="the king\nmy love\n")).stdout.splitlines()
    alone = ok(run(*args, stdin="the king\n")).stdout.splitlines()
    assert json.loads(both[0])["text"] == json.loads(alone[0])["text"]
    monkeypatch.setattr(cmd_decode, "BATCH", 1)  # lines cut into batches of one
    one_by_one = ok(run(*args, stdin="the king\nmy love\n")).stdout.splitlines()
    # the same samples; their log-probabilities to float rounding (the number of rows picks
    # the matrix kernels)
    for a, b in zip(map(json.loads, one_by_one), map(json.loads, both), strict=True):
        assert a["logprob"] == pytest.approx(b.pop("logprob"), rel=1e-6)
        assert {k: v for k, v in a.items() if k != "logprob"} == b
    # sample 0 of two is the one sample of --num-samples 1
    pair = ok(run(*args, "--num-samples", "2", stdin="the king\n")).stdout.splitlines()
    assert (
        json.loads(pair[0])["text"] == json.loads(alone[0])["text"] != json.loads(pair[1])["text"]
    )


def test_json_records_the_seed_even_when_drawn_at_random(run, model):
    first = json.loads(ok(run("sample", model, "--length", "30", "--json")).stdout)
    seed = first["settings"]["seed"]
    assert isinstance(seed, int)
    again = ok(run("sample", model, "--length", "30", "--json", "--seed", str(seed))).stdout
    assert json.loads(again)["text"] == first["text"]


def test_stop_string_ends_and_is_not_printed(run, model):
    result = ok(
        run(
            "sample",
            model,
            "--length",
            "300",
            "--stop",
            "\\n",
            "--seed",
            "4",
            "--no-echo",
            "--json",
        )
    )
    row = json.loads(result.stdout)
    assert "\n" not in row["text"] and row["finished"] == "stop" and row["tokens"] < 300


def test_max_chars(run, model):
    row = json.loads(ok(run("sample", model, "--max-chars", "5", "--json", "--seed", "1")).stdout)
    assert len(row["text"]) == 5 and row["finished"] == "length"


def test_unknown_prompt_characters(run, model):
    assert_error(
        run("sample", model, "--prompt", "the \u00e9\u00e9 king \u65e5"),
        1,
        "2 character(s) not in the model's vocabulary: '\u00e9' x2, '\u65e5'",
    )
    result = ok(
        run("sample", model, "--prompt", "the \u00e9 king", "--unknown", "skip", "--length", "5")
    )
    assert result.stdout.startswith("the \u00e9 king") and "1 prompt character" in result.stderr


def test_bad_input(run, model, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    cases = [
        (["sample", tmp_path / "none.pt"], 1, "no such file"),
        (["sample", tmp_path / "bad.pt"], 1, "corrupt, truncated"),
        (["sample", model, "--length", "0"], 2, "--length"),
        (["sample", model, "--length", "-3"], 2, "--length"),
        (["sample", model, "--top-p", "0"], 2, "--top-p"),
        (["sample", model, "--top-p", "1.5"], 2, "--top-p"),
        (["sample", model, "--top-k", "-1"], 2, "--top-k"),
        (["sample", model, "--temperature", "-0.5"], 2, "--temperature"),
        (["sample", model, "--temperature", "inf"], 2, "--temperature: inf is not a finite"),
        # bytes that are not UTF-8 in argv arrive as lone surrogates
        (["sample", model, "--prompt", "ab\udcffc"], 2, "--prompt: holds bytes that are not"),
        (["sample", model, "--stop", "\udcff"], 2, "--stop: holds bytes that are not UTF-8"),
        (["beam", model, "--end", "\udcff"], 2, "--end: holds bytes that are not UTF-8"),
        (["sample", model, "--temperature", "nan"], 2, "--temperature: nan is not a finite"),
        (["sample", model, "--repetition-penalty", "inf"], 2, "--repetition-penalty: inf"),
        # float32 would overflow: <pad> and <bos> were drawn at --temperature 1e39
        (["sample", model, "--temperature", "1e39"], 2, "--temperature: 1e+39 is too large"),
        (["sample", model, "--repetition-penalty", "1e-39"], 2, "--repetition-penalty: 1e-39"),
        (["sample", model, "--repetition-penalty", "0"], 2, "--repetition-penalty: 0 is outside"),
        (["beam", model, "--length-penalty", "gnmt", "--alpha", "inf"], 2, "--alpha: inf"),
        (["sample", model, "--stop", ""], 2, "--stop"),
        (["sample", model, "--num-samples", "0"], 2, "--num-samples"),
        (["sample", model, "--per-line", "--num-samples", "2"], 2, "--num-samples"),
        (["beam", model, "--beam-size", "0"], 2, "--beam-size"),
        (["beam", model, "--n-best", "9"], 2, "--n-best"),
        (["beam", model, "--max-len", "0"], 2, "--max-len"),
        (["beam", model, "--length-penalty", "log"], 2, "--length-penalty"),
        (["sample", model, "--threads", "0"], 2, "Error: --threads: "),  # the parser's own
        (["sample", model, "--temperature", "abc"], 2, "Error: --temperature: "),
        (["sample", "--bogus", model], 2, "Error: charrnn sample: No such option: --bogus"),
        (["beam", "the king", model], 2, "give the text with --prompt (or on stdin)"),
        (["beam", model, "--end", "\\n\\n"], 2, "--end: no token of the model's vocabulary"),
        (["beam", model, "--end", "@"], 2, "--end: no token of the model's vocabulary"),
    ]
    for args, code, needle in cases:
        assert_error(run(*args), code, needle)
    assert_error(run("sample", model, "--prompt", "-", stdin=""), 1, "the prompt is empty")
    assert_error(run("sample", model, "--per-line", stdin=""), 1, "stdin is empty")
    bad = run("sample", model, "--prompt", "-", stdin=b"\xef\xbb\xbfab\xff")
    assert_error(bad, 1, "stdin: not valid utf-8 at byte offset 5")  # the mark's bytes count


def test_beam_n_best_json_and_greedy_equivalence(run, model):
    nbest = ok(
        run(
            "beam",
            model,
            "--prompt",
            "the ",
            "--beam-size",
            "4",
            "--n-best",
            "3",
            "--max-len",
            "12",
        )
    ).stdout.splitlines()
    assert len(nbest) == 3
    scores = [float(line.split("\t")[0]) for line in nbest]
    assert scores == sorted(scores, reverse=True)
    rows = [
        json.loads(line)
        for line in ok(
            run("beam", model, "--prompt", "the ", "--json", "--max-len", "12")
        ).stdout.splitlines()
    ]
    assert len(rows) == 1 and rows[0]["rank"] == 1 and rows[0]["tokens"] == 12
    beam1 = ok(run("beam", model, "--prompt", "the ", "--beam-size", "1", "--max-len", "25")).stdout
    greedy = ok(
        run("sample", model, "--prompt", "the ", "--temperature", "0", "--length", "25")
    ).stdout
    assert beam1 == greedy
    # --min-len without --end: a language model has no end token to hold back
    short = run("beam", model, "--prompt", "the ", "--min-len", "3", "--max-len", "5", "--json")
    assert ok(short).json()["tokens"] == 5


def test_beam_per_line_batch_equals_one_by_one(run, model):
    prompts = ["the king", "my", "thy night and", "love"]
    batch = ok(
        run(
            "beam",
            model,
            "--per-line",
            "--max-len",
            "15",
            "--end",
            "\\n",
            stdin="\n".join(prompts) + "\n",
        )
    ).stdout.splitlines()
    alone = [
        ok(
            run("beam", model, "--per-line", "--max-len", "15", "--end", "\\n", stdin=p + "\n")
        ).stdout.strip("\n")
        for p in prompts
    ]
    assert batch == alone
    assert all("\\n" not in line for line in batch)  # --end cut each at the first newline
    rows = ok(
        run("beam", model, "--prompt", "the", "--max-len", "60", "--end", "\\n", "--json")
    ).stdout.splitlines()
    assert json.loads(rows[0])["finished"] in ("end", "length")


def test_show_beams_does_not_touch_stdout(run, model, monkeypatch):
    from rich.console import Console

    from charrnn.cli import cmd_decode

    plain = ok(run("beam", model, "--prompt", "the", "--max-len", "10")).stdout
    shown = ok(run("beam", model, "--prompt", "the", "--max-len", "10", "--show-beams")).stdout
    assert plain == shown
    # stderr a terminal, stdout a file: the results still go to stdout, not to the display
    monkeypatch.setattr(cmd_decode, "err", Console(stderr=True, force_terminal=True))
    monkeypatch.setattr(cmd_decode.BeamDisplay, "update", lambda *a: None)
    live = ok(run("beam", model, "--prompt", "the", "--max-len", "10", "--show-beams"))
    assert live.stdout == plain


def test_streaming_into_head_ends_quietly(model):
    done = subprocess.run(
        f"set -o pipefail; {sys.executable} -m charrnn sample {model} --length 100000 "
        "| head -c 100",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(done.stdout) == 100 and done.stderr == "" and done.returncode == 0


def test_text_on_stdin_without_prompt_dash_is_pointed_out(model, tmp_path):
    command = [sys.executable, "-m", "charrnn", "sample", str(model), "--length", "5"]
    piped = subprocess.run(command, input="the king", capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "stdin holds text that is not read" in piped.stderr
    (tmp_path / "prompt.txt").write_text("the king")
    with open(tmp_path / "prompt.txt") as stdin:
        redirected = subprocess.run(command, stdin=stdin, capture_output=True, text=True)
    assert "--prompt -" in redirected.stderr
    used = subprocess.run(  # (--threads in a child process: it is global to torch)
        [*command, "--prompt", "-", "--threads", "1"], input="the", capture_output=True, text=True
    )
    assert used.returncode == 0 and used.stderr == ""


def test_text_arrives_before_generation_ends(model):
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "sample", str(model), "--length", "1000000", "--no-echo"],
        stdout=subprocess.PIPE,
    )
    try:
        first = proc.stdout.read(20)
        assert len(first) == 20 and proc.poll() is None  # still generating
    finally:
        proc.kill()
        proc.wait()


def test_beam_display_draws_the_first_inputs_beams():
    import torch

    from charrnn.cli.cmd_decode import BeamDisplay
    from charrnn.tokenizer import CharTokenizer

    display = BeamDisplay(CharTokenizer.build("ab"), enabled=False)
    drawn = []
    display.live = type("Live", (), {"update": lambda self, table: drawn.append(table)})()
    display.update(3, torch.tensor([[[4, 5, 4], [5, 5, 5]]]), torch.tensor([[-1.0, -2.0]]))
    assert len(drawn) == 1 and drawn[0].row_count == 2


def test_sampling_flags_take_effect(run, model):
    base = ("sample", model, "--length", "40", "--no-echo", "--seed", "2")
    greedy = ok(run(*base, "--temperature", "0")).stdout
    # filters that leave only the most likely token make sampling greedy
    assert ok(run(*base, "--min-p", "0.99")).stdout == greedy
    assert ok(run(*base, "--top-p", "1e-9")).stdout == greedy
    assert ok(run(*base)).stdout != greedy
    # a 1-gram may not repeat: every token of the output is new
    once = json.loads(ok(run(*base, "--no-repeat-ngram", "1", "--json")).stdout)["text"]
    assert len(set(once)) == len(once) > 5
    # a huge repetition penalty on greedy decoding keeps it off the prompt's characters,
    # which it uses without one
    prompt = ("--prompt", "the king", "--temperature", "0", "--length", "5")
    plain = ok(run(*base, *prompt)).stdout
    penalised = ok(run(*base, *prompt, "--repetition-penalty", "1000")).stdout
    assert set(plain) & set("the king") and not set(penalised) & set("the king")
