"""`mediasearch index`, `watch`, `status` and `forget`: keeping a library in step, and telling what it holds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mediasearch.cli.base import (
    FILES_FAILED,
    StopOnSignal,
    _open,
    _quiet_hub_when_piped,
    _seconds,
    _seconds_option,
    cli,
    emit_json,
    json_option,
    library_option,
    model_option,
    precision_option,
    terminal,
    walk_options,
    warn,
)
from mediasearch.terminal import (
    Progress,
    count,
    display,
    json_path,
    say,
)


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
@click.option(
    "--no-ocr", "no_ocr", is_flag=True,
    help="Leave the text in pictures unread this time (names, tags and captions are always read).",
)  # fmt: skip
@json_option
def index(
    paths, model, library, hidden, excludes, clear_excludes, follow_links, max_duration, reembed, precision, store,
    no_ocr, as_json,
) -> None:  # fmt: skip
    """Add folders to the library and bring it in step with them.

    Only new and changed files are embedded; renamed, moved or copied files reuse
    their stored vectors; files gone from disk leave the library.  With no
    PATH, every folder already in the library is rescanned with its remembered
    options.  A PATH that is a file inside a library folder brings just that
    file in step.  A folder that cannot be reached (an unplugged drive) keeps
    its files.  Ctrl-C stops within about a second, keeping what is finished (a
    long recording keeps its windows so far); the next run carries on.

    After the vectors, the text in pictures is read (OCR, its own progress
    line): every file is findable by its vector first.  --no-ocr leaves it
    for a later pass.

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
                on_change=_tell_failure, ocr=not no_ocr,
                reading=lambda: Progress(terminal(), "picture read", quiet=as_json),
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
        + (f"; text read in {count(s.read, 'picture')}" if s.read else "")
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
    words = data["words"]
    say(
        f"text:     read in {count(words['read'], 'picture')} ({words['with_text']} holding some)"
        + (f", {words['waiting']} waiting (the next `mediasearch index` reads them)" if words["waiting"] else "")
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
    from mediasearch.remembered import forget_queries, query_memory

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
