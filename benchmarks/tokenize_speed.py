"""Tokenizing speed: charrnn against the usual references, measured side by side in one run.

    .venv/bin/python benchmarks/tokenize_speed.py [--corpus PATH] [--copies N]

- char: `charrnn tokenize` (the whole pipeline: read, validate, split, build the vocabulary,
  encode, write) against nanoGPT's prepare.py approach (read the text, `sorted(set(text))`,
  `[stoi[c] for c in text]`, `np.array(..., dtype=np.uint16).tofile(...)`). Target: >= 10x.
- bpe: charrnn's encoding of the corpus with an existing byte-level BPE vocabulary (the whole
  pipeline again, reading and writing included) against a raw `tokenizers` call,
  `Tokenizer.encode_batch(lines)`, on the same text. Target: >= 0.8x (within 20%).

Each figure is the best of `--repeat` runs. Prints MB/s for every contender and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from timing import best_of

from charrnn.config import TokenizeConfig
from charrnn.data import load_vocabulary, tokenize_corpus

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def nanogpt_prepare(path: Path, out: Path) -> None:
    """nanoGPT's data/shakespeare_char/prepare.py, minus the download and the split."""
    data = path.read_text(encoding="utf-8")
    chars = sorted(set(data))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = [stoi[c] for c in data]
    np.array(ids, dtype=np.uint16).tofile(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        type=Path,
        default=SHARED if SHARED.exists() else None,
        help="text file (default: ../shared/data/tinyshakespeare.txt, else the "
        "built-in Python corpus)",
    )
    parser.add_argument("--copies", type=int, default=8, help="repeat the corpus N times")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bpe-vocab", type=int, default=4096)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.corpus is None:
            tokenize_corpus(["builtin:python"], tmp / "seed", TokenizeConfig(val_frac=0.0))
            from charrnn.data import load_dataset

            ds = load_dataset(tmp / "seed")
            text = ds.tokenizer.decode(ds.ids("train"))
        else:
            text = args.corpus.read_text(encoding="utf-8")
        corpus = tmp / "corpus.txt"
        corpus.write_text(text * args.copies, encoding="utf-8")
        mb = corpus.stat().st_size / 1e6
        print(f"corpus: {args.corpus or 'builtin:python'} x{args.copies} = {mb:.1f} MB")

        def ours_char():
            tokenize_corpus([str(corpus)], tmp / "char", TokenizeConfig(val_frac=0.0), force=True)

        t_naive = best_of(args.repeat, lambda: nanogpt_prepare(corpus, tmp / "naive.bin"))
        t_char = best_of(args.repeat, ours_char)
        print(f"char  naive [stoi[c] for c in text] : {mb / t_naive:8.1f} MB/s")
        print(f"char  charrnn tokenize              : {mb / t_char:8.1f} MB/s")

        tokenize_corpus(
            [str(corpus)],
            tmp / "bpe-vocab",
            TokenizeConfig(vocab="bpe", vocab_size=args.bpe_vocab, val_frac=0.0),
        )
        vocab = load_vocabulary(tmp / "bpe-vocab")
        full = corpus.read_text(encoding="utf-8")
        lines = full.splitlines(keepends=True)

        def raw_bpe():
            vocab.hf.encode_batch(lines)

        def ours_bpe():
            tokenize_corpus(
                [str(corpus)],
                tmp / "bpe",
                TokenizeConfig(val_frac=0.0),
                vocabulary=vocab,
                force=True,
            )

        t_raw = best_of(args.repeat, raw_bpe)
        t_bpe = best_of(args.repeat, ours_bpe)
        ours = np.fromfile(tmp / "bpe" / "train.bin", dtype=vocab.dtype)
        same = ours.tolist() == [i for e in vocab.hf.encode_batch(lines) for i in e.ids]
        print(f"bpe   raw tokenizers encode_batch   : {mb / t_raw:8.1f} MB/s")
        print(f"bpe   charrnn tokenize --tokenizer  : {mb / t_bpe:8.1f} MB/s   (same ids: {same})")
        print(f"ratio char: charrnn / naive          = {t_naive / t_char:6.1f}x   (target >= 10)")
        print(f"ratio bpe : charrnn / encode_batch   = {t_raw / t_bpe:6.2f}x   (target >= 0.80)")


if __name__ == "__main__":
    main()
