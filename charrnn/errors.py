"""Typed errors: the library raises them, `cli.py` turns them into one line on stderr."""

from __future__ import annotations


class CharrnnError(Exception):
    """A failure the user can fix (bad file, bad data): exit code 1.

    Rendered as `Error: <where>: <what>; <how to fix>`.
    """

    exit_code = 1

    def __init__(self, where: str, what: str, fix: str = "") -> None:
        self.where = str(where)
        self.what = what
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        """The one-line form shown to users (without the `Error: ` prefix)."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}; {self.fix}" if self.fix else text


class UsageError(CharrnnError):
    """A bad flag value or a combination of flags that cannot work: exit code 2."""

    exit_code = 2
