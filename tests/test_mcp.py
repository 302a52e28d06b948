"""`mediasearch mcp` as an assistant meets it: the SDK's own client over stdio, against a real
`python -m mediasearch mcp` process on a library indexed here (one server for the module)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from conftest import BUNDLE, SAMPLES
from PIL import Image
from test_capture import LISBON, phone_exif

import mediasearch
from mediasearch.mcp import Face
from mediasearch.terminal import hit_json, to_json

pytest.importorskip("mcp")
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

HOSTILE = "evil\n\x1b[31mred\x1b[0m.jpg"  # a name with a newline and a terminal escape sequence
NOT_UTF8 = b"caf\xe9 (latin-1).webp"  # a name whose bytes are not UTF-8


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder):
    """A library of pictures, sounds and a video, with one picture under a hostile name, indexed once."""
    base = tmp_path_factory.mktemp("mcp")
    with pytest.MonkeyPatch.context() as env:  # `isolated` is per test: this runs before it
        env.setenv("MEDIASEARCH_CACHE", str(base / "cache"))
        env.setenv("HF_HUB_OFFLINE", "1")
        return _index(base, embedder)


def _index(base: Path, embedder) -> tuple[Path, Path]:
    media = base / "media"
    media.mkdir()
    for name in ("cat-chelsea.jpg", "rocket-launch.jpg", "coffee-cup.png", "chirp.wav", "street-clip.mp4"):
        shutil.copy(SAMPLES / name, media / name)
    (media / "sounds").mkdir()
    shutil.copy(SAMPLES / "spoken-dog-barking.wav", media / "sounds" / "dog.wav")
    shutil.copy(SAMPLES / "horse-silhouette.png", media / HOSTILE)
    shutil.copy(SAMPLES / "astronaut.webp", media / os.fsdecode(NOT_UTF8))
    with Image.open(SAMPLES / "rocket-launch.jpg") as picture:  # taken in Lisbon in July 2019, as a phone says
        picture.save(media / "lisbon.jpg", exif=phone_exif())
    with mediasearch.open(base / "library", model=embedder, write=True) as library:
        summary = library.index(media)
    assert summary.failed == 0
    return base / "library", media


def _environment(cache: Path) -> dict[str, str]:
    """What an MCP client passes: a bare environment (no HF_HUB_OFFLINE), plus PYTHONPATH for this checkout."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL")}
    return env | {"MEDIASEARCH_CACHE": str(cache), "ORT_DISABLE_TELEMETRY": "1"}


@asynccontextmanager
async def _connected(library: Path, cache: Path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mediasearch", "mcp", "--library", str(library), "--model", str(BUNDLE)],
        env=_environment(cache),
    )
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@pytest.fixture(scope="module")
def client(indexed):
    """A function calling one tool on the module's server and returning its CallToolResult."""
    library, _ = indexed
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(_connected(library, library.parent / "server-cache")) as session:

            def call(tool: str, arguments: dict | None = None):
                return portal.call(session.call_tool, tool, arguments or {})

            call.session, call.portal = session, portal
            yield call


def rows(result) -> list[dict]:
    """The hits as the text blocks give them (one JSON object each), checked against structured content."""
    assert not result.is_error, result.content
    texts = [json.loads(block.text) for block in result.content if block.type == "text" and block.text != "no results"]
    assert texts == result.structured_content["hits"]
    return texts


def as_rows(hits, locations: bool = False) -> list[dict]:
    """The API's hits as `query --json` prints them (coordinates only if shared), plus file_id, from JSON."""
    return [json.loads(to_json(hit_json(hit, locations) | {"file_id": hit.file_id})) for hit in hits]


def test_the_three_tools_are_listed_read_only(client):
    listed = client.portal.call(client.session.list_tools)
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"search", "similar", "status"}
    assert {"text", "like", "unlike", "kinds", "folders", "after", "before", "near", "limit", "min_score"} <= set(
        tools["search"].input_schema["properties"]
    )
    assert tools["similar"].input_schema["required"] == ["file"]
    assert all(tool.annotations.read_only_hint for tool in tools.values())


def test_words_with_filters(client, indexed):
    _, media = indexed
    # words that name no file: the vectors alone rank, so by score (a word in a name would lift its file)
    pictures = rows(client("search", {"text": "a furry pet", "kinds": ["photos"], "limit": 3}))
    assert len(pictures) == 3 and {row["kind"] for row in pictures} == {"image"}
    assert pictures == sorted(pictures, key=lambda row: -row["score"])
    assert {"path", "score", "kind", "start", "end", "copies", "file_id"} <= set(pictures[0])
    assert all(isinstance(row["file_id"], int) for row in pictures)
    inside = rows(client("search", {"text": "a dog barking", "folders": [str(media / "sounds")]}))
    assert [row["path"] for row in inside] == [str(media / "sounds" / "dog.wav")]
    assert rows(client("search", {"text": "a cat", "after": "2999-01-01"})) == []
    assert rows(client("search", {"text": "a cat", "before": "1d", "min_score": 0.99})) == []


