"""When and where, through indexing, the catalog, the filters, the command line and the API:
photos copied today from a phone whose EXIF says July 2019 in Lisbon are found by date and place."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BUNDLE, INPUTS, open_library
from PIL import Image
from test_capture import phone_exif

from mediasearch import catalog as catalog_module
from mediasearch.catalog import Catalog
from mediasearch.cli import cli
from mediasearch.ingest import Indexer
from mediasearch.places import parse_near
from mediasearch.schema import CAPTURE_COLUMNS
from mediasearch.search import Filters, search

LISBON, PORTO, OXFORD = (38.7223, -9.1393), (41.1497, -8.6110), (51.7520, -1.2577)
JULY_2019 = datetime(2019, 7, 15, 10, 30, tzinfo=timezone(timedelta(hours=1))).timestamp()


def phone_photo(path: Path, when: str | None, where, source=INPUTS / "landscape.jpg") -> Path:
    """A picture as a phone leaves it: EXIF time and GPS; its mtime is now (copied today)."""
    with Image.open(source) as img:
        exif = phone_exif(when, "+01:00", where) if when else Image.Exif()
        img.convert("RGB").save(path, exif=exif)
    return path


@pytest.fixture
def camera_roll(tmp_path) -> Path:
    folder = tmp_path / "roll"
    folder.mkdir()
    phone_photo(folder / "lisbon.jpg", "2019:07:15 10:30:00", LISBON)
    phone_photo(folder / "porto.jpg", "2018:05:12 09:00:00", PORTO, INPUTS / "portrait.png")
    phone_photo(folder / "oxford.jpg", "2021:01:02 12:00:00", OXFORD, INPUTS / "rotated.jpg")
    phone_photo(folder / "nowhere.jpg", None, None, INPUTS / "cmyk.jpg")  # no metadata: its mtime
    return folder


class Refusing:
    def embed_each(self, paths, items):
        raise AssertionError(f"nothing should be embedded again: {paths}")


@pytest.fixture
def indexed(tmp_path, embedder, camera_roll):
    library = open_library(tmp_path / "library", embedder.bundle)
    roots = library.add_folders([str(camera_roll)])
    Indexer(library, lambda: embedder).scan(roots)
    library.save_index()
    yield library, roots, camera_roll
    library.close()


def columns(catalog: Catalog, name: str) -> dict:
    row = catalog.conn.execute(
        "SELECT taken, taken_source, latitude, longitude, city, region, country FROM files WHERE rel = ?",
        (name.encode(),),
    ).fetchone()
    return dict(zip(CAPTURE_COLUMNS, row, strict=True))


def test_indexing_records_capture_time_and_place(indexed):
    library, _, roll = indexed
    lisbon = columns(library.catalog, "lisbon.jpg")
    assert lisbon == {
        "taken": JULY_2019,
        "taken_source": "exif",
        "latitude": pytest.approx(LISBON[0], abs=1e-6),
        "longitude": pytest.approx(LISBON[1], abs=1e-6),
        "city": "Lisbon",
        "region": "Lisbon",
        "country": "Portugal",
    }
    nowhere = columns(library.catalog, "nowhere.jpg")
    assert nowhere["taken"] == os.stat(roll / "nowhere.jpg").st_mtime and nowhere["taken_source"] == "mtime"
    assert nowhere["country"] is None and nowhere["latitude"] is None


def test_copies_and_moves_keep_when_and_where(indexed):
    library, roots, roll = indexed
    (roll / "trip").mkdir()
    shutil.copy(roll / "porto.jpg", roll / "trip" / "copy.jpg")
    os.rename(roll / "lisbon.jpg", roll / "trip" / "moved.jpg")
    summary = Indexer(library, Refusing).scan(roots)
    assert summary.reused == 2
    assert columns(library.catalog, "trip/copy.jpg")["city"] == "Porto"
    moved = columns(library.catalog, "trip/moved.jpg")
    assert (moved["taken"], moved["city"]) == (JULY_2019, "Lisbon")


def as_schema_5(folder: Path) -> None:
    """Take a library back to what mediasearch wrote before migration 6: no capture columns, indexes
    or trigger terms, user_version 5."""
    conn = sqlite3.connect(folder / "catalog.db", isolation_level=None)
    for table in ("texts_vocab", "texts_fts", "texts"):  # migration 7 (words) undone too
        conn.execute(f"DROP TABLE {table}")
    conn.execute("ALTER TABLE files DROP COLUMN ocr")
    for index in ("files_taken", "files_kind_taken", "files_coordinates", "files_country"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("DROP TRIGGER files_version")
    for name in CAPTURE_COLUMNS:
        conn.execute(f"ALTER TABLE files DROP COLUMN {name}")
    conn.execute(
        "CREATE TRIGGER files_version AFTER UPDATE OF path, root_id, kind, size, mtime, hash, width, height, "
        "duration, status ON files BEGIN UPDATE files SET version = OLD.version + 1 WHERE id = NEW.id; END"
    )
    conn.execute("PRAGMA user_version = 5")
    conn.close()


def test_an_older_library_gains_them_on_the_next_pass_without_embedding(indexed, embedder):
    """A library of schema 5 is migrated, then its files' metadata is read; nothing is embedded."""
    old, _, camera_roll = indexed
    folder = old.catalog.folder
    old.close()
    as_schema_5(folder)
    library = open_library(folder, embedder.bundle)
    try:
        before = columns(library.catalog, "lisbon.jpg")
        assert before["taken"] == os.stat(camera_roll / "lisbon.jpg").st_mtime and before["taken_source"] is None
        told = []
        summary = Indexer(library, Refusing, warn=told.append).scan(library.catalog.roots())
        assert summary.unchanged == 4 and summary.batches == 0
        assert any("capture dates and places of 4 files" in line for line in told)
        after = columns(library.catalog, "lisbon.jpg")
        assert (after["taken"], after["taken_source"], after["city"]) == (JULY_2019, "exif", "Lisbon")
        places = library.catalog.conn.execute("SELECT count(*) FROM texts WHERE source = 'place'").fetchone()[0]
        assert places == 3, "its place names became words of the files too"
        again = []
        Indexer(library, Refusing, warn=again.append).scan(library.catalog.roots())
        assert not again, "read once"
    finally:
        library.close()


