"""A library's segments mirrored in an Antfly table that many libraries share.

The local catalog stays the record of what is on disk; the table holds one
document per segment (its vector in an external 512-d cosine index, and the
file's facts), keyed by the library's id and the segment's id, so libraries on
several machines write one table without touching each other's documents.
What the table has is recorded in the catalog (`store_sent`): a send carries
exactly what differs, in batches, and what could not be sent (the server down,
the network gone) simply stays different until the next send.  Writes are
upserts by key, so sending twice never makes a second copy.

Documents also carry their file's words, each once (outbox.py says which document holds which: `words`,
folded by mediasearch.words, as keywords Antfly's full-text index matches exactly, by prefix and one edit
away; `texts`: where each was found, as shown, not indexed).

Queries go to the table, with kind, folder and date filters and the score
floor pushed down to Antfly, so they see every library's files.  The text half
of a query asks Antfly's full-text index for candidate documents (StoreWords)
and textrank decides and scores what they hold, as it does for the catalog's.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mediasearch.antfly import Address, Antfly, StoreError, StoreUnreachable
from mediasearch.bundle import base_revision
from mediasearch.catalog import DIM, Catalog, decode, encode
from mediasearch.errors import LibraryError
from mediasearch.filters import Filters
from mediasearch.outbox import Outbox
from mediasearch.places import Near
from mediasearch.textrank import ROWS_PER_WORD, Row

INDEX = "clipclap"  # the table's embeddings index: bring-your-own 512-d vectors
BATCH = 256  # segments a write: ~2.5 MB of JSON
SEARCH_EFFORT = 1.0  # Antfly's highest recall: a media library is small next to what it is built for
KEYWORDS = ("library", "host", "model", "path", "folder", "kind", "hash", "matched", "taken_source", "city", "region",
            "country")  # fmt: skip
NUMBERS = ("file_id", "size", "mtime", "start", "end", "width", "height", "duration", "taken", "latitude", "longitude")
FACTS = ("file_id", "kind", "size", "mtime", "hash", "start", "end", "width", "height", "duration", "taken",
         "taken_source", "latitude", "longitude", "city", "region", "country")  # fmt: skip


WORDS = "words"  # the full-text field: each word a keyword, so both engines match the same tokens
SEGMENTS_OF = 10_000  # documents read back for files found by their words alone (their best segment)
CARDINALITY = {"type": "cardinality", "field": "hash"}


def table_spec() -> dict:
    """The table a library creates when it is the first to use it."""
    properties = {name: {"type": "string", "x-antfly-types": ["keyword"]} for name in KEYWORDS}
    properties |= {name: {"type": "number"} for name in NUMBERS}
    properties[WORDS] = {"type": "array", "items": {"type": "string"}, "x-antfly-types": ["keyword"]}
    properties["texts"] = {"type": "array", "items": {"type": "object"}, "x-antfly-index": False}
    return {
        "num_shards": 1,
        "description": "mediasearch segments: CLIPCLAP vectors of pictures, sounds and video",
        "indexes": {INDEX: {"type": "embeddings", "external": True, "dimension": DIM, "distance_metric": "cosine"}},
        "schema": {
            "default_type": "segment",
            "document_schemas": {"segment": {"schema": {"type": "object", "properties": properties}}},
        },
    }


@dataclass
class Sent:
    """What one send did: documents written and deleted, changes still waiting, and why."""

    written: int = 0
    deleted: int = 0
    waiting: int = 0
    error: str | None = None

    def as_dict(self) -> dict:
        return {"written": self.written, "deleted": self.deleted, "waiting": self.waiting, "error": self.error}


class Store:
    """The Antfly table a library is bound to."""

    def __init__(self, url: str, library_id: str, model: str = "", host: str | None = None):
        self.address = Address.parse(url)
        self.library_id = library_id
        self.model = model  # the model's revision (fp32 and int8 share one space, so one revision)
        self.host = host or socket.gethostname()
        self.client = Antfly(self.address)
        self._checked = False

    @classmethod
    def of(cls, catalog: Catalog) -> Store | None:
        """The library's store, or None for a library kept on this machine only."""
        url = catalog.get("store_url")
        if not url:
            return None
        return cls(url, catalog.get("library_id") or "", base_revision(catalog.get("model_revision") or ""))

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the table

    def ensure_table(self) -> None:
        """Create the table if nobody has, and check that a table found there is one of ours."""
        if self._checked:
            return
        found = self.client.table()
        if found is None:
            self.client.create_table(table_spec())
            found = self.client.table() or {}
        index = (found.get("indexes") or {}).get(INDEX) or {}
        if not index.get("external") or index.get("dimension") != DIM or index.get("distance_metric") != "cosine":
            raise StoreError(
                f"the table {self.address.table!r} at {self.address} is not a mediasearch table (it lacks an external "
                f"{DIM}-d cosine embeddings index named {INDEX!r}): choose another table name"
            )
        self._refuse_other_models()
        self._declare_words(found)
        self._checked = True

    def _declare_words(self, found: dict) -> None:
        """A table made before documents carried words does not declare the field, and Antfly indexes
        declared fields only: add it to the schema (Antfly then rebuilds its full-text index from the
        stored documents in the background; word queries find less for those few seconds)."""
        schema = found.get("schema") or {}
        segment = ((schema.get("document_schemas") or {}).get("segment") or {}).get("schema") or {}
        properties = segment.get("properties") or {}
        if WORDS in properties:
            return
        ours = table_spec()["schema"]
        ours_properties = ours["document_schemas"]["segment"]["schema"]["properties"]
        ours_properties.update({k: v for k, v in properties.items() if k not in ours_properties})
        try:
            self.client.update_schema(ours | {"version": int(schema.get("version") or 0) + 1})
        except StoreError as exc:
            raise StoreError(f"cannot add the words field to the table {self.address.table!r}: {exc}") from exc

    def _refuse_other_models(self) -> None:
        """Vectors of different models are not comparable: a table holds one model's, and a library
        with another model is refused before it writes (its queries would rank nonsense).  Its own
        documents do not count: after `index --reembed` the next send replaces them."""
        if not self.model:
            return
        probe = {
            "embeddings": {INDEX: [1.0] + [0.0] * (DIM - 1)},
            "indexes": [INDEX],
            "limit": 1,
            "exclusion_query": {
                "disjuncts": [{"term": self.model, "field": "model"}, {"term": self.library_id, "field": "library"}]
            },
            "fields": ["model", "host"],
        }
        for hit in self.client.nearest(probe):
            doc = hit.get("_source") or {}
            raise StoreError(
                f"the table {self.address.table!r} holds vectors of another model (revision {doc.get('model')}, "
                f"from {doc.get('host', '?')}), not this library's ({self.model}): give each model a table of its own"
            )

    # ------------------------------------------------------------------ writing

    def send(self, catalog: Catalog, batch: int = BATCH) -> Sent:
        """Bring the table in step with the catalog; what cannot be sent now waits, counted."""
        sent = Sent()
        try:
            self.ensure_table()
            while True:
                rows = Outbox(catalog).unsent(batch)
                gone = Outbox(catalog).undeleted(batch)
                if not rows and not gone:
                    break
                self.client.write({self._key(r["id"]): self._document(r) for r in rows}, [self._key(i) for i in gone])
                Outbox(catalog).mark_sent([(r["id"], r["version"]) for r in rows], gone)
                sent.written += len(rows)
                sent.deleted += len(gone)
        except StoreError as exc:
            sent.error = str(exc)
        sent.waiting = Outbox(catalog).unsent_count() if sent.error else 0
        return sent

    def _key(self, segment_id: int) -> str:
        return f"{self.library_id}:{segment_id}"

    def _document(self, row: dict) -> dict:
        path, folder = decode(row["path"]), decode(row["folder"])
        doc = {
            "library": self.library_id,
            "host": self.host,
            "model": self.model,
            "path": _text(path),
            "folder": _text(folder),
            "_embeddings": {INDEX: np.frombuffer(row["vector"], "<f4").tolist()},
        }
        if _text(path) != path:  # not UTF-8: keep the exact bytes too, for the library's other users
            doc["path_bytes"] = base64.b64encode(encode(path)).decode()
        for name in FACTS:
            if row[name] is not None:
                doc[name] = row[name]
        if row["matched"]:
            doc["matched"] = row["matched"]
        texts = row.get("texts") or []
        if texts:
            doc[WORDS] = list(dict.fromkeys(word for text in texts for word in text["words"].split()))
            doc["texts"] = texts
        return doc

    # ------------------------------------------------------------------ reading

    def nearest(self, query: np.ndarray, k: int, filters: Filters) -> list[tuple[float, dict]]:
        """(cosine, facts) of the k nearest segments in the whole table that pass the filters, best first.

        The scores are computed here from the stored vectors Antfly returns with each hit: its own
        distances are approximate, and with more than ~32 results asked its order is too (at
        100,000 vectors a limit of 100 gave a recall@10 of 0.45, though the true 10 were among the
        100), so this is what makes its answers FAISS's.
        """
        query = np.asarray(query, np.float32).reshape(DIM)
        request = {
            "embeddings": {INDEX: query.tolist()},
            "indexes": [INDEX],
            "limit": k,
            "search_effort": SEARCH_EFFORT,
            "fields": ["*", "_embeddings"],
        }
        conditions = list(_conditions(filters))
        if conditions:
            request["filter_query"] = {"conjuncts": conditions}
        if filters.exclude_hashes:
            hashes = sorted(filters.exclude_hashes)
            request["exclusion_query"] = {"disjuncts": [{"term": h, "field": "hash"} for h in hashes]}
        if filters.min_score is not None:
            request["distance_under"] = 1.0 - filters.min_score + 0.01  # Antfly's distances are approximate
        hits = _hits(self._ask(request))
        scored = [(_exact_score(hit, query), self._facts(hit)) for hit in hits]
        return sorted(scored, key=lambda pair: -pair[0])

    def full_text(self, clause: dict, filters: Filters, limit: int, fields: list[str]) -> list[dict]:
        """Documents matching a full-text clause (Bleve's query shape) that pass the filters, best
        scored first."""
        request = {"full_text_search": clause, "limit": limit, "fields": fields}
        conditions = list(_conditions(filters))
        if conditions:
            request["filter_query"] = {"conjuncts": conditions}
        return _hits(self._ask(request))

    def files(self) -> int:
        """How many files the table holds, counted by content (its document count where Antfly gives
        no cardinality): what the rarity of a word is counted against."""
        request = {"full_text_search": {"match_all": {}}, "limit": 0, "aggregations": {"files": CARDINALITY}}
        answer = self._ask(request)
        counted = ((answer.get("aggregations") or {}).get("files") or {}).get("value")
        return int(counted if counted is not None else ((answer.get("hits") or {}).get("total") or {}).get("value", 0))

    def segments_of(self, hashes: list[str], query: np.ndarray, filters: Filters) -> list[tuple[float, dict]]:
        """(cosine, facts) of every segment of these contents that passes the filters (at most
        SEGMENTS_OF), scored exactly: the vector half of files found by their words alone."""
        query = np.asarray(query, np.float32).reshape(DIM)
        clause = {"disjuncts": [{"term": digest, "field": "hash"} for digest in hashes]}
        fields = ["library", "host", "path", "path_bytes", "matched", *FACTS, "_embeddings"]
        hits = self.full_text(clause, filters, SEGMENTS_OF, fields)
        return sorted(((_exact_score(hit, query), self._facts(hit)) for hit in hits), key=lambda pair: -pair[0])

    def finder(self, filters: Filters) -> StoreWords:
        """textrank's finder over this table, after these filters."""
        return StoreWords(self, filters)

    def _ask(self, request: dict) -> dict:
        try:
            return self.client.search(request)
        except StoreUnreachable as exc:
            raise LibraryError(f"{exc}: start it, or check the address this library was indexed with") from exc

    def _facts(self, hit: dict) -> dict:
        """A hit's document as the catalog's `hits` rows look (the FAISS path's shape)."""
        doc = hit.get("_source") or {}
        own = doc.get("library") == self.library_id
        path = doc.get("path", "")
        if doc.get("path_bytes"):
            path = decode(base64.b64decode(doc["path_bytes"]))
        names = ("kind", "start", "end", "width", "height", "duration", "hash", "taken", "taken_source", "latitude",
                 "longitude", "city", "region", "country")  # fmt: skip
        facts = {name: doc.get(name) for name in names}
        return facts | {
            "path": path,
            "size": int(doc.get("size") or 0),
            "mtime": float(doc.get("mtime") or 0.0),
            "matched": doc.get("matched"),
            "file_id": int(doc["file_id"]) if own and doc.get("file_id") is not None else None,
            "host": None if own else doc.get("host") or "?",
        }


