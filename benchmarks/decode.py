"""Decoding speed for the default model size, against references measured in the same run.

    .venv/bin/python benchmarks/decode.py [--length 2000] [--repeat 3]

1. Single-stream sampling (temperature 1, streamed to /dev/null exactly as `charrnn sample`
   writes stdout) in characters per second, against a bare loop that only calls the model's
   step with the same model and a fixed input. Target: >= 0.9x.
2. Batched sampling: 32 samples drawn together against 1 sample of the same length.
   Target: 32 samples take <= 4x the time of one.
3. Beam search (beam 5) against greedy decoding, per generated token. Target: <= 2.5x.

The model is the default LSTM (embedding 64, hidden 512) over a 69-token character
vocabulary with random weights (speed does not depend on training). Best of `--repeat`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import string
import time
from pathlib import Path

import torch

from charrnn import decode, generate, models
from charrnn.cli.cmd_decode import Writer
from charrnn.config import ModelConfig
from charrnn.runs import Trained
from charrnn.tokenizer import BOS_ID, CharTokenizer


def best_of(repeat: int, fn) -> float:
    """The fastest of `repeat` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2000, help="tokens per sample")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.length
    torch.manual_seed(0)
    alphabet = string.ascii_letters + string.digits + " \n.,;:!?'-&$3"
    tok = CharTokenizer.build(alphabet[:65])
    model = models.build("lstm", ModelConfig(), tok.vocab_size).eval()
    trained = Trained(Path("benchmark"), "lm", "lstm", model, tok, {}, torch.device("cpu"))
    print(f"model: lstm, embedding 64, hidden 512, vocabulary {tok.vocab_size}; threads "
          f"{torch.get_num_threads()}; {n} tokens per sample; best of {args.repeat}")

    @torch.inference_mode()
    def bare():
        state = None
        x = torch.tensor([BOS_ID])
        for _ in range(n):
            _, state = model.step(x, state)

    def ours():
        chars = 0
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            writer = Writer()
            out = generate.sample(trained, [[BOS_ID]], decode.SampleConfig(length=n), seed=0,
                                  on_text=lambda row, text: writer.write(text))
            writer.close()
            chars = len(out[0].text)
        return chars

    chars = ours()
    t_bare = best_of(args.repeat, bare)
    t_ours = best_of(args.repeat, ours)
    print(f"1. bare step loop          : {n / t_bare:9,.0f} steps/s")
    print(f"   charrnn sample (stream) : {chars / t_ours:9,.0f} chars/s "
          f"({n / t_ours:,.0f} tokens/s)")
    print(f"   ratio sample / bare     : {t_bare / t_ours:9.3f}   (target >= 0.9)")

    def batch(k):
        return lambda: generate.sample(trained, [[BOS_ID]], decode.SampleConfig(length=n),
                                       num_samples=k, seed=0)

    t1 = best_of(args.repeat, batch(1))
    t32 = best_of(args.repeat, batch(32))
    print(f"2. 1 sample                : {t1:9.3f} s")
    print(f"   32 samples (one batch)  : {t32:9.3f} s   ratio {t32 / t1:.2f}   (target <= 4)")

    beam_len = max(50, n // 4)
    t_greedy = best_of(args.repeat, lambda: generate.sample(
        trained, [[BOS_ID]], decode.SampleConfig(length=beam_len, temperature=0)))
    t_beam = best_of(args.repeat, lambda: generate.beam(
        trained, [[BOS_ID]], decode.BeamConfig(beam_size=5, max_len=beam_len)))
    print(f"3. greedy                  : {1e6 * t_greedy / beam_len:9.1f} us/token")
    print(f"   beam 5                  : {1e6 * t_beam / beam_len:9.1f} us/token   ratio "
          f"{t_beam / t_greedy:.2f}   (target <= 2.5)")


if __name__ == "__main__":
    main()