def test_a_sound_hit_carries_its_time_span_and_no_picture(client):
    result = client("search", {"text": "a dog barking", "kinds": ["audio"], "limit": 1})
    [row] = rows(result)
    assert row["kind"] == "audio" and row["start"] is not None and row["end"] > row["start"]
    assert [block.type for block in result.content] == ["text"]


def test_a_picture_hit_carries_a_small_jpeg(client):
    from PIL import Image

    result = client("search", {"text": "a cat", "kinds": ["image"], "limit": 2})
    types = [block.type for block in result.content]
    assert types == ["text", "image", "text", "image"]
    picture = result.content[1]
    assert picture.mime_type == "image/jpeg"
    with Image.open(io.BytesIO(base64.b64decode(picture.data))) as image:
        assert image.format == "JPEG" and max(image.size) == 128
        assert len(set(image.convert("L").tobytes())) > 8  # a picture, not a blank
    assert client("search", {"text": "a cat", "kinds": ["image"], "thumbnails": False}).content[1].type == "text"


def test_a_video_hit_shows_a_frame(client):
    result = client("search", {"text": "a street", "kinds": ["video"], "limit": 1})
    assert [block.type for block in result.content] == ["text", "image"]


def test_search_by_an_example_file(client, indexed, embedder):
    library, media = indexed
    example = str(media / "chirp.wav")
    found = rows(client("search", {"like": [example], "limit": 20}))
    away = rows(client("search", {"text": "a sound", "unlike": [example], "kinds": ["audio"], "limit": 20}))
    with mediasearch.open(library, model=embedder) as direct:  # the face gives what the API gives
        expected = direct.search(like=[example], limit=20)
        expected_away = direct.search("a sound", unlike=[example], kinds=["audio"], limit=20)
    assert found == as_rows(expected) and len(found) == 8
    assert away == as_rows(expected_away)
    assert example not in [row["path"] for row in found + away]  # examples are left out


def test_similar_by_id_and_by_path(client, indexed):
    _, media = indexed
    [cat] = rows(client("search", {"text": "a cat", "kinds": ["image"], "limit": 1}))
    by_id = rows(client("similar", {"file": cat["file_id"], "kinds": ["image"], "limit": 3}))
    by_path = rows(client("similar", {"file": cat["path"], "kinds": ["image"], "limit": 3}))
    assert by_id == by_path and len(by_id) == 3
    assert cat["path"] not in [row["path"] for row in by_id]


def test_status(client, indexed):
    library, media = indexed
    result = client("status")
    data = json.loads(result.content[0].text)
    assert data == result.structured_content
    assert data["library"] == str(library)
    assert [root["path"] for root in data["roots"]] == [str(media)]
    assert data["counts"]["indexed"] == 9


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {}, "give a query"),
        ("search", {"text": "a cat", "kinds": ["spreadsheets"]}, "unknown kind 'spreadsheets'"),
        ("search", {"text": "a cat", "after": "last tuesday"}, "is not a date"),
        ("similar", {"file": 1, "near": "95,10"}, "near: '95,10': latitude is -90 to 90"),
        ("search", {"text": "a cat", "limit": 0}, "limit must be between 1 and 100"),
        ("search", {"text": "a cat", "min_score": 3}, "is not a cosine score"),
        ("search", {"like": ["/no/such/file.jpg"]}, "example file /no/such/file.jpg cannot be"),
        ("similar", {"file": "/no/such/file.jpg"}, "/no/such/file.jpg is not in the library"),
        ("similar", {"file": 987654}, "no indexed file has id 987654"),
        ("similar", {"file": 2**64}, f"no indexed file has id {2**64}"),
        ("similar", {"file": "/no/such/a\nb.jpg"}, "/no/such/a\\nb.jpg is not in the library"),
        ("search", {"text": "a cat", "limit": "many"}, "limit; Input should be a valid integer"),
    ],
)
def test_a_bad_argument_is_a_one_line_tool_error(client, tool, arguments, message):
    result = client(tool, arguments)
    assert result.is_error
    [block] = result.content
    assert message in block.text and "\n" not in block.text and "Traceback" not in block.text


def test_a_hostile_name_comes_back_exactly_in_json(client, indexed):
    _, media = indexed
    found = rows(client("search", {"text": "a horse", "kinds": ["image"], "limit": 10}))
    hostile = [row for row in found if row["path"].endswith("red\x1b[0m.jpg")]
    assert [row["path"] for row in hostile] == [str(media / HOSTILE)]
    result = client("search", {"text": "a horse", "kinds": ["image"], "limit": 10})
    raw = [block.text for block in result.content if block.type == "text"]
    assert all("\n" not in text and "\x1b" not in text for text in raw)  # escaped inside JSON strings
    again = rows(client("similar", {"file": hostile[0]["path"], "limit": 1}))
    assert again and again[0]["path"] != hostile[0]["path"]


