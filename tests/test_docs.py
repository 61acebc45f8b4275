"""The README and docs/ stay true: every charrnn command they show parses (its command, flags
and values exist), none points outside the repository, and `--help` needs no torch.
`scripts/doc_commands.py` runs them all for real from a fresh clone."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from charrnn.cli import app
from charrnn.cli._app import _USAGE_ERROR

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from doc_commands import commands, documents  # noqa: E402

SEPARATORS = {"|", "&&", ";", ">", "<", "2>", ">>"}


def _invocations(line: str) -> list[list[str]]:
    """The argument lists of every `charrnn ...` (or `python -m charrnn ...`) in a line."""
    words = shlex.split(line.split("  #")[0], comments=False)
    found, current = [], None
    for word in words:
        if word in SEPARATORS:
            current = None
        elif current is not None:
            current.append(word)
        elif word == "charrnn":
            current = []
            found.append(current)
    return found


DOC_LINES = [(doc.name, line) for doc in documents([]) for line in commands(doc)]
CALLS = [(name, line, args) for name, line in DOC_LINES for args in _invocations(line)]


def test_the_docs_show_commands():
    assert len(CALLS) > 40
    assert {"tokenize", "train", "sample", "beam", "eval", "info", "models"} <= {
        args[0] for _, _, args in CALLS if args
    }


@pytest.mark.parametrize("doc,line,args", CALLS, ids=[f"{d}: {line}" for d, line, _ in CALLS])
def test_every_documented_command_parses(doc, line, args):
    group = typer.main.get_command(app)
    if line.endswith("# fails"):
        return  # shown failing on purpose
    assert args and args[0] in group.commands, f"{doc}: no such command in `{line}`"
    name, command, rest = args[0], group.commands[args[0]], list(args[1:])
    try:
        with group.make_context("charrnn", [], resilient_parsing=True) as parent:
            while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
                # a group (charrnn inspect): parse the command inside it
                assert rest[0] in command.commands, f"{doc}: no such command in `{line}`"
                parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
                name, command, rest = rest[0], command.commands[rest[0]], rest[1:]
            command.make_context(name, rest, parent=parent)
    except typer.Exit:
        pass  # --help
    except _USAGE_ERROR as e:
        pytest.fail(f"{doc}: `{line}` does not parse: {e.format_message()}")


def test_no_document_points_outside_the_repository():
    for doc in documents([]):
        assert "../shared" not in doc.read_text(encoding="utf-8"), doc.name


def test_help_imports_no_torch():
    probe = (
        "import sys; from charrnn.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported for --help'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
