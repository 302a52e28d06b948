"""`mediasearch serve`: the search page, its JSON API, and embeddings as Termite serves them.

Starlette on uvicorn.  The library is opened read-only, so the server runs
beside `watch` and sees what it adds (the index refreshes when the catalog
moves on).  Safe by default: it binds 127.0.0.1; any other address needs a
token, checked on every request; the Host header must name the server (DNS
rebinding); only files the catalog holds are served, checked at request time
against their library folder; bodies are bounded; every response carries a
Content-Security-Policy and `nosniff`.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import json
import math
import mimetypes
import os
import re
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from importlib import resources
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from mediasearch import media
from mediasearch.bundle import DEFAULT_MODEL
from mediasearch.catalog import DIM
from mediasearch.errors import Busy, DecodeError, EmptyLibrary, FileUnavailable, MediasearchError
from mediasearch.media.sniff import SNIFF_BYTES
from mediasearch.media.sound import WINDOW_S
from mediasearch.originals import Opened
from mediasearch.params import parse_kinds, parse_near, parse_score, parse_when
from mediasearch.paths import cache_dir
from mediasearch.query import parse
from mediasearch.search import mean_vector
from mediasearch.terminal import Terminal, hit_json

MAX_BODY = 64 * 1024 * 1024  # an upload or an embedding request, whole
MAX_PARTS = 32  # inputs in one embedding request
# What one request may make the server do (issue 23: an hour of 4 kHz silence is a 47 KB FLAC).
MAX_SOUND_S = 120.0  # seconds of sound or video decoded for one request, all its inputs together
MAX_BODIES = 8  # requests whose bodies are being read at once; more are answered 429
MEDIA_WORKERS = 1  # uploads and media inputs embedded at once; the others are answered 429
HEADER_TIMEOUT_S = 10.0  # a connection has this long to send a request's headers
BODY_TIMEOUT_S = 30.0  # and each part of its body must come within this
MAX_CONNECTIONS = 1000  # open connections in all (each is a file descriptor)
MAX_CONNECTIONS_PER_CLIENT = 64  # open connections from one address
THUMB_SIZE = 320
THUMB_CACHE_BYTES = 256 * 1024 * 1024
HOME = Terminal()  # only for its home folder, shown as ~
SOUND_PICTURE_S = 30.0  # the longest sound window drawn (a hit's window is 10 s)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# A file opened by itself in a tab is shown by the browser's own viewer, in a sandbox with no origin
# and nothing allowed to load or run: a polyglot that is also HTML can do nothing there.
FILE_CSP = (
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


OPENAI_FACE = ("/ai/v1/", "/embed")


HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_body(path: str, code: str, message: str) -> dict:
    """`{error, message}` everywhere; on the OpenAI face, `error` is OpenAI's object (message, type,
    param, code) so the `openai` client raises with the code, and `message` stays at the top level."""
    message = message.encode("utf-8", "replace").decode()  # a message quoting a lone surrogate still encodes
    if not path.startswith(OPENAI_FACE):
        return {"error": code, "message": message}
    param = "model" if code == "model_not_found" else None
    kind = "invalid_request_error" if code != "too_large" else "request_too_large"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}, "message": message}


@dataclass
class Settings:
    library: Path | None
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    model: str | None = None
    hosts: set[str] = field(default_factory=set)
    share_locations: bool = False  # coordinates in answers even when serving beyond this machine

    def __post_init__(self):
        self.hosts = {h.lower() for h in (*LOOPBACK, self.host)}

    @property
    def locations(self) -> bool:
        """Coordinates go into answers on loopback, or when the user asked (serve --share-locations)."""
        return self.share_locations or self.host.lower() in LOOPBACK


class Service:
    """The library, read-only, through the Python API (which owns the concurrency of core work)."""

    def __init__(self, settings: Settings):
        import mediasearch

        self.settings = settings
        # One file embedded at a time, and none free is a 429 at once, not a queue (waiting threads
        # would take the ones searches need); a request's sound is bounded as a whole (_sound_budget).
        limits = mediasearch.Limits(files_at_once=MEDIA_WORKERS, wait_seconds=0, example_seconds=MAX_SOUND_S)
        self.library = mediasearch.open(settings.library, model=settings.model, limits=limits)


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening before anything says it serves: a port that is
    taken, or an address this machine does not have, is one clear error instead of uvicorn's
    traceback after a "serving" line."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise MediasearchError(f"cannot listen on {host}: the address is unknown ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MediasearchError(f"port {port} on {host} is taken (another server?): choose one with --port") from exc
        raise MediasearchError(f"cannot listen on {host} port {port} ({exc.strerror or exc})") from exc
    return sock


# ----------------------------------------------------------------------------- search


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


def _all(params, key: str) -> list[str]:
    return [v for v in (params.getlist(key) if hasattr(params, "getlist") else [params.get(key)]) if v]


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
    text = " ".join([text, *(f'-"{n.replace(chr(34), " ")}"' for n in nots)]).strip()
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


def _sound_budget(paths: list[Path], names: list[str]) -> None:
    """Refuse (413) inputs whose headers declare more than MAX_SOUND_S of sound or video in all:
    their decoding is bounded too (max_duration), but this says so before any work."""
    total = 0.0
    for path, name in zip(paths, names, strict=True):
        total += _declared_seconds(path)
        if total > MAX_SOUND_S:
            raise ApiError(413, "too_long", f"{name}: more than {MAX_SOUND_S:g} s of sound or video in one request")


def _declared_seconds(path: Path) -> float:
    """How long a sound or video says it is, from its header (0 for a picture or what says nothing)."""
    try:
        import soundfile

        return float(soundfile.info(str(path)).duration)
    except Exception:  # not a sound libsndfile reads: ask FFmpeg's demuxer
        pass
    try:
        import av

        with av.open(str(path)) as container:
            return max(float(container.duration or 0) / 1e6, 0.0)
    except Exception:  # neither reads it: decoding will say why
        return 0.0


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


# ----------------------------------------------------------------------------- files and thumbnails


def _file_id(request: Request) -> int:
    """The id in the path; one beyond SQLite's integers is no file (not an overflow)."""
    file_id = int(request.path_params["file_id"])
    if file_id >= 2**63:
        raise ApiError(404, "not_found", "no such file")
    return file_id


