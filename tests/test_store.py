"""The shared store: libraries mirrored in a real Antfly table (started by the tests)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import BUNDLE, open_library
from PIL import Image

from mediasearch import storage as library_module
from mediasearch.antfly import Address, Antfly, StoreError, authorization
from mediasearch.cli import cli
from mediasearch.errors import MediasearchError
from mediasearch.ingest import Indexer
from mediasearch.search import Filters, search
from mediasearch.storage import Storage
from mediasearch.store import INDEX, Store

QUERIES = ("a dog barking", "rain on a window", "a cat", "a city street", "an astronaut")


def table_docs(url: str, library_id: str | None = None) -> list[dict]:
    """Every document in the table (of one library, if given), straight from Antfly."""
    client = Antfly(Address.parse(url))
    request = {"embeddings": {INDEX: [1.0] + [0.0] * 511}, "indexes": [INDEX], "limit": 10_000, "search_effort": 1.0}
    if library_id:
        request["filter_query"] = {"term": library_id, "field": "library"}
    try:
        return [hit["_source"] | {"_id": hit["_id"]} for hit in client.nearest(request)]
    finally:
        client.close()


def segment_keys(folder: Path) -> tuple[str, set[str]]:
    """A library's id and the document keys its catalog says the table should hold."""
    with Storage(folder) as lib:
        ids = lib.catalog.all_segment_ids()
        library_id = lib.catalog.get("library_id")
    return library_id, {f"{library_id}:{i}" for i in ids}


