"""The `mediasearch` command: parse options, call one core function, print its result.

stdout carries results only; progress, warnings and per-file failures go to
stderr (`watch` prints its changes, failures among them, on stdout).  Every
line goes through terminal.say, which escapes it.  Errors the user can fix are
one line on stderr; exit status follows FILES_FAILED's rule below.

Each command imports what it uses when it runs: `--help`, `status` and shell
completion do not pay for onnxruntime, FAISS or the decoders.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import click

from mediasearch import __version__, bundle, runtime
from mediasearch.catalog import damaged_message
from mediasearch.errors import ExampleError, MediasearchError, UsageError
from mediasearch.params import HOURS, KINDS, NEAR_HELP, SCORE, WHEN, WHEN_HELP, parse_near
from mediasearch.terminal import (
    Progress,
    Terminal,
    count,
    display,
    draw,
    hit_json,
    json_path,
    raw_path,
    say,
    say_fields,
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


# ----------------------------------------------------------------------------- model


@cli.group(cls=Group)
def model() -> None:
    """Download and inspect the CLIPCLAP model bundle."""


@model.command()
@model_option
def pull(model: str | None) -> None:
    """Download the model bundle now, so later commands work offline.

    Example: mediasearch model pull --model antflydb/clipclap
    """
    _quiet_hub_when_piped()
    name = bundle.model_name(model)
    if not bundle.is_repo_id(name):
        found = bundle.resolve(name)
        warn(f"{found.path} is a local folder; nothing to download")
        return
    path = bundle.pull(name)
    bundle.check(path)
    say(str(path))


library_option = click.option(
    "--library",
    "-L",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MEDIASEARCH_HOME",
    help="Library folder (default $MEDIASEARCH_HOME, else ~/.local/share/mediasearch).",
)


def _library_model(library: Path | None) -> tuple[str | None, str | None]:
    """The model and precision an existing library was built with (for commands that do not need one)."""
    from mediasearch.library import Library

    try:
        with Library(library) as lib:
            revision = lib.catalog.get("model_revision")
            return lib.catalog.get("model_source"), bundle.precision_of(revision) if revision else None
    except MediasearchError:
        return None, None


def _bundle(model: str | None, precision: str | None, library: Path | None):
    """--model and --precision, else the library's, else the defaults (embed and model info)."""
    from mediasearch.precision import with_precision

    if model is None:
        model, recorded = _library_model(library)
        precision = precision or recorded
    return with_precision(bundle.resolve(model), precision, warn)


@model.command()
@model_option
@precision_option
@library_option
@click.option("--probe", is_flag=True, help="Load every tower now to check that it batches (remembered after).")
@json_option
def info(model: str | None, precision: str | None, library: Path | None, probe: bool, as_json: bool) -> None:
    """Show where the model is, its files, dimensions and how each tower runs.

    Without --model, the model of the library (if there is one) is shown.
    Everything is read from the bundle's files, without loading a tower.
    Whether each tower batches is known once it has run (some exports only
    run one item at a time; those fall back to batch 1); --probe checks now.

    Example: mediasearch model info --json
    """
    from mediasearch.model import model_info

    _quiet_hub_when_piped()
    data = model_info(_bundle(model, precision, library), probe)
    if as_json:
        emit_json(data)
        return
    say(f"model:     {data['source']}")
    say(f"path:      {data['path']}")
    say(f"revision:  {data['revision']}")
    say(
        f"dimension: {data['dimension']} (text {data['text_width']}, image {data['image_width']}, "
        f"audio {data['audio_width']}); audio at {data['sample_rate']} Hz, {data['max_length_s']} s windows"
    )
    say(f"runtime:   onnxruntime {data['onnxruntime']}, {', '.join(data['providers'])}")
    for kind, batched in data["batched"].items():
        say(f"{kind + ':':10} {_batching(batched)}")
    say(f"precision: {data['precision']}")
    if data["int8_cosine_vs_fp32"]:
        cos = data["int8_cosine_vs_fp32"]
        say(f"int8 vs fp32: lowest cosine text {cos['text']}, image {cos['image']}, audio {cos['audio']}")
    for name, size in data["files"].items():
        say(f"  {size / 1e6:10.1f} MB  {name}")


