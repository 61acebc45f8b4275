"""Memorization: how much of a generated text was copied, verbatim, from the training text.

The training text is the training split of the run's data directory, as characters: a
character vocabulary's ids are its characters (<unk> becomes a hole that matches nothing); a
BPE vocabulary's ids are decoded to text. For a seq2seq run it is the training pairs' target
side, one target per line (what such a model writes). The sample is normalized as the
vocabulary normalizes text (lowercased, NFC ...) before it is compared; characters the
training text never had match nothing.

For a sample of m characters the report gives, for each n (8, 16, 32 by default), the share
of its m - n + 1 n-grams (every position) that occur in the training text, and the share of
its characters inside such an n-gram; and its longest passages found verbatim in the training
text, each with one place where it occurs there. Both come exactly from the sample's matching
statistics over a suffix array of the training text (charrnn.inspect.suffixes), built once
per data directory and kept beside it in DATA.novelty (or, where that folder is read-only, in
the user's cache), keyed to the data's files so that a changed data directory rebuilds it.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from charrnn import corpus
from charrnn.config import NoveltyConfig
from charrnn.errors import CharrnnError
from charrnn.inspect import suffixes
from charrnn.tokenizer import SPECIALS, CharTokenizer, Tokenizer

Say = Callable[[str, bool], None]  # (message, is it a warning)
DECODE_TOKENS = 1 << 20  # BPE ids decoded per piece
LM, PAIRS = "the train split", "the train split's targets, one per line"


@dataclass
class Training:
    """A data directory's training text, still as token ids."""

    path: Path
    dataset: object  # charrnn.data.Dataset or charrnn.pairs.PairDataset
    tokenizer: Tokenizer
    what: str  # LM or PAIRS


def open_training(run: Path | None, data: Path | None) -> Training:
    """The training text of a data directory (`data`), or of the data a run (or checkpoint)
    was trained on."""
    from charrnn.data import Dataset, load_dataset
    from charrnn.pairs import PairDataset

    if data is None:
        from charrnn.trained import load_trained, run_data

        trained = load_trained(run, "cpu", "fp32")
        if trained.kind not in ("lm", "seq2seq"):
            raise CharrnnError(
                str(trained.path),
                f"is a {trained.kind} model: inspect novelty reads what language and seq2seq "
                "models write",
                "pass a language-model or seq2seq run",
            )
        dataset, data = run_data(trained, "pass the data directory with --data DIR")
    else:
        dataset = load_dataset(data)
    if isinstance(dataset, Dataset):
        return Training(Path(data), dataset, dataset.tokenizer, LM)
    if isinstance(dataset, PairDataset):
        return Training(Path(data), dataset, dataset.target_tokenizer, PAIRS)
    kind = dataset.meta.get("kind", "?")
    raise CharrnnError(
        str(data),
        f"holds {kind} data, not text a model writes",
        "pass a text or pair data directory",
    )


def _char_points(tokenizer: CharTokenizer) -> np.ndarray:
    """Each id's code point; specials (and <unk>) are holes."""
    points = [
        ord(c) if i >= len(SPECIALS) and c else suffixes.HOLE for i, c in enumerate(tokenizer.chars)
    ]
    return np.asarray(points, dtype=np.uint32)


def _text_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def training_points(training: Training) -> np.ndarray:
    """The training text as code points (uint32; HOLE where nothing may match)."""
    tok = training.tokenizer
    if training.what == LM:
        ids, offsets = training.dataset.ids("train"), None
    else:
        split = training.dataset.split("train")
        ids, offsets = split.target, split.target_offsets
    if isinstance(tok, CharTokenizer):
        points = _char_points(tok)[ids]
        return points if offsets is None else np.insert(points, offsets[1:-1], ord("\n"))
    if offsets is None:
        decoder = tok.stream_decoder()
        texts = [
            decoder.feed(ids[start : start + DECODE_TOKENS].tolist())
            for start in range(0, len(ids), DECODE_TOKENS)
        ]
        return _text_points("".join(texts) + decoder.flush())
    pairs = itertools.pairwise(offsets.tolist())
    return _text_points("\n".join(tok.decode(ids[a:b]) for a, b in pairs))


# -- the index, kept beside the data -----------------------------------------------------------


