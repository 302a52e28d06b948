"""`mediasearch model pull|info` and `mediasearch embed`: the model and its vectors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mediasearch import bundle
from mediasearch.cli.base import (
    FILES_FAILED,
    Group,
    _open,
    _quiet_hub_when_piped,
    cli,
    emit_json,
    json_option,
    library_option,
    model_option,
    precision_option,
    warn,
)
from mediasearch.errors import MediasearchError
from mediasearch.terminal import (
    display,
    json_path,
    say,
)


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


def _library_model(library: Path | None) -> tuple[str | None, str | None]:
    """The model and precision an existing library was built with (for commands that do not need one)."""
    try:
        with _open(library) as lib:
            return lib.built_with()
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
