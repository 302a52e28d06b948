"""What a hostile file, page or request can do to `serve` (issue 23): real polyglots, a real browser on
another origin, a real `mediasearch serve` process on 127.0.0.1."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import BUNDLE
from test_page import CHROMEDRIVER, CHROMIUM, browser, wait  # noqa: F401 - the module's fixture, shared
from test_server import Server, free_port

pytestmark = pytest.mark.slow  # real index runs and servers, a browser, attack loads
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="Debian's chromium and chromium-driver are not installed"
)


def index(folder: Path, home: Path) -> dict:
    """Index `folder` with a real `mediasearch index` into a library under `home`; the env to serve it."""
    env = dict(os.environ, MEDIASEARCH_HOME=str(home / "lib"), MEDIASEARCH_CACHE=str(home / "cache"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return env


class Attacker:
    """A page on another port of the same machine, as a site the user happens to visit would be:
    it serves `html` at / and records what is sent to it."""

    def __init__(self, html: str):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- polyglots


PAYLOAD = (
    b"document.title='pwned';fetch('/api/search?q=x').then(r=>r.text()).then(t=>{document.title='pwned '+t.length})"
)


def gif_that_is_javascript() -> bytes:
    """A valid GIF whose bytes also parse as JavaScript running PAYLOAD: 10,799 px wide so that the
    width field reads `/*`, opening a comment that a GIF comment block closes; the code follows and
    opens another comment that the bytes after the GIF's trailer close."""
    from PIL import Image

    picture = Image.new("P", (0x2A2F, 300), 0)
    picture.putpalette([30, 120, 200, 250, 250, 250])
    out = io.BytesIO()
    picture.save(out, "GIF", comment=b"*/=1;" + PAYLOAD + b";/*")
    data = out.getvalue() + b"*/"
    assert data.startswith(b"GIF89a/*") and data.count(b"*/") == 2, "the JavaScript reading must hold"
    return data


def jpeg_that_is_html(script_ids: range) -> bytes:
    """A valid JPEG whose comment segment is a page loading /api/files/N as scripts (ids are small
    integers: an attacker tries a few)."""
    from PIL import Image

    tags = "".join(f'<script src="/api/files/{i}"></script>' for i in script_ids)
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 40)).save(out, "JPEG", comment=f"<html><body>{tags}</body></html>".encode())
    return out.getvalue()


@pytest.fixture(scope="module")
def polyglots(tmp_path_factory):
    """The pair indexed by a real `index` (as pictures: that is what their content says), and served."""
    home = tmp_path_factory.mktemp("polyglots")
    folder = home / "downloads"
    folder.mkdir()
    (folder / "lib.js").write_bytes(gif_that_is_javascript())
    (folder / "invoice.html").write_bytes(jpeg_that_is_html(range(1, 9)))
    env = index(folder, home)
    served = Server(home / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    hits = served.get("/api/search", params={"q": "x"}).json()
    yield served, {h["name"]: h for h in hits}
    served.stop()


def test_files_are_served_as_what_their_content_is(polyglots):
    served, hits = polyglots
    assert {name: hit["kind"] for name, hit in hits.items()} == {"lib.js": "image", "invoice.html": "image"}
    for name, media_type in (("lib.js", "image/gif"), ("invoice.html", "image/jpeg")):
        response = served.get(hits[name]["file"])
        assert response.status_code == 200 and response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"
        policy = response.headers["content-security-policy"]
        assert policy.startswith("sandbox;") and "default-src 'none'" in policy and "script-src" not in policy
        assert response.headers["content-disposition"].startswith(f'inline; filename="{name}"')


@needs_browser
def test_a_polyglot_opened_from_another_origin_runs_nothing(polyglots, browser):  # noqa: F811
    """Another site sends the browser to the .html polyglot; it must be shown as a picture, and its
    <script src="/api/files/N"> (the .js polyglot, same-origin) must never run."""
    served, hits = polyglots
    target = served.url + hits["invoice.html"]["file"]
    attacker = Attacker(f"<script>location.href = {target!r};</script>")
    try:
        browser.get(attacker.url)
        wait(lambda: browser.current_url == target, "the navigation to the polyglot")
        # Give a script every chance to run: the page's scripts and the fetch would be done by now.
        wait(lambda: browser.execute_script("return document.readyState") == "complete", "the document")
        threading.Event().wait(1.5)
        assert "pwned" not in browser.title, "the polyglot's script ran on mediasearch's origin"
        assert browser.execute_script("return document.images.length") == 1, "shown as a picture"
    finally:
        attacker.stop()
