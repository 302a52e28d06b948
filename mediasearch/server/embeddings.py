"""Embeddings as Termite serves them (/embed, /ai/v1/embed, /ai/v1/embeddings, /ai/v1/models), in the
OpenAI envelope, computed by the Python API."""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mediasearch.bundle import DEFAULT_MODEL
from mediasearch.catalog import DIM
from mediasearch.errors import DecodeError
from mediasearch.search import mean_vector
from mediasearch.server.base import (
    MAX_PARTS,
    ApiError,
    Service,
    _json_body,
    _sound_budget,
)

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


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
