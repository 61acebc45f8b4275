"""The built-in toy translation task, `builtin:dates`: dates written many ways, and their ISO
form. Generated deterministically, so it needs no download and is the same everywhere."""

from __future__ import annotations

import calendar
import datetime
import random
from pathlib import Path


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_pair(day: datetime.date, rng: random.Random) -> tuple[str, str]:
    """One date written one of many human ways, and its ISO form."""
    month, mon = calendar.month_name[day.month], calendar.month_abbr[day.month]
    weekday = calendar.day_name[day.weekday()]
    d, m, y = day.day, day.month, day.year
    forms = [
        f"{month} {d}, {y}",
        f"{d} {month} {y}",
        f"{mon} {d} {y}",
        f"{d}.{m}.{y}",
        f"{y}/{m:02d}/{d:02d}",
        f"{weekday}, {month} {d}, {y}",
        f"{_ordinal(d)} of {month} {y}",
        f"{month.lower()} {_ordinal(d)} {y}",
        f"{mon.upper()} {d:02d} {y}",
        f"{d:02d}-{mon}-{y}",
        f"{weekday[:3]} {d} {mon} {y}",
        f"the {_ordinal(d)} of {month}, {y}",
    ]
    return rng.choice(forms), day.isoformat()


def write_dates(path: Path, count: int = 20000, seed: int = 0) -> None:
    """Generate the `builtin:dates` task as a TSV file (deterministic)."""
    rng = random.Random(seed)
    first, last = datetime.date(1900, 1, 1).toordinal(), datetime.date(2099, 12, 31).toordinal()
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(count):
            source, target = date_pair(datetime.date.fromordinal(rng.randint(first, last)), rng)
            f.write(f"{source}\t{target}\n")
