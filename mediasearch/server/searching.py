"""The search API: /api/search (words, uploads), /api/similar and /api/status, each a call of the
Python API with the page's parameters, answered as query --json's objects."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from mediasearch.errors import EmptyLibrary, MediasearchError
from mediasearch.params import parse_kinds, parse_near, parse_score, parse_when
from mediasearch.query import parse, pushing_away
from mediasearch.server.base import (
    HOME,
    ApiError,
    Service,
    _all,
    _file_id,
    _require_type,
    _sound_budget,
)
from mediasearch.terminal import hit_json


def _filters(params) -> dict:
    """The search parameters every route takes, as the API's keyword arguments."""
    try:
        kinds = parse_kinds(params.get("type", "")) if params.get("type") else ()
        after = parse_when(params["after"]) if params.get("after") else None
        before = parse_when(params["before"]) if params.get("before") else None
        near = parse_near(params["near"]) if params.get("near") else None
        min_score = parse_score(params["min_score"]) if params.get("min_score") else None
        limit = int(params.get("limit") or 24)
    except ValueError as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc
    if not 1 <= limit <= 500:
        raise ApiError(400, "bad_parameter", "limit must be between 1 and 500")
    within = _all(params, "in")
    return {"kinds": kinds, "within": within, "after": after, "before": before, "near": near, "min_score": min_score,
            "limit": limit}  # fmt: skip


def _hits(hits, locations: bool) -> list[dict]:
    out = []
    for hit in hits:
        row = hit_json(hit, locations)
        if hit.file_id is None:  # another machine's file, from a shared store: nothing here to serve
            row |= {"id": None, "file": None, "thumb": None}
        else:
            row |= {"id": hit.file_id, "file": f"/api/files/{hit.file_id}", "thumb": _thumb_url(hit)}
        row["name"] = os.path.basename(row["path"])
        row["folder"] = os.path.dirname(row["path"])
        row["shown_folder"] = HOME.tilde(row["folder"])  # ~ for the home folder, as the command line shows it
        out.append(row)
    return out


def _thumb_url(hit) -> str:
    """A picture's or video's thumbnail; for a sound, the picture of the hit's own window."""
    url = f"/api/thumbs/{hit.file_id}"
    if hit.kind == "audio" and hit.start is not None and hit.end is not None:
        url += f"?start={hit.start:g}&end={hit.end:g}"
    return url


def _run_search(service: Service, text: str, examples, nots, params, sent: dict | None = None) -> list[dict]:
    """text: the query language (words, -word, "a phrase"); nots: more texts to push away (`not=`);
    sent: an uploaded example's name as the user sent it, by the temporary path it was saved under."""
    text = pushing_away(text, nots)
    if not parse(text).positive and not examples:
        raise ApiError(400, "no_query", "give some words (q) or an example file")
    try:
        return _hits(service.library.search(text, like=examples, **_filters(params)), service.settings.locations)
    except EmptyLibrary as exc:
        raise ApiError(409, "empty_library", "the library is empty: index a folder first") from exc
    except MediasearchError as exc:
        if not examples or "example file" not in str(exc):
            raise
        message = str(exc)
        for path, name in (sent or {}).items():
            message = message.replace(str(path), name)
        raise ApiError(422, "bad_example", message) from exc


async def search_get(request: Request) -> JSONResponse:
    params = request.query_params
    text = params.get("q", "")
    hits = await run_in_threadpool(_run_search, request.app.state.service, text, [], _all(params, "not"), params)
    return JSONResponse(hits)


async def search_post(request: Request) -> JSONResponse:
    """Search by uploaded example files (form field `file`, repeatable) and the same parameters."""
    _require_type(request, "multipart/form-data")
    form = await request.form(max_files=8, max_fields=64)
    text = str(form.get("q", ""))
    with tempfile.TemporaryDirectory(prefix="mediasearch-upload-") as folder:
        examples, sent = [], {}
        for i, upload in enumerate(form.getlist("file")):
            if not hasattr(upload, "read"):
                continue
            path = Path(folder) / f"example-{i}{Path(upload.filename or '').suffix[:12]}"
            path.write_bytes(await upload.read())
            examples.append(path)
            sent[path] = _sent_name(upload.filename, i)
        hits = await run_in_threadpool(_search_by_examples, request.app.state.service, text, examples, form, sent)
    return JSONResponse(hits)


def _search_by_examples(service: Service, text: str, examples: list[Path], form, sent: dict) -> list[dict]:
    """A search with uploads: their sound bounded before any decoding, one such search at a time."""
    _sound_budget(examples, [sent[p] for p in examples])
    return _run_search(service, text, examples, _all(form, "not"), form, sent)


def _sent_name(filename: str | None, index: int) -> str:
    """The name an upload came with (its last part, at most 200 characters), for messages about it."""
    name = os.path.basename((filename or "").replace("\\", "/"))[:200]
    return name or f"upload {index + 1}"


async def similar(request: Request) -> JSONResponse:
    service: Service = request.app.state.service
    file_id, filters = _file_id(request), _filters(request.query_params)
    example = request.query_params.get("example") in ("1", "true", "yes")
    try:
        found = await run_in_threadpool(partial(service.library.similar, file_id, **filters, include_example=example))
        hits = _hits(found, service.settings.locations)
    except MediasearchError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    if example and hits and hits[0]["id"] == file_id:
        hits[0]["example"] = True
    return JSONResponse(hits)


async def status(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(request.app.state.service.library.status))
