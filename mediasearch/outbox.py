"""The shared store's outbox: which of the catalog's segments an Antfly table lacks, holds with older
file facts, or holds though the catalog has dropped them.

Every change to a file's row or to its words bumps its version (triggers, see schema.py), and
`store_sent` records which version of each segment the table has: what differs is what the next send
carries, so no code path that changes a file can forget to tell the store.

A file's words go with its documents once: its names, tags, captions, place and the text read in a
picture on its first segment, the text read in a video frame on that frame's segment.  Not on each
segment: a long recording's hundreds of windows, each carrying its name and tags (up to 40 KB), filled
what a query word may pick up from the store (textrank.ROWS_PER_WORD documents) and hid other files
holding the word, and its tags were sent once per window.
"""

from __future__ import annotations

from mediasearch.catalog import READ, Catalog, chunks

SAME_FRAME = 0.01  # seconds: a frame's text is kept at its segment's start (ocr.video_frames)


class Outbox:
    """What the next send to a bound store carries, read from (and confirmed in) the catalog."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.conn = catalog.conn
        self.db = catalog.db
        self.transaction = catalog.transaction

    def unsent(self, limit: int) -> list[dict]:
        """Segments the bound store lacks, or has with older file facts: what the next send carries."""
        ids = self.conn.execute(
            """SELECT s.id FROM segments s JOIN files f ON f.id = s.file_id
               LEFT JOIN store_sent t ON t.segment_id = s.id
               WHERE t.segment_id IS NULL OR t.version != f.version ORDER BY s.id LIMIT ?""",
            (limit,),
        ).fetchall()
        out = []
        for chunk in chunks([r[0] for r in ids]):
            out += self.db.query(
                f"""SELECT s.id, s.start, s.end, s.modality AS matched, s.vector, f.id AS file_id, f.version,
                           (SELECT min(id) FROM segments WHERE file_id = f.id) AS first,
                           f.path, f.kind, f.size, f.mtime, f.hash, f.width, f.height, f.duration, r.path AS folder,
                           f.taken, f.taken_source, f.latitude, f.longitude, f.city, f.region, f.country
                    FROM segments s JOIN files f ON f.id = s.file_id JOIN roots r ON r.id = f.root_id
                    WHERE s.id IN ({",".join("?" * len(chunk))}) ORDER BY s.id""",
                chunk,
            )
        texts = self._texts(sorted({row["file_id"] for row in out}))
        for row in out:
            row["texts"] = [t for t in texts.get(row["file_id"], []) if _belongs(t, row)]
        return out

    def _texts(self, file_ids: list[int]) -> dict[int, list[dict]]:
        """The words of these files, in the order they were written, by file id."""
        out: dict[int, list[dict]] = {}
        for chunk in chunks(file_ids):
            rows = self.db.query(
                f"""SELECT id, file_id, source, at, shown, words FROM texts
                    WHERE file_id IN ({",".join("?" * len(chunk))}) ORDER BY id""",
                chunk,
            )
            for row in rows:
                out.setdefault(row.pop("file_id"), []).append(row)
        return out

    def unsent_count(self) -> int:
        """Segments waiting to be sent plus documents waiting to be deleted."""
        sends = self.conn.execute(
            """SELECT count(*) FROM segments s JOIN files f ON f.id = s.file_id
               LEFT JOIN store_sent t ON t.segment_id = s.id WHERE t.segment_id IS NULL OR t.version != f.version"""
        ).fetchone()[0]
        deletes = self.conn.execute(
            "SELECT count(*) FROM store_sent WHERE segment_id NOT IN (SELECT id FROM segments)"
        ).fetchone()[0]
        return sends + deletes

    def undeleted(self, limit: int) -> list[int]:
        """Segments the store has that the catalog no longer does."""
        rows = self.conn.execute(
            "SELECT segment_id FROM store_sent WHERE segment_id NOT IN (SELECT id FROM segments) "
            "ORDER BY segment_id LIMIT ?",
            (limit,),
        )
        return [r[0] for r in rows]

    def mark_sent(self, sent: list[tuple[int, int]], deleted: list[int]) -> None:
        """The store confirmed these (segment id, file version) writes and these deletions."""
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO store_sent VALUES (?, ?)", sent)
            for chunk in chunks(deleted):
                self.conn.execute(f"DELETE FROM store_sent WHERE segment_id IN ({','.join('?' * len(chunk))})", chunk)

    def forget_sent(self) -> None:
        """A new table knows nothing yet: everything is sent again."""
        with self.transaction():
            self.conn.execute("DELETE FROM store_sent")


def _belongs(text: dict, segment: dict) -> bool:
    """Text read in a video frame belongs to that frame's segment; every other text of a file (names, tags,
    captions, place, text read in a picture) to its first segment (see the module's docstring)."""
    if text["source"] not in READ or text["at"] is None:
        return segment["id"] == segment["first"]
    start = segment["start"]
    return segment["matched"] == "image" and start is not None and abs(text["at"] - start) < SAME_FRAME