def _batching(batched: bool | None) -> str:
    if batched is None:
        return "not probed yet (it is at first use; `model info --probe` does it now)"
    return "batched" if batched else "batch 1 (export does not batch)"


# ----------------------------------------------------------------------------- embed


@cli.command()
@model_option
@precision_option
@library_option
@click.option("--text", "-t", "texts", multiple=True, help="A text to embed (repeatable).")
@click.option("--files-from", type=click.File("rb"), help="Read file names from this file, one per line (- for stdin).")
@click.option("--texts-from", type=click.File("rb"), help="Read texts from this file, one per line (- for stdin).")
@click.option("-0", "nul", is_flag=True, help="--files-from and --texts-from are NUL-separated (find -print0).")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def embed(model, precision, library, texts, files_from, texts_from, nul, files) -> None:
    """Print the vector of each text and file, one JSON object per line.

    Texts come first in the order given, then files; a recording longer than
    10 s gives one line per window with its start and end seconds.  A file that
    cannot be read gives a line with "error" and the exit status is 3 at the end.
    Without --model, the library's model is used (if there is a library).

    \b
    Example: mediasearch embed --text "a dog barking" photo.jpg bark.wav
             find ~/Pictures -name '*.jpg' -print0 | mediasearch embed --files-from - -0
    """
    from mediasearch.api import embed_files
    from mediasearch.model import Embedder

    if nul and not (files_from or texts_from):
        raise click.UsageError("-0 says how --files-from or --texts-from are separated: give one of them")
    texts = list(texts) + [t.decode("utf-8", "replace") for t in _entries(texts_from, nul)]
    files = list(files) + [os.fsdecode(f) for f in _entries(files_from, nul)]
    if not texts and not files:
        raise click.UsageError("give at least one --text or FILE")
    _quiet_hub_when_piped()
    embedder = Embedder(_bundle(model, precision, library))
    for text, vector in zip(texts, embedder.embed_texts(list(texts)), strict=True):
        emit_json({"input": text, "modality": "text", "start": None, "end": None, "embedding": _floats(vector)})
    failed = 0
    for i in range(0, len(files), 16):  # a few files at a time, so pictures share model batches
        group = [str(f) for f in files[i : i + 16]]
        for path, result in zip(group, embed_files(embedder, group), strict=True):
            if isinstance(result, MediasearchError):
                failed += 1
                warn(f"skipping {display(path)}: {display(result.reason)}")
                emit_json(
                    json_path(path, "input") | {"modality": None, "start": None, "end": None, "error": result.reason}
                )
                continue
            for (start, end), modality, vector in zip(result.spans, result.modalities, result.vectors, strict=True):
                emit_json(
                    json_path(path, "input")
                    | {"modality": modality, "start": start, "end": end, "embedding": _floats(vector)}
                )
    if failed:
        sys.exit(FILES_FAILED)


def _entries(stream, nul: bool) -> list[bytes]:
    """The non-empty entries of a list file: lines, or NUL-separated names (exact bytes)."""
    if stream is None:
        return []
    data = stream.read()
    parts = data.split(b"\0") if nul else data.splitlines()
    return [p for p in parts if p]


def _floats(vector) -> list[float]:
    return [round(float(x), 7) for x in vector]


