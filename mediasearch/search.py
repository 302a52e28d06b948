"""Querying: combine the query terms into one vector, rank files by their best segment.

Every positive term (a text, or an example file of any kind) counts the same:
their unit vectors are averaged.  Negative terms (`--not`) are averaged too and
subtracted at half that weight, which pushes results away from them without
letting one negative word swamp the query.  The result is re-normalised, so a
score is a cosine between the query and a segment.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediasearch import media
from mediasearch.catalog import INDEXED
from mediasearch.errors import EmptyLibrary, ExampleError, MediasearchError, UsageError
from mediasearch.filters import Filters
from mediasearch.index import DamagedIndex
from mediasearch.model import normalize
from mediasearch.paths import under_any
from mediasearch.places import Place
from mediasearch.storage import Storage

if TYPE_CHECKING:
    from mediasearch.textrank import TextMatch

NEGATIVE_WEIGHT = 0.5


@dataclass
class Hit:
    """One result: a file (and its copies elsewhere), its best segment's score and time range."""

    path: str
    kind: str
    score: float
    start: float | None
    end: float | None
    size: int
    mtime: float
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    copies: list[str] = field(default_factory=list)
    matched: str | None = None  # for a video: "image" (a frame) or "audio" (its soundtrack)
    file_id: int | None = None  # the catalog's id: the web page's handle on the file
    host: str | None = None  # another library's machine, for a hit from a shared store
    taken: float | None = None  # capture time (seconds since the epoch): the file's own, else its mtime
    taken_source: str | None = None  # exif, quicktime, tag or mtime
    place: str | None = None  # 'Lisbon, Portugal', from its coordinates
    latitude: float | None = None
    longitude: float | None = None
    words: dict | None = None  # what the query's words matched and where (see textrank.TextMatch.found)

    def as_dict(self, locations: bool = True) -> dict:
        """The hit as JSON gives it; without coordinates where they must not leave (a served API)."""
        data = asdict(self)
        del data["file_id"]
        if self.host is None:
            del data["host"]
        if self.words is None:
            del data["words"]
        if not locations:
            del data["latitude"], data["longitude"]
        return data


def stored_vector_of(library: Storage, path: str) -> np.ndarray | None:
    """A file's own vector if it is indexed and unchanged on disk (an example needs no model then)."""
    row = library.catalog.file(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ExampleError(str(path), f"example file {path} cannot be read ({exc.strerror or exc})") from exc
    if row and row.status == INDEXED and row.matches(st):
        return mean_vector(library.catalog.segment_vectors(row.id))
    return None


def example_hashes(library: Storage, paths: Sequence[Path]) -> frozenset[str]:
    """Content hashes of the example files, so that "more like this" leaves them (and their copies) out."""
    out = set()
    for path in paths:
        absolute = os.path.abspath(os.path.expanduser(path))
        row = library.catalog.file(absolute)
        try:
            out.add(row.hash if row and row.hash and row.matches(os.stat(absolute)) else media.content_hash(absolute))
        except OSError:
            pass  # example_vector has already said what is wrong with it
    return frozenset(out)


def stored_vector(library: Storage, file_id: int) -> tuple[np.ndarray, str | None]:
    """A file's own vector (the mean of its segments) and content hash: "more like this" without a model."""
    row = library.catalog.file_by_id(file_id)
    if row is None or row.status != INDEXED:
        raise MediasearchError(f"no indexed file has id {file_id}")
    return mean_vector(library.catalog.segment_vectors(file_id)), row.hash


def example_hit(library: Storage, file_id: int, vector: np.ndarray) -> Hit | None:
    """The example file itself as a hit (its best segment against the example's vector), so a
    "more like this" answer can show what it started from beside what it found."""
    ids = library.catalog.segment_ids(file_id)
    vectors = library.catalog.vectors_of(ids) if ids else {}
    found = sorted(
        ((float(vectors[sid] @ vector), row) for sid, row in library.catalog.hits(ids).items()), key=lambda p: -p[0]
    )
    hits = _best_files(found, Filters(), 1, complete=True)
    return hits[0] if hits else None


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """One vector for a file's segments (a long recording used as an example): their unit mean."""
    return normalize(vectors.mean(axis=0, keepdims=True))[0]


def combine(positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray]) -> np.ndarray:
    """The query: the mean of the positive terms less half the mean of the negative ones, unit length."""
    if not len(positives):
        raise UsageError("give a query: some words, or an example file")
    vector = np.mean(positives, axis=0)
    if len(negatives):
        vector = vector - NEGATIVE_WEIGHT * np.mean(negatives, axis=0)
    return normalize(vector[None])[0]


