"""The `mediasearch` command: parse options, call one core function, print its result.

stdout carries results only; progress, warnings and per-file failures go to
stderr.  Errors the user can fix are one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mediasearch import __version__, bundle
from mediasearch.errors import MediasearchError


class Group(click.Group):
    """Turns MediasearchError into one clean line (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MediasearchError as exc:
            raise click.ClickException(str(exc)) from exc


model_option = click.option(
    "--model",
    "-m",
    envvar="MEDIASEARCH_MODEL",
    help=f"Model bundle: a local folder or a hub repo id (default {bundle.DEFAULT_MODEL}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
precision_option = click.option(
    "--precision",
    type=click.Choice(bundle.PRECISIONS),
    envvar="MEDIASEARCH_PRECISION",
    help="fp32 (default) or int8: quantised copies of the towers, made once in the cache; faster, "
    "slightly different vectors (see `model info --precision int8`).",
)


def _quiet_hub_when_piped() -> None:
    """The hub client draws progress bars; keep them to terminals."""
    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


@click.group(cls=Group)
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
        click.echo(f"{found.path} is a local folder; nothing to download", err=True)
        return
    path = bundle.pull(name)
    bundle.check(path)
    click.echo(str(path))


@model.command()
@model_option
@precision_option
@json_option
def info(model: str | None, precision: str | None, as_json: bool) -> None:
    """Show where the model is, its files, dimensions and how each tower runs.

    Loads every tower once to check that it batches (some exports only run one
    item at a time; those fall back to batch 1).

    Example: mediasearch model info --json
    """
    from mediasearch.model import model_info

    _quiet_hub_when_piped()
    data = model_info(bundle.with_precision(bundle.resolve(model), precision, warn))
    if as_json:
        emit_json(data)
        return
    click.echo(f"model:     {data['source']}")
    click.echo(f"path:      {data['path']}")
    click.echo(f"revision:  {data['revision']}")
    click.echo(
        f"dimension: {data['dimension']} (text {data['text_width']}, image {data['image_width']}, "
        f"audio {data['audio_width']}); audio at {data['sample_rate']} Hz, {data['max_length_s']} s windows"
    )
    click.echo(f"runtime:   onnxruntime {data['onnxruntime']}, {', '.join(data['providers'])}")
    for kind, batched in data["batched"].items():
        click.echo(f"{kind + ':':10} {'batched' if batched else 'batch 1 (export does not batch)'}")
    click.echo(f"precision: {data['precision']}")
    if data["int8_cosine_vs_fp32"]:
        cos = data["int8_cosine_vs_fp32"]
        click.echo(f"int8 vs fp32: lowest cosine text {cos['text']}, image {cos['image']}, audio {cos['audio']}")
    for name, size in data["files"].items():
        click.echo(f"  {size / 1e6:10.1f} MB  {name}")


# ----------------------------------------------------------------------------- embed


@cli.command()
@model_option
@precision_option
@click.option("--text", "-t", "texts", multiple=True, help="A text to embed (repeatable).")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def embed(model: str | None, precision: str | None, texts: tuple[str, ...], files: tuple[Path, ...]) -> None:
    """Print the vector of each text and file, one JSON object per line.

    Texts come first in the order given, then files; a recording longer than
    10 s gives one line per window with its start and end seconds.  A file that
    cannot be read gives a line with "error" and the exit status is 1 at the end.

    Example: mediasearch embed --text "a dog barking" photo.jpg bark.wav
    """
    from mediasearch.model import Embedder, embed_files

    if not texts and not files:
        raise click.UsageError("give at least one --text or FILE")
    _quiet_hub_when_piped()
    embedder = Embedder(bundle.with_precision(bundle.resolve(model), precision, warn))
    for text, vector in zip(texts, embedder.embed_texts(list(texts))):
        emit_json({"input": text, "modality": "text", "start": None, "end": None, "embedding": _floats(vector)})
    failed = 0
    for path, result in embed_files(embedder, list(files)):
        if isinstance(result, MediasearchError):
            failed += 1
            click.echo(f"skipping {path}: {getattr(result, 'reason', result)}", err=True)
            emit_json(
                {
                    "input": str(path),
                    "modality": None,
                    "start": None,
                    "end": None,
                    "error": getattr(result, "reason", str(result)),
                }
            )
            continue
        decoded, vectors = result
        for (start, end), vector in zip(decoded.spans, vectors):
            emit_json(
                {"input": str(path), "modality": decoded.kind, "start": start, "end": end, "embedding": _floats(vector)}
            )
    if failed:
        sys.exit(1)


def _floats(vector) -> list[float]:
    return [round(float(x), 7) for x in vector]


# ----------------------------------------------------------------------------- library

library_option = click.option(
    "--library",
    "-L",
    type=click.Path(file_okay=False, path_type=Path),
    help="Library folder (default $MEDIASEARCH_HOME, else ~/.local/share/mediasearch).",
)


def open_catalog(library: Path | None):
    from mediasearch.catalog import Catalog
    from mediasearch.paths import library_dir

    return Catalog(library_dir(library))


def bundle_for(catalog, model: str | None, precision: str | None):
    """--model, else MEDIASEARCH_MODEL, else the model this library was built with, else the default.

    Likewise --precision, else the library's, else fp32.
    """
    found = bundle.resolve(model or os.environ.get("MEDIASEARCH_MODEL") or catalog.get("model_source"))
    return bundle.with_precision(found, precision or bundle.precision_of(catalog.get("model_revision")), warn)


def embedder_factory(catalog, model: str | None, precision: str | None):
    """Make the embedder on first need (a no-change pass or a stored example never loads the model)."""
    made = []

    def make():
        if not made:
            from mediasearch.ingest import check_model
            from mediasearch.model import Embedder

            found = bundle_for(catalog, model, precision)
            check_model(catalog, found)
            made.append(Embedder(found))
        return made[0]

    return make


def walk_options(command):
    """--hidden and --exclude, the same for index and watch."""
    command = click.option(
        "--exclude",
        "excludes",
        multiple=True,
        metavar="GLOB",
        help="Skip files and folders whose name or relative path matches GLOB (repeatable).",
    )(command)
    return click.option("--hidden", is_flag=True, help="Include hidden files and folders (names starting with '.').")(
        command
    )


def start_writing(catalog, paths, model, precision, reembed: bool = False):
    """Take the writer lock, settle the model, and pick the folders (given, else the library's)."""
    from mediasearch.ingest import check_model

    catalog.lock()
    found = bundle_for(catalog, model, precision)
    check_model(catalog, found, reembed)
    roots = [p.expanduser().resolve() for p in paths] or [Path(p) for p in catalog.roots()]
    if not roots:
        raise click.UsageError("give a folder (the library has none yet)")
    return found, roots


def warn(message: str) -> None:
    click.echo(message, err=True)


class Progress:
    """A tqdm bar on a terminal, nothing on a pipe."""

    def __init__(self, unit: str, quiet: bool = False):
        self.bar = None
        self.enabled = sys.stderr.isatty() and not quiet
        self.unit = unit

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@library_option
@walk_options
@click.option("--reembed", is_flag=True, help="Embed everything again (after changing the model).")
@precision_option
@json_option
def index(paths, model, library, hidden, excludes, reembed, precision, as_json) -> None:
    """Add folders to the library and bring it in step with them.

    Only new and changed files are embedded; renamed, moved or copied files reuse
    their stored vectors; files gone from disk leave the library.  With no
    PATH, every folder already in the library is rescanned.  Work is committed
    in batches: after Ctrl-C or a crash, the next run carries on.

    Example: mediasearch index ~/Pictures ~/Recordings --exclude '*.tmp'
    """
    from mediasearch.index import VectorIndex
    from mediasearch.ingest import Indexer
    from mediasearch.model import Embedder

    _quiet_hub_when_piped()
    catalog = open_catalog(library)
    try:
        found, roots = start_writing(catalog, paths, model, precision, reembed)
        vectors = VectorIndex(catalog)
        progress = Progress("file", quiet=as_json)
        indexer = Indexer(catalog, vectors, lambda: Embedder(found), hidden, excludes, warn=warn)
        try:
            summary = indexer.scan(roots, progress)
        except KeyboardInterrupt:
            progress.close()
            save_index(vectors)
            warn("interrupted: what was finished is kept; run the same command again to carry on")
            sys.exit(130)
        progress.close()
        save_index(vectors)
    finally:
        catalog.close()
    if as_json:
        emit_json(summary.as_dict())
        return
    s = summary
    click.echo(
        f"{s.added} added, {s.updated} updated, {s.reused} reused, {s.removed} removed, "
        f"{s.unchanged} unchanged, {s.failed} failed, {s.ignored} ignored in {s.seconds:.1f}s",
        err=True,
    )
    if s.failed:
        click.echo("see `mediasearch status --failures` for the reasons", err=True)


def save_index(vectors) -> None:
    """Make the saved index match the catalog (also rebuilds a deleted or stale one)."""
    if vectors.index is None:
        if vectors.saved_is_current():
            return  # nothing changed: do not rewrite a large file
        vectors.load()
    vectors.save()


@cli.command()
@click.argument("text", required=False)
@click.option(
    "--like",
    "likes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An example picture or sound: find things like it (repeatable).",
)
@click.option("--not", "nots", multiple=True, metavar="TEXT", help="Push results away from TEXT (repeatable).")
@click.option("--type", "kinds", help="Only these kinds: image, audio or image,audio.")
@click.option(
    "--in", "within", multiple=True, type=click.Path(path_type=Path), help="Only files under this folder (repeatable)."
)
@click.option(
    "--after",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only files modified on or after this date.",
)
@click.option(
    "--before",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only files modified before this date.",
)
@click.option("--limit", "-n", default=10, show_default=True, type=click.IntRange(1), help="How many files.")
@click.option("--min-score", type=float, help="Only results with at least this cosine score.")
@click.option("--paths", "paths_only", is_flag=True, help="Print only absolute paths, one per line.")
@click.option("-0", "nul", is_flag=True, help="With --paths: separate paths with NUL, for xargs -0.")
@model_option
@precision_option
@library_option
@json_option
def query(
    text,
    likes,
    nots,
    kinds,
    within,
    after,
    before,
    limit,
    min_score,
    paths_only,
    nul,
    model,
    precision,
    library,
    as_json,
) -> None:
    """Find the pictures and sounds nearest to some words and/or example files.

    Every positive term (TEXT and each --like file) counts the same: their
    vectors are averaged.  --not terms are averaged and subtracted at half that
    weight.  Files are ranked by their best segment; a hit inside a long
    recording shows its time range.

    Example: mediasearch query "dog barking" --not puppy --type audio --limit 5
    """
    from mediasearch.index import VectorIndex
    from mediasearch.search import Filters, query_vector, search

    kind_list = [k.strip() for k in kinds.split(",")] if kinds else []
    bad = [k for k in kind_list if k not in ("image", "audio")]
    if bad:
        raise click.BadParameter(f"unknown kind {bad[0]!r}: use image, audio or both", param_hint="--type")
    catalog = open_catalog(library)
    try:
        make = embedder_factory(catalog, model, precision)
        if model or os.environ.get("MEDIASEARCH_MODEL") or precision:
            make()  # an explicit model must match the library's even if no text needs it
        vector = query_vector(catalog, make, [text] if text else [], likes, nots)
        vectors = VectorIndex(catalog, mmap=True).load()
        filters = Filters(kind_list, [p.expanduser().resolve() for p in within], after, before, min_score)
        hits = search(catalog, vectors, vector, limit, filters)
        if vectors.rebuilt:
            _save_quietly(catalog, vectors)
    finally:
        catalog.close()
    print_hits(hits, as_json, paths_only, nul)


def _save_quietly(catalog, vectors) -> None:
    """A query that had to rebuild the index saves it for the next one, unless a writer is busy."""
    from mediasearch.catalog import LibraryBusy

    try:
        catalog.lock()
    except LibraryBusy:
        return
    try:
        if catalog.generation() == vectors.generation:
            vectors.save()
    finally:
        catalog.unlock()


def print_hits(hits, as_json: bool, paths_only: bool, nul: bool) -> None:
    if as_json:
        emit_json([h.as_dict() for h in hits])
        return
    if paths_only:
        end = "\0" if nul else "\n"
        sys.stdout.write("".join(h.path + end for h in hits))
        return
    if not hits:
        warn("no results")
        return
    tty = sys.stdout.isatty()
    for h in hits:
        span = f"{_clock(h.start)}-{_clock(h.end)}" if h.start is not None else ""
        if tty:
            click.echo(f"{h.score:6.3f}  {h.kind:5}  {span:>13}  {click.format_filename(h.path)}")
        else:
            click.echo("\t".join([f"{h.score:.4f}", h.path] + ([span] if span else [])))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


@cli.command()
@library_option
@click.option("--failures", is_flag=True, help="List every file that failed, with the reason.")
@json_option
def status(library, failures, as_json) -> None:
    """Show the library: folders, counts by kind and state, model, index size.

    Example: mediasearch status --failures
    """
    from mediasearch.status import library_status

    catalog = open_catalog(library)
    try:
        data = library_status(catalog)
    finally:
        catalog.close()
    if as_json:
        emit_json(data)
        return
    click.echo(f"library:  {data['library']}")
    click.echo(f"cache:    {data['cache']}")
    click.echo(f"model:    {data['model'] or '(none yet)'}" + (f" ({data['revision']})" if data["revision"] else ""))
    for root in data["roots"]:
        click.echo(f"folder:   {root['path']} ({root['files']} files)")
    counts = data["counts"]
    click.echo(
        f"indexed:  {counts['indexed']} files ({counts['image']} pictures, {counts['audio']} sounds), "
        f"{data['segments']} segments"
    )
    click.echo(f"failed:   {counts['failed']}    ignored: {counts['ignored']} ({counts['video']} videos)")
    idx = data["index"]
    click.echo(
        f"index:    {idx['vectors']} vectors, {idx['bytes'] / 1e6:.1f} MB, "
        f"{'up to date' if idx['current'] else 'stale (rebuilt from the catalog on next use)'}"
    )
    if failures:
        for f in data["failures"]:
            click.echo(f"{f['path']}: {f['error']}")
    elif counts["failed"]:
        click.echo("(--failures lists them)")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@library_option
@json_option
def forget(path, library, as_json) -> None:
    """Remove a folder from the library, with all its files and vectors.

    The files on disk are not touched.

    Example: mediasearch forget ~/Old-Recordings
    """
    from mediasearch.index import VectorIndex

    catalog = open_catalog(library)
    try:
        catalog.lock()
        roots = catalog.roots()
        target = str(path.expanduser().resolve())
        if target not in roots:
            known = ", ".join(roots) or "none"
            raise click.ClickException(f"{target} is not a folder of this library (folders: {known})")
        vectors = VectorIndex(catalog).load()
        removed = catalog.remove_root(roots[target])
        vectors.apply(removed, [], None)
        vectors.save()
    finally:
        catalog.close()
    if as_json:
        emit_json({"forgotten": target, "segments": len(removed)})
    else:
        warn(f"forgot {target} ({len(removed)} segments)")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@library_option
@walk_options
@click.option(
    "--settle",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a file must stay unchanged before it is embedded (files being written wait).",
)
@click.option(
    "--rescan",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Also rescan every folder this often, as a safety net for missed events (0 = never).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@precision_option
@json_option
def watch(paths, model, library, hidden, excludes, settle, rescan, quiet, precision, as_json) -> None:
    """Keep the library in step with its folders until stopped.

    Starts with the same pass as `index` (so changes made while it was not
    running are caught), then follows filesystem events: new, changed, moved
    and deleted files and folders show up in queries within seconds.  Moves keep
    their vectors.  Ctrl-C or SIGTERM finishes the batch in flight and exits.
    With no PATH, watches every folder already in the library.

    Example: mediasearch watch ~/Media --exclude '*.part'
    """
    from mediasearch.index import VectorIndex
    from mediasearch.ingest import Indexer
    from mediasearch.model import Embedder
    from mediasearch.watch import Settings, Watcher, print_change

    _quiet_hub_when_piped()
    catalog = open_catalog(library)
    try:
        found, roots = start_writing(catalog, paths, model, precision)
        for root in roots:
            catalog.add_root(root)

        def echo(line: str) -> None:
            click.echo(line)
            sys.stdout.flush()

        def on_change(change) -> None:
            if not quiet:
                print_change(change, as_json, echo)

        def log(message: str) -> None:
            if not quiet:
                warn(message)

        indexer = Indexer(
            catalog, VectorIndex(catalog), lambda: Embedder(found), hidden, excludes, warn=warn, on_change=on_change
        )
        Watcher(catalog, indexer, roots, Settings(settle=settle, rescan=rescan), log).run_until_signalled()
    finally:
        catalog.close()


def main() -> None:
    cli(prog_name="mediasearch")
