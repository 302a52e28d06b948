"""`mediasearch serve` as a real uvicorn process on a free loopback port."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BUNDLE, INPUTS, SAMPLES

from mediasearch.cli import cli

# One TLS context for every request (httpx loads the CA file for each new one: 35-60 ms a request).
TLS = ssl.create_default_context()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, library: Path, *extra: str, host: str = "127.0.0.1", env: dict | None = None):
        self.port = free_port()
        self.host = host
        self.url = f"http://{host}:{self.port}"
        cmd = [sys.executable, "-m", "mediasearch", "serve", "--port", str(self.port), "--host", host, *extra]
        self.env = dict(os.environ, MEDIASEARCH_HOME=str(library), **(env or {}))
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read())
            try:
                with socket.create_connection((host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60, verify=TLS, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(self.url + path, timeout=120, verify=TLS, **kw)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def library(every_sample_indexed, tmp_path_factory):
    """This module's copy of the library of every sample, its media, and the environment to serve it in."""
    built, folder = every_sample_indexed
    home = tmp_path_factory.mktemp("served")
    shutil.copytree(built, home / "lib")
    env = dict(os.environ, MEDIASEARCH_HOME=str(home / "lib"), MEDIASEARCH_CACHE=str(home / "cache"))
    return home / "lib", folder, env