# A filter matching at most this many segments is ranked exactly over just those (their vectors
# read back from the index, ~0.1 s for 50,000); a broader one searches the index and filters
# what comes back.
SELECTIVE = 50_000


def search(library: Storage, query: np.ndarray, limit: int = 10, filters: Filters | None = None) -> list[Hit]:
    """Files ranked by their best segment, best first, after filters; copies of one content are one hit."""
    return backend_for(library).search(query, limit, filters or Filters())


def backend_for(library: Storage) -> LocalIndex | SharedIndex:
    """Where a library's vectors are searched: its shared store if it is bound to one, else its own index.
    Both take the same Filters: a new filter is a field there (with its check in Filters.accept) and
    one clause in each backend's query (catalog.matching_segments, store._conditions)."""
    return SharedIndex(library.store) if library.store is not None else LocalIndex(library)


def check_within(library: Storage, within: Sequence[str | os.PathLike]) -> None:
    """Each --in folder must lie inside a library folder or hold one; any other is a mistake
    (a typo, another disk) that would otherwise answer "no results" and look like a search."""
    roots = [root.path for root in library.catalog.roots()]
    for folder in map(os.fspath, within):
        if not any(under_any(folder, [root]) or under_any(root, [folder]) for root in roots):
            known = ", ".join(roots) or "none yet"
            raise UsageError(f"{folder} is not in the library (its folders: {known})")


class LocalIndex:
    """The library's own FAISS index over the catalog's segments; filters on facts are answered by the
    catalog first, and a selective one is ranked exactly over just the segments it picks."""

    def __init__(self, library: Storage):
        self.library = library

    def open(self) -> None:
        self.library.vectors  # noqa: B018 - maps the saved index (a query does it while the text tower loads)

    def is_empty(self) -> bool:
        return self.library.is_empty()

    def search(self, query: np.ndarray, limit: int, filters: Filters) -> list[Hit]:
        check_within(self.library, filters.within)  # (a shared store's folders include other machines')
        vectors = self.library.vectors
        vectors.refresh()
        if vectors.count == 0:
            raise EmptyLibrary("the library is empty: index a folder first (`mediasearch index FOLDER`)")
        chosen = None
        if filters.on_facts:
            chosen = self.library.catalog.matching_segments(filters, SELECTIVE)
            if chosen is not None and not len(chosen):
                return []  # nothing matches: answer at once
        try:
            return self._ranked(query, limit, filters, chosen)
        except DamagedIndex:
            vectors.rebuild()  # the saved file was damaged: answer from the catalog's own vectors
            return self._ranked(query, limit, filters, chosen)

    def _ranked(self, query: np.ndarray, limit: int, filters: Filters, chosen) -> list[Hit]:
        vectors = self.library.vectors
        pool = vectors.count if chosen is None else len(chosen)
        k = min(pool, max(limit * 20, 200))
        while True:
            scores, ids = vectors.search(query, k, chosen)
            facts = self.library.catalog.hits([int(i) for i in ids])
            found = [(score, facts.get(sid)) for score, sid in zip(scores.tolist(), ids.tolist(), strict=True)]
            exhausted = k >= pool or (filters.min_score is not None and scores.size and scores[-1] < filters.min_score)
            hits = _best_files(found, filters, limit, complete=bool(exhausted))
            if hits is not None:
                return hits
            k = min(pool, k * 4)

    def words(self, query, filters: Filters) -> dict:
        """The text half over the catalog's FTS5 index, by content (copies share a key, as in keyed).
        Not filtered here: a file the filters leave out gets no hit, and only hits are ranked."""
        from mediasearch import textrank

        matches = textrank.match(textrank.FtsFinder(self.library.catalog.conn), query)
        hashes = self.library.catalog.hashes_of(list(matches))
        return _by_content((hashes.get(fid) or fid, m) for fid, m in matches.items())

    def keyed(self, query: np.ndarray, limit: int, filters: Filters) -> list[tuple[Hashable, Hit]]:
        """search(), each hit with its content key (its hash, or its id without one)."""
        return self._keys(self.search(query, limit, filters))

    def hits_for(self, missing: dict, query: np.ndarray, filters: Filters) -> list[tuple[Hashable, Hit]]:
        """Keyed hits for files the text half found beyond the vector candidates (fuse's best missing)."""
        return self._keys(_hits_of(self.library, [m.file for m in missing.values()], query, filters))

    def _keys(self, hits: list[Hit]) -> list[tuple[Hashable, Hit]]:
        hashes = self.library.catalog.hashes_of([h.file_id for h in hits])
        return [(hashes.get(h.file_id) or h.file_id, h) for h in hits]


