"""Exact substring search in a long text: its suffix array, the matching statistics of a
sample against it, and the index file that keeps both on disk.

The text is an array of character codes: 1..σ for its alphabet (in code point order), σ + 1
for a hole (a character known not to match anything, such as <unk>), and 0 past the end. The
suffix array (every position of the text, ordered by the text that starts there) is built by
prefix doubling in numpy: one sort of the positions by their first k characters packed into
a uint64, then rounds that sort the positions still tied by their rank and the rank h
characters on (h = k, 2k, 4k ...), each round only over the groups still tied. On natural text
nearly every group is resolved after two rounds; a text that repeats itself keeps its long
repeats tied for log2(length of the repeat / k) rounds, each over those repeats only.

A sample's matching statistics, for every position i, the length of the longest prefix of
sample[i:] found in the text and one place where it occurs, come from a binary search of the
suffix array for all positions at once (Manber and Myers 1993): each comparison starts past the
characters the search's two bounds already share with the sample, so a long copied passage is
read about once. Everything is exact: nothing is hashed.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharrnnError
from charrnn.files import io_error, temp_sibling

HOLE = 0x110000  # a code point past Unicode: a character that matches nothing
MAGIC = b"charrnn-novelty\n"
INDEX_VERSION = 1
ALIGN = 64  # arrays start at multiples of this in the index file
BLOCK = 8  # characters compared per step of a search
SEGMENTS = 4  # sorting work split into at least this many pieces per worker thread
PIECE = 1 << 18  # ... and into pieces of about this many values


# -- the text ----------------------------------------------------------------------------------


def encode(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points (uint32, HOLE for a hole) to the text's codes, ending with 0, and its
    alphabet (the code points of codes 1..σ). codes are uint8, uint16 or uint32, as the
    alphabet needs."""
    counts = np.zeros(HOLE + 1, dtype=np.int64)
    step = 1 << 22
    for start in range(0, len(points), step):
        block = np.bincount(points[start : start + step])
        counts[: len(block)] += block
    alphabet = np.flatnonzero(counts[:HOLE]).astype(np.uint32)
    dtype = np.min_scalar_type(len(alphabet) + 1)
    lookup = np.zeros(HOLE + 1, dtype=dtype)
    lookup[alphabet] = np.arange(1, len(alphabet) + 1)
    lookup[HOLE] = len(alphabet) + 1
    codes = np.zeros(len(points) + 1, dtype=dtype)
    np.take(lookup, points, out=codes[:-1])
    return codes, alphabet


def sample_codes(text: str, alphabet: np.ndarray) -> np.ndarray:
    """A sample's codes in a text's alphabet, int32, ending with -1: a character outside the
    alphabet gets σ + 2 (in no text), and -1 matches nothing (the text ends with 0)."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    at = np.searchsorted(alphabet, points)
    known = (at < len(alphabet)) & (alphabet[np.minimum(at, len(alphabet) - 1)] == points)
    codes = np.where(known, at + 1, len(alphabet) + 2).astype(np.int32)
    return np.append(codes, np.int32(-1))


# -- the suffix array --------------------------------------------------------------------------


def _packed(codes: np.ndarray, bits: int, k: int) -> np.ndarray:
    """Each position's first k codes packed into a uint64, the first in the highest bits;
    0 past the end. (n,)"""
    n = len(codes)
    padded = np.concatenate([codes, np.zeros(k, dtype=codes.dtype)])
    keys = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        keys <<= np.uint64(bits)
        keys |= padded[j : j + n]
    return keys


def _sort_segments(values: np.ndarray, carry: np.ndarray, cuts: np.ndarray, pool) -> None:
    """Sort `values` within each segment [cuts[i], cuts[i+1]) in place, the segments kept
    where they are, and `carry` along with them: in parallel on `pool` (numpy's sort lets
    go of the GIL), each segment's moves within its own stretch of memory."""

    def sort(bound: tuple[int, int]) -> None:
        a, b = bound
        order = np.argsort(values[a:b])
        values[a:b] = values[a:b][order]
        carry[a:b] = carry[a:b][order]

    list(pool.map(sort, zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True)))


def _cuts(starts: np.ndarray, total: int, pieces: int) -> np.ndarray:
    """About `pieces` segment boundaries out of the group starts `starts`, each piece whole
    groups: [0, ..., total]."""
    wanted = np.linspace(0, total, pieces + 1)[1:-1]
    inner = starts[np.minimum(np.searchsorted(starts, wanted), len(starts) - 1)]
    return np.unique(np.concatenate([[0], inner, [total]]))


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in a sorted array: bool (n,)."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    return starts


