"""Training speed: charrnn's training loop against a bare PyTorch loop, and bf16 against fp32.

    .venv/bin/python benchmarks/train_step.py [--steps 40] [--repeat 3] [--device cpu]

1. For each of LSTM and GRU at a small (hidden 256) and a medium (hidden 512) size, trains
   with `charrnn.train.fit` (the loop `charrnn train` runs: data from a memory map, carried
   hidden state, LR schedule, gradient-norm watch, clipping, divergence guard, logging, and
   the final checkpoint) and with a bare loop (embedding, torch.nn LSTM/GRU, linear, AdamW,
   clip_grad_norm_, carried state, batches prepared in advance), both in the precision
   `auto` picks here. Prints tokens/s for both and the ratio (target >= 0.95).
2. charrnn's loop in bf16 (autocast) against fp32 for LSTMs of 256 (small), 768 (what the
   defaults pick for 10 minutes of tinyshakespeare) and 1024 (large) units. Prints tokens/s
   for both and the ratio (target >= 1.5 for the default model; skipped where the CPU has no
   fast bf16).

The runs alternate and each figure is the best of `--repeat`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timing import sync
from torch import nn

from charrnn import device as devices
from charrnn import models
from charrnn.config import ModelConfig, TrainConfig
from charrnn.kinds.lm import LMTask
from charrnn.train import Hooks, RunInfo, fit

VOCAB = 69  # tinyshakespeare's 65 characters and 4 special tokens


class Bare(nn.Module):
    """Embedding, torch.nn RNN, linear: the textbook character model."""

    def __init__(self, cell: str, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, embed)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def bare_loop(cell, embed, hidden, batches, device, precision="fp32") -> float:
    """Seconds for steps 2..N of the bare loop (step 1 warms up)."""
    torch.manual_seed(0)
    model = Bare(cell, embed, hidden).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    state = None
    start = 0.0
    for i, (x, y) in enumerate(batches):
        if i == 1:
            sync(device)
            start = time.perf_counter()
        with devices.autocast(device, precision):
            logits, state = model(x, state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    sync(device)
    return time.perf_counter() - start


def charrnn_loop(
    cell, embed, hidden, ids, steps, batch, seq, tmp: Path, device, precision="fp32"
) -> float:
    """Seconds for steps 2..N of `charrnn.train.fit` (no validation split; the one-off
    set-up and the final checkpoint are outside the timed steps, as in the bare loop)."""
    config = ModelConfig(cell=cell, embed_size=embed, hidden_size=hidden, dropout=0.0)
    torch.manual_seed(0)
    model = models.build(cell, config, VOCAB)
    cfg = TrainConfig(
        batch_size=batch,
        seq_len=seq,
        max_steps=steps,
        eval_every=10**9,
        checkpoint_every=10**9,
        log_every=10,
    )
    task = LMTask(
        ids,
        None,
        None,
        batch_size=batch,
        seq_len=seq,
        mode="stream",
        seed=0,
        device=device,
    )
    info = RunInfo(kind="lm", model_name=cell, model_config={}, tokenizers={}, data={})
    marks: dict[int, float] = {}

    def mark(step, progress):
        if step in (1, steps):
            sync(device)
            marks[step] = time.perf_counter()

    fit(
        tmp,
        model.to(device),
        task,
        cfg,
        info,
        device=device,
        precision=precision,
        hooks=Hooks(on_step=mark),
    )
    return marks[steps] - marks[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch, seq, steps = args.batch_size, args.seq_len, args.steps
    rng = np.random.default_rng(0)
    ids = rng.integers(4, VOCAB, size=batch * seq * (steps + 2) + seq).astype(np.uint16)
    data = torch.from_numpy(ids.astype(np.int64))
    tokens = batch * seq * (steps - 1)  # steps 2..N are timed
    batches = []
    for i in range(steps):
        chunk = data[i * batch * seq : (i + 1) * batch * seq + 1]
        x, y = chunk[:-1].view(batch, seq), chunk[1:].view(batch, seq)
        batches.append((x.to(device), y.to(device)))
    precision = devices.resolve_precision("auto", device)
    print(
        f"threads {torch.get_num_threads()}, batch {batch} x {seq} tokens, {steps} steps, "
        f"best of {args.repeat}, {precision}"
    )
    print(f"{'model':<18} {'bare tok/s':>11} {'charrnn tok/s':>14} {'ratio':>7}")
    run = {"ids": ids, "steps": steps, "batch": batch, "seq": seq, "device": device}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("lstm", "gru"):
            for label, embed, hidden in (("small", 64, 256), ("medium", 64, 512)):
                bare, ours = [], []
                for _ in range(args.repeat):
                    bare.append(bare_loop(cell, embed, hidden, batches, device, precision))
                    ours.append(_ours(cell, embed, hidden, run, Path(tmp), precision))
                b, o = tokens / min(bare), tokens / min(ours)
                print(
                    f"{cell + ' ' + label + ' H' + str(hidden):<18} {b:>11,.0f} {o:>14,.0f} "
                    f"{o / b:>7.3f}",
                    flush=True,
                )
        if precision != "bf16":
            print("bf16 against fp32: skipped (no fast bf16 on this device)")
            return
        print(f"{'charrnn, lstm':<18} {'fp32 tok/s':>11} {'bf16 tok/s':>14} {'ratio':>7}")
        for label, hidden in (("small", 256), ("default", 768), ("large", 1024)):
            times = {"fp32": [], "bf16": []}
            for _ in range(args.repeat):
                for name in times:
                    times[name].append(_ours("lstm", 64, hidden, run, Path(tmp), name))
            f32, b16 = tokens / min(times["fp32"]), tokens / min(times["bf16"])
            print(
                f"{label + ' H' + str(hidden):<18} {f32:>11,.0f} {b16:>14,.0f} {b16 / f32:>7.3f}",
                flush=True,
            )


def _ours(cell, embed, hidden, run: dict, tmp: Path, precision: str) -> float:
    return charrnn_loop(
        cell,
        embed,
        hidden,
        run["ids"],
        run["steps"],
        run["batch"],
        run["seq"],
        tmp,
        run["device"],
        precision,
    )


if __name__ == "__main__":
    main()
