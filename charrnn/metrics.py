"""Scores: language-model loss, perplexity and bits per token/character/byte on any text;
(seq2seq) BLEU and chrF with sacrebleu, ROUGE with rouge-score."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from charrnn import data as datamod
from charrnn import lm
from charrnn.config import TokenizeConfig
from charrnn.errors import CharrnnError
from charrnn.runs import Trained


def _dataset_for(trained: Trained, source: str | None, scratch: Path, progress):
    """The data to score: the run's own data directory, another one, or raw text encoded
    with the checkpoint's vocabulary."""
    if source is None:
        path = (trained.checkpoint.get("data") or {}).get("path")
        if not path or not datamod.is_dataset(path):
            raise CharrnnError(
                str(trained.path),
                f"the run's data directory ({path}) is gone",
                "pass the text to score: charrnn eval CHECKPOINT TEXT",
            )
        return datamod.load_dataset(path), str(path)
    if source != "-" and datamod.is_dataset(source):
        dataset = datamod.load_dataset(source)
        if dataset.tokenizer.to_json() != trained.tokenizer.to_json():
            raise CharrnnError(
                source,
                "encoded with a different vocabulary than the model's",
                "pass the raw text instead, and charrnn encodes it",
            )
        return dataset, source
    target = scratch / "data"
    datamod.tokenize_corpus(
        [source],
        target,
        TokenizeConfig(val_frac=0.0),
        vocabulary=trained.tokenizer,
        progress=progress,
    )
    return datamod.load_dataset(target), "<stdin>" if source == "-" else source


def score_lm(
    trained: Trained, source: str | None = None, *, split: str | None = None, progress=None
) -> dict:
    """Full-pass loss, perplexity and bits per token, character and byte of a language model
    on `source` (default: the run's validation split)."""
    scratch = Path(tempfile.mkdtemp(prefix="charrnn-eval-"))
    try:
        dataset, name = _dataset_for(trained, source, scratch, progress)
        if split is None:
            split = "val" if source is None or datamod.is_dataset(source) else "train"
        ids = dataset.ids(split)
        if len(ids) == 0:
            raise CharrnnError(name, f"the {split} split is empty", "pass some text")
        stats = dataset.stats(split)
        seq_len = trained.checkpoint.get("train", {}).get("config", {}).get("seq_len", 256)
        nll, tokens = lm.evaluate(trained.model, ids, seq_len=seq_len, device=trained.device)
        result = lm.EvalResult(nll, tokens, stats["chars"], stats["bytes"]).as_dict()
        unknown = dict(dataset.meta.get("unknown_chars", [])) if split != "train" or source else {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "checkpoint": str(trained.path),
        "data": name,
        "split": split if source is None or datamod.is_dataset(source or "") else None,
        **result,
        "unknown": stats["unknown"],
        "unknown_chars": unknown,
        "streams": lm.EVAL_STREAMS,
        "warmup": lm.EVAL_WARMUP,
    }
