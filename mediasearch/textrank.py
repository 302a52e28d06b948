"""The text half of a query: which files hold its words, how well, and where (FTS5 over `texts`).

A query word matches a stored word that equals it or starts with it ("RE16" finds "RE16TGK", as OCR may
run words together), and, for words of five letters or more, a stored word one letter away (one
substitution, insertion or deletion), worth less.  Each word's weight is its rarity among the files
(an idf: rare words count more), times how well it matched: exact 1, prefix 0.8, one letter off 0.5.
A quoted phrase must match as a phrase.  Stop words never match alone (mediasearch.words.STOP).
A file whose text matches a negative word (`-word`) gets no text match at all.

The fusion with the vectors is in search.fuse.
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass, field

from mediasearch.query import Query
from mediasearch.words import STOP, fold

EXACT, PREFIX, SLIP = 1.0, 0.8, 0.5
ROWS_PER_WORD = 5_000  # text rows a single query word may pick up: bounded work on a common word
SNIPPET = 120
_PART = re.compile(r"[^\W_]+")


@dataclass
class TextMatch:
    """What a file's words matched: a score, which query words, whether all, and where."""

    file_id: int
    score: float = 0.0
    matched: dict[str, float] = field(default_factory=dict)  # query word -> best quality
    where: dict[int, tuple[str, float | None, str]] = field(default_factory=dict)  # text row -> (source, at, shown)

    def tier(self, wanted: int) -> int:
        """2: every query word matched exactly or as a prefix; 1: every one, some a letter off; 0: some."""
        if len(self.matched) < wanted:
            return 0
        return 2 if min(self.matched.values()) >= PREFIX else 1

    def found(self) -> list[dict]:
        """Where the words were found, for --json and the page: source, time, a short snippet."""
        words = set(self.matched)
        out = []
        for source, at, shown in self.where.values():
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


def match(conn: sqlite3.Connection, query: Query) -> dict[int, TextMatch]:
    """Files whose words match the query's, by file id (empty when the query has no matchable word)."""
    words, phrases, negatives = query_words(query)
    if not words and not phrases:
        return {}
    total = max(1, conn.execute("SELECT count(*) FROM files").fetchone()[0])
    found: dict[int, TextMatch] = {}
    for word in words:
        hits = _word_rows(conn, word)
        _score(found, word, hits, total)
    for phrase in phrases:
        key = " ".join(phrase)
        rows = _rows(conn, '"' + key + '"')
        _score(found, key, [(r, EXACT) for r in rows], total)
    for word in negatives:
        for file_id, *_ in _rows(conn, '"' + word + '"*'):
            found.pop(file_id, None)
    return found


def wanted(query: Query) -> int:
    """How many query words and phrases a file must match to match them all."""
    words, phrases, _ = query_words(query)
    return len(words) + len(phrases)


def _word_rows(conn: sqlite3.Connection, word: str) -> list[tuple[tuple, float]]:
    """Text rows matching one query word, each with its match quality (exact, prefix or a slip)."""
    out = []
    for row in _rows(conn, '"' + word + '"*'):
        out.append((row, EXACT if word in row[3].split() else PREFIX))
    if len(word) >= 5:
        for near in _slips(conn, word):
            out += [(row, SLIP) for row in _rows(conn, '"' + near + '"')]
    return out


def _rows(conn: sqlite3.Connection, expression: str) -> list[tuple]:
    return conn.execute(
        "SELECT t.file_id, t.source, t.at, t.words, t.shown, t.id FROM texts_fts "
        "JOIN texts t ON t.id = texts_fts.rowid WHERE texts_fts MATCH ? LIMIT ?",
        (expression, ROWS_PER_WORD),
    ).fetchall()


def _slips(conn: sqlite3.Connection, word: str) -> list[str]:
    """Stored words one letter away from `word` (not equal to it, nor starting with it)."""
    n = len(word)
    rows = conn.execute(
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


def _score(found: dict[int, TextMatch], key: str, hits: list[tuple[tuple, float]], total: int) -> None:
    """Add one query word's matches: its idf over the files it matched, times the best quality per file."""
    best: dict[int, float] = {}
    for row, quality in hits:
        best[row[0]] = max(best.get(row[0], 0.0), quality)
    if not best:
        return
    idf = math.log(1 + total / len(best))
    for row, quality in hits:
        m = found.setdefault(row[0], TextMatch(row[0]))
        if quality >= best[row[0]]:
            m.where.setdefault(row[5], (row[1], row[2], row[4]))
    for file_id, quality in best.items():
        m = found[file_id]
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
