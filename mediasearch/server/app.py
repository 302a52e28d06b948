"""The app: its routes, the page and its assets, the OpenAPI description, and the error handlers."""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mediasearch.errors import Busy, MediasearchError
from mediasearch.server.base import (
    HTTP_CODES,
    ApiError,
    Service,
    Settings,
    error_body,
)
from mediasearch.server.embeddings import (
    embed,
    models,
)
from mediasearch.server.files import (
    file_original,
    thumbnail,
)
from mediasearch.server.guard import (
    Guard,
)
from mediasearch.server.searching import (
    search_get,
    search_post,
    similar,
    status,
)


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