def run(*args, env=None, check=True):
    """The CLI in a process of its own: one process stands for one machine."""
    done = subprocess.run(
        [sys.executable, "-m", "mediasearch", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    assert not check or done.returncode == 0, done.stderr
    return done


def test_store_addresses():
    assert str(Address.parse("http://127.0.0.1:8080/media/")) == "http://127.0.0.1:8080/media"
    assert Address.parse("https://antfly.example/media").port == 443
    for bad in ("127.0.0.1:8080/media", "http://host:1/", "http://host:1/a/b", "ftp://host/t"):
        with pytest.raises(MediasearchError, match="not a store address"):
            Address.parse(bad)
    with pytest.raises(MediasearchError, match="MEDIASEARCH_STORE_TOKEN"):
        Address.parse("http://admin:secret@host:1/t")
    assert authorization("abc==") == "ApiKey abc=="
    assert authorization("Bearer xyz") == "Bearer xyz"
    assert authorization("") is None


@pytest.mark.slow
def test_table_is_created_once_and_a_foreign_table_is_refused(antfly):
    first, second = Store(antfly.url("made_once"), "lib-a"), Store(antfly.url("made_once"), "lib-b")
    first.ensure_table()
    second.ensure_table()  # found, and recognised as ours
    index = first.client.table()["indexes"][INDEX]
    assert (index["external"], index["dimension"], index["distance_metric"]) == (True, 512, "cosine")
    other = Antfly(Address.parse(antfly.url("someone_elses")))
    other.create_table({"num_shards": 1})
    with pytest.raises(StoreError, match="not a mediasearch table"):
        Store(antfly.url("someone_elses"), "lib-a").ensure_table()


@pytest.fixture
def twin_libraries(tmp_path, media_dir, embedder, antfly):
    """The same folder indexed twice: a local library (FAISS) and one kept in an Antfly table.
    Some files are in a subfolder, and each file has a different day as its mtime."""
    (media_dir / "sub").mkdir()
    for i, path in enumerate(sorted(p for p in media_dir.iterdir() if p.is_file())):
        if i % 3 == 0:
            path = path.rename(media_dir / "sub" / path.name)
        os.utime(path, (1.7e9 + i * 86_400, 1.7e9 + i * 86_400))
    folders = [str(media_dir.resolve())]
    with open_library(tmp_path / "local", embedder.bundle) as writer:
        Indexer(writer, lambda: embedder).scan(writer.add_folders(folders))
        writer.save_index()
    with open_library(tmp_path / "shared", embedder.bundle) as writer:
        writer.bind_store(antfly.url("twins"))
        Indexer(writer, lambda: embedder).scan(writer.add_folders(folders))
        writer.save_index()
        assert writer.sent.error is None and writer.sent.written == writer.catalog.segment_count() > 0
    with Storage(tmp_path / "local") as local, Storage(tmp_path / "shared") as shared:
        yield local, shared, media_dir.resolve()


@pytest.mark.slow
def test_store_answers_as_faiss_does_with_and_without_filters(twin_libraries, embedder):
    local, shared, folder = twin_libraries
    mtimes = sorted(os.stat(p).st_mtime for p in folder.rglob("*") if p.is_file())
    middle = datetime.fromtimestamp(mtimes[len(mtimes) // 2])
    filters = [
        Filters(),
        Filters(kinds=("audio",)),
        Filters(kinds=("image", "video")),
        Filters(within=[str(folder / "sub")]),
        Filters(within=[str(folder / "sub")], kinds=("audio",), after=middle),
        Filters(after=middle),
        Filters(before=middle, kinds=("image",)),
        Filters(min_score=0.0),
    ]
    compared = 0
    for text in QUERIES:
        vector = embedder.embed_texts([text])[0]
        for chosen in filters:
            expected, got = search(local, vector, 10, chosen), search(shared, vector, 10, chosen)
            assert [h.path for h in got] == [h.path for h in expected], (text, chosen)
            assert np.allclose([h.score for h in got], [h.score for h in expected], atol=1e-6)
            assert [(h.start, h.end, h.kind, h.copies) for h in got] == [
                (h.start, h.end, h.kind, h.copies) for h in expected
            ]
            assert all(h.host is None and h.file_id is not None for h in got)  # its own files
            compared += bool(expected)
    assert compared >= len(QUERIES) * 5


@pytest.mark.slow
def test_two_libraries_share_one_table(antfly, tmp_path, media_dir):
    """Two processes (two machines) index different folders into one table; each sees both; moves and
    deletions on one side reach the table; forget takes one library's documents only."""
    pictures, sounds = tmp_path / "pictures", tmp_path / "sounds"
    pictures.mkdir()
    sounds.mkdir()
    for path in media_dir.rglob("*"):
        if path.suffix in (".jpg", ".png", ".webp", ".gif"):
            shutil.copy(path, pictures / path.name)
        elif path.suffix in (".wav", ".flac", ".mp3", ".ogg"):
            shutil.copy(path, sounds / path.name)
    url = antfly.url("shared_by_two")
    one = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "one"))
    two = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "two"))
    first = run("index", pictures, "--model", BUNDLE, "--store", url, "--json", env=one)
    assert json.loads(first.stdout)["store"]["written"] > 0
    run("index", sounds, "--model", BUNDLE, "--store", url, env=two)

    def seen_from(env, *extra):
        out = json.loads(run("query", "a dog barking", "-n", "100", "--json", *extra, env=env).stdout)
        return {(hit["path"], "host" in hit) for hit in out}

    everything = {(str(p), False) for p in pictures.iterdir()} | {(str(p), True) for p in sounds.iterdir()}
    assert seen_from(one) == everything  # the other library's hits carry their host
    assert seen_from(two) == {(path, not foreign) for path, foreign in everything}
    assert {path for path, _ in seen_from(two, "--type", "image")} == {str(p) for p in pictures.iterdir()}

    from test_server import Server

    page = Server(tmp_path / "two")  # `serve` searches the table too; another machine's file has no link
    try:
        rows = page.get("/api/search", params={"q": "a dog barking", "limit": 100}).json()
    finally:
        page.stop()
    assert {(row["path"], row["id"] is None) for row in rows} == {(p, not f) for p, f in everything}
    assert all(row["file"] is None and row["host"] for row in rows if row["id"] is None)

    moved, deleted = sorted(pictures.iterdir())[:2]
    moved.rename(pictures / "renamed.jpg")
    deleted.unlink()
    run("index", env=one)
    after = {path for path, _ in seen_from(two)}
    assert str(pictures / "renamed.jpg") in after and str(moved) not in after and str(deleted) not in after
    for folder in (tmp_path / "one", tmp_path / "two"):
        library_id, keys = segment_keys(folder)
        assert sorted(doc["_id"] for doc in table_docs(url, library_id)) == sorted(keys)  # each once

    forgotten = json.loads(run("forget", pictures, "--json", env=one).stdout)
    assert forgotten["store"]["deleted"] == forgotten["segments"] > 0 and forgotten["store"]["error"] is None
    one_id, _ = segment_keys(tmp_path / "one")
    two_id, two_keys = segment_keys(tmp_path / "two")
    assert table_docs(url, one_id) == []
    assert {doc["_id"] for doc in table_docs(url, two_id)} == two_keys


