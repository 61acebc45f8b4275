"""Seq2seq from the command line: every encoder/attention combination trains, resumes,
decodes and scores; bad parallel input; attention pictures; scoring files without a model."""

from __future__ import annotations

import datetime
import json
import random

import pytest
from conftest import assert_error, ok, png_info

from charrnn import models
from charrnn.config import TokenizeConfig
from charrnn.dates import date_pair
from charrnn.metrics import text_scores
from charrnn.pairs import tokenize_pairs

SEQ2SEQ = [name for name, entry in models.MODELS.items() if entry.kind == "seq2seq"]
ATTENTIONS = ["dot", "general", "additive", "none"]
TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "8", "--eval-every", "2", "-q"]


@pytest.fixture(scope="module")
def dates(tmp_path_factory):
    """400 dates written many ways, tokenized; 20 held-out sources and references."""
    from charrnn.config import TokenizeConfig
    from charrnn.pairs import tokenize_pairs

    tmp = tmp_path_factory.mktemp("dates")
    rng = random.Random(5)
    pairs = [
        date_pair(datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 40000)), rng)
        for _ in range(420)
    ]
    (tmp / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:400]))
    (tmp / "src.txt").write_text("".join(s + "\n" for s, _ in pairs[400:]))
    (tmp / "ref.txt").write_text("".join(t + "\n" for _, t in pairs[400:]))
    tokenize_pairs([str(tmp / "train.tsv")], tmp / "data", TokenizeConfig())
    return tmp


