"""What every part of `serve` shares: its limits, its settings, the library it serves (through the
Python API) and its one error shape, `{error, message}`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from mediasearch.terminal import Terminal

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


def _all(params, key: str) -> list[str]:
    return [v for v in (params.getlist(key) if hasattr(params, "getlist") else [params.get(key)]) if v]


def _file_id(request: Request) -> int:
    """The id in the path; one beyond SQLite's integers is no file (not an overflow)."""
    file_id = int(request.path_params["file_id"])
    if file_id >= 2**63:
        raise ApiError(404, "not_found", "no such file")
    return file_id


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
