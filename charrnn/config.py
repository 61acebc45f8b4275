"""Frozen dataclasses holding every default once; CLI flags are their kebab-case twins."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from charrnn import corpus, tokenizer
from charrnn.errors import UsageError


def flag(field: str) -> str:
    """The command-line twin of a config field: `hidden_size` -> `--hidden-size`."""
    return "--" + field.replace("_", "-")


def _require(ok: bool, field: str, what: str, fix: str) -> None:
    if not ok:
        raise UsageError(flag(field), what, fix)


def to_dict(config) -> dict:
    """A plain dict (for JSON and checkpoints)."""
    return asdict(config)


def from_dict(cls, data: dict):
    """Build `cls` from a dict, ignoring keys it does not know."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TokenizeConfig:
    """How `charrnn tokenize` turns text into ids."""

    vocab: str = "char"  # char | bpe
    vocab_size: int | None = None  # bpe: default 4096; char: optional upper bound
    lowercase: bool = False
    normalize: str = "none"  # none | nfc | nfd | nfkc | nfkd
    val_frac: float = 0.1
    test_frac: float = 0.0
    glob: str = "*"
    encoding: str = "utf-8"
    errors: str = "strict"  # strict | replace | ignore

    def check(self) -> None:
        """Raise `UsageError` for values out of range."""
        _require(
            self.vocab in tokenizer.KINDS,
            "vocab",
            f"unknown vocabulary '{self.vocab}'",
            "use char or bpe",
        )
        tokenizer.check_normalize(self.normalize)
        corpus.check_encoding(self.encoding, self.errors)
        for name in ("val_frac", "test_frac"):
            value = getattr(self, name)
            _require(
                0.0 <= value < 1.0,
                name,
                f"{value} is out of range",
                "use a fraction in [0, 1), e.g. 0.1",
            )
        _require(
            self.val_frac + self.test_frac < 1.0,
            "val_frac",
            f"val + test fractions ({self.val_frac + self.test_frac:g}) leave no training text",
            "keep their sum below 1",
        )
        if self.vocab_size is not None:
            tokenizer.check_vocab_size(self.vocab, self.vocab_size)