@pytest.fixture
def own_antfly(tmp_path):
    """A server of this test's own, to kill and restart."""
    from antfly_server import AntflyServer, Unavailable

    try:
        server = AntflyServer(tmp_path / "antfly", tmp_path.parent / "antfly-bin").start()
    except Unavailable as exc:
        pytest.skip(f"Antfly cannot run here: {exc}")
    yield server
    server.stop()


@pytest.mark.slow
def test_store_killed_mid_index_loses_nothing(own_antfly, tmp_path, media_dir, monkeypatch):
    url = own_antfly.url("killed")
    monkeypatch.setattr(library_module, "SEND_EVERY", 1)  # send after every commit, so the kill lands mid-pass
    sends = []
    real_send = Store.send

    def send_then_kill(self, catalog, *args, **kwargs):
        sent = real_send(self, catalog, *args, **kwargs)
        sends.append(sent)
        if sent.written and len(sends) == 1:
            own_antfly.kill()
        return sent

    monkeypatch.setattr(Store, "send", send_then_kill)
    result = CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE), "--store", url])
    assert result.exit_code == 0, result.output
    assert sends[0].written > 0 and sends[-1].error, "the server died after the first send"
    assert "changes wait for the next pass" in result.output and "cannot reach the store" in result.output

    query = CliRunner().invoke(cli, ["query", "a dog barking"])
    assert query.exit_code == 1
    assert query.output.count("\n") == 1 and "cannot reach the store at" in query.output

    status = CliRunner().invoke(cli, ["status"])
    assert "NOT REACHABLE" in status.output and "changes waiting to be sent" in status.output

    own_antfly.start()
    again = CliRunner().invoke(cli, ["index", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["store"]["error"] is None
    library_id, keys = segment_keys(Path(os.environ["MEDIASEARCH_HOME"]))
    docs = table_docs(url, library_id)
    assert sorted(doc["_id"] for doc in docs) == sorted(keys)  # every segment, exactly once
    assert "all sent" in CliRunner().invoke(cli, ["status"]).output


@pytest.mark.slow
def test_token_comes_from_the_environment(tmp_path, media_dir, monkeypatch):
    from antfly_server import AntflyServer, Unavailable

    password = "correct-horse-battery"
    try:
        server = AntflyServer(
            tmp_path / "antfly", tmp_path.parent / "antfly-bin",
            env={"ANTFLY_BOOTSTRAP_ADMIN_PASSWORD": password}, args=("--auth", "true"),
        ).start()  # fmt: skip
    except Unavailable as exc:
        pytest.skip(f"Antfly cannot run here: {exc}")
    try:
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/auth/v1/users/admin/api-keys",
            data=json.dumps({"name": "mediasearch tests"}).encode(),
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            key = json.load(answer)["encoded"]
        args = ["index", str(media_dir), "--model", str(BUNDLE), "--store", server.url("private"), "--json"]
        monkeypatch.delenv("MEDIASEARCH_STORE_TOKEN", raising=False)
        refused = CliRunner().invoke(cli, args)
        assert "refused the credentials" in json.loads(refused.stdout)["store"]["error"]
        monkeypatch.setenv("MEDIASEARCH_STORE_TOKEN", key)
        allowed = CliRunner().invoke(cli, args)
        assert json.loads(allowed.stdout)["store"]["error"] is None
        assert json.loads(allowed.stdout)["store"]["written"] > 0
        assert CliRunner().invoke(cli, ["query", "a cat", "--json"]).exit_code == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_the_watcher_keeps_the_table_in_step(antfly, tmp_path, media_dir):
    from conftest import INPUTS
    from test_watch import WatchProcess

    url = antfly.url("watched")
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    run("index", media_dir, "--model", BUNDLE, "--store", url, env=env)
    watcher = WatchProcess(media_dir, tmp_path / "lib")
    try:
        library_id, _ = segment_keys(tmp_path / "lib")

        def paths() -> set[str]:
            return {doc["path"] for doc in table_docs(url, library_id)}

        new, renamed = media_dir / "new.png", media_dir / "renamed.png"
        shutil.copy(INPUTS / "portrait.png", new)
        watcher.wait_for(lambda: str(new) in paths(), "a new file in the table")
        new.rename(renamed)
        watcher.wait_for(lambda: str(renamed) in paths() and str(new) not in paths(), "the rename in the table")
        renamed.unlink()
        watcher.wait_for(lambda: str(renamed) not in paths(), "the deletion in the table")
    finally:
        assert watcher.stop() == 0
    _, keys = segment_keys(tmp_path / "lib")
    assert sorted(doc["_id"] for doc in table_docs(url, library_id)) == sorted(keys)


@pytest.mark.slow
def test_the_watcher_sends_the_words_it_reads(antfly, tmp_path, monkeypatch):
    """A picture added while watching: its vectors reach the table first, then the text read in it."""
    from test_watch import WatchProcess
    from test_words_index import card, plain

    monkeypatch.delenv("MEDIASEARCH_NO_OCR")
    media, url = tmp_path / "media", antfly.url("watched_words")
    plain(media / "photo.jpg", 1)
    run("index", media, "--model", BUNDLE, "--store", url, env=dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib")))
    watcher = WatchProcess(media, tmp_path / "lib")
    try:
        library_id, _ = segment_keys(tmp_path / "lib")
        card(media / "letter.png", ["Nordwind Energie"])

        def words() -> set[str]:
            docs = [d for d in table_docs(url, library_id) if d["path"].endswith("letter.png")]
            return {word for doc in docs for word in doc.get("words", [])}

        watcher.wait_for(lambda: "nordwind" in words(), "the words read in a new picture, in the table")
    finally:
        assert watcher.stop() == 0


@pytest.mark.slow
def test_a_library_of_another_model_is_refused(antfly, tmp_path, media_dir):
    """Vectors of two models cannot share a table: the second library's sends are refused, with why."""
    other = tmp_path / "other-bundle"
    shutil.copytree(BUNDLE, other)
    metadata = other / "projection_training_metadata.json"
    metadata.write_text(metadata.read_text().rstrip().rstrip("}") + ', "retrained": true}')  # another revision
    url = antfly.url("one_model")
    first = run("index", media_dir, "--model", BUNDLE, "--store", url, "--json",
                env=dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "first")))  # fmt: skip
    assert json.loads(first.stdout)["store"]["error"] is None
    second = run("index", media_dir, "--model", other, "--store", url, "--json",
                 env=dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "second")))  # fmt: skip
    refused = json.loads(second.stdout)["store"]
    assert refused["written"] == 0 and "holds vectors of another model" in refused["error"]
    library_id, _ = segment_keys(tmp_path / "second")
    assert table_docs(url, library_id) == []