class SharedIndex:
    """The same ranking over the shared store (Antfly), with the filters applied by Antfly before its
    k-NN.  It starts from 100 candidates, not 200: Antfly slows steeply with the limit under a date
    filter (100k items: 58 ms at 40, 311 at 80, 920 at 200), while recall@10 after exact re-scoring
    needs about 80 there (0.65 at 40, 0.97 at 80, 0.99 at 200; measured with benchmarks/store.py)."""

    def __init__(self, store):
        self.store = store

    def open(self) -> None:
        """Nothing to map: the store is asked per query."""

    def is_empty(self) -> bool:
        return False  # the table may hold other libraries' files: ask it

    def search(self, query: np.ndarray, limit: int, filters: Filters) -> list[Hit]:
        return [hit for _key, hit in self.keyed(query, limit, filters)]

    def keyed(self, query: np.ndarray, limit: int, filters: Filters) -> list[tuple[Hashable, Hit]]:
        """The best files, each with its content key (host and hash: _content_key)."""
        k = max(limit * 10, 100)
        while True:
            found = self.store.nearest(query, k, filters)
            hits = _best_files(found, filters, limit, complete=len(found) < k, keyed=True)
            if hits is not None:
                return hits
            k *= 4

    def words(self, query, filters: Filters) -> dict:
        """The text half over Antfly's full-text index of the words sent with each document, after the
        same filters as the vectors, scored by textrank as the local index is; by content key."""
        from mediasearch import textrank

        finder = self.store.finder(filters)
        matches = textrank.match(finder, query)
        return _by_content((_content_key(finder.facts[file]), m) for file, m in matches.items())

    def hits_for(self, missing: dict, query: np.ndarray, filters: Filters) -> list[tuple[Hashable, Hit]]:
        """Keyed hits for files the text half found beyond the vector candidates: every segment of
        their content (by hash) scored exactly, as the local index does from the catalog."""
        hashes = list(dict.fromkeys(key[1] for key in missing if isinstance(key[1], str)))
        found = self.store.segments_of(hashes, query, filters) if hashes else []
        hits = _best_files(found, filters, len(found) + 1, complete=True, keyed=True) or []
        return [(key, hit) for key, hit in hits if key in missing]


def _place_name(city: str | None, region: str | None, country: str | None) -> str | None:
    return Place(city or "", region or "", country).name if country else None


def _by_content(matches: Iterable[tuple[Hashable, TextMatch]]) -> dict:
    """Text matches by content key: copies of one content are one hit, matched as its best-matching copy
    (not as whichever copy an engine returned last: the engines' orders differ)."""
    best: dict = {}
    for key, m in matches:
        if key not in best or m.score > best[key].score:
            best[key] = m
    return best


def _content_key(row: dict) -> tuple:
    """One content on one machine: copies of it are one hit."""
    return (row.get("host"), row["hash"] or ("file", row["file_id"], row["path"]))


def _best_files(
    found: list[tuple[float, dict | None]], filters: Filters, limit: int, complete: bool = False, keyed: bool = False
):
    """The best `limit` files among scored segments (best first), or None when the segments do
    not yet hold limit + 1 files and more may come (complete: none will), so the last one's
    copies are all in.  keyed: (content key, hit) pairs."""
    best: dict = {}
    copies: dict = {}  # key -> {path: the copy's row}
    for score, row in found:
        if row is None or not filters.accept(row, score):
            continue
        key = _content_key(row)
        if key not in best:
            best[key] = Hit(
                row["path"], row["kind"], round(score, 6), row["start"], row["end"], row["size"], row["mtime"],
                row["width"], row["height"], row["duration"], [],
                row["matched"] if row["kind"] == "video" else None, row["file_id"], row.get("host"),
                row.get("taken") or row["mtime"], row.get("taken_source"),
                (row.get("city"), row.get("region"), row.get("country")), row.get("latitude"), row.get("longitude"),
            )  # fmt: skip
        copies.setdefault(key, {}).setdefault(row["path"], row)
    if len(best) <= limit and not complete:
        return None
    hits = sorted(best.items(), key=lambda item: -item[1].score)[:limit]
    for key, hit in hits:  # copies of one content score alike: the original stands for them
        first, *others = sorted(copies[key].values(), key=copy_order)
        hit.path, hit.mtime, hit.file_id = first["path"], first["mtime"], first["file_id"]
        hit.copies = [row["path"] for row in others]
        hit.place = _place_name(*hit.place)  # named for the hits kept only
    return hits if keyed else [hit for _key, hit in hits]