@pytest.mark.parametrize("name", SEQ2SEQ)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_encoder_and_attention_end_to_end(run, dates, tmp_path, name, attention):
    run_dir = tmp_path / "run"
    first = ok(
        run(
            "train",
            dates / "data",
            "-o",
            run_dir,
            "--model",
            name,
            "--attention",
            attention,
            *TINY,
            "--max-steps",
            "4",
            "--json",
        )
    ).json()
    assert first["step"] == 4 and first["model"] == name
    again = ok(run("train", "--resume", run_dir, "--max-steps", "6", "--json", "-q")).json()
    assert again["step"] == 6
    sources = (dates / "src.txt").read_text()
    out = ok(run("beam", run_dir, "--beam-size", "3", "--max-len", "12", stdin=sources)).stdout
    assert len(out.splitlines()) == 20  # one line per source, in order
    scores = ok(
        run(
            "eval",
            run_dir,
            "--src",
            dates / "src.txt",
            "--ref",
            dates / "ref.txt",
            "--beam-size",
            "2",
            "--json",
        )
    ).json()
    assert scores["sentences"] == 20 and scores["loss"] > 0
    assert {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match"} <= set(scores)
    on_val = ok(run("eval", run_dir, "--beam-size", "1", "--json")).json()
    assert on_val["sentences"] == 40 and "val" in on_val["data"]


@pytest.fixture(scope="module")
def trained(dates, tmp_path_factory):
    from charrnn import runs

    run_dir = tmp_path_factory.mktemp("s2s") / "run"
    runs.start_training(
        str(dates / "data"),
        run_dir,
        model_name="seq2seq-gru",
        model_options={"embed_size": 16, "hidden_size": 32},
        train_options={"batch_size": 16, "max_steps": 30, "eval_every": 30},
    )
    return run_dir


def test_translation_lines_and_sampling(run, dates, trained):
    src = (dates / "src.txt").read_text()
    greedy = ok(run("sample", trained, "--temperature", "0", stdin=src)).stdout.splitlines()
    beam1 = ok(run("beam", trained, "--beam-size", "1", stdin=src)).stdout.splitlines()
    assert len(greedy) == 20 and greedy == beam1
    one = ok(run("beam", trained, "--prompt", "March 5, 2021")).stdout
    assert one.count("\n") == 1 and "March" not in one  # the source is not echoed
    rows = [
        json.loads(r)
        for r in ok(run("beam", trained, "--n-best", "2", "--json", stdin=src)).stdout.splitlines()
    ]
    assert len(rows) == 40 and {r["rank"] for r in rows} == {1, 2}
    echoed = ok(run("beam", trained, "--prompt", "March 5, 2021", "--echo")).stdout
    assert echoed == "March 5, 2021\t" + one  # source TAB output, like the training pairs


def test_attention_png_and_terminal(run, trained, tmp_path):
    png = tmp_path / "attention.png"
    result = ok(
        run("beam", trained, "--prompt", "5 March 2021", "--attention", png, "--show-attention")
    )
    info = png_info(png)  # a whole, valid PNG, drawn by matplotlib with labelled axes
    assert info["width"] > 300 and info["height"] > 200
    assert info["text"]["Title"].startswith("Attention: 5 \u2423 M a r c h")
    assert "wrote" in result.stderr and "<eos>" in result.stderr
    svg = tmp_path / "attention.svg"
    ok(run("beam", trained, "--prompt", "5 March 2021", "--attention", svg))
    drawn = svg.read_text()
    assert "source token" in drawn and "output token" in drawn  # the axes' labels
    assert_error(
        run("beam", trained, "--prompt", "x", "--attention", tmp_path / "a.jpg"), 2, ".png"
    )


def test_an_empty_source_line_gives_an_empty_output_line(run, dates, trained):
    lines = (dates / "src.txt").read_text().splitlines()[:4]
    with_gaps = "\n".join(["", lines[0], lines[1], "", lines[2], lines[3], ""]) + "\n"
    for command in (["beam", "--min-len", "3"], ["sample", "--temperature", "0"]):
        plain = ok(run(*command[:1], trained, *command[1:], stdin="\n".join(lines) + "\n"))
        plain = plain.stdout.splitlines()
        assert len(plain) == 4 and any(plain)
        out = ok(run(*command[:1], trained, *command[1:], stdin=with_gaps)).stdout.split("\n")
        assert out == ["", plain[0], plain[1], "", plain[2], plain[3], "", ""]
    rows = [
        json.loads(r)
        for r in ok(run("beam", trained, "--json", stdin=with_gaps)).stdout.split("\n")[:-1]
    ]
    assert [i for i, r in enumerate(rows) if r["finished"] == "empty"] == [0, 3, 6]
    assert rows[0]["text"] == "" and rows[0]["tokens"] == 0 and rows[0]["line"] == 1
    # a line whose characters are all skipped as unknown is empty too
    skipped = run("beam", trained, "--unknown", "skip", "--json", stdin="\u2603\u2603\n")
    assert ok(skipped).json()["finished"] == "empty"
    result = ok(run("beam", trained, "--prompt", "", "--show-attention"))
    assert result.stdout == "\n" and "no attention to draw" in result.stderr


def test_seq2seq_flags_are_checked_not_ignored(run, dates, trained, tmp_path):
    src, ref = dates / "src.txt", dates / "ref.txt"
    cases = [
        (["eval", trained, "--ref", ref], "--ref: needs --src"),
        (["eval", trained, "--split", "bogus"], "--split: unknown split 'bogus'"),
        (["eval", trained, "--beam-size", "0"], "--beam-size: 0 must be at least 1"),
        (["eval", trained, "--src", src, "--ref", ref, "--split", "val"], "--split: chooses"),
        (["beam", trained, "--prompt", "x", "--attention", tmp_path], "is a directory"),
        (["beam", trained, "--prompt", "x", "--attention", tmp_path / "no/a.png"], "not exist"),
        (["sample", trained, "--prompt", "x", "--seed", str(2**64)], "--seed"),
        (["train", "--resume", trained, "--batching", "random"], "--batching: cuts a text"),
        (["train", dates / "data", "-o", tmp_path / "r", "--seq-len", "64"], "--seq-len: cuts"),
    ]
    for args, needle in cases:
        assert_error(run(*args), 2, needle)
    assert list(tmp_path.iterdir()) == []  # no stray temporary file
    assert_error(run("eval", trained, tmp_path / "gone"), 1, "gone: no such file or directory")
    (tmp_path / "blank.txt").write_text("\n\n")
    blank = run("eval", trained, "--src", tmp_path / "blank.txt", "--ref", tmp_path / "blank.txt")
    assert_error(blank, 1, f"--src {tmp_path / 'blank.txt'} and --ref")  # not a scratch path
    # sources in another script: scored (as <unk>), and the report says how many
    (tmp_path / "cyrillic.txt").write_text("\u041f\u0440\u0438\u0432\u0435\u0442\n")
    (tmp_path / "ref.txt").write_text("2021-03-05\n")
    foreign = ok(
        run("eval", trained, "--src", tmp_path / "cyrillic.txt", "--ref", tmp_path / "ref.txt")
    )
    assert "unknown     6 source character(s) outside the model's vocabulary" in foreign.stdout
    scored = ok(run("eval", trained, "--split", "train", "--beam-size", "1", "--json", "-q"))
    assert scored.json()["data"].endswith("(train)")
    # a data directory of parallel text, named: here the run's own, so the same scores
    named = run("eval", trained, dates / "data", "--split", "train", "--beam-size", "1", "--json")
    assert {k: v for k, v in ok(named).json().items() if k != "data"} == {
        k: v for k, v in scored.json().items() if k != "data"
    }
    other = tmp_path / "other"
    tokenize_pairs([str(dates / "train.tsv")], other, TokenizeConfig(lowercase=True))
    assert_error(run("eval", trained, other), 1, "encoded with other vocabularies")
    assert_error(run("eval", trained, other, "--src", src, "--ref", ref), 2, "both give")
    assert_error(run("eval", trained, src), 2, "or on a data directory of parallel text")
    # a source from stdin is one line: its newline is not an unknown character
    line = src.read_text().splitlines()[0]
    piped = ok(run("beam", trained, "--prompt", "-", stdin=line + "\n")).stdout
    assert piped == ok(run("beam", trained, "--prompt", line)).stdout
    two = run("sample", trained, "--prompt", "-", stdin=line + "\n" + line + "\n")
    assert_error(two, 2, "--prompt -: reads all of stdin as one source sentence")


def test_tied_embeddings_are_checked_against_the_kinds_sizes(run, dates, tmp_path):
    """seq2seq runs are 256 wide by default, language models 768: --tie-weights with
    --embed-size 256 is right for the one and wrong for the other."""
    for data in ("builtin:dates", dates / "data"):
        ok(
            run(
                "train",
                data,
                "-o",
                tmp_path / "r",
                "--embed-size",
                "256",
                "--tie-weights",
                "--max-steps",
                "1",
                "--force",
                "-q",
            )
        )
    wrong = run("train", dates / "data", "-o", tmp_path / "w", "--tie-weights", "--max-steps", "1")
    assert_error(wrong, 2, "--tie-weights: needs --embed-size equal to --hidden-size (64 vs 256)")


def test_max_len_ratio_is_checked(run, trained):
    for bad in ("0", "inf", "nan"):
        result = run("beam", trained, "--max-len-ratio", bad, stdin="x\n")
        assert_error(result, 2, f"{bad} must be a positive number")
    # 0.5 x (12 characters + <eos>), rounded up; --min-len keeps <eos> away until then
    cut = run(
        "beam",
        trained,
        "--max-len-ratio",
        "0.5",
        "--min-len",
        "20",
        "--json",
        stdin="5 March 2021\n",
    )
    assert (ok(cut).json()["tokens"], cut.json()["finished"]) == (7, "length")
    # --end is a language model's: a seq2seq output ends with its own end token
    assert_error(run("beam", trained, "--end", "\\n", stdin="x\n"), 2, "--end: applies to")


def test_attention_needs_a_seq2seq_model_and_is_checked_first(run, tmp_path, shakespeare_like):
    ok(run("train", shakespeare_like, "-o", tmp_path / "lm", *TINY, "--max-steps", "1"))
    for flag in (["--show-attention"], ["--attention", tmp_path / "a.png"]):
        result = run("beam", tmp_path / "lm", "--prompt", "the", *flag)
        assert_error(result, 2, f"{flag[0]}: needs a seq2seq model with attention")
        assert result.stdout == ""  # nothing decoded first
    # --max-len-ratio measures a source: a language model has none
    for command in ("sample", "beam", "eval"):
        result = run(command, tmp_path / "lm", "--max-len-ratio", "3")
        assert_error(result, 2, "--max-len-ratio: applies to seq2seq models")


def test_scoring_files_without_a_model(run, dates, tmp_path):
    refs = (dates / "ref.txt").read_text().splitlines()
    hyps = [r if i % 2 else r[:-1] + "X" for i, r in enumerate(refs)]
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "ref2.txt").write_text("\n".join(hyps) + "\n")
    scores = ok(
        run("eval", "--hyp", tmp_path / "hyp.txt", "--ref", dates / "ref.txt", "--json")
    ).json()
    expected = text_scores(hyps, [[r] for r in refs])
    assert scores["bleu"] == expected["bleu"] and scores["exact_match"] == 50.0
    two = ok(
        run(
            "eval",
            "--hyp",
            tmp_path / "hyp.txt",
            "--ref",
            dates / "ref.txt",
            "--ref",
            tmp_path / "ref2.txt",
            "--json",
        )
    ).json()
    assert two["exact_match"] == 100.0 and two["bleu_signature"].startswith("nrefs:2")
    human = ok(run("eval", "--hyp", tmp_path / "hyp.txt", "--ref", dates / "ref.txt")).stdout
    assert "BLEU" in human and "chrF" in human and "ROUGE" in human
    # a file saved with a byte order mark (Windows editors) scores as the same text
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "hyp.txt").read_bytes())
    bom = run("eval", "--hyp", tmp_path / "bom.txt", "--ref", dates / "ref.txt", "--json")
    assert ok(bom).json() == {**scores, "hyp": str(tmp_path / "bom.txt")}


