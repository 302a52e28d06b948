"""What a hostile file, page or request can do to `serve` (issue 23): real polyglots, a real browser on
another origin, a real `mediasearch serve` process on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import BUNDLE, INPUTS, SAMPLES
from test_page import CHROMEDRIVER, CHROMIUM, browser, wait  # noqa: F401 - the module's fixture, shared
from test_server import Server, data_uri, free_port

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
    """Another site sends the browser to the .html polyglot; its <script src="/api/files/N"> (the .js
    polyglot, same-origin) must never run.  Opened by the user (an address typed, the page's link),
    it is shown as the picture it is, and nothing runs either."""
    served, hits = polyglots
    target = served.url + hits["invoice.html"]["file"]
    attacker = Attacker(f"<script>location.href = {target!r};</script>")
    try:
        browser.get(attacker.url)
        wait(lambda: browser.current_url == target, "the navigation to the polyglot")
        assert_nothing_ran(browser)
    finally:
        attacker.stop()
    browser.get(target)
    assert_nothing_ran(browser)
    assert browser.execute_script("return document.images.length") == 1, "shown as a picture"


def assert_nothing_ran(browser) -> None:  # noqa: F811
    wait(lambda: browser.execute_script("return document.readyState") == "complete", "the document")
    threading.Event().wait(1.5)  # a script and its fetch would be done by now
    assert "pwned" not in browser.title, "the polyglot's script ran on mediasearch's origin"


# ----------------------------------------------------------------------------- cross-site requests


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """A small library served (a picture and a 21 s recording), for the request tests."""
    home = tmp_path_factory.mktemp("sounds")
    folder = home / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "tiny.png")
    shutil.copy(SAMPLES / "long-recording.flac", folder / "long.flac")
    env = index(folder, home)
    served = Server(home / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    yield served
    served.stop()


def error_code(response) -> str:
    """The error's code: `error` itself, or on the OpenAI face (/embed, /ai/v1) its object's code."""
    error = response.json()["error"]
    return error["code"] if isinstance(error, dict) else error


def embed_body(path: Path, mime: str) -> dict:
    return {"input": [{"type": "audio_url", "audio_url": {"url": data_uri(path, mime)}}]}


def test_requests_from_other_sites_are_refused_and_api_clients_still_work(sounds):
    served = sounds
    body = embed_body(SAMPLES / "long-recording.flac", "audio/flac")
    other = f"http://127.0.0.1:{free_port()}"
    assert served.post("/embed", json=body).status_code == 200, "an API client sends no Origin: it is served"
    for headers in (
        {"Origin": other},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = served.post("/embed", json=body, headers=headers)
        assert response.status_code == 403 and error_code(response) == "cross_origin", headers
    as_text = served.post("/embed", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415 and error_code(as_text) == "unsupported_media_type"
    assert served.post("/api/search", json={"q": "x"}).status_code == 415, "uploads are multipart only"
    same = {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}
    assert (
        served.post(
            "/api/search", files={"file": ("t.png", (INPUTS / "tiny.png").read_bytes())}, headers=same
        ).status_code
        == 200
    )
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert served.get("/?q=cat", headers=link).status_code == 200, "a link to a search opens the page"
    assert served.get("/api/search?q=cat", headers=link).status_code == 403, "but not the API"


@needs_browser
def test_another_sites_page_cannot_run_the_model(sounds, browser):  # noqa: F811
    """A page on another port posts the model card's request as text/plain with no-cors (no preflight)
    and as a form: the model must not run (the server's CPU time stays put), nothing is answered."""
    served = sounds
    body = json.dumps(embed_body(SAMPLES / "long-recording.flac", "audio/flac"))
    served.post("/embed", json=json.loads(body))  # the model loaded and warm before measuring
    started = cpu_seconds(served.proc.pid)
    served.post("/embed", json=json.loads(body))
    by_client = cpu_seconds(served.proc.pid) - started
    posts = 5  # the model's cost five times over, against a browser's and a loaded machine's noise, once
    script = f"""<script>
    (async () => {{
      for (let i = 0; i < {posts}; i++) {{
        await fetch({(served.url + "/embed")!r}, {{method: "POST", mode: "no-cors",
                    headers: {{"Content-Type": "text/plain"}}, body: {body!r}}}).catch(() => null);
      }}
      document.title = "sent";
    }})();
    </script>"""
    attacker = Attacker(script)
    try:
        started, began = cpu_seconds(served.proc.pid), time.monotonic()
        browser.get(attacker.url)
        wait(lambda: browser.title == "sent", "the cross-site POST")
        by_page, spent = cpu_seconds(served.proc.pid) - started, time.monotonic() - began
    finally:
        attacker.stop()
    started = cpu_seconds(served.proc.pid)
    time.sleep(spent)  # what the idle server costs over as long (its threads, a loaded machine's noise)
    idle = cpu_seconds(served.proc.pid) - started
    started = cpu_seconds(served.proc.pid)
    refused = served.post("/embed", content=body, headers={"Content-Type": "text/plain"})
    receiving = cpu_seconds(served.proc.pid) - started  # taking in a body the server then refuses (415)
    assert refused.status_code == 415
    model = by_client - receiving
    assert model > 0.1, "the measure must see the model run"
    assert by_page - idle - posts * receiving < posts * model / 4, (
        f"the model ran for another site ({by_page:.2f} s CPU for {posts} posts, {idle:.2f} s idle, {receiving:.2f} s "
        f"to take in a refused body; {by_client:.2f} s by a client)"
    )


# ----------------------------------------------------------------------------- errors


def test_errors_are_json_4xx_never_500s(sounds):
    served = sounds
    huge = "9" * 30
    cases = [
        ("GET", "/no/such/page", {}, 404),
        ("DELETE", "/api/status", {}, 405),
        ("POST", "/api/search", {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}}, 400),
        ("POST", "/api/search", {"data": {"q": "x" * 2_000_000}, "files": {"file": ("a.png", b"x")}}, 413),
        ("POST", "/api/search", {"files": [("file", (f"{i}.png", b"x")) for i in range(9)]}, 413),
        ("POST", "/embed", {"content": b"[" * 100_000, "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/embed", {"content": b'{"input": "\\ud800"}', "headers": {"Content-Type": "application/json"}}, 400),
        (
            "POST",
            "/embed",
            {"content": b'{"input": ["\\udfff x"]}', "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("POST", "/embed", {"json": {"input": [{"type": "media", "data": 123}]}}, 400),
        ("POST", "/embed", {"json": {"input": [{"type": "image_url", "image_url": {"url": ["x"]}}]}}, 400),
        ("POST", "/embed", {"json": {"input": [{"type": "text", "text": {"a": 1}}]}}, 400),
        ("GET", "/api/search?q=x&after=0001-01-01", {}, 400),
        ("GET", "/api/search?q=x&before=99999999999999y", {}, 400),
        ("GET", f"/api/files/{huge}", {}, 404),
        ("GET", f"/api/thumbs/{huge}", {}, 404),
        ("GET", f"/api/similar/{huge}", {}, 404),
        (
            "GET",
            "/api/status",
            {"headers": {"Cookie": f"mediasearch_token_{served.port}=p\xe4ss".encode("latin-1")}},
            200,
        ),
        ("GET", "/api/status", {"headers": {"Authorization": "Bearer p\xe4ss".encode()}}, 200),
    ]
    for method, path, kw, status in cases:
        response = httpx.request(method, served.url + path, timeout=60, **kw)
        assert response.status_code == status, (method, path, response.status_code, response.text[:200])
        if status >= 400:
            error = response.json()
            assert isinstance(error["error"], str | dict) and error["message"], (path, error)


def test_a_non_ascii_token_logs_in(sounds):
    served = Server(Path(sounds.env["MEDIASEARCH_HOME"]), "--token", "pässwort")
    try:
        assert served.get("/api/status").status_code == 401
        assert served.get("/api/status", headers={"Authorization": "Bearer pässwort".encode()}).status_code == 200
        assert served.get("/api/status", headers={"Authorization": "Bearer passwort"}).status_code == 401
        assert (
            served.get(
                "/api/status", headers={"Cookie": f"mediasearch_token_{served.port}=p\xe4sswort".encode("latin-1")}
            ).status_code
            == 401
        )
        answer = served.get("/?token=p%C3%A4sswort")
        assert answer.status_code == 303
        assert served.get("/api/status", cookies=dict(answer.cookies)).status_code == 200, "the cookie it sets works"
    finally:
        served.stop()
    assert "Traceback" not in served.proc.stderr.read()


def test_a_file_whose_name_is_not_utf8_is_served(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.flac")
    shutil.copy(SAMPLES / "long-recording.flac", folder / name)
    env = index(folder, tmp_path)
    served = Server(tmp_path / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    try:
        hit = served.get("/api/search", params={"q": "x"}).json()[0]
        response = served.get(hit["file"])
        assert response.status_code == 200 and response.content == (folder / name).read_bytes()
        assert response.headers["content-type"] == "audio/flac"
        assert (
            response.headers["content-disposition"]
            == "inline; filename=\"caf_.flac\"; filename*=UTF-8''caf%EF%BF%BD.flac"
        )
    finally:
        served.stop()
    assert "Traceback" not in served.proc.stderr.read()


def test_the_cli_says_a_date_out_of_range_in_a_line(sounds):
    done = subprocess.run([sys.executable, "-m", "mediasearch", "query", "--after", "0001-01-01", "x"],
                          env=sounds.env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'0001-01-01' is out of the range of dates" in done.stderr


def random_value(rng: random.Random):
    """Something a hostile client might send as one parameter."""
    pool = [
        "", "x", "0", "-1", "1e309", "nan", "inf", "9" * 40, "0001-01-01", "9999-12-31T23:59:59", "99999999y",
        "\ud800", "\x00", "é" * 3, "images,sounds", "a" * 5000, "../../etc/passwd", "%00", "[]", "{}", "true",
        "2024-13-45", "1.5", "-0.0", "   ", "\n", "today", "1e9y", "image,", ",", "\u202e",
    ]  # fmt: skip
    value = rng.choice(pool)
    return value if rng.random() < 0.7 else value + rng.choice(pool)


def random_json(rng: random.Random, depth: int = 0):
    choices = [None, True, 1, -1.5, 2**70, "x", "\ud800", "data:image/png;base64,@@", "data:,abc"]
    if depth < 3:
        part = {"type": rng.choice(["text", "media", "image_url", "audio_url", 7])}
        part[rng.choice(["text", "data", "image_url", "audio_url", "url"])] = random_json(rng, depth + 1)
        choices += [[random_json(rng, depth + 1)], part]
    return rng.choice(choices)


def test_fuzzing_the_routes_finds_no_500(sounds):
    """A seeded loop over every route's parameters (query, path, JSON and form bodies): no 500, and
    every refusal is `{error, message}` JSON, and the server's log holds no traceback."""
    served = Server(Path(sounds.env["MEDIASEARCH_HOME"]), env={"MEDIASEARCH_CACHE": sounds.env["MEDIASEARCH_CACHE"]})
    try:
        fuzz(served, random.Random(23))
    finally:
        served.stop()
    assert "Traceback" not in served.proc.stderr.read(), "every error is one line in the log"


def fuzz(served: Server, rng: random.Random) -> None:
    keys = ["q", "not", "type", "in", "after", "before", "limit", "min_score", "token"]
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for _ in range(400):
            route = rng.choice(["search", "similar", "files", "thumbs", "embed", "form", "status"])
            params = [(rng.choice(keys), random_value(rng)) for _ in range(rng.randint(0, 4))]
            query = "&".join(f"{k}={quote(v, safe='', errors='surrogatepass')}" for k, v in params)
            if route == "search":
                response = client.get(f"/api/search?{query}")
            elif route in ("similar", "files", "thumbs"):
                file_id = rng.choice(["1", "2", "0", "9" * rng.randint(1, 40), "00001"])
                response = client.get(f"/api/{route}/{file_id}?{query}")
            elif route == "embed":
                shapes = [{"input": random_json(rng)}, {"input": [random_json(rng)], "model": random_json(rng)}]
                body = rng.choice([*shapes, random_json(rng)])
                response = client.post("/embed", content=json.dumps(body), headers={"Content-Type": "application/json"})
            elif route == "form":
                files = {"file": ("x" + rng.choice([".png", ".flac", "", ".é"]), rng.randbytes(rng.randint(0, 300)))}
                fields = {k: v.encode("utf-8", "surrogatepass") for k, v in params}
                response = client.post("/api/search", data=fields, files=files)
            else:
                response = client.get(f"/api/status?{query}")
            assert response.status_code < 500, (route, params, response.status_code, response.text[:300])
            if response.status_code >= 400:
                assert set(response.json()) >= {"error", "message"}, response.text


# ----------------------------------------------------------------------------- links


def secret_twin(original: Path, secret: Path) -> bytes:
    """A file outside the folder with the original's size and times but other bytes (touch -r)."""
    data = bytearray(original.read_bytes())
    data[-1] ^= 0xFF
    secret.write_bytes(bytes(data))
    st = original.stat()
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def test_a_rename_loop_swapping_a_link_in_never_serves_the_outside_file(tmp_path):
    """While a thread swaps the indexed file for a link to a twin outside the folder and back (atomic
    renames), a bounded run of requests gets the original or a refusal: the twin 0 times, no 500."""
    folder, keep = tmp_path / "media", tmp_path / "keep"
    folder.mkdir()
    keep.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    env = index(folder, tmp_path)
    original = (folder / "t.png").read_bytes()
    os.link(folder / "t.png", keep / "t.png")  # the same inode, to put back
    secret = secret_twin(folder / "t.png", tmp_path / "secret.png")
    served = Server(tmp_path / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.symlink(tmp_path / "secret.png", folder / ".link")
            os.rename(folder / ".link", folder / "t.png")
            os.link(keep / "t.png", folder / ".real")
            os.rename(folder / ".real", folder / "t.png")

    try:
        url = served.get("/api/search", params={"q": "x"}).json()[0]["file"]
        swapper = threading.Thread(target=swap)
        swapper.start()
        statuses, leaked = {}, 0
        with httpx.Client(base_url=served.url, timeout=30) as client:
            for _ in range(600):
                response = client.get(url)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                leaked += response.content == secret
                assert response.status_code != 200 or response.content == original
        stop.set()
        swapper.join()
    finally:
        stop.set()
        served.stop()
    log = served.proc.stderr.read()
    assert leaked == 0 and set(statuses) <= {200, 403, 404}, (statuses, log)
    assert "Traceback" not in log, log
    assert statuses.get(200) and statuses.get(403), f"both sides of the race were seen: {statuses}"


def test_with_follow_links_only_the_indexed_content_is_served(tmp_path):
    """--follow-links: a link indexed as such is served; swapped for a link to another file with the
    same size and times (touch -r), it is refused."""
    folder, elsewhere = tmp_path / "media", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    shutil.copy(INPUTS / "tiny.png", elsewhere / "t.png")
    (folder / "t.png").symlink_to(elsewhere / "t.png")
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"), MEDIASEARCH_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--follow-links", "--model", str(BUNDLE)]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    secret_twin(elsewhere / "t.png", tmp_path / "secret.png")
    served = Server(tmp_path / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    try:
        url = served.get("/api/search", params={"q": "x"}).json()[0]["file"]
        assert served.get(url).content == (elsewhere / "t.png").read_bytes()
        (folder / "t.png").unlink()
        (folder / "t.png").symlink_to(tmp_path / "secret.png")
        response = served.get(url)
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
    finally:
        served.stop()


def test_ranges_are_served_from_the_open_file(sounds):
    served = sounds
    hit = next(h for h in served.get("/api/search", params={"q": "x"}).json() if h["name"] == "long.flac")
    data = Path(hit["path"]).read_bytes()
    for header, status, want in (
        ("bytes=100-199", 206, data[100:200]),
        ("bytes=-50", 206, data[-50:]),
        (f"bytes={len(data) - 10}-", 206, data[-10:]),
        ("bytes=x-y", 200, data),
    ):
        response = served.get(hit["file"], headers={"Range": header})
        assert (response.status_code, response.content) == (status, want), header
    response = served.get(hit["file"], headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{len(data)}"
    assert (
        served.get(hit["file"], headers={"Range": "bytes=10-20"}).headers["content-range"] == f"bytes 10-20/{len(data)}"
    )


# ----------------------------------------------------------------------------- private caches


def test_the_cache_is_private_whatever_the_umask(tmp_path):
    """index, query and serve (thumbnails, a sound picture, embeddings) with umask 022: every folder
    under the cache is 0700 and every file 0600, as the library's are."""
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "landscape.jpg", folder / "landscape.jpg")
    shutil.copy(SAMPLES / "long-recording.flac", folder / "long.flac")
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"), MEDIASEARCH_CACHE=str(tmp_path / "cache"))

    def run(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "mediasearch", *args], env=env, capture_output=True,
                              preexec_fn=lambda: os.umask(0o022))  # fmt: skip
        assert done.returncode == 0, done.stderr

    run("index", str(folder), "--model", str(BUNDLE))
    run("query", "a landscape")
    old = os.umask(0o022)
    try:
        served = Server(tmp_path / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    finally:
        os.umask(old)
    try:
        for hit in served.get("/api/search", params={"q": "x"}).json():
            assert served.get(hit["thumb"]).status_code == 200, hit["name"]
        assert served.post("/embed", json={"input": ["a dog"]}).status_code == 200
    finally:
        served.stop()
    modes = {}
    for where, dirs, files in os.walk(tmp_path / "cache"):
        for name in [".", *dirs, *files]:
            path = os.path.normpath(os.path.join(where, name))
            modes[path.split("/cache")[-1] or "/"] = os.lstat(path).st_mode & 0o777
    loose = {path: f"{mode:o}" for path, mode in modes.items() if mode not in (0o700, 0o600)}
    assert not loose, loose
    assert {p.name for p in (tmp_path / "cache").iterdir()} >= {"thumbs"}


# ----------------------------------------------------------------------------- Host


def test_the_host_must_name_this_server_and_its_port(sounds):
    served = sounds
    port = served.port
    for host, status in (
        (f"127.0.0.1:{port}", 200),
        (f"localhost:{port}", 200),
        (f"[::1]:{port}", 200),
        ("localhost:1", 421),
        ("localhost", 421),  # port 80
        (f"attacker.example:{port}", 421),
        (f"127.0.0.2:{port}", 421),  # an address this server does not listen on
        (f"localhost:{port}:1", 421),
        ("", 421),
    ):
        assert served.get("/api/status", headers={"Host": host}).status_code == status, host


def test_listening_everywhere_accepts_the_address_reached(sounds):
    """--host 0.0.0.0, in process (no test binds beyond loopback): a request reaching the server on
    one of its addresses (a loopback alias stands for a LAN address) may name that address, at the
    port reached; not another address, another port, or a name that could be rebound."""
    import asyncio

    from mediasearch.server import Settings, create_app

    app = create_app(Settings(Path(sounds.env["MEDIASEARCH_HOME"]), host="0.0.0.0", port=8765, token="t"))

    async def ask(base: str, host: str | None = None) -> int:
        transport = httpx.ASGITransport(app=app)  # the request's scope["server"] is base's address
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            headers = {"Authorization": "Bearer t", **({"Host": host} if host else {})}
            return (await client.get("/api/status", headers=headers)).status_code

    assert asyncio.run(ask("http://127.0.0.3:8765")) == 200
    assert asyncio.run(ask("http://[::1]:8765")) == 200
    assert asyncio.run(ask("http://127.0.0.3:8765", "127.0.0.4:8765")) == 421
    assert asyncio.run(ask("http://127.0.0.3:8765", "127.0.0.3:8766")) == 421
    assert asyncio.run(ask("http://127.0.0.3:8765", "rebound.example:8765")) == 421


# ----------------------------------------------------------------------------- denial of service


def hour_of_silence(path: Path) -> Path:
    """A FLAC holding an hour of 4 kHz silence: tens of KB that once meant 450 windows to embed."""
    import numpy as np
    import soundfile

    with soundfile.SoundFile(path, "w", samplerate=4000, channels=1, format="FLAC", subtype="PCM_16") as out:
        block = np.zeros(4000 * 60, np.int16)
        for _ in range(60):
            out.write(block)
    return path


def slow_headers(source: str, port: int, count: int) -> list[socket.socket]:
    """Connections from `source` that start a request and never finish its headers."""
    opened = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    return opened


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def search_times(url: str, words: list[str]) -> list[float]:
    """How long each search takes, one after another; new words each time, so that the text tower
    runs (a query remembered would be answered without it)."""
    times = []
    with httpx.Client(timeout=30) as client:
        for word in words:
            started = time.perf_counter()
            assert client.get(url, params={"q": f"a {word} barking", "limit": 10}).status_code == 200
            times.append(time.perf_counter() - started)
    return times


def test_small_requests_cannot_stop_the_server(sounds, tmp_path):
    """The hour of silence sent to /embed again and again, and hundreds of connections that never
    finish their headers, from other addresses: a search from this one answers within twice its
    median without the attack; the attack's requests are refused with 413 and the slow connections
    are closed by the server."""
    served = sounds
    body = embed_body(hour_of_silence(tmp_path / "hour.flac"), "audio/flac")
    words = ["dog", "cat", "bird", "horse", "cow", "frog", "owl", "wolf", "seal", "duck", "lion", "bear", "goat"]
    search_times(served.url + "/api/search", ["warm", "up"])
    quiet = statistics.median(search_times(served.url + "/api/search", [w + " one" for w in words]))
    stop, answers = threading.Event(), []

    def flood() -> None:
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=60) as client:
            while not stop.is_set():
                try:
                    answers.append(client.post(served.url + "/embed", json=body).status_code)
                except httpx.HTTPError:
                    answers.append(0)

    flooders = [threading.Thread(target=flood)]
    for thread in flooders:
        thread.start()
    try:
        slow = [s for i in range(5) for s in slow_headers(f"127.0.0.{3 + i}", served.port, 60)]
        capped = slow_headers("127.0.0.9", served.port, 100)
        busy = statistics.median(search_times(served.url + "/api/search", [w + " two" for w in words]))
        assert sum(closed_by_server(s, 0.2) for s in capped) >= 100 - 64, "at most 64 connections from one address"
        assert all(closed_by_server(s, 15) for s in slow), "connections that never finish their headers are closed"
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
        for sock in [*slow, *capped]:
            sock.close()
    print(f"search median {quiet * 1000:.1f} ms quiet, {busy * 1000:.1f} ms under attack; {len(answers)} /embed floods")
    assert answers and set(answers) == {413}, f"the hour of silence is refused before decoding: {set(answers)}"
    assert busy <= 2 * quiet, f"a search took {busy * 1000:.0f} ms under attack, {quiet * 1000:.0f} ms without"


def test_over_limit_requests_are_answered_413_and_429(sounds, tmp_path):
    served = sounds
    long_sound = served.post("/embed", json=embed_body(hour_of_silence(tmp_path / "hour.flac"), "audio/flac"))
    assert long_sound.status_code == 413 and error_code(long_sound) == "too_long"
    assert "more than 120 s of sound" in long_sound.json()["message"]
    stalled = []
    for _ in range(8):  # bodies that never come hold every body slot...
        sock = socket.create_connection(("127.0.0.1", served.port))
        head = f"POST /embed HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nContent-Type: application/json\r\n"
        sock.sendall((head + "Content-Length: 100\r\n\r\n{").encode())
        stalled.append(sock)
    try:
        time.sleep(0.5)
        refused = served.post("/embed", json={"input": ["one"]})
        assert refused.status_code == 429 and error_code(refused) == "busy"
        assert served.get("/api/status").status_code == 200, "requests without a body still pass"
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.5)
    assert served.post("/embed", json={"input": ["one"]}).status_code == 200, "...until they go"