# ----------------------------------------------------------------------------- library


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


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@model_option
@library_option
@walk_options
@click.option("--reembed", is_flag=True, help="Embed everything again (after changing the model).")
@precision_option
@click.option(
    "--store",
    metavar="URL",
    help="Also keep the vectors in this Antfly table, shared with other libraries: http://HOST:PORT/TABLE "
    "(remembered; queries then search the whole table). Token: $MEDIASEARCH_STORE_TOKEN.",
)
@json_option
def index(
    paths, model, library, hidden, excludes, clear_excludes, follow_links, max_duration, reembed, precision, store,
    as_json,
) -> None:  # fmt: skip
    """Add folders to the library and bring it in step with them.

    Only new and changed files are embedded; renamed, moved or copied files reuse
    their stored vectors; files gone from disk leave the library.  With no
    PATH, every folder already in the library is rescanned with its remembered
    options.  A PATH that is a file inside a library folder brings just that
    file in step.  A folder that cannot be reached (an unplugged drive) keeps
    its files.  Ctrl-C stops within about a second, keeping what is finished (a
    long recording keeps its windows so far); the next run carries on.

    Exit status: 0 when every file reached is indexed, 3 when the pass
    finished but some files stand failed, new or from earlier passes (listed in
    the summary and by `status --failures`), 1 on an error, 2 on a usage
    mistake, 130 when stopped.

    Example: mediasearch index ~/Pictures ~/Recordings --exclude '*.tmp'
    """
    _quiet_hub_when_piped()
    progress = Progress(terminal(), "segment", quiet=as_json)
    with _open(library, model=model, precision=precision, write=True) as lib, StopOnSignal(lib):
        try:
            summary = lib.index(
                *paths, hidden=hidden, excludes=excludes, clear_excludes=clear_excludes, follow_links=follow_links,
                max_duration=_seconds(max_duration), reembed=reembed, store=store, progress=progress,
                on_change=_tell_failure,
            )  # fmt: skip
        finally:
            progress.close()
        bound = lib.store_address
    if summary.stopped:
        warn("stopped: what was finished is kept; run the same command again to carry on")
        sys.exit(130)
    sent = lib.sent if bound is not None else None
    if as_json:
        failures = [json_path(f["path"]) | {"error": f["error"], "new": f["new"]} for f in summary.failures]
        emit_json(summary.as_dict() | {"failures": failures} | _sent_json(sent, bound))
    else:
        _tell_summary(summary)
        if sent:
            _tell_sent(sent, bound)
    sys.exit(FILES_FAILED if summary.failed else 0)


def _tell_failure(change) -> None:
    """A file that failed in this pass: one line, the path once (the reason never repeats it)."""
    if change.action == "failed":
        warn(f"skipping {change.path}: {change.detail}")


def _tell_summary(s) -> None:
    """The pass in one line; failures that stand from earlier passes are told apart from new ones."""
    failed = f"{s.failed} failed"
    if s.failed > s.failed_new:
        failed += f" ({s.failed_new} new, {s.failed - s.failed_new} from earlier passes)"
    warn(
        f"{s.added} added, {s.updated} updated, {s.reused} reused, {s.removed} removed, "
        f"{s.unchanged} unchanged, {failed}, {s.ignored} ignored in {s.seconds:.1f}s"
    )
    if s.failed:
        warn("see `mediasearch status --failures` for the reasons")


def _sent_json(sent, address: str | None) -> dict:
    """What reached the shared store, for --json ({} for a library without one)."""
    return {"store": sent.as_dict() | {"url": address}} if sent else {}


def _tell_sent(sent, address) -> None:
    """One line on what reached the shared store, and what waits for the next pass."""
    if sent.error:
        waiting = count(sent.waiting, "change")
        warn(f"store: {sent.written} sent, {sent.deleted} deleted; {waiting} wait for the next pass")
        warn(f"  ({sent.error})")
    else:
        warn(f"store: {sent.written} sent, {sent.deleted} deleted ({address})")


def _seconds(hours: float | None) -> float | None:
    return None if hours is None else hours * 3600