class StoreWords:
    """textrank's Finder over the table's full-text index: the documents holding a word (prefix and one
    edit away, as keywords), after the same filters as the vector half, each document's texts as
    textrank Rows.  A file is its library and catalog id; `facts` keeps one document's facts per file,
    for its content key.  Rarity is counted as the catalog counts it, among files: the table's distinct
    contents (Antfly's cardinality of `hash`; its document count where that is not answered)."""

    FIELDS = ["library", "host", "file_id", "hash", "path", "path_bytes", "texts"]

    def __init__(self, store: Store, filters: Filters):
        self.store = store
        self.filters = filters
        self.facts: dict[tuple, dict] = {}

    def total(self) -> int:
        return self.store.files()

    def word(self, word: str) -> list[Row]:
        clauses: list[dict] = [{"prefix": word, "field": WORDS}]
        if len(word) >= 5:
            clauses.append({"term": word, "fuzziness": 1, "field": WORDS})
        return self._rows({"disjuncts": clauses})

    def phrase(self, phrase: list[str]) -> list[Row]:
        return self._rows({"conjuncts": [{"term": word, "field": WORDS} for word in phrase]})

    def starting(self, word: str) -> list[Row]:
        return self._rows({"prefix": word, "field": WORDS})

    def _rows(self, clause: dict) -> list[Row]:
        rows = []
        for hit in self.store.full_text(clause, self.filters, ROWS_PER_WORD, self.FIELDS):
            doc = hit.get("_source") or {}
            if not isinstance(doc.get("file_id"), int):
                continue  # not a document mediasearch wrote
            file = (str(doc.get("library")), doc["file_id"])
            self.facts.setdefault(file, self.store._facts(hit))
            rows += [Row(file, (file[0], t["id"]), t["source"], t["at"], t["shown"], t["words"])
                     for t in doc.get("texts") or [] if _is_text(t)]  # fmt: skip
        return rows