def index_key(path: Path) -> str:
    """What the index depends on: the data's meta data and tokenizers, and its training
    files' sizes and times."""
    digest = hashlib.sha256(f"charrnn-novelty {suffixes.INDEX_VERSION}\n".encode())
    for name in ("meta.json", "tokenizer.json", "target.tokenizer.json"):
        if (path / name).is_file():
            digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    for file in sorted(path.glob("train*")):
        stat = file.stat()
        digest.update(f"{file.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def index_places(path: Path, suffix: str, cache_dir: Path | None) -> list[Path]:
    """Where a data directory's index is kept: beside it, else in `cache_dir`."""
    data = path.resolve()
    places = [data.with_name(data.name + suffix)]
    if cache_dir is not None:
        tag = hashlib.sha256(str(data).encode()).hexdigest()[:16]
        places.append(cache_dir / f"{data.name}-{tag}{suffix}")
    return places


def open_index(
    training: Training,
    config: NoveltyConfig,
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
    say: Say | None = None,
) -> suffixes.Index:
    """The training text's index: read from beside the data (or the cache), else built (a
    note says so, with why) and kept there; in memory only where nothing can be written."""
    say = say or (lambda message, warning: None)
    key = index_key(training.path)
    places = index_places(training.path, config.index_suffix, cache_dir)
    reasons = []
    for place in places:
        if not place.is_file():
            continue
        try:
            found = suffixes.read(place, key)
        except CharrnnError as e:
            say(f"{e.where}: {e.what}; rebuilding it", True)
            continue
        if found is not None:
            return found
        reasons.append(f"{place} was built before the data changed")
    codes, alphabet = suffixes.encode(training_points(training))
    if len(codes) == 1:
        raise CharrnnError(str(training.path), "its training text is empty", "train on some text")
    reason = f" ({'; '.join(reasons)})" if reasons else ""
    say(f"indexing {training.path}: {len(codes) - 1:,} characters, once{reason}", False)
    if workers is None:
        from charrnn import cores

        workers = cores.threads_for(cores.core_count(), cores.CoreWatch().others(wait=0.1))
    header = {"key": key, "data": str(training.path)}
    index = suffixes.build(codes, alphabet, header, workers=workers)
    say(f"indexed in {index.header['seconds']:.1f}s", False)
    failures = []
    for place in places:
        try:
            corpus.make_dir(place.parent)
            suffixes.write(index, place)
        except CharrnnError as e:
            failures.append(e.message())
            continue
        if failures:
            say(f"kept the index in {place}: {failures[0]}", False)
        index.path = place
        return index
    say(f"kept the index in memory only ({'; '.join(failures)}): it is built again next time", True)
    return index


# -- the sample --------------------------------------------------------------------------------


def read_sample(source: str, limit: int) -> str:
    """The text of a file, a folder, builtin:NAME or - (stdin): at most `limit` characters."""
    name = "<stdin>" if source == "-" else source
    pieces, total = [], 0
    with tempfile.TemporaryDirectory(prefix="charrnn-") as spool:
        for piece in corpus.read_text(corpus.resolve([source], spool_dir=Path(spool))):
            pieces.append(piece)
            total += len(piece)
            if total > limit:
                raise CharrnnError(
                    name,
                    f"is longer than {limit:,} characters",
                    f"pass a shorter sample (e.g. head -c {limit // 4})",
                )
    if not total:
        raise CharrnnError(name, "is empty", "give the generated text (e.g. from charrnn sample)")
    return "".join(pieces)


@dataclass
class Passage:
    """A stretch of the sample found verbatim in the training text."""

    start: int  # in the sample, characters from 0
    length: int
    train_offset: int  # one place where it occurs in the training text, characters from 0
    train_line: int  # ... on this line, from 1
    text: str


@dataclass
class Novelty:
    """How much of a sample occurs verbatim in a training text."""

    sample: str  # its name
    sample_chars: int
    data: str
    training: str  # LM or PAIRS
    train_chars: int
    index: str | None  # the index file (None: built in memory only)
    ngrams: list[dict]  # per n: n, total, found, share, covered
    longest: Passage | None
    passages: list[Passage]
    seconds: float  # the search
    text: str = field(repr=False, default="")  # the sample, normalized
    lengths: np.ndarray = field(repr=False, default=None)  # the matching statistics, (m,)

    def as_dict(self) -> dict:
        """JSON-ready (without the per-position lengths)."""
        out = asdict(self)
        del out["text"], out["lengths"]
        return out


def _line(index: suffixes.Index, offset: int) -> int:
    """The line (from 1) of a training text offset."""
    at = int(np.searchsorted(index.alphabet, ord("\n")))
    if at == len(index.alphabet) or int(index.alphabet[at]) != ord("\n"):
        return 1
    return 1 + int(np.count_nonzero(index.codes[:offset] == at + 1))


def _inside(lengths: np.ndarray, n: int) -> np.ndarray:
    """Which sample characters lie inside an n-gram found in the training text. bool (m,)"""
    m = len(lengths)
    starts = np.flatnonzero(lengths[: max(0, m - n + 1)] >= n)
    edges = np.zeros(m + 1, dtype=np.int64)  # +1 where a found n-gram starts, -1 past it
    edges[starts] += 1
    edges[starts + n] -= 1  # each index once: the starts are distinct
    return np.cumsum(edges[:m]) > 0


def _ngram_shares(lengths: np.ndarray, ns) -> list[dict]:
    """Per n: how many of the sample's n-grams occur in the training text, and the share of
    its characters inside one that does."""
    m, rows = len(lengths), []
    for n in ns:
        total = max(0, m - n + 1)
        found = int(np.count_nonzero(lengths[:total] >= n))
        rows.append(
            {
                "n": n,
                "total": total,
                "found": found,
                "share": found / total if total else None,
                "covered": float(_inside(lengths, n).mean()),
            }
        )
    return rows


def _passages(lengths: np.ndarray, count: int, shortest: int) -> list[int]:
    """Where the `count` longest non-overlapping passages of at least `shortest` characters
    start, longest first, each maximal (one starting a character earlier would not contain
    it)."""
    previous = np.concatenate([[0], lengths[:-1]])
    maximal = np.flatnonzero((lengths >= max(shortest, 1)) & (previous <= lengths))
    chosen: list[int] = []
    for i in maximal[np.argsort(-lengths[maximal], kind="stable")].tolist():
        if len(chosen) == count:
            break
        end = i + int(lengths[i])
        if all(end <= a or a + int(lengths[a]) <= i for a in chosen):
            chosen.append(i)
    return chosen


def measure(
    index: suffixes.Index, training: Training, text: str, name: str, config: NoveltyConfig
) -> Novelty:
    """The n-gram shares and longest copied passages of a sample (normalized first, as the
    training text was)."""
    config.check()
    text = training.tokenizer.normalize(text)
    if not text:
        raise CharrnnError(name, "is empty", "give the generated text (e.g. from charrnn sample)")
    started = time.monotonic()
    codes = suffixes.sample_codes(text, index.alphabet)
    lengths, places = suffixes.matching_statistics(codes, index.codes, index.sa)
    shares = _ngram_shares(lengths, sorted(set(config.ngrams)))

    def passage(i: int) -> Passage:
        length, place = int(lengths[i]), int(places[i])
        return Passage(i, length, place, _line(index, place), text[i : i + length])

    found = _passages(lengths, config.passages, min(config.ngrams))
    top = int(lengths.argmax())  # the first of the longest
    return Novelty(
        sample=name,
        sample_chars=len(text),
        data=str(training.path),
        training=training.what,
        train_chars=index.chars,
        index=None if index.path is None else str(index.path),
        ngrams=shares,
        longest=passage(top) if lengths[top] > 0 else None,
        passages=[passage(i) for i in found],
        seconds=round(time.monotonic() - started, 4),
        text=text,
        lengths=lengths,
    )


# -- the picture -------------------------------------------------------------------------------

SHADES = ("#fff0a0", "#ffbf66", "#ff8070", "#e04848")  # in a found n-gram, the shortest n first
LINES = ("#c8a000", "#e08000", "#e04030", "#a01010")  # ... and their thresholds' lines
CELL = {"ha": "center", "va": "center", "family": "monospace", "fontsize": 10}


def _layout(text: str, columns: int) -> list[tuple[int, int]]:
    """Each character's (row, column): lines cut after newlines and `columns` characters."""
    cells, row, column = [], 0, 0
    for char in text:
        if column == columns:
            row, column = row + 1, 0
        cells.append((row, column))
        row, column = (row + 1, 0) if char == "\n" else (row, column + 1)
    return cells


def _shown(result: Novelty, config: NoveltyConfig) -> tuple[int, str, list[tuple[int, int]]]:
    """The stretch of the sample drawn, from a line start a quarter of the panel before the
    longest passage: (where it starts, its text, each character's cell)."""
    rows, columns = config.picture_rows, config.picture_columns
    at = 0 if result.longest is None else result.longest.start
    start = max(0, at - rows // 4 * columns)
    breaks = [i for i, char in enumerate(result.text[start:at]) if char == "\n"]
    if len(breaks) > rows // 4:
        start += breaks[-(rows // 4) - 1] + 1
    elif start and breaks:
        start += breaks[0] + 1
    cells = _layout(result.text[start : start + rows * columns], columns)
    cells = [cell for cell in cells if cell[0] < rows]
    return start, result.text[start : start + len(cells)], cells


def _text_panel(ax, result: Novelty, config: NoveltyConfig, ns: list[int]) -> None:
    """The sample's text around the longest passage, each character shaded by the longest
    found n-gram it lies in, the longest passage underlined."""
    from matplotlib.patches import Patch, Rectangle

    start, shown, cells = _shown(result, config)
    levels = sum(_inside(result.lengths, n).astype(int) for n in ns)[start:]
    longest = result.longest or Passage(-1, 0, 0, 0, "")
    for offset, (row, column) in enumerate(cells):
        if levels[offset]:
            shade = SHADES[min(levels[offset], len(SHADES)) - 1]
            ax.add_patch(Rectangle((column, row), 1, 1, color=shade, linewidth=0))
        if 0 <= start + offset - longest.start < longest.length:
            ax.add_patch(Rectangle((column, row + 0.9), 1, 0.12, color="black", linewidth=0))
        char = shown[offset]
        if char == "\n":
            ax.text(column + 0.5, row + 0.5, "\u21b5", **{**CELL, "color": "grey"})
        elif not char.isspace():
            ax.text(column + 0.5, row + 0.5, char, **CELL)
    ax.set_xlim(0, config.picture_columns)
    ax.set_ylim(cells[-1][0] + 1, 0)
    ax.set_axis_off()
    key = [Patch(color=SHADES[k], label=f"in a found {n}-gram") for k, n in enumerate(ns[:4])]
    key.append(Patch(color="black", label="the longest passage (underlined)"))
    ax.legend(handles=key, loc="upper center", bbox_to_anchor=(0.5, 0), ncols=len(key))
    end = start + len(shown)
    ax.set_title(f"The sample, characters {start:,} to {end:,} of {result.sample_chars:,}")


def figure(result: Novelty, config: NoveltyConfig = NoveltyConfig()):
    """Two panels: the longest passage of the training text that starts at each sample
    position (the matching statistics), and the sample's text shaded by the found n-grams
    it lies in."""
    from matplotlib.figure import Figure

    ns = sorted(set(config.ngrams))
    rows = _shown(result, config)[2][-1][0] + 1
    height = 4 + 0.22 * rows
    figure = Figure(figsize=(15, height + 0.8), dpi=100, layout="constrained")
    ax, text_ax = figure.subplots(2, 1, height_ratios=[4, height - 4])
    ax.plot(np.maximum(result.lengths, 0.8), linewidth=0.7, color="C0")  # 0: at the bottom
    for k, n in enumerate(ns):
        ax.axhline(n, color=LINES[min(k, 3)], linestyle="--", linewidth=1, label=f"n = {n}")
    if result.longest is not None:
        a, length = result.longest.start, result.longest.length
        ax.axvspan(a, a + length, color="black", alpha=0.15, label=f"longest: {length:,} chars")
    ax.set_yscale("log")
    ax.set_xlim(0, max(len(result.lengths), 1))
    ax.set_xlabel("position in the sample (characters)")
    ax.set_ylabel("characters matched")
    ax.set_title("Longest passage of the training text that starts at each sample position")
    ax.legend(fontsize="small", loc="upper right")
    ax.grid(alpha=0.3)
    _text_panel(text_ax, result, config, ns)
    shares = ", ".join(
        f"{r['n']}-grams {r['share']:.1%}" for r in result.ngrams if r["share"] is not None
    )
    figure.suptitle(f"Copied from the training text: {result.sample} ({shares or 'no n-grams'})")
    return figure
