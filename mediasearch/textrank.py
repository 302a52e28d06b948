"""The text half of a query: which files hold its words, how well, and where.

A query word matches a stored word that equals it or starts with it ("RE16" finds "RE16TGK", as OCR may
run words together), and, for words of five letters or more, a stored word one letter away (one
substitution, insertion or deletion), worth less.  Each word's weight is its rarity among the files
(an idf: rare words count more), times how well it matched: exact 1, prefix 0.8, one letter off 0.5.
A quoted phrase must match as a phrase.  Stop words never match alone (mediasearch.words.STOP).
A file whose text matches a negative word (`-word`) gets no text match at all.

Two engines find the candidate texts: the catalog's FTS5 index of `texts` (FtsFinder) and, for a library
bound to a shared store, Antfly's full-text index of the same words sent with each document
(store.StoreWords).  Either only narrows the search; which query words a text holds and the score are
decided here, once, so both engines rank alike.  The fusion with the vectors is in search.fuse.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol

from mediasearch.query import Query
from mediasearch.words import STOP, fold

EXACT, PREFIX, SLIP = 1.0, 0.8, 0.5
ROWS_PER_WORD = 5_000  # text rows a single query word may pick up: bounded work on a common word
SNIPPET = 120
_PART = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Row:
    """One text of a file as a finder returns it: the file (a catalog id, or a library and id in a shared
    store), the text's own key (to list each place once, in order), where it was found, as shown, and
    its words as matched (mediasearch.words.indexed: folded, space-separated)."""

    file: Hashable
    key: Hashable
    source: str
    at: float | None
    shown: str
    words: str


@dataclass
class TextMatch:
    """What a file's words matched: a score, which query words, whether all, and where."""

    file: Hashable
    score: float = 0.0
    matched: dict[str, float] = field(default_factory=dict)  # query word -> best quality
    where: dict[Hashable, tuple[str, float | None, str]] = field(default_factory=dict)  # text -> (source, at, shown)

    def tier(self, wanted: int) -> int:
        """2: every query word matched exactly or as a prefix; 1: every one, some a letter off; 0: some."""
        if len(self.matched) < wanted:
            return 0
        return 2 if min(self.matched.values()) >= PREFIX else 1

    def found(self) -> list[dict]:
        """Where the words were found, for --json and the page: source, time, a short snippet."""
        words = set(self.matched)
        out = []
        for _key, (source, at, shown) in sorted(self.where.items(), key=lambda item: item[0]):
            out.append({"source": source, "at": at, "snippet": snippet(shown, words)})
        return out


def query_words(query: Query) -> tuple[list[str], list[list[str]], list[str]]:
    """(words, phrases, negative words) of a query, folded, stop words dropped from the words."""
    words: list[str] = []
    phrases: list[list[str]] = []
    negatives: list[str] = []
    for term in query.terms:
        parts = _PART.findall(fold(term.text))
        if term.negative:
            negatives += [p for p in parts if p not in STOP]
        elif term.phrase and len(parts) > 1:
            phrases.append(parts)
        else:
            words += [p for p in parts if p not in STOP and p not in words]
    return words, phrases, negatives


class Finder(Protocol):
    """Where the text half finds candidate texts: the catalog's FTS5 table (FtsFinder) or a shared store's
    full-text index (store.StoreWords).  A finder only narrows the search, bounded per word; which query
    words a text holds, and how well, is decided here, one way for both engines."""

    def total(self) -> int:
        """How many files (or documents) the rarity of a word is counted against."""
        ...

    def word(self, word: str) -> list[Row]:
        """Texts holding a word that starts with `word` or (5 letters or more) is one letter off it."""
        ...

    def phrase(self, phrase: list[str]) -> list[Row]:
        """Texts holding every word of the phrase (whether adjacent is decided here)."""
        ...

    def starting(self, word: str) -> list[Row]:
        """Texts holding a word that starts with `word` (a negative word takes their files away)."""
        ...