@cli.command()
@click.argument("words", nargs=-1)
@click.option(
    "--like",
    "likes",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An example picture, sound or video: find things like it (repeatable).",
)
@click.option("--literal", "-l", is_flag=True, help="Take WORDS as text even where one names a file.")
@click.option("--not", "nots", multiple=True, metavar="TEXT", help="Push results away from TEXT (repeatable).")
@click.option(
    "--type",
    "kinds",
    type=KINDS,
    multiple=True,
    help="Only image, audio or video files (also: pictures, photos, sounds, recordings, music, movies, clips; "
    "comma-separated or repeated).",
)
@click.option(
    "--in", "within", multiple=True, type=click.Path(path_type=Path), help="Only files under this folder (repeatable)."
)
@click.option("--after", type=WHEN, metavar="WHEN", help=f"Only files taken at or after WHEN: {WHEN_HELP}.")
@click.option("--before", type=WHEN, metavar="WHEN", help="Only files taken before WHEN (same forms).")
@click.option("--near", metavar="PLACE", help=f"Only files taken at PLACE: {NEAR_HELP}.")
@click.option("--limit", "-n", default=10, show_default=True, type=click.IntRange(1), help="How many files.")
@click.option("--min-score", type=SCORE, help="Only results with at least this cosine score (-1 to 1).")
@click.option("--include-examples", is_flag=True, help="Keep the example files (and their copies) among the results.")
@click.option("--paths", "paths_only", is_flag=True, help="Print only absolute paths, one per line.")
@click.option("-0", "nul", is_flag=True, help="With --paths: end each path with NUL instead, for xargs -0.")
@click.option("--preview", is_flag=True, help="Show pictures inline in the table (kitty, iTerm2, WezTerm).")
@model_option
@precision_option
@library_option
@json_option
def query(words, likes, literal, nots, kinds, within, after, before, near, limit, min_score, include_examples,
          paths_only, nul, preview, model, precision, library, as_json) -> None:  # fmt: skip
    """Find the pictures, sounds and videos nearest to some words and/or example files.

    WORDS are one query (no quotes needed).  A word that names an existing
    file is an example, as with --like (stderr says so; --literal keeps it as
    text).  Every positive term (the text and each example) counts the same:
    their vectors are averaged.  --not terms are averaged and subtracted at
    half that weight.  Files are ranked by their best segment; a hit inside a
    long recording shows its time range.  Examples are left out of the results,
    and copies of one content are one result.

    \b
    Example: mediasearch query dog barking --not puppy --type sounds -n 5
             mediasearch query ./beach.jpg --after 2w --in ~/Pictures
             mediasearch query beach --near "Porto, Portugal" --after 2019-07-01 --before 2019-08-01
    """
    if nul and not paths_only:
        raise click.UsageError("-0 ends each path of --paths with NUL: add --paths")
    if as_json and (paths_only or preview):
        raise click.UsageError("--json is an output of its own: leave out --paths and --preview")
    if paths_only and preview:
        raise click.UsageError("--preview shows pictures in the table: it cannot go with --paths")
    near = _near(near)
    texts, examples = _read_words(words, literal)
    named, examples = list(examples), examples + list(likes)
    text = " ".join([*texts, *(f'-"{n.replace(chr(34), " ")}"' for n in nots)])  # --not TEXT is -"TEXT"
    with _open(library, model=model, precision=precision, one_shot=True) as lib:
        if model or precision:
            lib.embedder  # noqa: B018 - an explicit model must match the library's even if no text needs it
        try:
            hits = lib.search(
                text, like=examples, kinds=[k for group in kinds for k in group], within=within,
                after=after, before=before, near=near, limit=limit, min_score=min_score,
                include_examples=include_examples,
            )  # fmt: skip
        except ExampleError as exc:
            if not any(str(p) == exc.path for p in named):
                raise
            raise MediasearchError(f"{exc} (to search for the word {exc.path} instead, add --literal)") from exc
    print_hits(hits, as_json, paths_only, nul, preview)


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


def _read_words(words: tuple[str, ...], literal: bool) -> tuple[list[str], list[Path]]:
    """Words are text, except those naming an existing file: those are examples (said on stderr)."""
    texts, examples = [], []
    for word in words:
        if not literal and os.path.isfile(os.path.expanduser(word)):
            warn(f"taking {display(word)} as an example file (--literal searches for the words instead)")
            examples.append(Path(word))
        else:
            texts.append(word)
    return texts, examples


