"""Quality per CPU-minute: `charrnn train` with its defaults against a bare PyTorch loop.

    .venv/bin/python benchmarks/defaults.py [--budget 600] [--corpus shakespeare,python3m]
    .venv/bin/python benchmarks/defaults.py --budget 120,300,600 --corpus shakespeare --no-bare

For each corpus, in turn (never two timed things at once):
- charrnn: `charrnn train CORPUS -o RUN --time-budget BUDGET` with nothing else (the model,
  dropout, precision and threads are charrnn's own choices), then `charrnn eval RUN` (the
  whole validation split); its wall time is measured from outside.
- the bare loop: a GRU of 512 units (embedding 64), batch 32 x 128 tokens in consecutive
  chunks with the hidden state carried, AdamW at 3e-3 decayed by a cosine over the budget to
  a tenth, gradients clipped at 1, no dropout, fp32: the textbook loop, trained for BUDGET
  seconds of wall time (its set-up and evaluation not counted), then scored in one stream
  over the same validation split.

Corpora: `shakespeare` (builtin:shakespeare, 1.1 MB; the last 10% validates, nanoGPT's
split), `python3m` (the first 3,346,182 characters of builtin:python, three times
tinyshakespeare, written to a file; also split at its last 10%) and `python` (all of
builtin:python). Prints bits per character of both, and charrnn's relative to the bare
loop's (target: at most 1.02); for charrnn also its wall time against the budget, the model
it picked, the share of the run spent evaluating, and the start of a sample. `--budget`
takes several budgets (seconds, comma-separated); `--no-bare` skips the bare loop.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charrnn import corpus
from charrnn.data import load_dataset, tokenize_corpus

BARE_HIDDEN, BARE_EMBED, BARE_LR = 512, 64, 3e-3
BATCH, SEQ = 32, 128


def python3m(path: Path) -> Path:
    """The first three tinyshakespeares' worth of characters of builtin:python, as one file."""
    want, have = 3 * 1_115_394, 0
    with open(path, "w", encoding="utf-8") as out:
        for source in corpus.resolve(["builtin:python"]):
            text = source.path.read_text(encoding="utf-8", errors="replace")[: want - have]
            out.write(text)
            have += len(text)
            if have >= want:
                break
    return path


def charrnn_run(source: str, run_dir: Path, budget: float) -> dict:
    """Train with the defaults and a time budget, then score the whole validation split and
    draw a sample."""
    cli = [sys.executable, "-m", "charrnn"]
    began = time.monotonic()
    summary = json.loads(
        subprocess.run(
            [*cli, "train", source, "-o", str(run_dir), "--time-budget", f"{budget:g}", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    wall = time.monotonic() - began
    scores = json.loads(
        subprocess.run(
            [*cli, "eval", str(run_dir), "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    sample = subprocess.run(
        [*cli, "sample", str(run_dir), "--length", "300", "--temperature", "0.8", "--seed", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    evaluating = sum(r.get("seconds", 0.0) for r in records if r["event"] == "eval")
    return {
        "bpc": scores["bpc"],
        "wall": wall,
        "steps": summary["step"],
        "summary": summary,
        "eval_share": evaluating / summary["elapsed"],
        "sample": sample,
    }


class Bare(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, BARE_EMBED)
        self.rnn = nn.GRU(BARE_EMBED, BARE_HIDDEN, batch_first=True)
        self.head = nn.Linear(BARE_HIDDEN, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def bare_run(data: Path, budget: float) -> dict:
    """The bare GRU-512 loop for `budget` seconds, then one stream over the validation split."""
    dataset = load_dataset(data)
    train = torch.from_numpy(np.asarray(dataset.ids("train"), dtype=np.int64))
    val = torch.from_numpy(np.asarray(dataset.ids("val"), dtype=np.int64))
    torch.manual_seed(0)
    model = Bare(dataset.tokenizer.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=BARE_LR)
    columns = (len(train) - 1) // BATCH
    rows = train[: BATCH * columns + 1]
    inputs, targets = rows[:-1].view(BATCH, columns), rows[1:].view(BATCH, columns)
    state, step, start = None, 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < budget:
        for group in opt.param_groups:
            group["lr"] = BARE_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        begin = (step * SEQ) % (columns - SEQ)
        if begin < SEQ:
            state = None  # a new pass over the data
        x, y = inputs[:, begin : begin + SEQ], targets[:, begin : begin + SEQ]
        logits, state = model(x, state)
        state = state.detach()
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
    return {"bpc": _stream_bpc(model, val, dataset.stats("val")), "steps": step}


@torch.no_grad()
def _stream_bpc(model: nn.Module, val: torch.Tensor, stats: dict) -> float:
    """Bits per character of every validation character but the first, in one stream."""
    model.eval()
    total, state = 0.0, None
    for begin in range(0, len(val) - 1, 1024):
        x = val[begin : min(begin + 1024, len(val) - 1)][None]
        y = val[begin + 1 : begin + 1 + x.shape[1]][None]
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits[0], y[0], reduction="sum"))
    chars_per_token = stats["chars"] / stats["tokens"]
    return total / math.log(2) / ((len(val) - 1) * chars_per_token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="600", help="seconds, one or several (120,300)")
    parser.add_argument("--corpus", default="shakespeare,python3m")
    parser.add_argument("--no-bare", action="store_true", help="charrnn only")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="charrnn-defaults-"))
    ratios = []
    for name in args.corpus.split(","):
        source = {
            "shakespeare": "builtin:shakespeare",
            "python": "builtin:python",
            "python3m": str(python3m(tmp / "py.txt")),
        }[name]
        for budget in (float(b) for b in args.budget.split(",")):
            ours = charrnn_run(source, tmp / f"run-{name}-{budget:g}", budget)
            config = ours["summary"]["model_config"]
            print(
                f"{name}, {budget:g}s: charrnn {ours['bpc']:.3f} bits/char, {ours['steps']} "
                f"steps, wall {ours['wall']:.1f}s, hidden {config['hidden_size']} dropout "
                f"{config['dropout']:g}, evaluating {100 * ours['eval_share']:.1f}% of the run",
                flush=True,
            )
            print("  sample: " + ours["sample"][:200].replace("\n", "\\n"), flush=True)
            if args.no_bare:
                continue
            data = tmp / f"data-{name}"
            if not data.exists():
                tokenize_corpus([source], data)  # the bare loop's copy of the same split
            bare = bare_run(data, budget)
            ratio = ours["bpc"] / bare["bpc"]
            ratios.append(ratio)
            print(
                f"  bare GRU-512 loop {bare['bpc']:.3f} bits/char ({bare['steps']} steps): "
                f"charrnn / bare {ratio:.3f}",
                flush=True,
            )
    if ratios:
        print(f"all within 2% of the bare loop or better: {all(r <= 1.02 for r in ratios)}")


if __name__ == "__main__":
    main()