@pytest.mark.slow
def test_capture_dates_and_places_are_fields_filtered_by_antfly_as_locally(antfly, tmp_path, embedder):
    """Photos copied today whose EXIF says when and where: the store's documents carry capture time
    and place, and date ranges and --near give what the local library gives."""
    from test_when_where import LISBON, OXFORD, PORTO, phone_photo

    from mediasearch.places import parse_near

    roll = tmp_path / "roll"
    roll.mkdir()
    inputs = Path(__file__).parent / "fixtures" / "inputs"
    shots = [
        ("lisbon.jpg", "2019:07:15 10:30:00", LISBON, "landscape.jpg"),
        ("belem.jpg", "2019:07:16 18:00:00", (38.6916, -9.2160), "gray.png"),
        ("porto.jpg", "2018:05:12 09:00:00", PORTO, "portrait.png"),
        ("oxford.jpg", "2021:01:02 12:00:00", OXFORD, "rotated.jpg"),
        ("taveuni.jpg", "2020:03:03 08:00:00", (-16.85, 179.99), "cmyk.jpg"),
        ("nowhere.jpg", None, None, "tiny.png"),
    ]
    for name, when, where, source in shots:
        phone_photo(roll / name, when, where, inputs / source)
    with open_library(tmp_path / "local", embedder.bundle) as writer:
        Indexer(writer, lambda: embedder).scan(writer.add_folders([str(roll)]))
        writer.save_index()
    with open_library(tmp_path / "shared", embedder.bundle) as writer:
        writer.bind_store(antfly.url("when_where"))
        Indexer(writer, lambda: embedder).scan(writer.add_folders([str(roll)]))
        writer.save_index()
        assert writer.sent.error is None
        library_id = writer.catalog.get("library_id")
    docs = {Path(d["path"]).name: d for d in table_docs(antfly.url("when_where"), library_id)}
    assert (docs["lisbon.jpg"]["city"], docs["lisbon.jpg"]["country"], docs["lisbon.jpg"]["taken_source"]) == (
        "Lisbon", "Portugal", "exif",
    )  # fmt: skip
    assert "latitude" not in docs["nowhere.jpg"] and docs["nowhere.jpg"]["taken_source"] == "mtime"
    filters = [
        Filters(after=datetime(2019, 7, 1), before=datetime(2019, 8, 1)),
        Filters(after=datetime(2018, 1, 1), before=datetime(2020, 1, 1), kinds=("image",)),
        Filters(before=datetime(2020, 6, 1)),
        Filters(after=datetime.now().replace(hour=0)),
        Filters(near=parse_near("Lisbon")),
        Filters(near=parse_near("38.70,-9.14,10")),  # Belém is 6.7 km away
        Filters(near=parse_near("Portugal")),
        Filters(near=parse_near("England")),
        Filters(near=parse_near("-16.8,-179.95,40")),  # across the antimeridian
        Filters(near=parse_near("Portugal"), after=datetime(2019, 1, 1)),
        Filters(near=parse_near("Spain")),
    ]
    vector = embedder.embed_texts(["a photo"])[0]
    with Storage(tmp_path / "local") as local, Storage(tmp_path / "shared") as shared:
        answers = []
        for chosen in filters:
            expected, got = search(local, vector, 10, chosen), search(shared, vector, 10, chosen)
            assert [h.path for h in got] == [h.path for h in expected], chosen
            assert [(h.taken, h.place) for h in got] == [(h.taken, h.place) for h in expected]
            answers.append(sorted(Path(h.path).name for h in got))
    assert answers[0] == ["belem.jpg", "lisbon.jpg"]
    assert answers[5] == ["belem.jpg", "lisbon.jpg"] and answers[4] == ["belem.jpg", "lisbon.jpg"]
    assert answers[6] == ["belem.jpg", "lisbon.jpg", "porto.jpg"] and answers[8] == ["taveuni.jpg"]
    assert answers[3] == ["nowhere.jpg"] and answers[10] == []


