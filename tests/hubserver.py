"""A local stand-in for the Hugging Face hub, serving one folder as a model repo.

It answers the calls the hub client makes for `snapshot_download`: repo info,
the file tree, and HEAD/GET (with Range, for resume) on /resolve/.  It keeps a
log of requests so tests can see what was (and was not) fetched, and can cut a
file short once to exercise resuming.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, folder: Path, repo_id: str):
        self.folder = folder
        self.repo_id = repo_id
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of resumed downloads
        self.cut_once: set[str] = set()  # files whose next GET stops half-way
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def downloads(self) -> list[str]:
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header(
            "Content-Length", str(len(body)) if not (headers or {}).get("Content-Length") else headers["Content-Length"]
        )
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, data, head: bool = False) -> None:
        self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"}, head)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        hub = self.hub
        path = unquote(urlparse(self.path).path)
        hub.requests.append(("HEAD" if head else "GET", path))
        if self.headers.get("Range"):
            hub.ranges.append((path, self.headers["Range"]))
        api = f"/api/models/{hub.repo_id}"
        if path.startswith(api + "/revision/") or path == api:
            siblings = [{"rfilename": f.name} for f in hub.files()]
            return self._json(
                {"id": hub.repo_id, "modelId": hub.repo_id, "sha": COMMIT, "siblings": siblings, "private": False}, head
            )
        if path.startswith(api + "/tree/"):
            tree = [{"type": "file", "path": f.name, "size": f.stat().st_size, "oid": _oid(f)} for f in hub.files()]
            return self._json(tree, head)
        prefix = f"/{hub.repo_id}/resolve/"
        if path.startswith(prefix):
            name = path[len(prefix) :].split("/", 1)[1]
            return self._file(hub.folder / name, head)
        self._send(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}, head)

    def _file(self, file: Path, head: bool) -> None:
        if not file.is_file():
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
        data = file.read_bytes()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{_oid(file)}"', "Accept-Ranges": "bytes"}
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        body = data[start:]
        code = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if head:
            return self._send(200, b"", dict(headers, **{"Content-Length": str(len(data))}), head=True)
        if file.name in self.hub.cut_once:
            self.hub.cut_once.discard(file.name)
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(code, body, headers)


def _oid(file: Path) -> str:
    return hashlib.sha1(file.read_bytes()).hexdigest()
