"""Seq2seq translation speed: greedy and beam-5 decoding of a batch against one sentence at
a time, in sentences per second.

    .venv/bin/python benchmarks/translate.py [--sentences 128] [--repeat 2] [--device cpu]

The model is the default seq2seq-gru (the seq2seq defaults: embedding 64, hidden 256,
general attention, bidirectional encoder, input feeding) over the character vocabularies of
`builtin:dates`, with random weights: every sentence then decodes to its full length limit
(2 x the source), the same for every method, so the comparison is fair. Sources are the
task's first validation sentences.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from timing import best_of

from charrnn import decode, generate, models
from charrnn.config import configs_for
from charrnn.data import load_dataset
from charrnn.pairs import tokenize_pairs
from charrnn.trained import Trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tokenize_pairs(["builtin:dates"], Path(tmp) / "d")
        ds = load_dataset(Path(tmp) / "d")
        split = ds.split("val")
        texts = [ds.source_tokenizer.decode(split.pair(i)[0]) for i in range(args.sentences)]
    torch.manual_seed(0)
    model = (
        models.build(
            "seq2seq-gru",
            configs_for("seq2seq", {}, {})[0],
            ds.target_tokenizer.vocab_size,
            ds.source_tokenizer.vocab_size,
        )
        .eval()
        .to(device)
    )
    trained = Trained(
        Path("benchmark"),
        "seq2seq",
        "seq2seq-gru",
        model,
        ds.target_tokenizer,
        {},
        device,
        ds.source_tokenizer,
    )
    sources, _ = generate.encode_inputs(trained, texts)
    n = len(sources)
    mean_len = sum(len(s) for s in sources) / n
    print(
        f"{n} sentences (mean source length {mean_len:.1f} tokens), batches of {args.batch}, "
        f"threads {torch.get_num_threads()}, best of {args.repeat}"
    )

    def greedy(batch: int):
        def run():
            cfg = decode.SampleConfig(temperature=0, length=200)
            for i in range(0, n, batch):
                generate.sample(trained, sources[i : i + batch], cfg)

        return run

    def beam(batch: int):
        def run():
            cfg = decode.BeamConfig(beam_size=5, max_len=200)
            for i in range(0, n, batch):
                generate.beam(trained, sources[i : i + batch], cfg)

        return run

    print(f"{'decoding':<8} {'one at a time':>15} {'batched':>12} {'speed-up':>9}")
    for name, method in (("greedy", greedy), ("beam 5", beam)):
        single = n / best_of(args.repeat, method(1))
        batched = n / best_of(args.repeat, method(args.batch))
        print(
            f"{name:<8} {single:>11.1f} s/s {batched:>8.1f} s/s {batched / single:>8.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