# ---------------------------------------------------------------------------------------------- words


@pytest.fixture(scope="module")
def worded_twins(antfly, embedder, tmp_path_factory):
    """A folder of words (text in pictures read by real OCR, file and folder names, a tagged sound, an
    EXIF caption) indexed once on this machine, then the same library bound to an Antfly table (the
    catalog copied: the two differ only in where a query is answered).  Yields (local, shared, media)."""
    from mutagen import File as MutagenFile
    from test_words_index import card, plain, song

    import mediasearch

    base = tmp_path_factory.mktemp("worded")
    media = base / "media"
    card(media / "scans" / "letter.png", ["Nordwind Energie", "INVOICE No. 2024-0815"])
    card(media / "travel" / "sign.png", ["Café Müller"])
    card(media / "cars" / "plate.png", ["RE16TGK"])
    song(media / "music" / "track01.flac", title="Moonlight Ferry", artist="Ines Caravela")
    energie = song(media / "music" / "energie.flac")
    sf.write(energie, (0.2 * np.sin(np.arange(22050) / 3)).astype(np.float32), 22050, format="FLAC")  # its own sound
    tags = MutagenFile(energie)
    tags["title"] = "Energie Sonate"
    tags.save()
    exif = Image.Exif()
    exif[0x010E] = "Lighthouse at Hallig Hooge"
    plain(media / "camera" / "DSC_3001.jpg", 1, exif=exif)
    plain(media / "family" / "grandmaBirthday_cake.jpg", 2)
    plain(media / "Reykjavik 2019" / "ferry terminal.jpg", 3)
    plain(media / "family" / "cafe menu.jpg", 4)
    for i in range(6):
        plain(media / "photos" / f"DSC_{i:04d}.jpg", 10 + i)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MEDIASEARCH_NO_OCR", raising=False)  # words in pictures are read, as for users
        patch.setenv("MEDIASEARCH_CACHE", str(base / "cache"))
        with mediasearch.open(base / "local", model=embedder, write=True) as lib:
            assert lib.index(media).read == 13
        shutil.copytree(base / "local", base / "shared")
        with mediasearch.open(base / "shared", model=embedder, write=True) as lib:
            summary = lib.index(store=antfly.url("worded"))
            assert summary.added == summary.updated == 0 and summary.read == 0
            assert lib.status()["store"]["waiting"] == 0
        local = mediasearch.open(base / "local", model=embedder)
        shared = mediasearch.open(base / "shared", model=embedder)
        try:
            yield local, shared, media
        finally:
            local.close()
            shared.close()