def match(finder: Finder, query: Query) -> dict[Hashable, TextMatch]:
    """Files whose words match the query's, by the finder's file identity (empty when the query has no
    matchable word): each query word scored by its rarity and how well each file's texts hold it."""
    words, phrases, negatives = query_words(query)
    if not words and not phrases:
        return {}
    held: list[tuple[str, list[tuple[Row, float]]]] = []
    for word in words:
        judged = ((row, quality(word, row.words.split())) for row in finder.word(word))
        held.append((word, [(row, q) for row, q in judged if q]))
    for phrase in phrases:
        rows = finder.phrase(phrase)
        held.append((" ".join(phrase), [(row, EXACT) for row in rows if holds_phrase(phrase, row.words.split())]))
    if not any(hits for _, hits in held):
        return {}
    total = max(1, finder.total())  # counted only when something matched (a request to a shared store)
    found: dict[Hashable, TextMatch] = {}
    for key, hits in held:
        _score(found, key, hits, total)
    for word in negatives:
        for row in finder.starting(word):
            if any(w.startswith(word) for w in row.words.split()):
                found.pop(row.file, None)
    return found


def wanted(query: Query) -> int:
    """How many query words and phrases a file must match to match them all."""
    words, phrases, _ = query_words(query)
    return len(words) + len(phrases)


def quality(word: str, words: list[str]) -> float:
    """How well a text's words hold one query word: exact, prefix, one letter off (5+ letters), or 0."""
    if word in words:
        return EXACT
    if any(w.startswith(word) for w in words):
        return PREFIX
    if len(word) >= 5 and any(one_letter_off(w, word) for w in words):
        return SLIP
    return 0.0


def holds_phrase(phrase: list[str], words: list[str]) -> bool:
    """The phrase's words stand next to each other, in order, in the text."""
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


class FtsFinder:
    """Candidate texts from the catalog's FTS5 index of `texts` (a file is its catalog id)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def total(self) -> int:
        return self.conn.execute("SELECT count(*) FROM files").fetchone()[0]

    def word(self, word: str) -> list[Row]:
        rows = self._rows('"' + word + '"*')
        if len(word) >= 5:
            for near in self._slips(word):
                rows += self._rows('"' + near + '"')
        return rows

    def phrase(self, phrase: list[str]) -> list[Row]:
        return self._rows('"' + " ".join(phrase) + '"')

    def starting(self, word: str) -> list[Row]:
        return self._rows('"' + word + '"*')

    def _rows(self, expression: str) -> list[Row]:
        found = self.conn.execute(
            "SELECT t.file_id, t.id, t.source, t.at, t.shown, t.words FROM texts_fts "
            "JOIN texts t ON t.id = texts_fts.rowid WHERE texts_fts MATCH ? LIMIT ?",
            (expression, ROWS_PER_WORD),
        ).fetchall()
        return [Row(*r) for r in found]

    def _slips(self, word: str) -> list[str]:
        """Stored words one letter away from `word` (not equal to it, nor starting with it)."""
        n = len(word)
        rows = self.conn.execute(
            "SELECT term FROM texts_vocab WHERE length(term) BETWEEN ? AND ? AND one_letter_off(term, ?)",
            (n - 1, n + 1, word),
        ).fetchall()
        return [r[0] for r in rows if not r[0].startswith(word)]


def one_letter_off(a: str, b: str) -> bool:
    """True when a and b differ by exactly one substitution, insertion or deletion."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1 :]


def register(conn: sqlite3.Connection) -> None:
    """The SQL function the slip search needs, on a connection: once, as the catalog opens it (SQLite
    refuses to create a function while another thread's statement is active: "Error creating function")."""
    conn.create_function("one_letter_off", 2, one_letter_off, deterministic=True)


def _score(found: dict[Hashable, TextMatch], key: str, hits: list[tuple[Row, float]], total: int) -> None:
    """Add one query word's matches: its idf over the files it matched, times the best quality per file."""
    best: dict[Hashable, float] = {}
    for row, quality in hits:
        best[row.file] = max(best.get(row.file, 0.0), quality)
    if not best:
        return
    idf = math.log(1 + total / len(best))
    for row, quality in hits:
        m = found.setdefault(row.file, TextMatch(row.file))
        if quality >= best[row.file]:
            m.where.setdefault(row.key, (row.source, row.at, row.shown))
    for file, quality in best.items():
        m = found[file]
        m.matched[key] = max(m.matched.get(key, 0.0), quality)
        m.score += idf * quality


def snippet(shown: str, words: set[str]) -> str:
    """The part of a text around its first matched word, on one line, at most SNIPPET characters."""
    flat = " ".join(shown.split())
    folded = [fold(w) for w in flat.split(" ")]
    first = next((i for i, w in enumerate(folded) if any(q.split()[0] in w for q in words)), 0)
    start = max(0, len(" ".join(flat.split(" ")[:first])) - SNIPPET // 3)
    text = flat[start : start + SNIPPET]
    return ("…" if start else "") + text + ("…" if start + SNIPPET < len(flat) else "")
