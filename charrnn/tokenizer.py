"""Char (Unicode code point) and byte-level BPE tokenizers behind one interface.

Both are stored as a Hugging Face `tokenizer.json`, so other tools can load our vocabularies
with `tokenizers.Tokenizer.from_file` and get the same ids. Special tokens have fixed ids in
both kinds: <pad>=0, <bos>=1, <eos>=2, <unk>=3. They sit in the vocabulary but are not
registered as "added tokens": HF would otherwise match the literal text "<unk>" inside a
corpus, while neither a one-character split nor the byte-level regex can ever produce them.
"""

from __future__ import annotations

import codecs
import json
import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from charrnn.errors import CharrnnError, UsageError

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIALS))
KINDS = ("char", "bpe")
NORMALIZE_FORMS = ("none", "nfc", "nfd", "nfkc", "nfkd")
MIN_BPE_VOCAB = len(SPECIALS) + 256  # specials + the 256 byte symbols
MAX_VOCAB = 1_000_000
DEFAULT_BPE_VOCAB = 4096
PIECE_CHARS = 1 << 15  # BPE encodes long text as pieces of about this many characters, in parallel

# A position p with text[p] in " \n" and text[p-1] not whitespace is a boundary of the GPT-2
# pre-tokenizer regex wherever it occurs (no token pattern lets a non-space character be
# followed by whitespace, and none looks behind), so text cut there encodes exactly as if whole.
_SAFE_CUT = re.compile(r"\S[\n ]")


def safe_cut(text: str, start: int) -> int:
    """The first position at or after `start` where BPE encoding may cut `text` (or len(text))."""
    m = _SAFE_CUT.search(text, max(start - 1, 0))
    return m.start() + 1 if m else len(text)


def last_safe_cut(text: str) -> int:
    """The last position where BPE encoding may cut `text` (0 if there is none)."""
    window = 4096
    while True:
        start = max(0, len(text) - window)
        last = deque(_SAFE_CUT.finditer(text, start), maxlen=1)
        if last:
            return last[0].start() + 1
        if start == 0:
            return 0
        window *= 16