def _tied(starts: np.ndarray) -> np.ndarray:
    """Which members of sorted groups (`starts` marks each group's first) share their group."""
    alone = starts.copy()
    alone[:-1] &= starts[1:]
    return ~alone


def _pieces(total: int, workers: int) -> int:
    """How many pieces to sort `total` values in: small ones sort several times faster (they
    fit the caches), and each worker gets several."""
    return max(SEGMENTS * workers, total // PIECE)


def _first_sort(codes: np.ndarray, sigma: int, index: np.dtype, pool, workers: int):
    """Positions sorted by their first k codes: (sa, group starts, k). The positions are first
    bucketed by their first two codes (one, for a large alphabet) with a radix sort."""
    bits = int(sigma + 1).bit_length()
    k = max(1, 64 // bits)
    keys = _packed(codes, bits, k)
    lead = 2 if bits <= 8 else 1
    head = (keys >> np.uint64(bits * (k - lead))).astype(np.min_scalar_type(1 << bits * lead))
    by_head = np.argsort(head, kind="stable")  # a radix sort for 8- and 16-bit values
    keys = keys[by_head]
    ends = np.cumsum(np.bincount(head))
    del head
    cuts = _cuts(np.concatenate([[0], ends[:-1]]), len(codes), _pieces(len(codes), workers))
    _sort_segments(keys, by_head, cuts, pool)
    return by_head.astype(index), _group_starts(keys), k


def suffix_array(codes: np.ndarray, sigma: int, *, workers: int = 1) -> np.ndarray:
    """The suffix array of `codes` (values 1..sigma + 1, 0 implied past the end): int32 (int64
    from 2**31 characters), sorted on `workers` threads."""
    n = len(codes)
    index = np.dtype(np.int32 if n < 2**31 - 1 else np.int64)
    if n == 0:
        return np.zeros(0, dtype=index)
    workers = max(1, workers)
    with ThreadPoolExecutor(workers) as pool:
        sa, starts, depth = _first_sort(codes, sigma, index, pool, workers)
        # rank: the slot where a position's group begins in sa; rank[n] = -1 past the end
        rank = np.empty(n + 1, dtype=index)
        first = np.where(starts, np.arange(n, dtype=index), 0)
        rank[sa] = np.maximum.accumulate(first)
        rank[n] = -1
        slots = np.flatnonzero(_tied(starts)).astype(index)  # in sa, still tied
        del starts, first
        while len(slots):
            pos = sa[slots]
            pair = rank[pos].astype(np.int64) * (n + 1) + rank[np.minimum(pos + depth, n)] + 1
            groups = np.flatnonzero(_group_starts(rank[pos]))
            cuts = _cuts(groups, len(pos), _pieces(len(pos), workers))
            _sort_segments(pair, pos, cuts, pool)
            sa[slots] = pos
            starts = _group_starts(pair)
            head = np.where(starts, np.arange(len(pos)), 0)
            rank[pos] = slots[np.maximum.accumulate(head)]
            slots = slots[_tied(starts)]
            depth *= 2
    return sa


# -- searching ---------------------------------------------------------------------------------


def _compare(sample, text, starts, places, skip):
    """For each row: the common prefix length of sample[starts:] and text[places:] (known to
    be at least `skip`), and whether the sample's suffix is the greater."""
    common = skip.astype(np.int64)
    greater = np.zeros(len(starts), dtype=bool)
    rows = np.arange(len(starts))
    steps = np.arange(BLOCK)
    last_s, last_t = len(sample) - 1, len(text) - 1
    while len(rows):
        at = common[rows, None] + steps  # (R, BLOCK)
        a = sample[np.minimum(starts[rows, None] + at, last_s)]
        b = text[np.minimum(places[rows, None] + at, last_t)]
        differ = a != b
        found = differ.any(axis=1)
        where = differ.argmax(axis=1)[found]
        done = rows[found]
        common[done] += where
        greater[done] = a[found, where] > b[found, where]
        common[rows[~found]] += BLOCK
        rows = rows[~found]
    return common, greater


def matching_statistics(sample: np.ndarray, text: np.ndarray, sa: np.ndarray):
    """For each position i of a sample (codes ending with -1, see `sample_codes`) in a text
    (codes ending with 0) and its suffix array: the length of the longest prefix of sample[i:]
    that occurs in the text, and one text position where it does. (m,), (m,) int64."""
    m, n = len(sample) - 1, len(sa)
    if n == 0:
        return np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    low, high = np.zeros(m, dtype=np.int64), np.full(m, n, dtype=np.int64)
    # matched: common prefix with the suffix just below `low` (left) and at `high` (right)
    left, right = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    rows = np.arange(m)
    while len(rows):
        mid = (low[rows] + high[rows]) // 2
        places = sa[mid].astype(np.int64)
        common, greater = _compare(sample, text, rows, places, np.minimum(left, right)[rows])
        up, down = rows[greater], rows[~greater]
        low[up], left[up] = mid[greater] + 1, common[greater]
        high[down], right[down] = mid[~greater], common[~greater]
        rows = rows[low[rows] < high[rows]]
    below = sa[np.maximum(low - 1, 0)].astype(np.int64)
    above = sa[np.minimum(low, n - 1)].astype(np.int64)
    return np.maximum(left, right), np.where(left >= right, below, above)


# -- the index file ----------------------------------------------------------------------------


@dataclass
class Index:
    """A text's codes (ending with 0), alphabet and suffix array, from a file or memory."""

    codes: np.ndarray
    alphabet: np.ndarray
    sa: np.ndarray
    header: dict
    path: Path | None = None  # None: kept in memory only

    @property
    def chars(self) -> int:
        """The text's length in characters."""
        return len(self.sa)


def build(codes: np.ndarray, alphabet: np.ndarray, header: dict, *, workers: int = 1) -> Index:
    """The index of a text given by `encode`."""
    started = time.monotonic()
    sa = suffix_array(codes[:-1], len(alphabet) + 1, workers=workers)
    header = {**header, "chars": len(sa), "seconds": round(time.monotonic() - started, 3)}
    return Index(codes, alphabet, sa, header)


def _aligned(at: int) -> int:
    return -(-at // ALIGN) * ALIGN


def write(index: Index, path: Path) -> None:
    """Write an index file atomically (a temporary file beside it, renamed over it)."""
    arrays = {"alphabet": index.alphabet, "codes": index.codes, "sa": index.sa}
    head = {**index.header, "format": "charrnn-novelty", "version": INDEX_VERSION}
    layout, at = {}, 0
    for name, array in arrays.items():
        layout[name] = {"dtype": array.dtype.str, "length": len(array), "offset": at}
        at = _aligned(at + array.nbytes)
    raw = json.dumps({**head, "arrays": layout}).encode()
    start = _aligned(len(MAGIC) + 8 + len(raw))
    tmp = temp_sibling(path, f"tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(raw).to_bytes(8, "little") + raw)
            for name, array in arrays.items():
                f.seek(start + layout[name]["offset"])
                array.tofile(f)
            f.truncate(start + at)
        os.replace(tmp, path)
    except BaseException as e:  # an interrupt too: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise io_error(path, e) from None
        raise


def read(path: Path, key: str) -> Index | None:
    """An index file, its arrays memory-mapped; None when it was built for another `key`
    (other data), `CharrnnError` when it is not a whole index file."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            top = f.read(len(MAGIC) + 8)
            size = int.from_bytes(top[len(MAGIC) :], "little")
            if top[: len(MAGIC)] != MAGIC or size > 1 << 24:
                raise ValueError("not a charrnn novelty index")
            head = json.loads(f.read(size))
        start = _aligned(len(MAGIC) + 8 + size)
        if head.get("version") != INDEX_VERSION:
            raise ValueError(f"format version {head.get('version')}")
        if head.get("key") != key:
            return None
        arrays = {}
        for name, spec in head["arrays"].items():
            dtype, length = np.dtype(spec["dtype"]), spec["length"]
            arrays[name] = (
                np.memmap(path, dtype, "r", start + spec["offset"], (length,))
                if length
                else np.zeros(0, dtype=dtype)
            )
    except (OSError, ValueError, KeyError, TypeError) as e:
        detail = " ".join(str(e).split())[:80]
        raise CharrnnError(where, f"is not a readable index ({detail})", "it is rebuilt") from None
    index = Index(arrays["codes"], arrays["alphabet"], arrays["sa"], head, path)
    _check(index, where)
    return index


def _check(index: Index, where: str) -> None:
    """The arrays fit together: a truncated or scribbled file is refused, not searched."""
    n = index.chars
    ok = len(index.codes) == n + 1 and index.header.get("chars") == n
    ok = ok and (n == 0 or (int(index.sa.min()) >= 0 and int(index.sa.max()) < n))
    ok = ok and int(index.codes[-1]) == 0 and np.all(np.diff(index.alphabet.astype(np.int64)) > 0)
    if not ok:
        raise CharrnnError(where, "is not a readable index (its arrays disagree)", "it is rebuilt")