def copy_order(row: dict) -> tuple:
    """Which copy of one content is shown, the others listed as its copies: the oldest first, the
    likeliest original (by mtime, as the catalog knows it; ties: the first indexed, the lowest
    file id; then the path, for copies in a shared store that carry no id here).  One place, so
    another clock (a capture time) can come first in the key."""
    file_id = row.get("file_id")
    return (row["mtime"], file_id is None, file_id or 0, row["path"])


# Reciprocal rank fusion's constant: a file's fused score is 1/(K + its rank) summed over the two rankings,
# so neither half's raw scores (a cosine, a BM25-like sum) need to be put on one scale.
RRF_K = 60


def fuse(library: Storage, vector: np.ndarray, query, limit: int, filters: Filters, backend) -> list[Hit]:
    """The vector ranking fused with the text half (textrank.match, over the backend's full-text index:
    the catalog's FTS5 table, or Antfly's for a shared store).

    Rule: files whose words hold every query word (and phrase) come first, those matching exactly or by
    prefix before those needing a one-letter slip; within each tier, and for every other file, the order
    is reciprocal rank fusion of the vector ranking (by cosine) and the text ranking (by summed idf, among
    the files the filters keep), so a file holding some of the words rises by how many and how rare they
    are.  A query whose words match nothing ranks as the vectors alone.
    """
    from mediasearch import textrank

    matches = backend.words(query, filters) if query is not None else {}
    if not matches:
        return backend.search(vector, limit, filters)
    wanted = textrank.wanted(query)
    by_key = dict(backend.keyed(vector, max(limit, 50), filters))
    missing = _best_missing(matches, by_key, wanted)
    for key, hit in backend.hits_for(missing, vector, filters):
        by_key.setdefault(key, hit)
    vector_rank = {key: r for r, key in enumerate(sorted(by_key, key=lambda key: -by_key[key].score))}
    # equal text scores are ordered by the vectors, not by the order an engine returned them in
    kept = sorted((key for key in matches if key in by_key), key=lambda key: (-matches[key].score, vector_rank[key]))
    text_rank = {key: r for r, key in enumerate(kept)}
    ranked = []
    for key, hit in by_key.items():
        m = matches.get(key)
        fused = 1 / (RRF_K + vector_rank[key]) + (1 / (RRF_K + text_rank[key]) if m else 0.0)
        if m is not None:
            hit.words = {"matched": sorted(m.matched), "found": m.found()}
            _at_the_words(hit)
        ranked.append(((m.tier(wanted) if m else 0), fused, hit))
    ranked.sort(key=lambda t: (-t[0], -t[1]))
    return [hit for _, _, hit in ranked[:limit]]


MISSING_AT_MOST = 1000  # files found by their words alone whose vector scores are looked up: bounded work


def _best_missing(matches: dict, by_key: dict, wanted: int) -> dict:
    """The text matches beyond the vector candidates whose hits are made, the best MISSING_AT_MOST: those
    holding every word first, then by text score (cut in the engine's order, a common word's first 1,000
    files pushed out the few holding every word)."""
    missing = [(key, m) for key, m in matches.items() if key not in by_key]
    missing.sort(key=lambda pair: (-pair[1].tier(wanted), -pair[1].score))
    return dict(missing[:MISSING_AT_MOST])


def _at_the_words(hit: Hit) -> None:
    """A video found by the words in one of its frames is shown at that frame's time."""
    frames = [f for f in hit.words["found"] if f["source"] == "frame" and f["at"] is not None]
    if hit.kind == "video" and frames:
        hit.start = hit.end = frames[0]["at"]
        hit.matched = "image"


def _hits_of(library: Storage, file_ids: list[int], vector: np.ndarray, filters: Filters) -> list[Hit]:
    """Hits for files the text half found beyond the vector candidates: their best segment's cosine."""
    found = []
    for file_id in file_ids:
        ids = library.catalog.segment_ids(file_id)
        if not ids:
            continue
        vectors = library.catalog.vectors_of(ids)
        facts = library.catalog.hits(ids)
        found += [(float(vectors[sid] @ vector), row) for sid, row in facts.items() if sid in vectors]
    found.sort(key=lambda pair: -pair[0])
    return _best_files(found, filters, len(found) + 1, complete=True) or []