def _catalog_file(service: Service, file_id: int) -> Opened:
    """An indexed file opened once and checked (see originals.open_checked): 403 or 404 if it fails."""
    try:
        return service.library.open_file(file_id)
    except FileUnavailable as exc:
        raise ApiError(403 if exc.code == "forbidden" else 404, exc.code, str(exc)) from exc


async def file_original(request: Request) -> Response:
    opened = await run_in_threadpool(_catalog_file, request.app.state.service, _file_id(request))
    try:
        head = os.pread(opened.fd, SNIFF_BYTES, 0)
        headers = {
            "Content-Disposition": _disposition(os.path.basename(opened.path)),
            "Content-Security-Policy": FILE_CSP,
            "Last-Modified": formatdate(opened.mtime, usegmt=True),
        }
        return OpenFileResponse(opened, _served_type(head, opened.kind, opened.path), headers, request)
    except BaseException:
        opened.close()
        raise


class OpenFileResponse(Response):
    """An open file sent from its descriptor (so what was checked is what is sent), with one HTTP
    range honoured (media players seek with them); several ranges get the whole file."""

    CHUNK = 256 * 1024

    def __init__(self, opened: Opened, media_type: str, headers: dict, request: Request):
        super().__init__(media_type=media_type, headers=headers)
        self.opened = opened
        self.start, self.end = 0, opened.size
        self.head_only = request.method == "HEAD"
        self.raw_headers.append((b"accept-ranges", b"bytes"))
        wanted = _byte_range(request.headers.get("range", ""), opened.size)
        if wanted == "unsatisfiable":
            self.status_code, self.end = 416, 0
            self.raw_headers.append((b"content-range", f"bytes */{opened.size}".encode()))
        elif wanted is not None:
            self.status_code, (self.start, self.end) = 206, wanted
            self.raw_headers.append((b"content-range", f"bytes {self.start}-{self.end - 1}/{opened.size}".encode()))
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"content-length", str(self.end - self.start).encode()))

    async def __call__(self, scope, receive, send) -> None:
        """Stream the range; stop reading when the client goes (a player seeking drops requests)."""
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await self._stream(send)
                group.cancel_scope.cancel()
        finally:
            self.opened.close()  # a read in a thread is waited for (not abandoned) before this

    async def _stream(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        offset = self.start
        while not self.head_only and offset < self.end:
            chunk = await run_in_threadpool(os.pread, self.opened.fd, min(self.CHUNK, self.end - offset), offset)
            if not chunk:
                return  # shortened since it was opened: the client gets a short body, never other bytes
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": offset < self.end})
        if self.head_only or self.start == self.end:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _byte_range(header: str, size: int):
    """(start, end) for a single `bytes=` range, "unsatisfiable", or None to send the whole file."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not any(match.groups()):
        return None  # absent, malformed or several ranges: a server may answer with the whole file
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            return None
    else:
        start, end = max(size - int(last), 0), size
    return "unsatisfiable" if start >= size or start >= end else (start, end)


def _served_type(head: bytes, kind: str, path: str) -> str:
    """The media type a file is served as: decided from its content, never from its name, so a
    picture named .html (a polyglot) is never rendered as a page nor run as a script."""
    sniffed = media.sniff(head)
    if sniffed is not None:
        kind = sniffed
        for test, media_type in _CONTENT_TYPES:
            if test(head):
                return media_type.replace("video/", "audio/") if kind == "audio" else media_type
    guessed = mimetypes.guess_type(path)[0] or ""
    if kind and guessed.startswith(f"{kind}/") and not any(w in guessed for w in ("svg", "xml", "html")):
        return guessed  # a format sniff does not name (TGA, PCX, WMA...), of the kind indexed
    return "application/octet-stream"


def _brand(head: bytes) -> bytes:
    return head[8:12] if head[4:8] == b"ftyp" else b""


_CONTENT_TYPES = [
    (lambda h: h[:3] == b"\xff\xd8\xff", "image/jpeg"),
    (lambda h: h[:8] == b"\x89PNG\r\n\x1a\n", "image/png"),
    (lambda h: h[:4] == b"GIF8", "image/gif"),
    (lambda h: h[:2] == b"BM", "image/bmp"),
    (lambda h: h[:4] in (b"II*\x00", b"MM\x00*"), "image/tiff"),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", "image/webp"),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE", "audio/wav"),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"AVI ", "video/x-msvideo"),
    (lambda h: h[:4] == b"fLaC", "audio/flac"),
    (lambda h: h[:4] == b"OggS", "video/ogg"),
    (lambda h: h[:4] == b"caff", "audio/x-caf"),
    (lambda h: h[:4] == b"#!AM", "audio/amr"),
    (lambda h: h[:4] == b"FORM", "audio/aiff"),
    (lambda h: h[:4] == b"8BPS", "image/vnd.adobe.photoshop"),
    (lambda h: h[:4] == b"qoif", "image/qoi"),
    (lambda h: h[:4] == b"DDS ", "image/vnd-ms.dds"),
    (lambda h: h[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2"),
    (lambda h: _brand(h) in (b"avif", b"avis"), "image/avif"),
    (lambda h: _brand(h) != b"" and media.sniff(h) == "image", "image/heic"),
    (lambda h: _brand(h) == b"qt  ", "video/quicktime"),
    (lambda h: _brand(h) != b"", "video/mp4"),
    (lambda h: h[:4] == b"\x1aE\xdf\xa3" and b"webm" in h[:64], "video/webm"),
    (lambda h: h[:4] == b"\x1aE\xdf\xa3", "video/x-matroska"),
    (lambda h: h[:4] == b"\x30\x26\xb2\x75", "video/x-ms-asf"),
    (lambda h: True, "audio/mpeg"),  # ID3 or MPEG frames: the last kinds sniff knows
]


def _disposition(name: str) -> str:
    """`inline` with the file's name: an ASCII stand-in, and the name itself as RFC 5987 UTF-8
    (a name that is not UTF-8 on disk is shown with replacement characters, never a 500)."""
    readable = os.fsencode(name).decode("utf-8", "replace")
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in readable)
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(readable, safe='')}"


async def thumbnail(request: Request) -> Response:
    """A JPEG thumbnail of a picture or a video's first frame, or a PNG waveform of a sound's window
    (?start=&end=, seconds; the first window without them).  Made once, cached by content hash."""
    service: Service = request.app.state.service
    cached, form = await run_in_threadpool(_thumbnail_file, service, _file_id(request), request.query_params)
    headers = {"Cache-Control": "private, max-age=86400", "Content-Security-Policy": FILE_CSP}
    return FileResponse(cached, media_type=f"image/{form.lower()}", headers=headers)


def _window_asked(params) -> tuple[float, float]:
    """The sound window a picture is asked for (the first 10 s without one): finite, start before end,
    at most SOUND_PICTURE_S long.  Whether it lies inside the recording, the decoding says."""
    try:
        start = float(params.get("start") or 0.0)
        end = float(params.get("end") or start + WINDOW_S)
    except ValueError as exc:
        raise ApiError(400, "bad_parameter", "start and end are seconds") from exc
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ApiError(400, "bad_parameter", "start and end are seconds, 0 <= start < end")
    if end - start > SOUND_PICTURE_S:
        raise ApiError(400, "bad_parameter", f"a sound picture spans at most {SOUND_PICTURE_S:g} s")
    return round(start, 3), round(end, 3)


def _sound_picture(path: str, start: float, end: float):
    """The waveform of [start, end) seconds, decoded by the media package, drawn by soundpicture;
    a window running past the end of the recording is drawn with silence there."""
    from mediasearch import soundpicture

    samples, rate = media.samples_between(path, start, end)
    if not samples.size:
        raise ApiError(400, "bad_parameter", f"the recording has no sound from {start:g} s on")
    wanted = max(samples.size, int((end - start) * rate))
    return soundpicture.draw(np.pad(samples, (0, wanted - samples.size)))


def _keep(image, cached: Path, form: str) -> None:
    """Write a thumbnail into the cache atomically, private like the library (folder 0700, file 0600)."""
    cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(cached.parent, 0o700)
    tmp = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        image.save(handle, form, **({"quality": 82} if form == "JPEG" else {"optimize": True}))
    os.replace(tmp, cached)
    _trim(cached.parent)


def _thumbnail_file(service: Service, file_id: int, params) -> tuple[Path, str]:
    """The cached picture and its format, made from the checked, open file (never from what its path
    names now); decoding runs here, in a worker thread, not in the event loop."""
    opened = _catalog_file(service, file_id)
    try:
        digest, folder = service.library.file(file_id).hash, cache_dir() / "thumbs"
        if opened.kind == "audio":
            start, end = _window_asked(params)
            cached, form = folder / f"{digest}-{start:.3f}-{end:.3f}.png", "PNG"
            make = partial(_sound_picture, opened.reopenable(), start, end)
        else:
            cached, form = folder / f"{digest}-{THUMB_SIZE}.jpg", "JPEG"
            make = partial(media.thumbnail, opened.reopenable(), opened.kind, THUMB_SIZE, name=opened.path)
        if not cached.exists():
            image = make()
            if image is None:
                raise ApiError(404, "no_thumbnail", "this file has no picture to show")
            _keep(image, cached, form)
    finally:
        opened.close()
    return cached, form


def _trim(folder: Path) -> None:
    """Keep the thumbnail cache under THUMB_CACHE_BYTES, dropping the least recently made."""
    files = sorted([*folder.glob("*.jpg"), *folder.glob("*.png")], key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    while files and total > THUMB_CACHE_BYTES:
        oldest = files.pop(0)
        total -= oldest.stat().st_size
        oldest.unlink(missing_ok=True)


async def status(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(request.app.state.service.library.status))


# ----------------------------------------------------------------------------- Termite-compatible embeddings

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


async def _json_body(request: Request):
    """The body as JSON, sent as application/json only: a page on another site can POST text/plain
    or a form without asking first, never application/json, so this refuses such requests before
    any work."""
    _require_type(request, "application/json")
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python parses
        raise ApiError(400, "invalid_json", "the body is not JSON (or is nested too deeply)") from exc


def _require_type(request: Request, wanted: str) -> None:
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent != wanted:
        raise ApiError(415, "unsupported_media_type", f"send the body as {wanted} (it came as {sent or 'nothing'})")


def _text(value, index: int) -> str:
    """A text input, refused when it is not one or cannot be UTF-8 (a lone surrogate from JSON's \\ud800)."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_input", f"input {index}: text must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(
            400, "invalid_input", f"input {index}: the text is not valid Unicode (a lone surrogate)"
        ) from exc
    return value


def _part_bytes(part, index: int) -> tuple[str, bytes | str]:
    """("text", str) or ("media", bytes) for one input part, in any of the shapes Termite takes."""
    if isinstance(part, str):
        return "text", _text(part, index)
    if not isinstance(part, dict):
        raise ApiError(400, "invalid_input", f"input {index} is neither a string nor a part object")
    kind = part.get("type")
    if kind == "text":
        return "text", _text(part.get("text", ""), index)
    if kind in ("image_url", "audio_url"):
        url = (part.get(kind) or {}).get("url") if isinstance(part.get(kind), dict) else part.get(kind)
        if not isinstance(url, str):
            raise ApiError(400, "invalid_input", f"input {index}: the url must be a string (a data: URI)")
        return "media", _data_uri(url, index)
    if kind == "media":
        if not isinstance(part.get("data"), str):
            raise ApiError(400, "invalid_input", f"input {index}: data must be a base64 string")
        try:
            return "media", base64.b64decode(part["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "invalid_input", f"input {index}: data is not base64") from exc
    raise ApiError(400, "invalid_input", f"input {index}: unknown part type {kind!r}")


def _data_uri(url: str, index: int) -> bytes:
    match = _DATA_URI.match(url)
    if not match:
        scheme = url.split(":", 1)[0].lower() if ":" in url else "?"
        raise ApiError(
            400,
            "remote_url_refused",
            f"input {index}: only data: URIs are accepted ({scheme}: URLs are refused: this server never fetches)",
        )
    payload = url[match.end() :]
    try:
        if match.group("b64"):
            return base64.b64decode(payload, validate=True)
        from urllib.parse import unquote_to_bytes

        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_input", f"input {index}: the data: URI does not decode") from exc


def _embed_inputs(service: Service, inputs: list) -> np.ndarray:
    parts = [_part_bytes(p, i) for i, p in enumerate(inputs)]
    library = service.library
    out = np.zeros((len(parts), DIM), np.float32)
    texts = [(i, v) for i, (k, v) in enumerate(parts) if k == "text"]
    if texts:
        out[[i for i, _ in texts]] = library.embed_texts([v for _, v in texts])
    media_parts = [(i, v) for i, (k, v) in enumerate(parts) if k == "media"]
    if not media_parts:
        return out
    with tempfile.TemporaryDirectory(prefix="mediasearch-embed-") as folder:
        paths = [Path(folder) / f"part-{i}" for i, _ in media_parts]
        for path, (_, value) in zip(paths, media_parts, strict=True):
            path.write_bytes(value)
        _sound_budget(paths, [f"input {i}" for i, _ in media_parts])
        for path, (i, _) in zip(paths, media_parts, strict=True):
            result = library.embed_file(path)
            if isinstance(result, DecodeError):
                raise ApiError(422, "undecodable_input", f"input {i}: {result.reason}")
            out[i] = mean_vector(result.vectors)
    return out


async def embed(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict) or "input" not in body:
        raise ApiError(400, "invalid_input", 'send {"model": ..., "input": ...}')
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if not inputs or len(inputs) > MAX_PARTS:
        raise ApiError(400, "invalid_input", f"send between 1 and {MAX_PARTS} inputs")
    service: Service = request.app.state.service
    _check_model(service, body)
    vectors = await run_in_threadpool(_embed_inputs, service, inputs)
    if "application/octet-stream" in request.headers.get("accept", ""):
        header = np.array([len(vectors), vectors.shape[1]], "<u8").tobytes()
        return Response(header + vectors.astype("<f4").tobytes(), media_type="application/octet-stream")
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist(),
        }
        for i, v in enumerate(vectors)
    ]
    tokens = await run_in_threadpool(_text_tokens, service, inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": _model_name(service), "usage": usage})


def _text_tokens(service: Service, inputs: list) -> int:
    """The tokens the text tower read (BOS and EOS included, after the 77-token cut), as OpenAI counts usage."""
    texts = [value for kind, value in (_part_bytes(p, i) for i, p in enumerate(inputs)) if kind == "text"]
    if not texts:
        return 0
    return int(service.library.embedder.tokenize(texts)["attention_mask"].sum())


def _model_name(service: Service) -> str:
    """The model's name as clients see it: the hub id, or a local bundle folder's own name.

    Never the folder's absolute path: a path tells a client where the user keeps things.
    """
    source = service.library.model_name()
    return os.path.basename(source.rstrip("/")) if os.path.isabs(source) else source


def _check_model(service: Service, body: dict) -> None:
    """A request naming another model is refused rather than answered with this one's vectors.

    Any CLIPCLAP bundle answers to the hub's name too, so the model card's request works as written.
    """
    asked, served = body.get("model"), _model_name(service)
    if asked is None or (isinstance(asked, str) and asked in {served, DEFAULT_MODEL, DEFAULT_MODEL.split("/")[-1]}):
        return
    raise ApiError(404, "model_not_found", f"the model {str(asked)[:200]!r} is not served here: use {served!r}")


async def models(request: Request) -> JSONResponse:
    name = _model_name(request.app.state.service)
    return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "mediasearch"}]})


