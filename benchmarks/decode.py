"""Decoding speed for the default model size, against references measured in the same run.

    .venv/bin/python benchmarks/decode.py [--length 1000] [--rounds 6] [--device cpu]
                                          [--precision auto,fp32] [--hidden-size 768]

1. Single-stream sampling (temperature 1, streamed to /dev/null exactly as `charrnn sample`
   writes stdout) in characters per second, against a bare loop that only calls the model's
   step with the same model and a fixed input. Target: >= 0.9x.
2. Batched sampling: 32 samples drawn together against 1 sample of the same length.
   Target: 32 samples take <= 2.5x the time of one in bf16 (4x in fp32, where the two cores'
   fp32 arithmetic is the limit). Printed with it: the same ratio for the bare step loop,
   which sampling cannot beat.
3. Beam search (beam 5) against greedy decoding, per generated token. Target: <= 2.5x.

The model is an LSTM language model (embedding 64, hidden `--hidden-size`, 768 by default:
the size these figures were first measured on; the 10-minute defaults now pick 640 on the
development machine) over a 69-token character vocabulary with random weights (speed does
not depend on training). Everything runs once per
`--precision` (each contender, the bare loop included, in that precision). Each comparison
runs its contenders in turn, `--rounds` times, and keeps each one's fastest round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import string
from pathlib import Path

import torch
from timing import interleaved, sync

from charrnn import decode, generate, models
from charrnn import device as devices
from charrnn.cli.cmd_decode import Writer
from charrnn.config import ModelConfig
from charrnn.tokenizer import BOS_ID, CharTokenizer
from charrnn.trained import Trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1000, help="tokens per sample and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto,fp32", help="comma-separated")
    parser.add_argument("--hidden-size", type=int, default=768)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    alphabet = string.ascii_letters + string.digits + " \n.,;:!?'-&$3"
    tok = CharTokenizer.build(alphabet[:65])
    config = ModelConfig(hidden_size=args.hidden_size)
    model = models.build("lstm", config, tok.vocab_size).eval().to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"model: lstm, embedding {config.embed_size}, hidden {config.hidden_size}, vocabulary "
        f"{tok.vocab_size}; {where}, threads {torch.get_num_threads()}; {args.length} tokens "
        f"per sample; fastest of {args.rounds} interleaved rounds"
    )
    done = set()
    for name in args.precision.split(","):
        precision = devices.resolve_precision(name, device)
        if precision not in done:
            done.add(precision)
            trained = Trained(Path("benchmark"), "lm", "lstm", model, tok, {}, device)
            trained.precision = precision
            print(f"-- {precision}")
            compare(trained, args.length, args.rounds)


def compare(trained: Trained, n: int, rounds: int) -> None:
    """The three comparisons, in the trained model's precision."""
    model, device = trained.model, trained.device

    @torch.inference_mode()
    def bare(rows=1):
        state = None
        x = torch.full((rows,), BOS_ID, device=device)
        with generate.in_precision(trained):
            for _ in range(n):
                _, state = model.step(x, state)
        sync(device)

    chars = []

    def ours():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            writer = Writer()
            out = generate.sample(
                trained,
                [[BOS_ID]],
                decode.SampleConfig(length=n),
                seed=0,
                on_text=lambda row, text: writer.write(text),
            )
            writer.close()
        chars.append(len(out[0].text))

    ours()  # warm up
    t_bare, t_ours = interleaved(rounds, bare, ours)
    print(f"1. bare step loop          : {n / t_bare:9,.0f} steps/s")
    print(
        f"   charrnn sample (stream) : {chars[-1] / t_ours:9,.0f} chars/s "
        f"({n / t_ours:,.0f} tokens/s)"
    )
    print(f"   ratio sample / bare     : {t_bare / t_ours:9.3f}   (target >= 0.9)")

    def batch(k):
        return lambda: generate.sample(
            trained, [[BOS_ID]], decode.SampleConfig(length=n), num_samples=k, seed=0
        )

    t1, t32, step1, step32 = interleaved(rounds, batch(1), batch(32), bare, lambda: bare(32))
    target = 2.5 if trained.precision == "bf16" else 4
    print(f"2. 1 sample                : {t1:9.3f} s")
    print(
        f"   32 samples (one batch)  : {t32:9.3f} s   ratio {t32 / t1:.2f}   (target <= {target})"
    )
    print(f"   the model's step alone  : 32 rows {step32 / step1:.2f}x 1 row (the floor of 2.)")

    t_greedy, t_beam = interleaved(
        rounds,
        lambda: generate.sample(trained, [[BOS_ID]], decode.SampleConfig(length=n, temperature=0)),
        lambda: generate.beam(trained, [[BOS_ID]], decode.BeamConfig(beam_size=5, max_len=n)),
    )
    print(f"3. greedy                  : {1e6 * t_greedy / n:9.1f} us/token")
    print(
        f"   beam 5                  : {1e6 * t_beam / n:9.1f} us/token   ratio "
        f"{t_beam / t_greedy:.2f}   (target <= 2.5)"
    )


if __name__ == "__main__":
    main()
