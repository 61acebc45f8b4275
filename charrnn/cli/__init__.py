"""The `charrnn` command line. Importing the command modules registers their commands."""

from charrnn.cli import (  # noqa: F401
    cmd_classify,
    cmd_data,
    cmd_decode,
    cmd_eval,
    cmd_inspect,
    cmd_neurons,
    cmd_novelty,
    cmd_train,
)
from charrnn.cli._app import app, main

__all__ = ["app", "main"]
