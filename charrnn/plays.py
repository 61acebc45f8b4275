"""The built-in labelled task, `builtin:plays`: which of six Shakespeare plays a speech comes
from, cut from the packaged tinyshakespeare corpus. Deterministic, so it needs no download and
is the same everywhere."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from charrnn.errors import CharrnnError

# The plays of tinyshakespeare (builtin:shakespeare), in its order, each found by the opening
# of its first speech. The task keeps the six with the most speeches: two tragedies, two
# histories, two comedies (Richard III and Henry VI share characters: not too easy).
PLAYS = (
    ("Coriolanus", "First Citizen:\nBefore we proceed any further"),
    ("Richard III", "GLOUCESTER:\nNow is the winter of our discontent"),
    ("Richard II", "KING RICHARD II:\nOld John of Gaunt"),
    ("Romeo and Juliet", "SAMPSON:\nGregory, o' my word"),
    ("Henry VI Part 3", "WARWICK:\nI wonder how the king escaped our hands."),
    ("The Winter's Tale", "ARCHIDAMUS:\nIf you shall chance, Camillo"),
    ("Measure for Measure", "DUKE VINCENTIO:\nEscalus."),
    ("The Taming of the Shrew", "SLY:\nI'll pheeze you, in faith."),
    ("The Tempest", "Master:\nBoatswain!"),
)
PLAYS_KEPT = (
    "Coriolanus",
    "Richard III",
    "Romeo and Juliet",
    "Henry VI Part 3",
    "Measure for Measure",
    "The Taming of the Shrew",
)
MIN_SPEECH_CHARS = 20  # shorter speeches ("My lord?") could come from any play


def play_speeches() -> list[tuple[str, str]]:
    """(speech, play) of every speech of tinyshakespeare, its speaker's name left out and
    its lines joined by spaces."""
    with gzip.open(Path(__file__).parent / "corpora" / "shakespeare.txt.gz", "rt") as f:
        speeches = [s.strip("\n") for s in re.split(r"\n\s*\n", f.read()) if s.strip()]
    starts, at = [], 0
    for _, opening in PLAYS:
        at = next((i for i in range(at, len(speeches)) if speeches[i].startswith(opening)), -1)
        if at < 0:
            raise CharrnnError(
                "builtin:plays",
                "the packaged Shakespeare corpus is not the expected one",
                "reinstall charrnn",
            )
        starts.append(at)
    out = []
    for k, (play, _) in enumerate(PLAYS):
        end = starts[k + 1] if k + 1 < len(PLAYS) else len(speeches)
        for speech in speeches[starts[k] : end]:
            lines = speech.split("\n")[1:]  # the first line is the speaker's name
            out.append((" ".join(line.strip() for line in lines).replace("\t", " "), play))
    return out


def write_plays(path: Path) -> None:
    """Write `builtin:plays` as a TSV (speech<TAB>play): the speeches of at least
    MIN_SPEECH_CHARS characters of six plays, in the corpus's order (deterministic)."""
    with open(path, "w", encoding="utf-8") as f:
        for speech, play in play_speeches():
            if play in PLAYS_KEPT and len(speech) >= MIN_SPEECH_CHARS:
                f.write(f"{speech}\t{play}\n")
