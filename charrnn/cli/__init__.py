"""The `charrnn` command line. Importing the command modules registers their commands."""

from charrnn.cli import cmd_data, cmd_decode, cmd_eval, cmd_inspect, cmd_train  # noqa: F401
from charrnn.cli._app import app, main

__all__ = ["app", "main"]