def test_the_version_counts_capture_columns_so_a_store_gets_them(indexed):
    library, _, _ = indexed
    conn = library.catalog.conn
    version = conn.execute("SELECT version FROM files WHERE rel = ?", (b"porto.jpg",)).fetchone()[0]
    conn.execute("UPDATE files SET city = 'Gaia' WHERE rel = ?", (b"porto.jpg",))
    assert conn.execute("SELECT version FROM files WHERE rel = ?", (b"porto.jpg",)).fetchone()[0] == version + 1


def found(library, **filters) -> list[str]:
    query = np.ones(512, np.float32) / np.sqrt(512)
    return sorted(os.path.basename(h.path) for h in search(library, query, 10, Filters(**filters)))


def test_dates_filter_on_capture_time_not_on_the_copy_date(indexed):
    library = indexed[0]
    july = {"after": datetime(2019, 7, 1), "before": datetime(2019, 8, 1)}
    assert found(library, **july) == ["lisbon.jpg"]
    assert found(library, after=datetime(2018, 5, 1), before=datetime(2018, 6, 1)) == ["porto.jpg"]
    assert found(library, after=datetime.now() - timedelta(days=1)) == ["nowhere.jpg"]


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        ("Lisbon", ["lisbon.jpg"]),
        ("Porto, Portugal", ["porto.jpg"]),
        ("portugal", ["lisbon.jpg", "porto.jpg"]),
        ("England", ["oxford.jpg"]),
        ("38.70,-9.14,3", ["lisbon.jpg"]),
        ("38.70,-9.14,400", ["lisbon.jpg", "porto.jpg"]),
        ("Spain", []),
    ],
)
def test_near_a_place(indexed, place, expected):
    library = indexed[0]
    assert found(library, near=parse_near(place)) == expected
    assert library.catalog.matching_segments(Filters(near=parse_near(place)), 100) is not None


