"""What every command shares: the group, its error handling, common options, output helpers and the
process's entry point.

stdout carries results only; progress, warnings and per-file failures go to
stderr.  Errors the user can fix are one line on stderr (exit 1; usage mistakes exit 2).

Each command imports what it uses when it runs: `--help`, `status` and shell
completion do not pay for onnxruntime, FAISS or the decoders.
"""

from __future__ import annotations

import errno
import signal
import sqlite3
from pathlib import Path

import click

from mediasearch import __version__, bundle, runtime
from mediasearch.catalog import damaged_message
from mediasearch.errors import MediasearchError, UsageError
from mediasearch.params import HOURS, parse_near
from mediasearch.terminal import (
    Terminal,
    display,
    say,
    say_json,
)

# Exit status, one rule for every command (README, "Exit status"): 0 done; 1 an error stopped the
# command; 2 a usage mistake; 3 the command finished but some files stand failed; 130 stopped.
FILES_FAILED = 3


def _summary(command: click.Command) -> str:
    """A command's line in its group's help: the first sentence of its help, whole (click cuts it
    with "..." to fit a width)."""
    text = command.short_help or (command.help or "").split("\n\n")[0]
    first = " ".join(text.split()).split(". ")[0]
    return first.rstrip(".")


class Command(click.Command):
    """A command whose usage mistakes found by the core exit 2 under its own usage line, as click's do."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx) from exc

    def get_short_help_str(self, limit: int = 45) -> str:
        return _summary(self)


class Group(click.Group):
    """Turns the errors a user can fix into one clean line (exit 1) instead of a traceback."""

    command_class = Command

    def get_short_help_str(self, limit: int = 45) -> str:
        return _summary(self)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # click's own messages name paths too: escaped like every line
            exc.message = display(exc.message)
            raise
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx) from exc
        except MediasearchError as exc:
            raise click.ClickException(display(str(exc))) from exc
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(damaged_message(Path("the library's catalog"), exc)) from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise click.ClickException(
                    f"the disk is full ({exc.filename or exc}): free some space and run "
                    "the command again; nothing already indexed is lost"
                ) from exc
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise click.ClickException(
                    f"cannot write {exc.filename} ({exc.strerror}): check who owns it and its permissions"
                ) from exc
            raise


def terminal() -> Terminal:
    """The terminal this command talks to (tests pass their own as the context object)."""
    ctx = click.get_current_context()
    if not isinstance(ctx.find_root().obj, Terminal):
        ctx.find_root().obj = Terminal.detect()
    return ctx.find_root().obj


model_option = click.option(
    "--model",
    "-m",
    envvar="MEDIASEARCH_MODEL",
    help=f"Model bundle: a local folder or a hub repo id (default {bundle.DEFAULT_MODEL}).",
)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


precision_option = click.option(
    "--precision",
    type=click.Choice(("fp32", "int8")),
    envvar="MEDIASEARCH_PRECISION",
    help="fp32 (default) or int8: quantised copies of the towers, made once in the cache; faster, "
    "slightly different vectors (see `model info --precision int8`).",
)


library_option = click.option(
    "--library",
    "-L",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MEDIASEARCH_HOME",
    help="Library folder (default $MEDIASEARCH_HOME, else ~/.local/share/mediasearch).",
)


def _quiet_hub_when_piped() -> None:
    """The hub client draws progress bars; keep them to terminals."""
    if not terminal().stderr_isatty:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def emit_json(data) -> None:
    say_json(data)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mediasearch")
def cli() -> None:
    """Search your own pictures and sounds, offline, by words or by example.

    \b
      mediasearch index ~/Media          # first pass, then only what changed
      mediasearch query "dog barking"    # sounds and pictures, ranked together
      mediasearch watch ~/Media          # keep the index in step as files change
    """


def warn(message: str) -> None:
    say(message, err=True)


def walk_options(command):
    """How a folder is walked, the same for index and watch; remembered by each folder."""
    command = click.option(
        "--max-duration",
        type=HOURS,
        metavar="HOURS",
        help="Index at most this many hours of any one recording (default 12; at least a minute).",
    )(command)
    command = click.option(
        "--follow-links/--no-follow-links",
        default=None,
        help="Follow symbolic links inside the folders (off by default; never into /proc, /sys, /dev, /run).",
    )(command)
    command = click.option(
        "--no-exclude", "clear_excludes", is_flag=True, help="Forget the folders' remembered --exclude patterns."
    )(command)
    command = click.option(
        "--exclude",
        "excludes",
        multiple=True,
        metavar="GLOB",
        help="Skip files and folders whose name or relative path matches GLOB (repeatable; remembered).",
    )(command)
    return click.option(
        "--hidden/--no-hidden",
        default=None,
        help="Include hidden files and folders (names starting with '.'); remembered by the folder.",
    )(command)


class StopOnSignal:
    """SIGINT and SIGTERM ask the indexer to stop after its model batch (within about a second);
    a second signal stops at once."""

    def __init__(self, library, quiet: bool = False):
        self.library = library
        self.quiet = quiet
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, *_args) -> None:
        if self.library.stopping:
            raise KeyboardInterrupt
        self.library.stop()
        if not self.quiet:
            warn("stopping: committing what is finished (press Ctrl-C again to stop at once)")

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _seconds(hours: float | None) -> float | None:
    return None if hours is None else hours * 3600


class UsageLine(click.ClickException):
    """A value the user must change, said in one line (exit 2, as click's usage errors)."""

    exit_code = 2


def _near(text: str | None):
    """--near's place, or one line saying the forms it takes (before the library or model loads)."""
    if text is None:
        return None
    try:
        return parse_near(text)
    except ValueError as exc:
        raise UsageLine(f"--near: {exc}") from exc


def _open(library, **options):
    """The library, through the Python API (warnings go to stderr)."""
    import mediasearch

    return mediasearch.open(library, log=warn, **options)


def _seconds_option(flag: str, default: float, text: str):
    return click.option(
        flag, default=default, show_default=True, type=click.FloatRange(0), metavar="SECONDS", help=text
    )


def main() -> None:
    runtime.configure()
    runtime.quiet_native_stderr()
    runtime.private_files()
    try:
        cli(prog_name="mediasearch")
    except SystemExit as exc:  # click ends every command this way
        runtime.leave(exc.code)
    runtime.leave(0)