def print_hits(hits, as_json: bool, paths_only: bool, nul: bool, preview: bool = False) -> None:
    if as_json:
        emit_json([hit_json(h) for h in hits])
        return
    if paths_only:
        sys.stdout.flush()
        out = sys.stdout.buffer
        if nul:
            out.write(b"".join(_host_prefix(h).encode() + raw_path(h.path) + b"\0" for h in hits))
        else:
            out.write("".join(_host_prefix(h) + display(h.path) + "\n" for h in hits).encode())
        out.flush()
        return
    if not hits:
        warn("no results")
        return
    term = terminal()
    spans = [_span(h.start, h.end) for h in hits]
    if not term.stdout_isatty:
        for h, span in zip(hits, spans, strict=True):
            say_fields([f"{h.score:.4f}", _host_prefix(h) + h.path] + ([span] if span else []))
        return
    width = max(len(s) for s in spans)
    time_column = f"  {'time':<{width}}" if width else ""
    say(f"{'score':>6}  {'kind':<5}  {'taken':<10}{time_column}  path", bold=True)
    for h, span in zip(hits, spans, strict=True):
        copies = f"  (+{len(h.copies)} {'copy' if len(h.copies) == 1 else 'copies'})" if h.copies else ""
        time_cell = f"  {span:<{width}}" if width else ""
        where = _host_prefix(h) + display(h.path) if h.host else display(term.tilde(h.path))
        place = f"  ({h.place})" if h.place else ""
        say(f"{h.score:6.3f}  {h.kind:<5}  {_day(h.taken)}{time_cell}  {where}{copies}{place}")
        if preview and h.kind == "image" and not h.host:
            picture = term.picture(h.path)
            if picture:
                draw(picture)


def _day(taken: float | None) -> str:
    """The capture day in this machine's local time (an EXIF time without a zone is local already)."""
    if taken is None:
        return " " * 10
    try:
        return datetime.fromtimestamp(taken).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "?".ljust(10)


def _host_prefix(hit) -> str:
    """A hit from another machine's library (a shared store) is named the way scp names it: host:path."""
    return f"{display(hit.host)}:" if hit.host else ""


def _span(start: float | None, end: float | None) -> str:
    """A time range, or the moment of a video frame."""
    if start is None or end is None:
        return ""
    return _clock(start) if start == end else f"{_clock(start)}-{_clock(end)}"