@pytest.fixture(scope="module")
def server(library):
    lib, _, env = library
    running = Server(lib, env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    yield running
    running.stop()


def cli_json(env, *args):
    """What the command prints with --json, run in this process (the server is the process under test)."""
    done = CliRunner().invoke(cli, list(args), env=env)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_search_gives_the_same_as_query_json(server, library):
    _, _, env = library
    got = server.get("/api/search", params={"q": "a dog barking", "limit": 10}).json()
    want = cli_json(env, "query", "a dog barking", "--json")
    assert [(h["path"], h["score"]) for h in got] == [(h["path"], h["score"]) for h in want]
    assert all(h["file"] == f"/api/files/{h['id']}" and h["thumb"].startswith(f"/api/thumbs/{h['id']}") for h in got)
    sounds = server.get("/api/search", params={"q": "x", "type": "sounds", "not": "rain"}).json()
    assert sounds and {h["kind"] for h in sounds} == {"audio"}


@pytest.mark.parametrize(
    "upload, mime", [(INPUTS / "landscape.jpg", "image/jpeg"), (SAMPLES / "long-recording.flac", "audio/flac")]
)
def test_an_uploaded_example_ranks_like_query_like(server, library, upload, mime):
    """A picture, and a 21 s recording (three windows, averaged as an example is)."""
    _, _, env = library
    got = server.post(
        "/api/search", files={"file": ("example" + upload.suffix, upload.read_bytes(), mime)}, data={"limit": "10"}
    ).json()
    want = cli_json(env, "query", "--like", str(upload), "--json")
    assert [h["path"] for h in got] == [h["path"] for h in want]
    assert np.allclose([h["score"] for h in got], [h["score"] for h in want], atol=1e-5)


def test_similar_uses_stored_vectors_and_leaves_the_item_out(server, library):
    _, folder, env = library
    hits = server.get("/api/search", params={"q": "cat", "limit": 50}).json()
    cat = next(h for h in hits if h["name"] == "cat-chelsea.jpg")
    similar = server.get(f"/api/similar/{cat['id']}").json()
    want = cli_json(env, "query", "--like", str(folder / "cat-chelsea.jpg"), "--json", "-n", "24")
    assert [h["path"] for h in similar] == [h["path"] for h in want]
    assert server.get("/api/similar/99999").status_code == 404


def test_files_with_range_and_thumbnails(server):
    hits = server.get("/api/search", params={"q": "x", "limit": 50}).json()
    sound = next(h for h in hits if h["name"] == "long-recording.flac")
    whole = server.get(sound["file"])
    assert whole.status_code == 200 and whole.content == Path(sound["path"]).read_bytes()
    part = server.get(sound["file"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == Path(sound["path"]).read_bytes()[100:200]
    picture = next(h for h in hits if h["name"] == "cat-chelsea.heic")
    thumb = server.get(picture["thumb"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    from PIL import Image

    assert max(Image.open(BytesIO(thumb.content)).size) <= 320
    drawn = server.get(sound["thumb"])  # a sound's picture: its window's waveform
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    for response in (whole, thumb):
        assert response.headers["content-security-policy"].startswith("sandbox; default-src 'none'")
        assert response.headers["x-content-type-options"] == "nosniff"


def test_status_page_and_openapi(server):
    status = server.get("/api/status").json()
    assert status["counts"]["indexed"] == 16 and status["counts"]["video"] == 1
    page = server.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert server.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    spec = server.get("/openapi.json").json()
    assert "/api/search" in spec["paths"] and "/ai/v1/embeddings" in spec["paths"]


# ----------------------------------------------------------------------------- Termite-compatible embeddings


def data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def embed_cli(*args) -> list[np.ndarray]:
    result = CliRunner().invoke(cli, ["embed", "--model", str(BUNDLE), *args])
    return [np.array(json.loads(line)["embedding"]) for line in result.stdout.splitlines()]


def test_the_model_cards_request_with_data_uris(server):
    picture, sound = INPUTS / "landscape.jpg", INPUTS / "tone48k.wav"
    body = {
        "model": "antflydb/clipclap",
        "input": [
            {"type": "text", "text": "a dog barking"},
            {"type": "image_url", "image_url": {"url": data_uri(picture, "image/jpeg")}},
            {"type": "audio_url", "audio_url": {"url": data_uri(sound, "audio/wav")}},
        ],
    }
    for path in ("/embed", "/ai/v1/embed"):
        data = server.post(path, json=body).json()
        assert data["object"] == "list" and [d["index"] for d in data["data"]] == [0, 1, 2]
        got = [np.array(d["embedding"]) for d in data["data"]]
        want = embed_cli("--text", "a dog barking", str(picture), str(sound))
        assert all(float(g @ w) >= 0.9999 for g, w in zip(got, want, strict=True))
    media_form = {
        "model": "clipclap",
        "input": [{"type": "media", "data": base64.b64encode(sound.read_bytes()).decode(), "mime_type": "audio/wav"}],
    }
    got = np.array(server.post("/ai/v1/embed", json=media_form).json()["data"][0]["embedding"])
    assert float(got @ embed_cli(str(sound))[0]) >= 0.9999


def test_binary_and_base64_layouts_and_the_openai_client(server):
    raw = server.post("/ai/v1/embed", json={"input": ["one", "two"]}, headers={"Accept": "application/octet-stream"})
    count, dim = np.frombuffer(raw.content[:16], "<u8")
    vectors = np.frombuffer(raw.content[16:], "<f4").reshape(count, dim)
    assert (count, dim) == (2, 512)
    want = embed_cli("--text", "one", "--text", "two")
    assert float(vectors[1] @ want[1]) >= 0.9999
    packed = server.post("/ai/v1/embeddings", json={"input": "one", "encoding_format": "base64"}).json()
    assert float(np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), "<f4") @ want[0]) >= 0.9999
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/ai/v1", api_key="unused")
    answer = client.embeddings.create(model="antflydb/clipclap", input=["one", "two"])
    assert float(np.array(answer.data[0].embedding) @ want[0]) >= 0.9999
    assert server.get("/ai/v1/models").json()["data"][0]["object"] == "model"


# ----------------------------------------------------------------------------- refusals


def test_remote_urls_are_refused(server):
    for url in ("https://example.com/cat.jpg", "file:///etc/passwd", "s3://bucket/key", "http://127.0.0.1/x"):
        body = {"input": [{"type": "image_url", "image_url": {"url": url}}]}
        response = server.post("/ai/v1/embeddings", json=body)
        assert response.status_code == 400 and response.json()["error"]["code"] == "remote_url_refused"


def raw_get(server, target: bytes) -> tuple[int, bytes]:
    """A GET sent byte for byte (httpx would resolve the dot segments before sending)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        host = f"127.0.0.1:{server.port}".encode()
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


def test_traversal_and_guessing_are_refused(server, library):
    """Paths that try to climb out never match a route; ids that match one reach the file check."""
    for target in (b"/api/files/../../../../etc/passwd", b"/api/files/%2e%2e%2fetc%2fpasswd", b"/api/files/-1"):
        status, body = raw_get(server, target)
        assert status == 404 and b"root:" not in body and json.loads(body)["error"] == "not_found", target
    for file_id in ("123456", "0", "9" * 30):
        response = server.get(f"/api/files/{file_id}")
        assert response.status_code == 404 and response.json()["message"] == "no such file", file_id


@pytest.mark.slow
def test_a_link_swapped_in_after_indexing_is_not_served(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    subprocess.run([sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)], env=env)
    secret = tmp_path / "secret.png"
    shutil.copy(INPUTS / "tiny.png", secret)
    served = Server(tmp_path / "lib")
    try:
        hit = served.get("/api/search", params={"q": "x"}).json()[0]
        assert served.get(hit["file"]).status_code == 200
        (folder / "t.png").unlink()
        (folder / "t.png").symlink_to(secret)
        response = served.get(hit["file"])
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
    finally:
        served.stop()


def test_a_foreign_host_is_refused(server):
    response = httpx.get(server.url + "/api/status", headers={"Host": "attacker.example:80"})
    assert response.status_code == 421 and response.json()["error"] == "wrong_host"


def test_an_oversized_body_is_refused(server):
    big = b"0" * (65 * 1024 * 1024)
    response = server.post("/api/search", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413


@pytest.mark.slow  # a second server process of its own
def test_another_address_needs_a_token(library):
    lib, _, _ = library
    served = Server(lib, host="127.0.0.2")  # not the default address: a token is made up and required
    try:
        assert served.get("/api/status").status_code == 401
        line = next(l for l in iter(served.proc.stderr.readline, "") if "token" in l)  # noqa: E741
        token = line.strip().split()[-1]
        assert served.get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        page = served.get(f"/?q=cat&token={token}")  # traded for a cookie named per port, at the clean address
        cookie = f"mediasearch_token_{served.port}"
        assert page.status_code == 303 and page.headers["location"] == "/?q=cat"
        assert page.headers["set-cookie"].startswith(f"{cookie}={token};")
        assert served.get("/", cookies={cookie: token}).status_code == 200
        assert served.get("/api/status", cookies={cookie: token}).status_code == 200
        assert served.get("/api/status", cookies={"mediasearch_token": token}).status_code == 401
        assert served.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        served.stop()
