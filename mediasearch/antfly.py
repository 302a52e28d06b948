"""A small client for the parts of Antfly's HTTP API that mediasearch uses.

Antfly (https://antfly.io) is a distributed database with vector indexes and
filters.  mediasearch needs five calls from it: read a table, create one, update
its schema, write a batch (upserts and deletions), and a query (k-NN or full-text)
with a filter.  The published
Python SDK is young (its batch call failed against the server when this was
written), so this is plain `http.client` over one kept-alive connection.

The token, when the server runs with `--auth`, comes from the environment
(MEDIASEARCH_STORE_TOKEN), never from the command line, where other users of
the machine could read it in the process list.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from mediasearch.errors import MediasearchError, UsageError

TOKEN_ENV = "MEDIASEARCH_STORE_TOKEN"
TIMEOUT = 60.0  # seconds for one request: a large batch at full-index sync takes a few
CONNECT_TIMEOUT = 5.0  # a server that does not take the connection in this long is down


class StoreError(MediasearchError):
    """The store refused a request (a bad table, a wrong token, a server error)."""


class StoreUnreachable(StoreError):
    """No answer from the store: the caller keeps what was not sent and tries again later."""


@dataclass(frozen=True)
class Address:
    """Where a table lives: http[s]://HOST:PORT/TABLE."""

    scheme: str
    host: str
    port: int
    table: str

    @classmethod
    def parse(cls, url: str) -> Address:
        parts = urlsplit(url)
        table = parts.path.strip("/")
        if parts.scheme not in ("http", "https") or not parts.hostname or not table or "/" in table:
            raise UsageError(
                f"{url!r} is not a store address: give http://HOST:PORT/TABLE (for example "
                "http://127.0.0.1:8080/media), the Antfly server and the table to keep this library in"
            )
        if parts.username or parts.password:
            raise UsageError(f"leave the credentials out of the store address: put the token in ${TOKEN_ENV}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, table)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.table}"


def authorization(token: str | None) -> str | None:
    """The Authorization header for a token: an API key's `encoded` credential is sent as
    `ApiKey ...`; a value that names its own scheme ("Bearer ...", "Basic ...") is sent as it is."""
    if not token:
        return None
    token = token.strip()
    return token if " " in token else f"ApiKey {token}"


class Antfly:
    """One table on one Antfly server."""

    def __init__(self, address: Address, token: str | None = None, timeout: float = TIMEOUT):
        self.address = address
        self.timeout = timeout
        self._auth = authorization(token if token is not None else os.environ.get(TOKEN_ENV))
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ the calls used

    def table(self) -> dict | None:
        """The table's description, or None when there is no such table."""
        try:
            return self._call("GET", self._path())
        except _NotFound:
            return None

    def create_table(self, spec: dict) -> None:
        """Create the table; one that another library created meanwhile is fine (checked by the caller)."""
        try:
            self._call("POST", self._path(), spec)
        except _Conflict:
            pass

    def update_schema(self, schema: dict) -> None:
        """Replace the table's schema (Antfly rebuilds its full-text index from the stored documents)."""
        self._call("PUT", self._path("schema"), schema)

    def write(self, inserts: dict[str, dict], deletes: list[str]) -> None:
        """Upsert and delete documents in one batch, answered once every index holds them, so a
        query right after sees them and a server killed after the answer has them on disk."""
        self._call("POST", self._path("batch"), {"inserts": inserts, "deletes": deletes, "sync_level": "full_index"})

    def nearest(self, request: dict) -> list[dict]:
        """A query (see store.py for its shape): the hits, best first."""
        return (self.search(request).get("hits") or {}).get("hits") or []

    def search(self, request: dict) -> dict:
        """A query's answer: {"hits": {"hits": [...best first], "total": {"value": N}}, "aggregations"}."""
        answer = self._call("POST", self._path("query"), request)
        responses = answer.get("responses") or [{}]
        if responses[0].get("error"):
            raise StoreError(f"the store refused the query: {responses[0]['error']}")
        return responses[0]

    # ------------------------------------------------------------------ transport

    def _path(self, *rest: str) -> str:
        return "/".join(["/db/v1/tables", quote(self.address.table, safe=""), *rest])

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self.address.scheme == "https" else http.client.HTTPConnection
            conn = kind(self.address.host, self.address.port, timeout=min(CONNECT_TIMEOUT, self.timeout))
            conn.connect()
            conn.sock.settimeout(self.timeout)
            self._conn = conn
        return self._conn

    def _call(self, method: str, path: str, body: dict | None = None):
        payload = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._auth:
            headers["Authorization"] = self._auth
        for attempt in (1, 2):  # a kept-alive connection the server has closed fails once; try a fresh one
            try:
                conn = self._connection()
                conn.request(method, path, payload, headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2 or isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError)):
                    raise StoreUnreachable(f"cannot reach the store at {self.address} ({_reason(exc)})") from exc
        return _answer(self.address, response.status, data)


class _NotFound(StoreError):
    pass


class _Conflict(StoreError):
    pass


def _answer(address: Address, status: int, data: bytes):
    if 200 <= status < 300:
        return json.loads(data) if data.strip() else {}
    text = data.decode("utf-8", "replace").strip()[:300]
    try:
        detail = json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        detail = text
    if status == 404:
        raise _NotFound(detail)
    if status == 409:
        raise _Conflict(detail)
    if status in (401, 403):
        raise StoreError(
            f"the store at {address} refused the credentials ({status}: {detail}): put an API key's encoded "
            f"credential (or 'Bearer TOKEN') in ${TOKEN_ENV}"
        )
    if status in (502, 503, 504):
        raise StoreUnreachable(f"the store at {address} is not serving ({status}: {detail})")
    raise StoreError(f"the store at {address} answered {status}: {detail}")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