def test_thumbnails_come_from_files_still_where_they_were_indexed(tmp_path, embedder):
    """Library.thumbnail, the core call behind MCP's images (and the page's checks): a picture is a
    small JPEG, a sound has none, and a file swapped for a link since indexing is refused."""
    from mediasearch.errors import FileUnavailable

    media_dir = tmp_path / "media"
    media_dir.mkdir()
    for name in ("cat-chelsea.jpg", "rocket-launch.jpg", "chirp.wav"):
        shutil.copy(SAMPLES / name, media_dir / name)
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        library.index(media_dir)
    with mediasearch.open(tmp_path / "lib", model=embedder) as library:
        ids = {Path(hit.path).name: hit.file_id for hit in library.search("a thing", limit=50)}
        jpeg = library.thumbnail(ids["cat-chelsea.jpg"], 64)
        assert jpeg[:3] == b"\xff\xd8\xff"
        assert library.thumbnail(ids["chirp.wav"]) is None
        secret = tmp_path / "secret.jpg"
        shutil.copy(media_dir / "rocket-launch.jpg", secret)
        target = media_dir / "rocket-launch.jpg"
        stat = target.stat()
        target.unlink()
        target.symlink_to(secret)
        os.utime(target, (stat.st_atime, stat.st_mtime), follow_symlinks=False)
        with pytest.raises(FileUnavailable, match="not where it was indexed"):
            library.thumbnail(ids["rocket-launch.jpg"])


def test_a_name_that_is_not_utf8_comes_back_with_its_exact_bytes(client, indexed):
    _, media = indexed
    found = rows(client("search", {"text": "a picture", "kinds": ["image"], "limit": 10}))
    [row] = [row for row in found if "path_bytes" in row]
    assert base64.b64decode(row["path_bytes"]) == os.fsencode(media) + b"/" + NOT_UTF8
    assert row["path"].endswith("caf\ufffd (latin-1).webp")
    assert rows(client("similar", {"file": row["file_id"], "limit": 1}))  # its id is its handle


@pytest.mark.slow  # a second server process
def test_a_model_not_in_the_cache_is_never_downloaded(indexed, tmp_path):
    """The command is offline even where the environment is not: a hub model missing from the cache
    is a tool error, and no request reaches the hub (HF_ENDPOINT points at a port nobody serves)."""
    library, _ = indexed
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mediasearch", "mcp", "--library", str(library), "--model", "someone/not-cached"],
        env=_environment(tmp_path / "cache") | {"HF_ENDPOINT": "http://127.0.0.1:9"},
    )

    async def ask():
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await session.call_tool("search", {"text": "a cat"})

    result = anyio.run(ask)
    assert result.is_error
    assert "could not download someone/not-cached (HF_HUB_OFFLINE is set)" in result.content[0].text


def test_when_and_where_a_file_was_taken(client):
    summer = {"after": "2019-07-01", "before": "2019-08-01"}
    taken = rows(client("search", {"text": "a picture", **summer}))
    assert [Path(row["path"]).name for row in taken] == ["lisbon.jpg"]
    near = rows(client("search", {"text": "a picture", "near": "38.72,-9.14,10"}))  # numbers: no gazetteer to load
    assert [Path(row["path"]).name for row in near] == ["lisbon.jpg"]
    assert "Lisbon" in near[0]["place"]
    assert "latitude" not in near[0] and "longitude" not in near[0]  # the assistant's model may run elsewhere
    assert rows(client("similar", {"file": near[0]["file_id"], "near": "38.7,-9.1,5"})) == []  # none else there


def test_coordinates_go_only_when_shared(indexed, embedder):
    library, _ = indexed
    with mediasearch.open(library, model=embedder) as opened:
        for shared in (False, True):
            result = Face(opened, locations=shared).search("a picture", near="38.72,-9.14,10", thumbnails=False)
            [row] = result.structured_content["hits"]
            assert row == as_rows(opened.search("a picture", near="38.72,-9.14,10"), shared)[0]
            assert ("latitude" in row) is shared
    assert row["latitude"] == pytest.approx(LISBON[0], abs=1e-6)


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_nothing_is_written_library_or_cache(client, indexed):
    """Read-only: the library's files are as indexing left them, and the server's cache holds no query
    text (queries.db) and no thumbnail, after searches by words, by example, similar and status."""
    library, media = indexed
    before = _files(library)
    rows(client("search", {"text": "words never asked before", "limit": 3}))
    rows(client("search", {"like": [str(media / "chirp.wav")], "limit": 3}))
    client("status")
    assert _files(library) == before
    cache = library.parent / "server-cache"
    assert not (cache / "queries.db").exists() and not (cache / "thumbs").exists()


def test_other_commands_never_import_the_sdk():
    code = "import sys, mediasearch.cli, mediasearch.server; assert 'mcp' not in sys.modules, 'mcp imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
