"""The `charrnn` command (and `python -m charrnn`)."""

import sys


def main() -> None:
    """Run the command line. Ctrl-C while it starts up (importing torch takes a second) exits
    quietly with 130, as it does later, not with a traceback."""
    try:
        from charrnn.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
