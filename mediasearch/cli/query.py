"""`mediasearch query`: words and example files in, ranked files out (table, paths or JSON)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click

from mediasearch.cli.base import (
    _near,
    _open,
    cli,
    emit_json,
    json_option,
    library_option,
    model_option,
    precision_option,
    terminal,
    warn,
)
from mediasearch.errors import ExampleError, MediasearchError
from mediasearch.params import KINDS, NEAR_HELP, SCORE, WHEN, WHEN_HELP
from mediasearch.query import pushing_away
from mediasearch.terminal import (
    display,
    draw,
    hit_json,
    raw_path,
    say,
    say_fields,
)


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
    text = pushing_away(" ".join(texts), nots)
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
        if h.words:
            say("        " + _words_line(h.words))
        if preview and h.kind == "image" and not h.host:
            picture = term.picture(h.path)
            if picture:
                draw(picture)


def _words_line(words: dict) -> str:
    """Under a hit whose words matched: where, and a short snippet (`text: …INVOICE No. 2024-0815…`)."""
    found = words["found"][0]
    at = f" at {_clock(found['at'])}" if found.get("at") is not None else ""
    more = f" (+{len(words['found']) - 1} more)" if len(words["found"]) > 1 else ""
    return f"{found['source']}{at}: {display(found['snippet'])}{more}"


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