# ----------------------------------------------------------------------------- page, OpenAPI, safety


async def page(request: Request) -> Response:
    return _static("index.html", "text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
    if name not in types:
        raise ApiError(404, "not_found", "no such asset")
    return _static(name, types[name])


def _static(name: str, media_type: str) -> Response:
    return Response(resources.files("mediasearch.web").joinpath(name).read_bytes(), media_type=media_type)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


def _query_params(*names: str) -> list[dict]:
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


SEARCH_PARAMS = _query_params("q", "not", "type", "in", "after", "before", "near", "limit", "min_score")
FILE_ID = {"name": "file_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _op(summary: str, parameters: list | None = None, answer: str = "JSON") -> dict:
    return {"summary": summary, "parameters": parameters or [], "responses": {"200": {"description": answer}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "mediasearch", "version": "1"},
    "paths": {
        "/api/search": {
            "get": _op("Search by words: the hits of `query --json`, plus id, file and thumb", SEARCH_PARAMS),
            "post": _op("Search by uploaded example files (multipart: file, repeatable; and the same fields)"),
        },
        "/api/similar/{file_id}": {
            "get": _op(
                "More like an indexed file, by its stored vectors (example=1: the file itself first, marked example)",
                [FILE_ID, *SEARCH_PARAMS[2:], *_query_params("example")],
            )
        },
        "/api/files/{file_id}": {"get": _op("The original file (HTTP Range supported)", [FILE_ID], "the file")},
        "/api/thumbs/{file_id}": {
            "get": _op(
                "A JPEG thumbnail (pictures and videos), or a PNG waveform of a sound's window (start, end: seconds)",
                [FILE_ID, *_query_params("start", "end")],
                "image/jpeg or image/png",
            )
        },
        "/api/status": {"get": _op("Folders (and offline ones), counts, failures, model")},
        "/ai/v1/embeddings": {"post": _op("Embeddings in the OpenAI envelope, as Termite serves them")},
        "/ai/v1/embed": {"post": _op("The same")},
        "/embed": {"post": _op("The same (the model card's path)")},
        "/ai/v1/models": {"get": _op("The model served")},
    },
}


class Guard:
    """ASGI middleware: Host, origin and token checks, body size, the security headers on every
    response, and the last word on errors: every one is `{error, message}` JSON, with one line in
    the server's log for what was not foreseen (never a traceback, never a plain-text 500)."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings
        self.bodies = 0  # requests sending bodies now (the event loop's own count: no lock needed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        started = [False]

        async def secure_send(message):
            if message["type"] == "http.response.start":
                started[0] = True
                message = dict(message, headers=[*message.get("headers", []), *self._extra_headers(message, scope)])
            await send(message)

        problem = self._refuse(scope, headers)
        if problem is not None:
            return await _send_error(problem, secure_send, scope.get("path", ""))
        clean = _page_without_token(scope) if self.settings.token else None
        if clean is not None:
            return await _redirect_clean(secure_send, clean)
        with_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if with_body and self.bodies >= MAX_BODIES:
            busy = ApiError(429, "busy", f"{MAX_BODIES} requests are sending bodies already: try again in a moment")
            return await _send_error(busy, secure_send, scope.get("path", ""))
        self.bodies += with_body
        try:
            await self.app(scope, _bounded(receive), secure_send)
        except ApiError as exc:
            if not started[0]:
                await _send_error(exc, secure_send, scope.get("path", ""))
        except Exception as exc:  # a bug or an input not foreseen: one line in the log, a JSON 500
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]  # the one error inside a task group is the one to name
            where = exc.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            at = f" at {os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else ""
            _log(f"{scope.get('method')} {scope.get('path')!r}: {type(exc).__name__}: {str(exc)[:300]}{at}")
            if not started[0]:
                await _send_error(ApiError(500, "internal", "the server failed on this request"), secure_send, "")
        finally:
            self.bodies -= with_body

    def _extra_headers(self, message, scope) -> list[tuple[bytes, bytes]]:
        own = {k.lower() for k, _ in message.get("headers", [])}
        extra = [] if b"content-security-policy" in own else [(b"content-security-policy", CSP.encode())]
        extra += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        extra.append((b"x-frame-options", b"DENY"))
        token = self.settings.token
        if token and hmac.compare_digest(self._token_of(scope) or b"", _token_bytes(token)):
            cookie = f"{self.cookie}={quote(token, safe='')}; HttpOnly; SameSite=Strict; Path=/"
            extra.append((b"set-cookie", cookie.encode()))
        return extra

    @property
    def cookie(self) -> str:
        """The cookie's name, per port: cookies are not tied to ports, so every other web app on this
        machine's name would receive one named alike."""
        return f"mediasearch_token_{self.settings.port}"

    def _token_of(self, scope) -> bytes | None:
        return _token_of(scope, self.cookie.encode())

    def _host_refused(self, scope, host: str) -> bool:
        """Whether the Host header names something else than this server (DNS rebinding): its name
        must be a loopback name, the --host given, or, listening on every address (0.0.0.0, ::), the
        address this connection reached; its port must be the one this connection reached."""
        name, port = _host_and_port(host)
        local = scope.get("server") or (None, self.settings.port)
        if name is None or port != local[1]:
            return True
        wildcard = self.settings.host in ("0.0.0.0", "::", "")
        return name not in self.settings.hosts and not (wildcard and name == str(local[0]).lower())

    def _refuse(self, scope, headers) -> ApiError | None:
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > MAX_BODY:
            return ApiError(413, "too_large", f"the request is over {MAX_BODY // (1024 * 1024)} MB")
        if self._host_refused(scope, headers.get("host", "")):
            return ApiError(421, "wrong_host", "this server answers to its own address and port only")
        if not _same_origin(scope, headers):
            return ApiError(403, "cross_origin", "requests from other sites are refused: use the page or an API client")
        token = self.settings.token
        if token and not hmac.compare_digest(self._token_of(scope) or b"", _token_bytes(token)):
            return ApiError(401, "token_required", "give the server's token: ?token=..., or Authorization: Bearer")
        return None


def uvicorn_config(app, sock: socket.socket):
    """uvicorn's settings for `serve`: short keep-alives, and connections that must send their headers
    in time, few per client address (each one is a file descriptor, and 1,100 of them that never
    finish their headers took every descriptor a process has)."""
    import resource

    import uvicorn

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + 256  # the connections, and the files and sockets the server opens itself
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False,
                          http=_guarded_h11(), timeout_keep_alive=5)  # fmt: skip


def _guarded_h11():
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers (uvicorn has none: a
    connection that sends nothing stays open for ever) and a cap on connections, in all and by
    client address."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            peer = self.client[0] if self.client else None
            same = sum(1 for c in self.connections if (c.client[0] if c.client else None) == peer)
            if len(self.connections) > MAX_CONNECTIONS or same > MAX_CONNECTIONS_PER_CLIENT:
                transport.close()
                return
            self._wait_for_headers()

        def _wait_for_headers(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
            self.header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

        def _headers_late(self) -> None:
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete and self.header_timer is not None:
                self.header_timer.cancel()  # the headers came: the request's own time is the handler's
                self.header_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()  # the next request on this connection, too

        def connection_lost(self, exc) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
            super().connection_lost(exc)

    return GuardedH11


def _bounded(receive):
    """`receive`, refusing a body past MAX_BODY (one sent without a Content-Length, chunked) and one
    that stalls: each part of it must come within BODY_TIMEOUT_S (a body trickled in would hold one
    of the MAX_BODIES slots for ever).  Once the body is whole, waiting (for a disconnect) is free."""
    budget, whole = [MAX_BODY], [False]

    async def limited_receive():
        if whole[0]:
            return await receive()
        try:
            with anyio.fail_after(BODY_TIMEOUT_S):
                message = await receive()
        except TimeoutError as exc:
            raise ApiError(408, "too_slow", f"the body stalled for {BODY_TIMEOUT_S:g} s") from exc
        if message["type"] == "http.request":
            budget[0] -= len(message.get("body", b""))
            whole[0] = not message.get("more_body", False)
            if budget[0] < 0:
                raise ApiError(413, "too_large", f"the request is over {MAX_BODY // (1024 * 1024)} MB")
        return message

    return limited_receive


def _same_origin(scope, headers) -> bool:
    """Whether a request comes from the page itself or from no page at all (curl, an API client).

    A browser tells where a request comes from: Sec-Fetch-Site (same-origin; none for an address
    typed or bookmarked) and Origin (on every POST and every CORS request).  Another site, even one
    on another port of this machine (same-site to the browser), can make simple requests without a
    preflight (text/plain POSTs, form posts, navigations): all are refused, except a plain
    navigation to the page itself (a link to a search, which runs nothing the page does not).
    """
    site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{headers.get('host', '')}".lower():
        return False
    if site in (None, "same-origin", "none"):
        return True
    navigation = headers.get("sec-fetch-mode") == "navigate" and scope.get("method") == "GET"
    return navigation and scope.get("path") == "/" and origin is None


def _token_bytes(token: str) -> bytes:
    return token.encode("utf-8", "surrogateescape")  # compared as bytes: a token need not be ASCII


def _host_and_port(host: str) -> tuple[str | None, int]:
    """The name (lower case, IPv6 without brackets) and port (80 if none) of a Host header; (None, 0)
    for one that is not a name and a port."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^\s:\[\]/@]+)(?::(\d{1,5}))?", host.strip())
    if not match:
        return None, 0
    return match.group(1).strip("[]").lower(), int(match.group(2) or 80)


def _token_of(scope, cookie: bytes) -> bytes | None:
    """The token a request carries, as the bytes sent (header bytes as they came; the query and the
    cookie percent-decoded), so that any token, ASCII or not, compares safely."""
    raw = dict(scope["headers"])
    auth = raw.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    for pair in scope.get("query_string", b"").split(b"&"):
        if pair.startswith(b"token="):
            return unquote_to_bytes(pair[6:].replace(b"+", b" "))
    for item in raw.get(b"cookie", b"").split(b";"):
        key, _, value = item.strip().partition(b"=")
        if key == cookie:
            return unquote_to_bytes(value)
    return None


def _log(line: str) -> None:
    """One line on the server's stderr (uvicorn logs warnings there too)."""
    print(f"mediasearch serve: {line}", file=sys.stderr, flush=True)


def _page_without_token(scope) -> bytes | None:
    """For the page asked with ?token= (the address `serve` prints), the same address without it."""
    if scope.get("method") != "GET" or scope.get("path") != "/":
        return None
    pairs = [p for p in scope.get("query_string", b"").split(b"&") if p]
    rest = [p for p in pairs if not p.startswith(b"token=")]
    return None if len(rest) == len(pairs) else b"/" + (b"?" + b"&".join(rest) if rest else b"")


async def _redirect_clean(send, location: bytes) -> None:
    """The page's address with ?token= left out (it would stay in the address bar and the history);
    the cookie that replaces it comes with the redirect."""
    headers = [(b"location", location), (b"content-length", b"0"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_error(error: ApiError, send, path: str) -> None:
    response = JSONResponse(error_body(path, error.code, error.message), status_code=error.status)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def create_app(settings: Settings) -> Guard:
    async def api_error(request, exc: ApiError):
        return JSONResponse(error_body(request.url.path, exc.code, exc.message), status_code=exc.status)

    async def user_error(request, exc: MediasearchError):
        return JSONResponse(error_body(request.url.path, "bad_request", str(exc)), status_code=400)

    async def busy(request, exc: Busy):
        """The core's bound on model work was reached: come back shortly."""
        body = error_body(request.url.path, "busy", str(exc))
        return JSONResponse(body, status_code=429, headers={"Retry-After": "2"})

    async def internal_error(request, exc: Exception):
        """What nothing foresaw: JSON too (Guard logs it in one line)."""
        return JSONResponse(error_body("", "internal", "the server failed on this request"), status_code=500)

    async def http_error(request, exc: HTTPException):
        """Starlette's own refusals (no such route, method, a malformed form) in the same JSON; a form
        over its limits (a field over 1 MB, more than 8 files) is 413, as every other bound."""
        status = exc.status_code
        if status == 400 and str(exc.detail).startswith(("Part exceeded maximum size", "Too many")):
            status = 413
        body = error_body(request.url.path, HTTP_CODES.get(status, "bad_request"), str(exc.detail))
        return JSONResponse(body, status_code=status, headers=exc.headers)

    routes = [
        Route("/", page),
        Route("/static/{name}", asset),
        Route("/api/search", search_get, methods=["GET"]),
        Route("/api/search", search_post, methods=["POST"]),
        Route("/api/similar/{file_id:int}", similar),
        Route("/api/files/{file_id:int}", file_original),
        Route("/api/thumbs/{file_id:int}", thumbnail),
        Route("/api/status", status),
        Route("/openapi.json", openapi),
        Route("/embed", embed, methods=["POST"]),
        Route("/ai/v1/embed", embed, methods=["POST"]),
        Route("/ai/v1/embeddings", embed, methods=["POST"]),
        Route("/ai/v1/models", models),
    ]
    handlers = {
        ApiError: api_error, Busy: busy, MediasearchError: user_error, HTTPException: http_error,
        Exception: internal_error,
    }  # fmt: skip
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.service = Service(settings)
    return Guard(app, settings)