def _hits(answer: dict) -> list[dict]:
    return (answer.get("hits") or {}).get("hits") or []


def _is_text(text) -> bool:
    """A document's text as mediasearch writes it (the table is shared: anything else is skipped)."""
    return (
        isinstance(text, dict)
        and isinstance(text.get("id"), int)
        and all(isinstance(text.get(k), str) for k in ("source", "shown", "words"))
        and (text.get("at") is None or isinstance(text.get("at"), (int, float)))
    )


def _exact_score(hit: dict, query: np.ndarray) -> float:
    """The cosine of a hit's stored vector and the query (Antfly's own distance if it sent none)."""
    vector = ((hit.get("_source") or {}).get("_embeddings") or {}).get(INDEX)
    if not vector or len(vector) != DIM:
        return 1.0 - float(hit.get("_distance", 1.0))
    return float(np.asarray(vector, np.float32) @ query)


def _conditions(filters: Filters) -> Iterator[dict]:
    """Bleve-style filter clauses that Antfly applies before ranking.  Dates are capture times; a
    circle is its boxes of latitude and longitude (the exact distance is checked on what returns)."""
    kinds, within, after, before, near = (
        filters.kinds, filters.within, filters.after_stamp, filters.before_stamp, filters.near
    )  # fmt: skip
    if kinds:
        yield {"disjuncts": [{"term": kind, "field": "kind"} for kind in kinds]}
    if within:
        folders = []
        for folder in (_text(os.fspath(w)).rstrip("/") or "/" for w in within):
            folders += [{"term": folder, "field": "path"}, {"prefix": folder.rstrip("/") + "/", "field": "path"}]
        yield {"disjuncts": folders}
    if after is not None or before is not None:
        span: dict = {"field": "taken"}
        if after is not None:
            span |= {"min": after, "inclusive_min": True}
        if before is not None:
            span |= {"max": before, "inclusive_max": False}
        yield span
    if near is not None:
        yield {"disjuncts": list(_near_clauses(near))}


