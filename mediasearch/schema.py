"""The catalog's schema: numbered migrations, each run once in its own transaction, never edited
once shipped (a library made by any earlier version is brought up to date by running the rest)."""

from __future__ import annotations

import os

import sqlite_utils

from mediasearch.words import indexed, name_words


def _m001_first_schema(db: sqlite_utils.Database) -> None:
    """The first schema, as shipped."""
    for statement in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE roots (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, added_at REAL)",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            root_id INTEGER NOT NULL REFERENCES roots(id),
            path TEXT NOT NULL UNIQUE,
            rel TEXT NOT NULL,
            kind TEXT,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            hash TEXT,
            width INTEGER,
            height INTEGER,
            duration REAL,
            status TEXT NOT NULL,
            error TEXT,
            indexed_at REAL
        )""",
        "CREATE INDEX files_root ON files(root_id)",
        "CREATE INDEX files_hash ON files(hash)",
        """CREATE TABLE segments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files(id),
            start REAL,
            end REAL,
            vector BLOB NOT NULL
        )""",
        "CREATE INDEX segments_file ON segments(file_id)",
    ):
        db.execute(statement)


def _m002_byte_paths_and_folder_state(db: sqlite_utils.Database) -> None:
    """Paths become raw bytes (SQLite keeps BLOBs as they are in TEXT columns, compared
    bytewise); folders remember their walk options and whether the last pass reached them."""
    db.execute("UPDATE files SET path = CAST(path AS BLOB), rel = CAST(rel AS BLOB)")
    db.execute("UPDATE roots SET path = CAST(path AS BLOB)")
    db["roots"].add_column("options", str)
    db["roots"].add_column("state", str)
    db["roots"].add_column("reason", str)


def _m003_filter_indexes(db: sqlite_utils.Database) -> None:
    """Filters are answered from the catalog first: kind and date get covering indexes (the file id
    is in every index), so picking 10,000 sounds among a million files never reads the table."""
    db.execute("CREATE INDEX files_kind_mtime ON files(kind, mtime, status)")
    db.execute("CREATE INDEX files_mtime ON files(mtime, kind, status)")


def _m004_segment_modality(db: sqlite_utils.Database) -> None:
    """A video's segments are frames and soundtrack windows: each says which tower made its vector."""
    db["segments"].add_column("modality", str)


def _m005_store_outbox(db: sqlite_utils.Database) -> None:
    """A library bound to an Antfly table mirrors its segments there.  Every change to a file's
    row bumps its version (a trigger, so no code path can forget), and `store_sent` records which
    version of each segment the table has: what differs is what the next send carries."""
    db["files"].add_column("version", int, not_null_default=0)
    db.execute(
        "CREATE TRIGGER files_version AFTER UPDATE OF path, root_id, kind, size, mtime, hash, width, height, "
        "duration, status ON files BEGIN UPDATE files SET version = OLD.version + 1 WHERE id = NEW.id; END"
    )
    db.execute("CREATE TABLE store_sent (segment_id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")


CAPTURE_COLUMNS = ("taken", "taken_source", "latitude", "longitude", "city", "region", "country")


def _m006_capture_and_place(db: sqlite_utils.Database) -> None:
    """When and where each file was taken: its capture time (seconds since the epoch) and where that
    came from (exif, quicktime, tag, mtime), its coordinates and their place.  `taken` starts as the
    mtime, so the date filter answers at once; a NULL source means the file's own metadata is not read
    yet, which the next pass does without embedding anything again.  The date filter and the
    coordinates get indexes (covering, as files_kind_mtime; partial where most files have none), and
    the version trigger counts the new columns so a bound store receives them."""
    for name, kind in zip(CAPTURE_COLUMNS, (float, str, float, float, str, str, str), strict=True):
        db["files"].add_column(name, kind)
    db.execute("DROP TRIGGER files_version")
    db.execute("UPDATE files SET taken = mtime")
    db.execute("CREATE INDEX files_taken ON files(taken, kind, status)")
    db.execute("CREATE INDEX files_kind_taken ON files(kind, taken, status)")
    db.execute("CREATE INDEX files_coordinates ON files(latitude, longitude, status) WHERE latitude IS NOT NULL")
    db.execute("CREATE INDEX files_country ON files(country, region, status) WHERE country IS NOT NULL")
    db.execute(
        "CREATE TRIGGER files_version AFTER UPDATE OF path, root_id, kind, size, mtime, hash, width, height, "
        f"duration, status, {', '.join(CAPTURE_COLUMNS)} ON files "
        "BEGIN UPDATE files SET version = OLD.version + 1 WHERE id = NEW.id; END"
    )