def test_bad_parallel_input(run, tmp_path, dates):
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "b.txt").write_text("un\ndeux\n")
    (tmp_path / "notab.tsv").write_text("source\ttarget\nno tab\n")
    (tmp_path / "empty.tsv").write_text("\t\n \tx\n")
    (tmp_path / "short.txt").write_text("x\n")
    out = ["-o", tmp_path / "d"]
    cases = [
        (
            ["tokenize", "--pairs", tmp_path / "a.txt", tmp_path / "b.txt", *out],
            1,
            "misaligned: 3 source lines but 2 target lines",
        ),
        (["tokenize", "--pairs", tmp_path / "notab.tsv", *out], 1, "line 2: no TAB"),
        (["tokenize", "--pairs", tmp_path / "empty.tsv", *out], 1, "no usable pairs"),
        (
            [
                "tokenize",
                "--pairs",
                tmp_path / "a.txt",
                tmp_path / "b.txt",
                tmp_path / "a.txt",
                *out,
            ],
            2,
            "a TSV file or two aligned files",
        ),
        (["tokenize", "--pairs", tmp_path / "missing.tsv", *out], 1, "no such file"),
        (["tokenize", "--pairs", dates / "train.tsv", "--glob", "*.md", *out], 2, "--glob: picks"),
        (["eval", "--hyp", dates / "ref.txt", "--ref", tmp_path / "short.txt"], 1, "1 lines"),
        # fewer hypotheses than references: the hypotheses are named, not only the references
        (
            ["eval", "--hyp", tmp_path / "short.txt", "--ref", dates / "ref.txt"],
            1,
            f"{tmp_path / 'short.txt'}, {dates / 'ref.txt'}: not line-aligned",
        ),
        (["eval", "--hyp", dates / "ref.txt"], 2, "--ref"),
        (["eval", "--hyp", dates, "--ref", dates / "ref.txt"], 1, "is a directory"),
        (["eval", "--hyp", dates / "ref.txt", "--ref", dates], 1, "is a directory"),
        (
            ["train", dates / "data", "-o", tmp_path / "r", "--model", "lstm", *TINY],
            2,
            "lstm is a lm model but the data is parallel text",
        ),
        (
            ["train", dates / "data", "-o", tmp_path / "r", "--attention", "luong", *TINY],
            2,
            "unknown attention",
        ),
        (
            [
                "train",
                dates / "data",
                "-o",
                tmp_path / "r",
                "--hidden-size",
                "15",
                "--embed-size",
                "8",
                "-q",
            ],
            2,
            "odd",
        ),
    ]
    for args, code, needle in cases:
        assert_error(run(*args), code, needle)
    assert not (tmp_path / "d").exists()