def found_set(hit) -> list:
    """What a hit's words matched and where, in an order both engines agree on."""
    if hit.words is None:
        return []
    return [hit.words["matched"], sorted((f["source"], f["at"] or 0.0, f["snippet"]) for f in hit.words["found"])]


@pytest.mark.slow
def test_words_on_a_store_rank_the_files_as_the_local_library_does(worded_twins):
    """The same queries on the same folder: the store-bound library answers with Antfly's full-text index
    what the local one answers with FTS5 (same top 10, same order, same words), for each rule."""
    local, shared, media = worded_twins
    queries = [
        ("invoice 2024-0815", {}),  # every word, not adjacent, text read in a picture
        ("moonlight ferry", {}),  # a tag; "ferry" also names a picture: all words before some
        ("moonlight lighthouse nordwind", {}),  # three files holding one word each
        ("RE16", {}),  # the start of a longer word
        ("nordwund", {}),  # one letter off
        ("nordwund invoice", {}),  # all words, one of them a letter off: below exact matches
        ("cafe muller", {}),  # accents folded: the picture says "Café Müller"
        ("Café", {}),  # and the other way: "cafe menu.jpg"
        ("energie", {}),
        ("energie -nordwind", {}),  # a negative word takes the text match away
        ('"moonlight ferry"', {}),  # a phrase, as written
        ('"ferry moonlight"', {}),  # not as written: no text match
        ("zebra xylophone", {}),  # no word matches: the vectors alone
        ("a photo of the", {}),  # stop words alone match nothing
        ("ferry", {"kinds": ["image"]}),  # a filter applies to both halves
        ("reykjavik grandma cafe", {"within": [media / "family"]}),
        ("lighthouse hooge", {"kinds": ["audio"]}),  # the filter leaves the only match out
    ]
    worded = 0
    for text, filters in queries:
        expected, got = local.search(text, limit=10, **filters), shared.search(text, limit=10, **filters)
        assert [h.path for h in got] == [h.path for h in expected], text
        assert [found_set(h) for h in got] == [found_set(h) for h in expected], text
        assert np.allclose([h.score for h in got], [h.score for h in expected], atol=1e-6)
        worded += any(h.words for h in got)
    assert worded == 13

    def first(text, **filters) -> str:
        return Path(shared.search(text, limit=10, **filters)[0].path).name

    assert first("invoice 2024-0815") == "letter.png" and first("RE16") == "plate.png"
    assert first("nordwund") == "letter.png" and first("cafe muller") == "sign.png"
    assert first("moonlight ferry") == "track01.flac" and first("ferry", kinds=["image"]) == "ferry terminal.jpg"
    assert first("energie -nordwind") == "energie.flac"
    assert all(h.words is None for h in shared.search('"ferry moonlight"', limit=10))


