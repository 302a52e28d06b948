"""The `mediasearch` command: parse options, call the Python API, print its result.

One module a family of commands (models, library, query, serve), sharing base.py;
importing the package registers them all on the `cli` group.
"""

from mediasearch.cli import library, models, query, serve  # noqa: F401 - each registers its commands
from mediasearch.cli.base import cli, main

__all__ = ["cli", "main"]