def _m007_words(db: sqlite_utils.Database) -> None:
    """Words find files: `texts` holds a file's words by where they were found (its name, its tags,
    its caption, the text read in the picture or in a video frame at its time), as shown and as
    matched (folded by mediasearch.words); `texts_fts` is FTS5's index of them, kept in step by
    triggers in the same transactions.  `files.ocr` names the reader that read the picture's text
    (NULL: not read yet), so a library indexed before reads its text on the next pass."""
    for statement in (
        """CREATE TABLE texts (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            source TEXT NOT NULL,
            at REAL,
            shown TEXT NOT NULL,
            words TEXT NOT NULL
        )""",
        "CREATE INDEX texts_file ON texts(file_id)",
        "CREATE VIRTUAL TABLE texts_fts USING fts5(words, content='texts', content_rowid='id', "
        "tokenize='unicode61', prefix='2 3')",
        "CREATE TRIGGER texts_added AFTER INSERT ON texts BEGIN "
        "INSERT INTO texts_fts(rowid, words) VALUES (new.id, new.words); END",
        "CREATE TRIGGER texts_removed AFTER DELETE ON texts BEGIN "
        "INSERT INTO texts_fts(texts_fts, rowid, words) VALUES ('delete', old.id, old.words); END",
        "CREATE VIRTUAL TABLE texts_vocab USING fts5vocab(texts_fts, 'row')",  # the words, for one-letter slips
        "ALTER TABLE files ADD COLUMN ocr TEXT",
    ):
        db.execute(statement)
    for file_id, rel in db.execute("SELECT id, rel FROM files WHERE status IN ('indexed', 'partial')").fetchall():
        name = name_words(os.fsdecode(rel))
        db.execute(
            "INSERT INTO texts (file_id, source, shown, words) VALUES (?, 'name', ?, ?)", (file_id, name, indexed(name))
        )


def _m008_words_reach_the_store(db: sqlite_utils.Database) -> None:
    """A bound store's documents carry their file's words: a change to a file's texts (OCR read after the
    vectors, tags and captions of an older library, a rename) bumps the file's version as a change to
    its row does, so the outbox sends it (triggers: no code path can forget).  Every file is bumped
    once, so a store filled before its documents carried words receives them on the next send."""
    for statement in (
        "CREATE TRIGGER texts_version_added AFTER INSERT ON texts "
        "BEGIN UPDATE files SET version = version + 1 WHERE id = new.file_id; END",
        "CREATE TRIGGER texts_version_removed AFTER DELETE ON texts "
        "BEGIN UPDATE files SET version = version + 1 WHERE id = old.file_id; END",
        "UPDATE files SET version = version + 1",
    ):
        db.execute(statement)


def _m009_words_once_a_file(db: sqlite_utils.Database) -> None:
    """A file's words go on one of its documents, no longer on each (outbox.py says why): files with more
    than one segment are bumped, so a bound store's documents lose the copies on the next send."""
    db.execute(
        "UPDATE files SET version = version + 1 WHERE id IN "
        "(SELECT file_id FROM segments GROUP BY file_id HAVING count(*) > 1)"
    )


MIGRATIONS = [
    _m001_first_schema,
    _m002_byte_paths_and_folder_state,
    _m003_filter_indexes,
    _m004_segment_modality,
    _m005_store_outbox,
    _m006_capture_and_place,
    _m007_words,
    _m008_words_reach_the_store,
    _m009_words_once_a_file,
]
