"""What stands between the network and the app: the listening socket, the Host, Origin and token
checks, bounded bodies and connections, and the security headers on every response."""

from __future__ import annotations

import errno
import hmac
import os
import re
import socket
import sys
from urllib.parse import quote, unquote_to_bytes

import anyio
from starlette.responses import JSONResponse

from mediasearch.errors import MediasearchError
from mediasearch.server.base import (
    BODY_TIMEOUT_S,
    CSP,
    HEADER_TIMEOUT_S,
    MAX_BODIES,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    ApiError,
    Settings,
    error_body,
)


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
