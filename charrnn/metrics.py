"""Scores: language-model loss, perplexity and bits per token/character/byte on any text;
(seq2seq) BLEU and chrF with sacrebleu, ROUGE with rouge-score; (classify) accuracy and F1
on any labelled text (computed by charrnn.kinds.classify.classification_scores)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from charrnn import corpus, datadir, decode, kinds
from charrnn import data as datamod
from charrnn import device as devices
from charrnn.config import MAX_LEN_RATIO, TokenizeConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.kinds import lm
from charrnn.tokenizer import EOS_ID, UNK_ID
from charrnn.trained import Trained, run_data


class _Words:
    """ROUGE's words: lowercase runs of letters and digits of any script. On ASCII text these
    are exactly rouge-score's default tokens; that tokenizer keeps only a-z and 0-9, so
    French "été" would count as "t", and Russian or Chinese text as nothing at all."""

    pattern = re.compile(r"[^\W_]+")

    def tokenize(self, text: str) -> list[str]:
        return self.pattern.findall(text.lower())


def _dataset_for(trained: Trained, source: str | None, scratch: Path, progress):
    """The data to score: the run's own data directory, another one, or raw text encoded
    with the checkpoint's vocabulary."""
    if source is None:
        return run_data(trained, "pass the text to score: charrnn eval CHECKPOINT TEXT")
    if source != "-" and datadir.is_dataset(source):
        dataset = datamod.load_dataset(source)
        _check_data(dataset, trained, source, "pass the text itself, and charrnn encodes it")
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


def _check_data(dataset, trained: Trained, path: str, fix: str) -> None:
    """Raise unless the data directory `path` holds the kind of data the model is scored on,
    encoded with the model's vocabulary (or vocabularies). `fix`: what to pass instead."""
    kind, mine = kinds.of_data(dataset.meta, path), kinds.get(trained.kind)
    if kind is not mine:
        raise CharrnnError(
            path, f"holds {kind.reads}, not the {mine.reads} that {mine.models} are scored on", fix
        )
    ours = {name: tok.to_json() for name, tok in dataset.tokenizers.items()}
    if ours != trained.checkpoint["tokenizers"]:
        what = "other vocabularies" if len(ours) > 1 else "a different vocabulary"
        raise CharrnnError(path, f"encoded with {what} than the model's", fix)


def _check_split(source: str | None, split: str | None) -> None:
    """--split chooses a split of a data directory: not of text."""
    text = source is not None and (source == "-" or not datadir.is_dataset(source))
    if split is not None and text:
        raise UsageError(
            "--split", "chooses a split of a data directory, not of a text file", "drop --split"
        )


def score_lm(
    trained: Trained, source: str | None = None, *, split: str | None = None, progress=None
) -> dict:
    """Full-pass loss, perplexity and bits per token, character and byte of a language model
    on `source` (default: the run's validation split)."""
    _check_split(source, split)
    scratch = Path(tempfile.mkdtemp(prefix="charrnn-eval-"))
    try:
        dataset, name = _dataset_for(trained, source, scratch, progress)
        if split is None:
            split = "val" if source is None or datadir.is_dataset(source) else "train"
        ids = dataset.ids(split)
        if len(ids) == 0:
            raise CharrnnError(name, f"the {split} split is empty", "pass some text")
        stats = dataset.stats(split)
        seq_len = trained.checkpoint.get("train", {}).get("config", {}).get("seq_len", 256)
        nll, tokens = lm.evaluate(
            trained.model, ids, seq_len=seq_len, device=trained.device, precision=trained.precision
        )
        result = lm.EvalResult(nll, tokens, stats["chars"], stats["bytes"]).as_dict()
        unknown = dict(dataset.meta.get("unknown_chars", [])) if split != "train" or source else {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "checkpoint": str(trained.path),
        "data": name,
        "split": split if source is None or datadir.is_dataset(source or "") else None,
        **result,
        "unknown": stats["unknown"],
        "unknown_chars": unknown,
        "segment": lm.EVAL_SEGMENT,
        "warmup": lm.EVAL_WARMUP,
    }


# -- classification: accuracy, F1 and the confusion matrix -------------------------------------


def score_classifier(
    trained: Trained,
    source: str | None = None,
    *,
    split: str | None = None,
    label_column: str | None = None,
    progress=None,
) -> dict:
    """Loss, accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix of a
    classifier on `source`: labelled text (a TSV, a folder of label folders, -, a built-in
    task) or a labelled data directory (its `split`, default val); default: the run's own
    validation split. `label_column`: a TSV's, first or last (default)."""
    from charrnn import labels as labelled
    from charrnn.kinds.classify import score

    _check_split(source, split)
    if source is None or (source != "-" and datadir.is_dataset(source)):
        fix = "pass labelled text to score: charrnn eval RUN TEXT.tsv"
        dataset, name = run_data(trained, fix) if source is None else (None, source)
        dataset = dataset or datamod.load_dataset(source)
        fix = "pass the labelled text itself (text<TAB>label), and charrnn encodes it"
        _check_data(dataset, trained, name, fix)
        split = split or "val"
        examples = dataset.split(split)
        classes = _class_numbers(dataset.labels, trained.labels, name)
        examples.targets = classes[examples.targets]
        unknown = int(dataset.stats(split).get("unknown", 0))
    else:
        examples, unknown = labelled.encode_examples(
            source, trained.tokenizer, trained.labels, label_column or "last", progress
        )
        name, split = ("<stdin>" if source == "-" else source), None
    if not len(examples):
        raise CharrnnError(name, "holds no examples to score", "pass labelled text")
    with devices.autocast(trained.device, trained.precision):
        result = score(trained.model, examples, trained.labels, trained.device)
    return {
        "checkpoint": str(trained.path),
        "data": name,
        "split": split,
        **result.as_dict(),
        "unknown": unknown,
    }