def _clock(seconds: float) -> str:
    """m:ss.s, or h:mm:ss.s from an hour on: every time range in the same form."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{int(hours)}:{int(minutes):02}:{secs:04.1f}"
    return f"{int(minutes)}:{secs:04.1f}"


@cli.command()
@library_option
@click.option("--failures", is_flag=True, help="List every file that failed, with the reason.")
@click.option("--ignored", "list_ignored", is_flag=True, help="List every file that was not indexed, and why.")
@json_option
def status(library, failures, list_ignored, as_json) -> None:
    """Show the library: folders (and which are offline), counts by kind and state, model, index size.

    Example: mediasearch status --failures
    """
    with _open(library) as lib:
        data = lib.status(list_ignored)
    if as_json:
        emit_json(data)
        return
    say(f"library:  {data['library']}")
    say(f"cache:    {data['cache']}")
    say(f"model:    {data['model'] or '(none yet)'}" + (f" ({data['revision']})" if data["revision"] else ""))
    for root in data["roots"]:
        state = "" if root["state"] == "online" else f", OFFLINE: {root['reason']}"
        opts = root["options"]
        rules = ", ".join(
            ([f"exclude {' '.join(opts['excludes'])}"] if opts.get("excludes") else [])
            + (["hidden files"] if opts.get("hidden") else [])
            + (["follows links"] if opts.get("follow_links") else [])
        )
        files = count(root["files"], "file")
        say(f"folder:   {display(root['path'])} ({files}{state})" + (f" [{rules}]" if rules else ""))
    counts = data["counts"]
    say(
        f"indexed:  {count(counts['indexed'], 'file')} ({counts['image']} image, {counts['audio']} audio, "
        f"{counts['video']} video), "
        f"{count(data['segments'], 'segment')}"
        + (f"; {count(counts['partial'], 'long recording')} half-done" if counts["partial"] else "")
    )
    kinds = ", ".join(f"{n} {ext or '(no extension)'}" for ext, n in data["ignored_by_extension"][:8])
    say(f"failed:   {counts['failed']}    ignored: {counts['ignored']}" + (f" ({kinds})" if kinds else ""))
    idx = data["index"]
    say(
        f"index:    {count(idx['vectors'], 'vector')}, {idx['bytes'] / 1e6:.1f} MB, "
        f"{'up to date' if idx['current'] else 'stale (rebuilt from the catalog on next use)'}"
    )
    if data["store"]:
        store = data["store"]
        state = "reachable" if store["reachable"] else f"NOT REACHABLE: {store['error']}"
        waiting = f", {count(store['waiting'], 'change')} waiting to be sent" if store["waiting"] else ", all sent"
        say(f"store:    {store['url']} (library {store['library_id']} on {store['host']}; {state}{waiting})")
    if failures:
        for f in data["failures"]:
            say(f"{display(f['path'])}: {display(f['error'])}")
        for n in data["notes"]:
            say(f"{display(n['path'])}: indexed in part: {display(n['note'])}")
    elif counts["failed"]:
        say("(--failures lists them)")
    if list_ignored:
        for f in data["ignored"]:
            say(f"{display(f['path'])}: {display(f['reason'] or 'not media')}")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--queries", is_flag=True, help="Forget the query texts remembered in the cache (queries.db).")
@library_option
@json_option
def forget(path, queries, library, as_json) -> None:
    """Remove a folder from the library, with all its files and vectors.

    The files on disk are not touched.  A folder inside another library folder
    hands its files back to that folder instead (their vectors are kept).
    --queries deletes the remembered query texts instead (or as well).

    Example: mediasearch forget ~/Old-Recordings
    """
    if path is None and not queries:
        raise click.UsageError("name a folder to forget, or --queries")
    if queries:
        _forget_queries(as_json and path is None)
    if path is not None:
        _forget_folder(path, library, as_json)


def _forget_queries(as_json: bool) -> None:
    """Delete queries.db; the count goes to stderr (or stdout as JSON when nothing else is printed)."""
    from mediasearch.model import forget_queries, query_memory

    count = forget_queries()
    if as_json:
        emit_json(json_path(str(query_memory()), "queries_file") | {"queries_forgotten": count})
    else:
        warn(f"forgot {count} remembered query text{'' if count == 1 else 's'} ({display(str(query_memory()))})")


def _forget_folder(path: Path, library: Path | None, as_json: bool) -> None:
    target = os.path.abspath(os.path.expanduser(path))
    with _open(library, write=True) as lib:
        removed, heir = lib.forget(target)
        bound = lib.store_address
    sent = lib.sent if bound is not None else None
    if as_json:
        emit_json(json_path(target, "forgotten") | {"segments": removed} | _sent_json(sent, bound))
        return
    if heir is not None:
        warn(f"forgot {display(target)}; its files stay in the library as part of {display(heir.path)}")
    else:
        warn(f"forgot {display(target)} ({count(removed, 'segment')})")
    if sent:
        _tell_sent(sent, bound)


def _seconds_option(flag: str, default: float, text: str):
    return click.option(
        flag, default=default, show_default=True, type=click.FloatRange(0), metavar="SECONDS", help=text
    )


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@library_option
@walk_options
@_seconds_option(
    "--settle", 1.0, "Seconds a file must stay unchanged before it is embedded (files being written wait)."
)
@_seconds_option("--rescan", 0.0, "Also rescan every folder this often, as a safety net for missed events (0 = never).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@precision_option
@json_option
def watch(
    paths,
    model,
    library,
    hidden,
    excludes,
    clear_excludes,
    follow_links,
    max_duration,
    settle,
    rescan,
    quiet,
    precision,
    as_json,
) -> None:
    """Keep the library in step with its folders until stopped.

    Starts with the same pass as `index` (so changes made while it was not
    running are caught), then follows filesystem events: new, changed, moved
    and deleted files and folders show up in queries within seconds.  Moves keep
    their vectors.  A watched folder that disappears is waited for.  Ctrl-C or
    SIGTERM stops within about a second, keeping what is finished.
    With no PATH, watches every folder already in the library.

    Example: mediasearch watch ~/Media --exclude '*.part'
    """
    from mediasearch.watch import print_change

    if not paths and (hidden is not None or excludes or clear_excludes or follow_links is not None):
        raise click.UsageError("name the folders whose --hidden, --exclude or --follow-links should change")
    _quiet_hub_when_piped()

    def echo(line: str) -> None:
        say(line)

    def on_change(change) -> None:
        if not quiet or change.action == "failed":  # a failure is an error: told even with -q, once
            print_change(change, as_json, echo)

    def log(message: str) -> None:
        if not quiet:
            warn(message)

    with _open(library, model=model, precision=precision, write=True) as lib, StopOnSignal(lib, quiet=True):
        lib.watch(
            *paths, hidden=hidden, excludes=excludes, clear_excludes=clear_excludes, follow_links=follow_links,
            max_duration=_seconds(max_duration), settle=settle, rescan=rescan, on_change=on_change, log=log,
        )  # fmt: skip


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (others need a token).")
@click.option("--port", "-p", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--token",
    envvar="MEDIASEARCH_TOKEN",
    help="Token every request must carry (from MEDIASEARCH_TOKEN; made up and printed once when another address "
    "than 127.0.0.1 is given without one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--share-locations",
    is_flag=True,
    help="Put files' coordinates in the API's answers when listening beyond 127.0.0.1 (place names always are).",
)
@model_option
@library_option
def serve(host, port, token, open_browser, share_locations, model, library) -> None:
    """Serve the search page, its JSON API and Termite-compatible embeddings.

    The page searches by words or by a dropped file and plays sounds and videos
    from their best moment.  The library is opened read-only, so `serve` runs
    beside `watch` and sees what it adds.  It listens on 127.0.0.1 only, unless
    --host says otherwise; then a token is required on every request.

    Example: mediasearch serve --open
    """
    import secrets

    import uvicorn

    from mediasearch.library import Library
    from mediasearch.server import LOOPBACK, Settings, create_app, listen

    Library(library).close()  # a missing library is one clear line, before the server starts
    sock = listen(host, port)  # a taken port is one line too, before anything says it serves
    port = sock.getsockname()[1]  # --port 0: the one the system chose
    if host not in LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
        warn(f"listening beyond this machine: every request needs the token {token}")
    app = create_app(Settings(library, host, port, token, model, share_locations=share_locations))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    warn(f"mediasearch is serving {url} (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


@cli.command(name="mcp")
@click.option(
    "--share-locations",
    is_flag=True,
    help="Put files' coordinates in the answers (place names always are): the assistant's model may run elsewhere.",
)
@model_option
@precision_option
@library_option
def mcp_command(share_locations, model, precision, library) -> None:
    """Let an AI assistant search the library (MCP over stdio).

    An MCP client (Claude Desktop, an IDE, an agent) starts this command and
    talks to it on stdin/stdout.  Tools: search (words, example files, filters),
    similar (more like a result) and status; results carry paths, scores, time
    spans and small thumbnails.  Read-only and offline: nothing is changed or
    downloaded (pull the model first, or index once).

    Example: mediasearch mcp --library ~/.local/share/mediasearch
    """
    os.environ["HF_HUB_OFFLINE"] = "1"  # a tool call never downloads; a missing model is a tool error saying so
    from mediasearch.mcp import serve

    serve(library, model=model, precision=precision, locations=share_locations)


def main() -> None:
    runtime.configure()
    runtime.quiet_native_stderr()
    runtime.private_files()
    try:
        cli(prog_name="mediasearch")
    except SystemExit as exc:  # click ends every command this way
        runtime.leave(exc.code)
    runtime.leave(0)
