"""Classifiers from the command line: every classify entry trains, checkpoints, resumes,
predicts and evaluates; `charrnn classify`'s output; bad input."""

from __future__ import annotations

import json
import random

import pytest
from conftest import assert_error, ok

from charrnn import checkpoint, models

CLASSIFIERS = [name for name, entry in models.MODELS.items() if entry.kind == "classify"]
TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "8", "--eval-every", "3", "-q"]
WORDS = {
    "fruit": "apple pear plum cherry grape lemon mango",
    "tool": "hammer saw drill wrench chisel file plane",
    "bird": "robin crow swan heron finch owl wren",
}


def _example(rng: random.Random, label: str) -> str:
    words = WORDS[label].split()
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """240 labelled lines (text TAB label) and 30 held out with their labels."""
    tmp = tmp_path_factory.mktemp("labelled")
    rng = random.Random(3)
    rows = [(_example(rng, label), label) for label in WORDS for _ in range(90)]
    rng.shuffle(rows)
    (tmp / "train.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows[:240]))
    (tmp / "test.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows[240:]))
    (tmp / "texts.txt").write_text("".join(f"{t}\n" for t, _ in rows[240:]))
    return tmp


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_end_to_end(env, run, labelled, name):
    run_dir = env / "run"
    train = ["train", labelled / "train.tsv", "--labels", "-o", run_dir, "--model", name]
    first = ok(run(*train, *TINY, "--max-steps", "6", "--json")).json()
    assert first["step"] == 6 and first["model"] == name
    assert first["model_config"]["bidirectional"] is True  # the default for classifiers
    assert "attention" not in first["model_config"] and "tie_weights" not in first["model_config"]
    assert 0 <= first["last_eval"]["val_accuracy"] <= 1
    again = ok(run("train", "--resume", run_dir, "--max-steps", "9", "--json", "-q")).json()
    assert again["step"] == 9
    # best.pt is the evaluation with the best validation macro-F1 unless --best-on says
    best = checkpoint.load(run_dir / "best.pt")
    assert best["train"]["config"]["best_on"] == "macro_f1"
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    f1s = [r["val_macro_f1"] for r in evals if r["event"] == "eval"]
    assert best["train"]["state"]["best_val_loss"] == pytest.approx(1 - max(f1s))
    lines = ok(run("classify", run_dir, stdin=(labelled / "texts.txt").read_text())).stdout
    rows = [line.split("\t") for line in lines.splitlines()]
    assert len(rows) == 30 and all(r[0] in WORDS and 0 < float(r[1]) <= 1 for r in rows)
    scores = ok(run("eval", run_dir, labelled / "test.tsv", "--json")).json()
    assert scores["examples"] == 30 and sorted(scores["labels"]) == sorted(WORDS)
    assert sum(map(sum, scores["confusion"])) == 30
    own = ok(run("eval", run_dir, "--json")).json()
    assert own["split"] == "val" and own["examples"] == sum(map(sum, own["confusion"]))
    info = ok(run("info", run_dir, "--json")).json()
    assert info["kind"] == "classify" and info["model"]["labels"] == sorted(WORDS)


def test_a_classifier_learns_and_explains(env, run, labelled):
    run_dir = env / "run"
    options = ["--pooling", "attention", "--max-steps", "120", "--lr", "1e-2", "--seed", "1"]
    train = ["train", labelled / "train.tsv", "--labels", "-o", run_dir, *TINY, *options]
    ok(run(*train))
    scores = ok(run("eval", run_dir, labelled / "test.tsv", "--json")).json()
    assert scores["accuracy"] >= 0.9, scores  # one word names the label: easy
    found = ok(run("classify", run_dir, "--json", "--top-k", "2", stdin="owl crow\n")).stdout
    record = json.loads(found)
    assert record["label"] == "bird" and len(record["probabilities"]) == 2
    assert record["tokens"] == [*"owl crow", "<eos>"] and len(record["weights"]) == 9
    assert sum(record["weights"]) == pytest.approx(1, abs=1e-4)
    page = env / "why.html"
    ok(run("classify", run_dir, "--explain", page, stdin="owl crow\nsaw\n"))
    text = page.read_text()
    assert text.count("<h3>") == 2 and "bird" in text and "<span title=" in text
    coloured = ok(run("classify", run_dir, "--explain", "-", stdin="owl crow\n")).stdout
    label, shown = coloured.splitlines()
    assert label.startswith("bird\t") and shown.count("\x1b[48;2;255;") == 9  # 8 chars, <eos>
    assert "\x1b[48;2;255;0;0m" in shown  # the largest weight: full red


def test_classify_files_names_each(env, run, labelled):
    run_dir = env / "run"
    ok(run("train", labelled / "train.tsv", "--labels", "-o", run_dir, *TINY, "--max-steps", "3"))
    (env / "a.txt").write_text("swan owl\n")  # a file is one text, its final newline dropped
    (env / "b.txt").write_text("pear")
    rows = ok(run("classify", run_dir, env / "a.txt", env / "b.txt")).stdout.splitlines()
    assert [r.split("\t")[0] for r in rows] == [str(env / "a.txt"), str(env / "b.txt")]


def test_classifier_bad_input(env, run, labelled, shakespeare_like):
    run_dir = env / "run"
    ok(run("train", labelled / "train.tsv", "--labels", "-o", run_dir, *TINY, "--max-steps", "2"))
    assert_error(run("sample", run_dir), 2, "is a classifier")
    assert_error(run("classify", run_dir, stdin="owl \u2603\n"), 1, "not in the model's vocabulary")
    assert ok(run("classify", run_dir, "--unknown", "unk", stdin="owl \u2603\n")).stdout
    assert_error(run("classify", run_dir, "--explain", env / "x.html", stdin="owl\n"), 2, "pooling")
    assert_error(run("classify", run_dir, "--explain", env / "x.png", stdin="owl\n"), 2, ".html")
    (env / "other.tsv").write_text("owl\tbird\nkiwi\tfruit\nsedan\tcar\n")
    assert_error(run("eval", run_dir, env / "other.tsv"), 1, "car")
    for flags in (["--beam-size", "3"], ["--src", env / "other.tsv"]):
        assert_error(run("eval", run_dir, *flags), 2, "is for seq2seq models, not classifiers")
    ratio = run("eval", run_dir, "--max-len-ratio", "3")
    assert_error(ratio, 2, "applies to seq2seq models (this is a classifier)")
    lm_run = env / "lm"
    ok(run("train", shakespeare_like, "-o", lm_run, *TINY, "--seq-len", "16", "--max-steps", "2"))
    assert_error(run("classify", lm_run, stdin="x\n"), 2, "not a classifier")
    assert_error(run("eval", lm_run, "--label-column", "first"), 2, "is for classifiers")
    tsv = labelled / "train.tsv"
    cases = [
        (["--labels", "--pairs"], "mark different kinds"),
        (["--labels", "--label-column", "middle"], "unknown column"),
        (["--labels", "--attention", "dot"], "is for seq2seq models"),
        (["--labels", "--scheduled-sampling", "0.1"], "is for seq2seq models"),
        (["--labels", "--batching", "random"], "cuts a text stream"),
        (["--labels", "--pooling", "sum"], "unknown pooling"),
        (["--labels", "--hidden-size", "15"], "odd"),
        (["--labels", "--best-on", "speed"], "unknown score"),
    ]
    for flags, needle in cases:
        assert_error(run("train", tsv, "-o", env / "bad", *flags, "-q"), 2, needle)
        assert not (env / "bad").exists()
    plain = ["train", shakespeare_like, "-o", env / "bad", "--class-weights", "balanced", "-q"]
    assert_error(run(*plain), 2, "is for classifiers")


def test_best_on_accuracy_and_class_weights(env, run, labelled):
    run_dir = env / "run"
    options = ["--best-on", "accuracy", "--class-weights", "balanced", "--max-steps", "6"]
    ok(run("train", labelled / "train.tsv", "--labels", "-o", run_dir, *TINY, *options))
    saved = checkpoint.load(run_dir / "last.pt")
    assert saved["train"]["config"]["best_on"] == "accuracy"
    assert saved["train"]["config"]["class_weights"] == "balanced"
    best = saved["train"]["state"]["best_val_loss"]  # 1 - the best accuracy
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    accuracies = [r["val_accuracy"] for r in evals if r["event"] == "eval"]
    assert best == pytest.approx(1 - max(accuracies))


def test_the_end_to_end_walks_cover_every_kind_and_registry_entry():
    """A new kind of model needs its own end-to-end walk, like these three."""
    from test_cli_seq2seq import SEQ2SEQ
    from test_cli_train import LM_MODELS

    from charrnn import kinds

    assert sorted(LM_MODELS + SEQ2SEQ + CLASSIFIERS) == sorted(models.MODELS)
    assert {entry.kind for entry in models.MODELS.values()} == set(kinds.KINDS)
    for kind in kinds.KINDS.values():
        assert models.MODELS[kind.default_model].kind == kind.name


def test_init_from_a_language_model_of_the_same_vocabulary(env, run, labelled):
    """Pretrain on unlabelled text in the labelled data's vocabulary, then fine-tune: the
    classifier starts with the language model's embeddings and forward weights."""
    import torch

    ok(run("tokenize", labelled / "train.tsv", "--labels", "-o", env / "data", "-q"))
    (env / "unlabelled.txt").write_text((labelled / "texts.txt").read_text() * 20)
    lm_data = ["tokenize", env / "unlabelled.txt", "-o", env / "lm_data", "--tokenizer"]
    ok(run(*lm_data, env / "data", "-q"))
    lm = ["train", env / "lm_data", "-o", env / "lm", "--model", "gru", "--embed-size", "8"]
    ok(run(*lm, "--hidden-size", "8", "--seq-len", "16", "--batch-size", "4", "--max-steps", "3"))
    tiny = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "8", "--max-steps", "1"]
    start = ["train", env / "data", "-o", env / "c", *tiny, "--lr", "1e-9", "--warmup-steps", "0"]
    summary = ok(run(*start, "--init-from", env / "lm", "--json")).json()
    assert summary["step"] == 1
    lm_weights = checkpoint.load(env / "lm" / "best.pt")["weights"]
    weights = checkpoint.load(env / "c" / "last.pt")["weights"]
    for mine, theirs in (
        ("embed.weight", "embed.weight"),
        ("rnn.rnn.weight_hh_l0", "rnn.rnn.weight_hh_l0"),
    ):
        assert torch.allclose(weights[mine], lm_weights[theirs], atol=1e-6), mine
    wide = ["train", env / "data", "-o", env / "w", "--embed-size", "8", "--init-from", env / "lm"]
    assert_error(run(*wide, "--hidden-size", "32", "-q"), 2, "--hidden-size 16")
    other = ["train", labelled / "train.tsv", "--labels", "-o", env / "o", *tiny]
    assert_error(
        run(*other, "--vocab", "bpe", "--vocab-size", "300", "--init-from", env / "lm", "-q"),
        1,
        "another vocabulary",
    )
    gone = run("train", env / "data", "-o", env / "g", "--init-from", env / "gone", "-q")
    assert_error(gone, 1, "no such run")
    assert not (env / "w").exists() and not (env / "g").exists()