@pytest.mark.slow
def test_json_of_a_store_hit_says_what_matched(worded_twins):
    _, shared, _ = worded_twins
    result = CliRunner().invoke(
        cli, ["query", "nordwind invoice", "--json", "--limit", "3"], env={"MEDIASEARCH_HOME": str(shared.folder)}
    )
    assert result.exit_code == 0, result.output
    hit = json.loads(result.stdout)[0]
    assert Path(hit["path"]).name == "letter.png"
    assert hit["words"]["matched"] == ["invoice", "nordwind"]
    found = hit["words"]["found"]
    assert [f["source"] for f in found] == ["text"] and "INVOICE No. 2024-0815" in found[0]["snippet"]


@pytest.mark.slow
def test_words_read_after_the_vectors_reach_the_store_without_embedding(antfly, tmp_path, embedder, monkeypatch):
    """Text read by OCR in a later pass, and the tags of a library made before words (the catch-up),
    reach the table's documents through the outbox: nothing is embedded again."""
    from test_words_index import card, plain, song

    import mediasearch

    media, folder, url = tmp_path / "media", tmp_path / "lib", antfly.url("read_later")
    card(media / "letter.png", ["Nordwind Energie"])
    song(media / "track.flac", title="Moonlight Ferry")
    plain(media / "photo.jpg", 1)
    with mediasearch.open(folder, model=embedder, write=True) as lib:
        assert lib.index(media, store=url, ocr=False).read == 0
    db = sqlite3.connect(folder / "catalog.db", isolation_level=None)
    # What a library made before words holds: no tags, and no mark that they were read.
    db.execute("DELETE FROM texts WHERE source IN ('tag', 'caption')")
    db.execute("DELETE FROM meta WHERE key = 'metadata_words_read_after'")
    with Storage(folder, write=True) as writer:
        writer.send()
        assert writer.sent.error is None and writer.sent.written == 1  # the sound whose tags went, only
    library_id, _ = segment_keys(folder)
    docs = {Path(d["path"]).name: d for d in table_docs(url, library_id)}
    assert docs["letter.png"]["words"] == ["letter"] and docs["track.flac"]["words"] == ["track"]
    segments = db.execute("SELECT id FROM segments ORDER BY id").fetchall()

    monkeypatch.delenv("MEDIASEARCH_NO_OCR")
    with mediasearch.open(folder, model=embedder, write=True) as lib:
        summary = lib.index()
        assert summary.read == 2 and summary.added == summary.updated == summary.batches == 0
        assert lib.status()["store"]["waiting"] == 0
        assert db.execute("SELECT id FROM segments ORDER BY id").fetchall() == segments, "nothing embedded again"
        docs = {Path(d["path"]).name: d for d in table_docs(url, library_id)}
        assert {"nordwind", "energie"} <= set(docs["letter.png"]["words"])
        assert [t["source"] for t in docs["letter.png"]["texts"]] == ["name", "text"]
        assert {"moonlight", "ferry"} <= set(docs["track.flac"]["words"])
        hit = lib.search("nordwind", limit=3)[0]
        assert Path(hit.path).name == "letter.png" and hit.words["found"][0]["source"] == "text"
        assert Path(lib.search("moonlight ferry", limit=3)[0].path).name == "track.flac"


@pytest.mark.slow
def test_a_table_and_a_library_from_before_words_take_them(antfly, tmp_path, embedder):
    """A table made without the words field gets it (Antfly indexes declared fields only), and a library
    whose documents were sent without words sends them all again after its upgrade."""
    from test_words_index import song

    import mediasearch
    from mediasearch.outbox import Outbox
    from mediasearch.store import table_spec

    url = antfly.url("before_words")
    old = table_spec()
    properties = old["schema"]["document_schemas"]["segment"]["schema"]["properties"]
    del properties["words"], properties["texts"]
    Antfly(Address.parse(url)).create_table(old)
    media, folder = tmp_path / "media", tmp_path / "lib"
    song(media / "track.flac", title="Moonlight Ferry")
    with mediasearch.open(folder, model=embedder, write=True) as lib:
        lib.index(media, store=url)
        schema = Antfly(Address.parse(url)).table()["schema"]
        assert "words" in schema["document_schemas"]["segment"]["schema"]["properties"]
        for _ in range(100):  # Antfly rebuilds its full-text index in the background
            hit = lib.search("moonlight", limit=1)[0]
            if hit.words:
                break
            time.sleep(0.2)
        assert hit.words["matched"] == ["moonlight"]
    # The library as mediasearch left it before words reached the store (schema 7, everything sent).
    db = sqlite3.connect(folder / "catalog.db", isolation_level=None)
    db.execute("DROP TRIGGER texts_version_added")
    db.execute("DROP TRIGGER texts_version_removed")
    db.execute("PRAGMA user_version = 7")
    db.close()
    with Storage(folder, write=True) as writer:
        assert Outbox(writer.catalog).unsent_count() == writer.catalog.segment_count() > 0


