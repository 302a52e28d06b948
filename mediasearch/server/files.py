"""Originals and thumbnails: an indexed file opened once and checked by the core, served as the media
type its content says, never as a document a browser would render or run."""

from __future__ import annotations

import math
import mimetypes
import os
import re
import threading
from email.utils import formatdate
from functools import partial
from pathlib import Path
from urllib.parse import quote

import anyio
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from mediasearch import media
from mediasearch.errors import FileUnavailable
from mediasearch.media.sniff import SNIFF_BYTES
from mediasearch.media.sound import WINDOW_S
from mediasearch.originals import Opened
from mediasearch.paths import cache_dir
from mediasearch.server.base import (
    FILE_CSP,
    SOUND_PICTURE_S,
    THUMB_CACHE_BYTES,
    THUMB_SIZE,
    ApiError,
    Service,
    _file_id,
)


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