def _near_clauses(near: Near) -> Iterator[dict]:
    if near.circle:
        for south, north, west, east in near.boxes():
            yield {
                "conjuncts": [
                    {"field": "latitude", "min": south, "max": north, "inclusive_min": True, "inclusive_max": True},
                    {"field": "longitude", "min": west, "max": east, "inclusive_min": True, "inclusive_max": True},
                ]
            }
        return
    for country, region in near.areas:
        terms = [{"term": country, "field": "country"}] + ([{"term": region, "field": "region"}] if region else [])
        yield {"conjuncts": terms}


def _text(path: str) -> str:
    """A path as JSON can carry it: undecodable bytes written as \\xNN (display only)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def bind_library(catalog: Catalog, url: str) -> tuple[Store, str | None]:
    """Bind a library to a table (remembered): (the store, the table it left, if it moved)."""
    url = str(Address.parse(url))  # a bad address is refused before anything is recorded
    before = catalog.get("store_url")
    with catalog.transaction():
        if not catalog.get("library_id"):
            catalog.set("library_id", uuid.uuid4().hex[:16])
        catalog.set("store_url", url)
    if before and before != url:
        Outbox(catalog).forget_sent()  # the new table knows nothing of this library yet
    store = Store.of(catalog)
    assert store is not None
    return store, before if before != url else None