@pytest.mark.slow
def test_a_video_frames_words_are_on_that_frames_document(antfly, tmp_path, embedder, monkeypatch):
    """Text read in a video frame belongs to that frame's segment: its document carries the words, the
    other frames' do not, and the store finds the video at that moment, as the local library does."""
    from test_words_index import plain, title_card_video

    import mediasearch

    monkeypatch.delenv("MEDIASEARCH_NO_OCR")
    media, url = tmp_path / "clips", antfly.url("frames")
    title_card_video(media / "holiday.mp4", "PLATFORM NINE")
    plain(media / "photo.jpg", 5)
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as lib:
        assert lib.index(media, store=url).read == 2
        hit = lib.search("platform nine", limit=1)[0]
    catalog = sqlite3.connect(tmp_path / "lib" / "catalog.db")  # its frame texts, to compare with the documents
    frames = dict(catalog.execute("SELECT at, words FROM texts WHERE source = 'frame'").fetchall())
    library_id, _ = segment_keys(tmp_path / "lib")
    assert frames and all("platform" in words for words in frames.values())
    docs = [d for d in table_docs(url, library_id) if d["path"].endswith("holiday.mp4")]
    worded = {d["start"] for d in docs if "platform" in d.get("words", [])}
    assert worded == set(frames), "each frame's words on its own document, and only there"
    assert all(d.get("words") == ["holiday"] for d in docs if d["start"] not in worded)  # its name only
    assert Path(hit.path).name == "holiday.mp4" and hit.words["found"][0]["source"] == "frame"
    assert hit.start == hit.end == hit.words["found"][0]["at"] == min(frames) and hit.matched == "image"


@pytest.mark.slow
def test_a_long_recordings_name_leaves_room_for_other_files_holding_the_word(antfly, tmp_path, embedder, monkeypatch):
    """A file's names, tags and captions go on one of its documents, not on each: when every window of a
    long recording carried them, a word of its name filled the documents a query word may pick up
    (textrank.ROWS_PER_WORD, here scaled down to the recording's windows), and a picture holding the word,
    found first locally, was not found by its words on the store; the recording's tags were also sent
    once per window (up to 40 KB each)."""
    from test_words_index import plain

    import mediasearch
    from mediasearch import store as store_module
    from mediasearch.outbox import Outbox

    media, url = tmp_path / "media", antfly.url("long_recording")
    media.mkdir()
    sf.write(media / "ferry.flac", (0.1 * np.sin(np.arange(22050 * 100) / 7)).astype(np.float32), 22050)
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as lib:
        lib.index(media, store=url)
        plain(media / "ferry at dawn over the harbour of hallig hooge.jpg", 3)  # a later document
        lib.index()
        library_id, keys = segment_keys(tmp_path / "lib")
        docs = table_docs(url, library_id)
        recording = [d for d in docs if d["path"].endswith("ferry.flac")]
        assert len(recording) == len(keys) - 1 >= 12
        assert [d.get("words") for d in recording if d.get("words")] == [["ferry"]], "one document carries them"
        monkeypatch.setattr(store_module, "ROWS_PER_WORD", 8)
        worded = {Path(h.path).name for h in lib.search("ferry", limit=5) if h.words}
        assert worded == {"ferry.flac", "ferry at dawn over the harbour of hallig hooge.jpg"}
    # A library whose documents went with the words on every segment (schema 8) sends its recording again.
    db = sqlite3.connect(tmp_path / "lib" / "catalog.db", isolation_level=None)
    db.execute("PRAGMA user_version = 8")
    db.close()
    with Storage(tmp_path / "lib", write=True) as writer:
        assert Outbox(writer.catalog).unsent_count() == len(recording), "the recording's documents, only"