def split_for_encoding(text: str, piece_chars: int = PIECE_CHARS) -> list[str]:
    """Cut `text` into pieces of about `piece_chars` at safe boundaries (see `safe_cut`)."""
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        cut = safe_cut(text, start + piece_chars)
        pieces.append(text[start:cut])
        start = cut
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _byte_decoder() -> dict[str, int]:
    """The byte-level alphabet of GPT-2 / HF ByteLevel: printable stand-in character -> byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    to_char = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in to_char:
            to_char[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in to_char.items()}


def check_normalize(form: str) -> None:
    """Validate a `--normalize` value."""
    if form not in NORMALIZE_FORMS:
        raise UsageError(
            "--normalize", f"unknown form '{form}'", f"use one of: {', '.join(NORMALIZE_FORMS)}"
        )


def normalize_text(text: str, *, lowercase: bool, form: str) -> str:
    """Unicode normalization then lowercasing, in the same order as the HF normalizer we write."""
    if form != "none":
        text = unicodedata.normalize(form.upper(), text)
    if not lowercase:
        return text
    if "\u03a3" in text:  # Python lowercases a word-final capital sigma to final sigma;
        return "".join(c.lower() for c in text)  # the HF normalizer, letter by letter, not
    return text.lower()


def _hf_normalizer(lowercase: bool, normalize: str):
    steps = []
    if normalize != "none":
        steps.append(getattr(normalizers, normalize.upper())())
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps) if steps else None


def _parse_normalizer(spec: dict | None, where: str) -> tuple[bool, str]:
    if spec is None:
        return False, "none"
    items = spec["normalizers"] if spec.get("type") == "Sequence" else [spec]
    lowercase, form = False, "none"
    for item in items:
        kind = item.get("type", "")
        if kind == "Lowercase":
            lowercase = True
        elif kind.lower() in NORMALIZE_FORMS and not lowercase and form == "none":
            form = kind.lower()
        else:
            raise _foreign(where, f"unsupported normalizer {kind}")
    return lowercase, form


def _foreign(where: str, why: str) -> CharrnnError:
    return CharrnnError(
        where, f"not a charrnn tokenizer ({why})", "pass a tokenizer.json written by charrnn"
    )


class StreamDecoder:
    """Turns ids into text incrementally (a BPE token may end inside a UTF-8 character)."""

    def __init__(self, token_bytes: list[bytes]) -> None:
        self._bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, ids: Iterable[int]) -> str:
        """Text completed by these ids."""
        return self._utf8.decode(b"".join(self._bytes[i] for i in ids))

    def feed_one(self, token: int) -> str:
        """Text completed by one id (the streaming hot path)."""
        return self._utf8.decode(self._bytes[token])

    def flush(self) -> str:
        """Whatever is left (an incomplete character becomes U+FFFD)."""
        return self._utf8.decode(b"", final=True)


class Tokenizer:
    """Common interface: `encode(text) -> ids`, `decode(ids) -> text`, HF JSON round-trip."""

    kind = ""

    def __init__(self, hf: HFTokenizer, *, lowercase: bool, normalize: str) -> None:
        self.hf = hf
        self.lowercase = lowercase
        self.normalize_form = normalize
        self.vocab_size = hf.get_vocab_size()
        self.dtype = np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)
        self._token_bytes: list[bytes] | None = None

    # -- text <-> ids -------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Apply the vocabulary's Unicode normalization and lowercasing (same as the HF file)."""
        return normalize_text(text, lowercase=self.lowercase, form=self.normalize_form)

    def encode(self, text: str, *, normalized: bool = False) -> np.ndarray:
        """Token ids of `text` (normalized first unless `normalized` says it already is)."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special tokens are dropped."""
        return b"".join(self.token_bytes[int(i)] for i in ids).decode("utf-8", "replace")

    def stream_decoder(self) -> StreamDecoder:
        """An incremental decoder for streaming generated tokens."""
        return StreamDecoder(self.token_bytes)

    @property
    def token_bytes(self) -> list[bytes]:
        """The UTF-8 bytes each id stands for (empty for special tokens)."""
        if self._token_bytes is None:
            self._token_bytes = self._make_token_bytes()
        return self._token_bytes

    def _make_token_bytes(self) -> list[bytes]:
        raise NotImplementedError

    def token_text(self, token_id: int) -> str:
        """A readable form of one token, for tables and beam displays."""
        if token_id < len(SPECIALS):
            return SPECIALS[token_id]
        return self.token_bytes[token_id].decode("utf-8", "replace")

    def unknown_count(self, ids: np.ndarray) -> int:
        """How many of `ids` are the unknown token."""
        return int(np.count_nonzero(ids == UNK_ID))

    def unknown_chars(self, text: str, ids: np.ndarray) -> dict[str, int]:
        """Each character of `text` (normalized, encoded as `ids`) that became the unknown
        token, with how many times it did: exact counts, by code point."""
        unknown = ids == UNK_ID
        if not unknown.any():
            return {}
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if len(points) != len(ids):  # not one id a character: nothing to tell
            return {}
        values, counts = np.unique(points[unknown], return_counts=True)
        return {chr(v): int(n) for v, n in zip(values.tolist(), counts.tolist(), strict=True)}

    # -- storage ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The HF `tokenizer.json` text."""
        return self.hf.to_str()

    def save(self, path: Path) -> None:
        """Write `tokenizer.json` (loadable with `tokenizers.Tokenizer.from_file`)."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    def describe(self) -> dict:
        """Vocabulary facts for meta data and `charrnn info`."""
        return {
            "kind": self.kind,
            "size": self.vocab_size,
            "lowercase": self.lowercase,
            "normalize": self.normalize_form,
            "specials": dict(zip(("pad", "bos", "eos", "unk"), range(len(SPECIALS)), strict=True)),
        }


class CharTokenizer(Tokenizer):
    """One id per Unicode code point (not per byte): emoji, CJK and combining marks included."""

    kind = "char"

    def __init__(self, hf: HFTokenizer, *, lowercase: bool, normalize: str) -> None:
        super().__init__(hf, lowercase=lowercase, normalize=normalize)
        vocab = hf.get_vocab()
        self.chars = [""] * self.vocab_size
        for token, i in vocab.items():
            if i >= len(SPECIALS):
                self.chars[i] = token
        self._lut: np.ndarray | None = None
        self._ascii_table: bytes | None = None

    @classmethod
    def build(cls, chars: Iterable[str], *, lowercase: bool = False, normalize: str = "none"):
        """A vocabulary of the given characters (sorted by code point) after the specials."""
        vocab = {tok: i for i, tok in enumerate(SPECIALS)}
        for c in sorted(set(chars)):
            vocab[c] = len(vocab)
        hf = HFTokenizer(models.WordLevel(vocab, unk_token=SPECIALS[UNK_ID]))
        hf.normalizer = _hf_normalizer(lowercase, normalize)
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()
        return cls(hf, lowercase=lowercase, normalize=normalize)

    def _lookup(self) -> np.ndarray:
        # Code point -> id for all of Unicode (2 or 4 bytes each): a vectorised gather is ~30x
        # faster than a Python dict lookup per character.
        if self._lut is None:
            lut = np.full(0x110000, UNK_ID, dtype=self.dtype)
            for i, c in enumerate(self.chars):
                if c:
                    lut[ord(c)] = i
            self._lut = lut
            ascii_ids = lut[:128]
            # ASCII sorts first, so its ids fit in a byte: `bytes.translate` then maps a whole
            # ASCII string in one C call, several times faster than a numpy gather.
            if int(ascii_ids.max()) < 256:
                self._ascii_table = bytes(ascii_ids.tolist()) + bytes(128)
        return self._lut

    def encode(self, text: str, *, normalized: bool = False) -> np.ndarray:
        """Token ids of `text`: a table lookup on its code points."""
        if not normalized:
            text = self.normalize(text)
        lut = self._lookup()
        if text.isascii() and self._ascii_table is not None:  # isascii is O(1) in CPython
            ids = text.encode("ascii").translate(self._ascii_table)
            return np.frombuffer(ids, dtype=np.uint8).astype(self.dtype)
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        out = np.empty(len(points), dtype=self.dtype)
        step = 1 << 18  # gather in slices: the index conversion buffer stays in cache
        for i in range(0, len(points), step):
            np.take(lut, points[i : i + step], out=out[i : i + step])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special tokens (and <unk>) are dropped."""
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        ids = ids[ids >= len(SPECIALS)]
        return "".join(self.chars[i] for i in ids.tolist())

    def _make_token_bytes(self) -> list[bytes]:
        return [c.encode("utf-8") for c in self.chars]

    def describe(self) -> dict:
        return {**super().describe(), "alphabet": self.vocab_size - len(SPECIALS)}


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style): any text encodes and decodes exactly, no unknown tokens."""

    kind = "bpe"

    def __init__(self, hf: HFTokenizer, *, lowercase: bool, normalize: str) -> None:
        super().__init__(hf, lowercase=lowercase, normalize=normalize)
        spec = json.loads(hf.to_str())
        spec["normalizer"] = None
        self._raw = HFTokenizer.from_str(json.dumps(spec))  # for text we normalized ourselves
        self._batch = getattr(self._raw, "encode_batch_fast", self._raw.encode_batch)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        lowercase: bool = False,
        normalize: str = "none",
        length: int | None = None,
    ) -> BPETokenizer:
        """Learn merges from already-normalized `texts` (an iterator: memory stays bounded)."""
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer, length=length)
        spec = json.loads(hf.to_str())
        spec["added_tokens"] = []  # see the module docstring
        out = HFTokenizer.from_str(json.dumps(spec))
        out.normalizer = _hf_normalizer(lowercase, normalize)
        return cls(out, lowercase=lowercase, normalize=normalize)

    def encode(self, text: str, *, normalized: bool = False) -> np.ndarray:
        """Token ids of `text`; long text is cut at safe boundaries and encoded in parallel."""
        if not normalized:
            text = self.normalize(text)
        if len(text) <= PIECE_CHARS:
            return np.asarray(self._raw.encode(text).ids, dtype=self.dtype)
        encodings = self._batch(split_for_encoding(text))
        return np.concatenate([np.asarray(e.ids, dtype=self.dtype) for e in encodings])

    def _make_token_bytes(self) -> list[bytes]:
        to_byte = _byte_decoder()
        out = [b""] * self.vocab_size
        for token, i in self.hf.get_vocab().items():
            if i >= len(SPECIALS):
                out[i] = bytes(to_byte[c] for c in token)
        return out

    def unknown_count(self, ids: np.ndarray) -> int:
        return 0


# --vocab auto for sentences (parallel or labelled text): word pieces for a real language
LETTERS = re.compile(r"[^\W\d_]+")  # a run of letters: a word, without digits or marks
WORDS_FOR_BPE = 1000  # distinct alphabetic words from which the text is a real language
# auto's BPE vocabulary: this many distinct words per word piece, for parallel text (Multi30k)
# and for labelled text (smaller sets: builtin:plays, 11,000 words, did best with 2,000 pieces)
WORDS_PER_PIECE = {"pairs": 2.5, "labels": 5.0}
AUTO_BPE_RANGE = (1000, 8000)


def auto_vocabulary(
    texts: Iterable[str], vocab_size: int | None, data: str
) -> tuple[str, int | None, str]:
    """`--vocab auto` for sentences, parallel or labelled: BPE where they are words of a real
    language (at least WORDS_FOR_BPE distinct alphabetic words), of a size growing with the
    words (WORDS_PER_PIECE of the `data` kind, pairs or labels, within AUTO_BPE_RANGE: 8,000
    for Multi30k's 20,000 words) unless `vocab_size` gives it; characters for anything else
    (dates, codes, spelling tasks).
    Returns the kind, the size and a line saying why."""
    words: set[str] = set()
    for text in texts:
        words.update(LETTERS.findall(text))
    if len(words) < WORDS_FOR_BPE:
        return (
            "char",
            vocab_size,
            f"char: {len(words):,} distinct words (bpe from {WORDS_FOR_BPE:,})",
        )
    low, high = AUTO_BPE_RANGE
    size = vocab_size or int(min(high, max(low, round(len(words) / WORDS_PER_PIECE[data], -3))))
    check_vocab_size("bpe", size)
    return "bpe", size, f"bpe {size:,}: {len(words):,} distinct words (--vocab char or bpe decides)"


def check_vocab_size(kind: str, vocab_size: int | None, alphabet: int = 0) -> None:
    """Reject a `--vocab-size` that cannot hold the alphabet or is absurdly large."""
    if vocab_size is None:
        return
    if vocab_size > MAX_VOCAB:
        raise UsageError(
            "--vocab-size",
            f"{vocab_size} is absurdly large (limit {MAX_VOCAB:,})",
            "a few thousand to a few tens of thousands is typical",
        )
    need = MIN_BPE_VOCAB if kind == "bpe" else alphabet + len(SPECIALS)
    if vocab_size < need:
        what = "256 byte symbols" if kind == "bpe" else f"{alphabet} distinct characters"
        raise UsageError(
            "--vocab-size",
            f"{vocab_size} is too small for the alphabet ({what} + {len(SPECIALS)} special tokens)",
            f"use at least {need}"
            + ("" if kind == "bpe" else ", or leave it out for a char vocabulary"),
        )


def from_json(text: str, where: str = "tokenizer.json") -> Tokenizer:
    """Load a tokenizer written by charrnn from its HF JSON text."""
    try:
        spec = json.loads(text)
        hf = HFTokenizer.from_str(text)
    except Exception as e:  # tokenizers raises plain Exception on malformed files
        raise CharrnnError(
            where,
            f"not a valid tokenizer file ({str(e).splitlines()[0][:80]})",
            "pass a tokenizer.json written by charrnn",
        ) from None
    model = spec.get("model") or {}
    vocab: Mapping[str, int] = model.get("vocab") or {}
    if any(vocab.get(tok) != i for i, tok in enumerate(SPECIALS)):
        raise _foreign(where, "special tokens are not at ids 0-3")
    lowercase, form = _parse_normalizer(spec.get("normalizer"), where)
    if model.get("type") == "WordLevel":
        if any(len(tok) != 1 for tok, i in vocab.items() if i >= len(SPECIALS)):
            raise _foreign(where, "WordLevel tokens longer than one character")
        return CharTokenizer(hf, lowercase=lowercase, normalize=form)
    if model.get("type") == "BPE" and (spec.get("pre_tokenizer") or {}).get("type") == "ByteLevel":
        return BPETokenizer(hf, lowercase=lowercase, normalize=form)
    raise _foreign(where, f"model type {model.get('type')}")


def load(path: str | Path) -> Tokenizer:
    """Load `tokenizer.json` from a file."""
    path = Path(path)
    if not path.is_file():
        raise CharrnnError(
            str(path), "no such file", "pass a data directory or a tokenizer.json file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        what = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise CharrnnError(str(path), f"cannot read tokenizer ({what})", "check the path") from None
    return from_json(text, str(path))