def test_the_place_filter_uses_the_coordinates_index(indexed):
    catalog = indexed[0].catalog
    sql, args = catalog_module._near_clause(parse_near("38.7,-9.1,10"))
    plan = " ".join(r[-1] for r in catalog.conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM files f WHERE {sql}", args))
    assert "files_coordinates" in plan
    sql, args = catalog_module._near_clause(parse_near("Portugal"))
    plan = " ".join(r[-1] for r in catalog.conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM files f WHERE {sql}", args))
    assert "files_country" in plan
    plan = " ".join(
        r[-1]
        for r in catalog.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM files f WHERE f.taken >= 1 AND f.taken < 2")
    )
    assert "COVERING INDEX files_taken" in plan


@pytest.mark.slow
def test_query_json_table_and_an_unknown_place(indexed, monkeypatch):
    from mediasearch.terminal import Terminal

    library, _, _ = indexed
    monkeypatch.setenv("MEDIASEARCH_HOME", str(library.catalog.folder))
    args = ["query", "a street", "--near", "Lisbon", "--model", str(BUNDLE)]
    hits = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert [(h["taken"], h["taken_source"], h["place"]) for h in hits] == [(JULY_2019, "exif", "Lisbon, Portugal")]
    assert (hits[0]["latitude"], hits[0]["longitude"]) == pytest.approx(LISBON)
    table = CliRunner().invoke(cli, args, obj=Terminal(stdout_isatty=True, stderr_isatty=True)).stdout.splitlines()
    assert table[0].split()[:3] == ["score", "kind", "taken"]
    assert "2019-07-15" in table[1] and table[1].endswith("(Lisbon, Portugal)")
    refused = CliRunner().invoke(cli, ["query", "x", "--near", "Qwertyville"])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "unknown place 'Qwertyville'" in refused.stderr


def test_served_beyond_loopback_the_api_leaves_coordinates_out(indexed, monkeypatch):
    from starlette.testclient import TestClient

    from mediasearch.server import Settings, create_app

    library = indexed[0].catalog.folder
    for host, share, located in (("127.0.0.1", False, True), ("192.0.2.7", False, False), ("192.0.2.7", True, True)):
        app = create_app(Settings(library, host, 8765, "secret", str(BUNDLE), share_locations=share))
        with TestClient(app, base_url=f"http://{host}:8765") as client:
            hits = client.get("/api/search", params={"q": "a street", "near": "Lisbon", "token": "secret"}).json()
        assert [h["place"] for h in hits] == ["Lisbon, Portugal"]
        assert ("latitude" in hits[0] and "longitude" in hits[0]) == located, (host, share)


def test_the_python_api_takes_near_and_capture_dates(indexed):
    import mediasearch
    from mediasearch.errors import UsageError

    with mediasearch.open(indexed[0].catalog.folder, model=str(BUNDLE)) as library:
        hits = library.search("a street", near="Portugal", after=datetime(2019, 1, 1))
        assert [(os.path.basename(h.path), h.place) for h in hits] == [("lisbon.jpg", "Lisbon, Portugal")]
        first = library.search("a street", near="England")[0]
        assert [os.path.basename(h.path) for h in library.similar(first.file_id, near="Porto")] == ["porto.jpg"]
        with pytest.raises(UsageError, match="unknown place"):
            library.search("a street", near="Qwertyville")


def test_a_broad_place_or_date_filter_is_checked_exactly_after_the_index(indexed, monkeypatch):
    """Past the selective bound the catalog gives up (None) and the index's hits are checked one by one."""
    from mediasearch import search as search_module

    library = indexed[0]
    wide = parse_near("38.70,-9.14,400")
    assert library.catalog.matching_segments(Filters(near=wide), 1) is None
    monkeypatch.setattr(search_module, "SELECTIVE", 1)
    assert found(library, near=wide) == ["lisbon.jpg", "porto.jpg"]
    assert found(library, near=parse_near("Portugal")) == ["lisbon.jpg", "porto.jpg"]
    assert found(library, after=datetime(2018, 1, 1), before=datetime(2020, 1, 1)) == ["lisbon.jpg", "porto.jpg"]


def test_new_files_have_their_metadata_read_by_the_decoder_workers(tmp_path, embedder, camera_roll, monkeypatch):
    """A header that crashes a C library must cost a worker, not the pass: the indexing process itself
    never parses a new file's metadata (a copy takes its original's)."""
    from mediasearch import capture

    def refuse(*args, **kwargs):
        raise AssertionError("metadata read in the indexing process")

    monkeypatch.setattr(capture, "read", refuse)
    monkeypatch.setattr(capture, "metadata", refuse, raising=False)
    shutil.copy(camera_roll / "porto.jpg", camera_roll / "porto-copy.jpg")
    library = open_library(tmp_path / "library", embedder.bundle)
    try:
        Indexer(library, lambda: embedder).scan(library.add_folders([str(camera_roll)]))
        assert columns(library.catalog, "lisbon.jpg")["city"] == "Lisbon"
        assert columns(library.catalog, "porto-copy.jpg")["city"] == "Porto"
        assert columns(library.catalog, "nowhere.jpg")["taken_source"] == "mtime"
    finally:
        library.close()


def test_place_names_are_words_of_the_file(indexed):
    """A query "lisbon" or "portugal" finds what was taken there, through the words index (issue 20);
    an older library's files gain their place words when their metadata is first read."""
    import mediasearch

    with mediasearch.open(indexed[0].catalog.folder, model=str(BUNDLE)) as library:
        assert os.path.basename(library.search("lisbon", limit=1)[0].path) == "lisbon.jpg"
        top = {os.path.basename(h.path) for h in library.search("portugal", limit=2)}
        assert top == {"lisbon.jpg", "porto.jpg"}
        assert os.path.basename(library.search("oxford england", limit=1)[0].path) == "oxford.jpg"
    rows = indexed[0].catalog.conn.execute("SELECT shown FROM texts WHERE source = 'place' ORDER BY shown")
    assert [r[0] for r in rows] == ["Lisbon, Portugal", "Oxford, England, United Kingdom", "Porto, Portugal"]


def test_a_metadata_reader_failing_in_the_worker_leaves_the_file_indexed_by_its_mtime(tmp_path, embedder, camera_roll):
    from decoder_hooks import metadata_fails

    library = open_library(tmp_path / "library", embedder.bundle)
    try:
        summary = Indexer(library, lambda: embedder, decoder_setup=metadata_fails).scan(
            library.add_folders([str(camera_roll)])
        )
        assert summary.added == 4 and summary.failed == 0
        lisbon = columns(library.catalog, "lisbon.jpg")
        assert lisbon["taken_source"] == "mtime" and lisbon["taken"] == os.stat(camera_roll / "lisbon.jpg").st_mtime
    finally:
        library.close()
