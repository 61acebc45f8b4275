"""`charrnn plot`: training curves from metrics.jsonl (charrnn.inspect.curves, .pictures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from conftest import assert_error, ok, png_info

from charrnn.inspect import curves


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _write_log(path: Path, records: list[dict], tail: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (path / "metrics.jsonl").write_text(text, encoding="utf-8")
    return path


def _train(step: int, loss: float, elapsed: float) -> dict:
    return {
        "event": "train",
        "step": step,
        "loss": loss,
        "lr": 1e-3,
        "grad_norm": 0.5,
        "grad_norm_max": 0.9,
        "clipped": 0.25,
        "tokens_per_s": 1000.0 * step,
        "elapsed": elapsed,
        "layer_grad_norms": {"embed": 0.1, "rnn.rnn.l0": 0.2, "head": 0.3},
    }


def _eval(step: int, loss: float, **extra) -> dict:
    counts = {"val_tokens": 100, "val_chars": 100}
    return {
        "event": "eval",
        "step": step,
        "elapsed": step / 10,
        "val_loss": loss,
        **counts,
        **extra,
    }


# A run that improved until step 20, then got worse; its last line is still being written.
HANDMADE = [
    {"event": "start", "step": 0, "config": {"clip_norm": 0.5}},
    _train(10, 3.0, 1.0),
    _eval(10, 2.5),
    _train(20, 2.0, 2.0),
    _eval(20, 1.5),
    _train(30, 1.5, 3.0),
    _eval(30, 1.7),
    {**_eval(30, 1.6), "val_sample_loss": 1.7},  # the last evaluation: the whole split
]


def test_curves_of_a_handmade_log(tmp_path):
    run = curves.read_run(_write_log(tmp_path / "hand", HANDMADE, tail='{"event": "tra'))
    ln2 = math.log(2)
    assert run.name == "hand" and run.unit == "bits/char" and run.clip_norm == 0.5
    assert run.train["step"] == [10, 20, 30]
    assert run.train["loss"] == [3.0 / ln2, 2.0 / ln2, 1.5 / ln2]  # nats/token -> bits
    assert run.val["step"] == [10, 20, 30]  # the whole split's score is not one of them
    assert run.val["loss"] == [2.5 / ln2, 1.5 / ln2, 1.7 / ln2]
    assert run.best() == {"step": 20, "elapsed": 2.0, "loss": 1.5 / ln2}
    assert run.final == {"step": 30, "elapsed": 3.0, "loss": 1.6 / ln2}
    assert run.layers["rnn.rnn.l0"]["grad_norm"] == [0.2, 0.2, 0.2]
    assert run.partial and run.skipped == 0  # the cut line is a run still writing


def test_a_bpe_run_is_in_bits_per_token(tmp_path):
    records = [_train(10, 3.0, 1.0), _eval(10, 2.5, val_chars=380)]
    assert curves.read_run(_write_log(tmp_path / "bpe", records)).unit == "bits/token"


def test_broken_lines_are_skipped_and_counted(tmp_path, run):
    path = _write_log(tmp_path / "r", HANDMADE[:3])
    with open(path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("not json\n[1, 2]\n")
        f.write(json.dumps(_train(20, 2.0, 2.0)) + "\n")
    result = ok(run("plot", path, "--json"))
    summary = result.json()["runs"][0]
    assert summary["skipped_lines"] == 2 and summary["train_records"] == 2
    assert "2 line(s) that are not records were skipped" in result.stderr


def test_table_summarises_real_runs_of_both_kinds(run, tiny_runs):
    result = ok(run("plot", tiny_runs["lm"] / "best.pt", tiny_runs["seq2seq"]))
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "steps", "elapsed"] and len(lines) == 3
    for line, kind in zip(lines[1:], ("lm", "seq2seq"), strict=True):
        evals = [r for r in _records(tiny_runs[kind]) if r["event"] == "eval"]
        best = min(evals, key=lambda r: r["val_loss"])
        cells = line.split()
        assert cells[0] == kind and cells[1] == "12"
        assert cells[4] == f"{best['val_loss'] / math.log(2):.3f}" and cells[5] == str(best["step"])
        assert "bits/char" in line


def test_json_holds_the_series(run, tiny_runs):
    data = ok(run("plot", tiny_runs["lm"], "--json", "--x", "time")).json()
    assert data["x"] == "time"
    (summary,) = data["runs"]
    records = _records(tiny_runs["lm"])
    trains = [r for r in records if r["event"] == "train"]
    best_flagged = [r["step"] for r in records if r["event"] == "eval" and r.get("best")]
    assert summary["best_step"] == best_flagged[-1]  # where validation stopped improving
    assert summary["series"]["train"]["step"] == [r["step"] for r in trains]
    assert summary["series"]["train"]["lr"] == [r["lr"] for r in trains]
    assert set(summary["series"]["layer_grad_norms"]) == set(trains[0]["layer_grad_norms"])
    assert summary["unit"] == "bits/char" and summary["clip_norm"] == 1.0


def test_png_of_runs_of_both_kinds(run, tiny_runs, tmp_path):
    picture = tmp_path / "curves.png"
    result = ok(run("plot", tiny_runs["lm"], tiny_runs["seq2seq"], "-o", picture))
    info = png_info(picture)
    assert (info["width"], info["height"]) == (1600, 900)
    assert info["text"]["Title"] == "Training curves: lm, seq2seq"
    assert f"wrote {picture}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no temp file left


def test_svg_and_the_same_name_twice(run, tmp_path):
    a = _write_log(tmp_path / "a" / "run", HANDMADE)
    b = _write_log(tmp_path / "b" / "run", HANDMADE)
    picture = tmp_path / "curves.svg"
    data = ok(run("plot", a, b, "-o", picture, "--json", "-q")).json()
    assert [r["name"] for r in data["runs"]] == [str(a), str(b)]  # told apart by their paths
    text = picture.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "Training curves" in text


def test_errors(run, tmp_path):
    assert_error(run("plot", tmp_path / "nowhere"), 1, "no such file or directory")
    (tmp_path / "empty").mkdir()
    assert_error(run("plot", tmp_path / "empty"), 1, "holds no metrics.jsonl")
    started = _write_log(tmp_path / "started", HANDMADE[:1], tail='{"event": "train", "st')
    assert_error(run("plot", started), 1, "no training records yet")
    good = _write_log(tmp_path / "good", HANDMADE)
    assert_error(run("plot", good, "--x", "epoch"), 2, "--x: unknown axis 'epoch'")
    assert_error(run("plot", good, "-o", tmp_path / "c.jpg"), 2, "must be a .png or .svg")
    assert_error(run("plot", good, "-o", tmp_path / "no" / "c.png"), 1, "folder does not exist")
    (tmp_path / "dir.png").mkdir()
    assert_error(run("plot", good, "-o", tmp_path / "dir.png"), 1, "is a directory")
    assert not (tmp_path / "c.jpg").exists() and not (tmp_path / "no").exists()


def test_help_imports_neither_torch_nor_matplotlib():
    probe = (
        "import sys; from charrnn.cli import main\n"
        "for args in (['plot', '--help'], ['inspect', 'gradients', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
