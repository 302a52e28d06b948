"""The `mediasearch` command: parse options, call one core function, print its result.

stdout carries results only; progress, warnings and per-file failures go to
stderr.  Errors the user can fix are one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
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
@json_option
def info(model: str | None, as_json: bool) -> None:
    """Show where the model is, its files, dimensions and how each tower runs.

    Loads every tower once to check that it batches (some exports only run one
    item at a time; those fall back to batch 1).

    Example: mediasearch model info --json
    """
    from mediasearch.model import model_info

    _quiet_hub_when_piped()
    data = model_info(bundle.resolve(model))
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
    for name, size in data["files"].items():
        click.echo(f"  {size / 1e6:10.1f} MB  {name}")


# ----------------------------------------------------------------------------- embed


@cli.command()
@model_option
@click.option("--text", "-t", "texts", multiple=True, help="A text to embed (repeatable).")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def embed(model: str | None, texts: tuple[str, ...], files: tuple[Path, ...]) -> None:
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
    embedder = Embedder(bundle.resolve(model))
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


def main() -> None:
    cli(prog_name="mediasearch")