def test_seq2seq_options_on_a_language_model_are_errors(run, tmp_path, shakespeare_like):
    ok(run("tokenize", shakespeare_like, "-o", tmp_path / "lm", "-q"))
    for flag in (["--attention", "dot"], ["--no-bidirectional"], ["--scheduled-sampling", "0.2"]):
        assert_error(
            run("train", tmp_path / "lm", "-o", tmp_path / "r", *flag, "-q"),
            2,
            "is for seq2seq models",
        )
    assert_error(
        run("train", tmp_path / "lm", "-o", tmp_path / "r", "--model", "seq2seq-gru", "-q"),
        2,
        "seq2seq-gru is a seq2seq model but the data is plain text",
    )


def test_info_on_pair_data(run, dates):
    info = ok(run("info", dates / "data", "--json")).json()
    assert info["kind"] == "pairs" and info["splits"]["train"]["pairs"] == 360
    # the same shapes as a text data directory's summary, one per side
    for side in ("source", "target"):
        top = info["top_chars"][side]
        assert {"char", "fraction"} == set(top[0]) and 0 < sum(c["fraction"] for c in top) <= 1
        assert info["unknown_chars"][side] == {}
    assert "parallel text" in ok(run("info", dates / "data")).stdout


def test_parallel_text_without_pairs_gets_a_warning(run, dates, tmp_path):
    one_step = ["--max-steps", "1", "--seq-len", "8", "--batch-size", "2"]
    lm = run("train", dates / "train.tsv", "-o", tmp_path / "lm", *TINY, *one_step)
    assert "looks like parallel text" in ok(lm).stderr and "add --pairs" in lm.stderr
    text = run("train", dates / "src.txt", "-o", tmp_path / "t", *TINY, *one_step)
    assert "looks like parallel text" not in ok(text).stderr


def test_attention_labels_stay_over_their_columns():
    from rich.cells import cell_len
    from rich.text import Text

    from charrnn.cli.cmd_decode import attention_lines

    # BPE tokens of several characters, markup, wide characters
    src, tgt = ["I", " am", " cold", "[x", "日本", "<eos>"], ["Je", " suis", "<eos>"]
    weights = [[0.9, 0.1, 0, 0, 0, 0], [0, 0.8, 0.2, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]]
    lines = attention_lines(src, tgt, weights, color=False)
    header, *rows = [Text.from_markup(line).plain for line in lines]
    # columns as wide as their labels (at least 2 cells), one space apart, after the row labels
    labels = ["I", "\u2423am", "\u2423cold", "[x", "日本", "<eos>"]
    starts = [6, 9, 13, 19, 22, 27]
    assert [cell_len(header[: header.index(label)]) for label in labels] == starts
    assert [row[:6].rstrip() for row in rows] == ["Je", "\u2423suis", "<eos>"]
    assert rows[0][6:] == "██" + " " * 4 + " " * 6 + " " * 3 + " " * 5 + " " * 6
    assert rows[2].endswith(" █████")  # the last column, 5 wide, full weight