def _class_numbers(found: list[str], known: list[str], where: str) -> np.ndarray:
    """The model's class number of each of the data's labels; a label the model does not
    know is an error."""
    missing = [label for label in found if label not in known]
    if missing:
        raise CharrnnError(
            where,
            f"has label(s) the model was not trained on: {', '.join(missing[:5])}",
            f"score text labelled with: {', '.join(known)}",
        )
    return np.array([known.index(label) for label in found], dtype=np.int64)


# -- seq2seq: BLEU, chrF, ROUGE ------------------------------------------------------------------


def text_scores(hyps: list[str], refs: list[list[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu, with their signatures), ROUGE-1/2/L F1 averaged over
    sentences (rouge-score, best reference per sentence) and exact-match accuracy.
    `refs[i]` holds every reference of hypothesis i."""
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU, CHRF

    if len(hyps) != len(refs):
        raise CharrnnError(
            "--ref", f"{len(refs)} references for {len(hyps)} hypotheses", "pass line-aligned files"
        )
    if not hyps:
        raise CharrnnError("--hyp", "nothing to score (no lines)", "pass some text")
    streams = [list(stream) for stream in zip(*refs, strict=True)]  # sacrebleu: per reference
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hyps, streams)
    c = chrf.corpus_score(hyps, streams)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Words())
    rouge = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, options in zip(hyps, refs, strict=True):
        scores = scorer.score_multi(options, hyp)
        for key in rouge:
            rouge[key] += scores[key].fmeasure
    n = len(hyps)
    return {
        "bleu": b.score,
        "bleu_signature": str(bleu.get_signature()),
        "bleu_precisions": list(b.precisions),
        "brevity_penalty": b.bp,
        "hyp_len": b.sys_len,
        "ref_len": b.ref_len,
        "chrf": c.score,
        "chrf_signature": str(chrf.get_signature()),
        **{key: 100 * value / n for key, value in rouge.items()},
        "exact_match": 100
        * sum(h.strip() in (r.strip() for r in rs) for h, rs in zip(hyps, refs, strict=True))
        / n,
        "sentences": n,
    }


def read_lines(path: str) -> list[str]:
    """The lines of a text file (or - for stdin), without line endings."""
    from charrnn.pairs import _lines

    if path != "-" and Path(path).is_dir():  # sentences are lines of one file, in order
        raise CharrnnError(str(path), "is a directory", "pass a file with one sentence per line")
    with tempfile.TemporaryDirectory(prefix="charrnn-") as spool:
        sources = corpus.resolve([path], spool_dir=Path(spool))
        return list(_lines(sources, "utf-8", "strict", None, None))


def read_references(
    paths: list[str], count: int | None = None, counted: str | None = None
) -> list[list[str]]:
    """Reference lines from one or more aligned files: refs[i] holds every reference of line i.
    `count` lines are needed in each (by default the first file's), as many as `counted` (the
    hypotheses or sources, named in the error) has."""
    files = [read_lines(p) for p in paths]
    expected = count if count is not None else len(files[0])
    for path, lines in zip(paths, files, strict=True):
        if len(lines) != expected:
            where = f"{counted}, {path}" if counted else path
            has = f"{counted} has {expected}" if counted else f"{paths[0]} has {expected}"
            raise CharrnnError(
                where,
                f"not line-aligned: {path} has {len(lines)} lines, {has}",
                "pass files with one reference line per line, in the same order",
            )
    return [list(group) for group in zip(*files, strict=True)]


def _reference_text(tokenizer, ids: np.ndarray) -> str:
    """A reference as a data directory holds it (normalized as its vocabulary is), with
    U+FFFD for each character the vocabulary lacked: a miss no output can match, where
    dropping it would score outputs against a shorter reference."""
    cuts = np.flatnonzero(ids == UNK_ID)
    pieces = np.split(ids, cuts)  # each piece after the first starts with its <unk>
    return "\ufffd".join(tokenizer.decode(piece) for piece in pieces)


def score_seq2seq(
    trained: Trained,
    source: str | None = None,
    *,
    split: str | None = None,
    progress=None,
    src: str | None = None,
    ref: list[str] | None = None,
    beam_size: int | None = None,
    length_penalty: str | None = None,
    coverage_penalty: float | None = None,
    no_repeat_ngram: int | None = None,
    max_len_ratio: float | None = None,
) -> dict:
    """BLEU, chrF, ROUGE and exact match of a seq2seq model's beam-search outputs, and the
    loss of the references: on `src` against `ref`, or on the `split` (default val) of
    `source` (a data directory of parallel text) or of the run's own data. The options not
    given (None) take `charrnn eval`'s defaults."""
    from charrnn import generate

    _check_translation_sources(source, src, ref, split)
    beam = decode.BeamConfig(
        beam_size=decode.BeamConfig.beam_size if beam_size is None else beam_size,
        length_penalty=length_penalty or decode.BeamConfig.length_penalty,
        coverage_penalty=coverage_penalty or 0.0,
        no_repeat_ngram=(
            generate.no_repeat_default(trained) if no_repeat_ngram is None else no_repeat_ngram
        ),
        max_len=1000,
    )
    beam.check()
    return _translate_and_score(
        trained,
        src,
        ref,
        beam,
        MAX_LEN_RATIO if max_len_ratio is None else max_len_ratio,
        split or "val",
        source,
        progress,
    )


def _check_translation_sources(source, src, ref, split) -> None:
    """What a seq2seq model is scored on: --src and --ref, or a data directory's split."""
    if source is not None and source != "-" and not Path(source).exists():
        raise CharrnnError(str(source), "no such file or directory", "check the path")
    if source is not None and (str(source) == "-" or not datadir.is_dataset(source)):
        raise UsageError(
            "TEXT",
            "a seq2seq model is scored on --src and --ref files, or on a data directory "
            "of parallel text",
            "pass --src FILE --ref FILE",
        )
    if source is not None and src is not None:
        raise UsageError(
            "TEXT", "a data directory and --src both give sentences to score", "drop one"
        )
    if ref and src is None:
        raise UsageError(
            "--ref",
            "needs --src, the sources to translate",
            "pass --src FILE too, or neither to score the run's own split",
        )
    if split is not None and src is not None:
        raise UsageError(
            "--split", "chooses a split of a data directory, not of --src", "drop --split"
        )


def _translate_and_score(
    trained: Trained,
    src: str | None,
    refs: list[str] | None,
    beam: decode.BeamConfig,
    max_len_ratio: float,
    split_name: str,
    data: str | None,
    progress,
) -> dict:
    """Decode sources with beam search and score the outputs (BLEU, chrF, ROUGE, exact
    match), plus the teacher-forced loss of the (first) references. Default data: the run's
    `split_name` split, or that split of `data` (a parallel data directory encoded with the
    model's vocabularies). A source character outside the vocabulary is read as <unk>."""
    from charrnn import generate, pairs
    from charrnn.kinds import seq2seq

    scratch = Path(tempfile.mkdtemp(prefix="charrnn-eval-"))
    try:
        if src is None:
            if data is None:
                dataset, path = run_data(trained, "pass --src and --ref files")
            elif datadir.is_dataset(data):
                dataset, path = datamod.load_dataset(data), data
            else:
                raise CharrnnError(data, "is not a data directory", "pass --src and --ref files")
            _check_data(
                dataset, trained, path, "pass --src and --ref files, and charrnn encodes them"
            )
            split = dataset.split(split_name)
            sources = [[*split.pair(i)[0].tolist(), EOS_ID] for i in range(len(split))]
            references = [
                [_reference_text(dataset.target_tokenizer, split.pair(i)[1])]
                for i in range(len(split))
            ]
            stats, name, missing = dataset.stats(split_name), f"{path} ({split_name})", 0
        else:
            if not refs:
                raise UsageError("--ref", "--src needs references", "pass --ref FILE")
            texts = read_lines(src)
            references = read_references(refs, len(texts), src)
            sources, missing = generate.encode_inputs(trained, texts, "unk")
            (scratch / "src.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
            (scratch / "ref.txt").write_text(
                "\n".join(r[0] for r in references) + "\n", encoding="utf-8"
            )
            try:  # the pairs, for the teacher-forced loss
                pairs.tokenize_pairs(
                    [str(scratch / "src.txt"), str(scratch / "ref.txt")],
                    scratch / "data",
                    TokenizeConfig(val_frac=0.0),
                    vocabulary=(trained.source_tokenizer, trained.tokenizer),
                )
            except CharrnnError as e:  # name the user's files, not the scratch copies
                raise CharrnnError(
                    f"--src {src} and --ref {refs[0]}",
                    e.what,
                    "pass aligned files with a sentence on both sides of some lines",
                ) from None
            dataset = datamod.load_dataset(scratch / "data")
            split, stats, name = dataset.split("train"), dataset.stats("train"), src
        hyps = []
        for start in range(0, len(sources), 64):
            results = generate.beam(
                trained, sources[start : start + 64], beam, max_len_ratio=max_len_ratio
            )
            hyps += [r[0]["text"] if r else "" for r in results]
            if progress is not None:
                progress("decoding", start + len(results), len(sources))
        with devices.autocast(trained.device, trained.precision):
            loss = seq2seq.score_pairs(trained.model, split, stats, trained.device).as_dict()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "checkpoint": str(trained.path),
        "data": name,
        "beam_size": beam.beam_size,
        **text_scores(hyps, references),
        **loss,
        "unknown": missing,
    }
