"""Recall of words search on the words corpus, with the small random-weight bundle (only words can rank).

    python benchmarks/words.py                      # makes the corpus in benchmarks/work/words_corpus
    python benchmarks/words.py --corpus DIR --library LIB [--json out.json]

Indexes the corpus (benchmarks/words_corpus.py: pictures with text, most without, names, tags, captions;
101 queries) into a library with tests/fixtures/bundle, whose towers have random weights: their vectors
rank files at random, so a file comes first only because its words matched. Reading text (OCR) is on.
Prints, per kind of case and overall, recall@1 and recall@10 (the expected file, or a copy of it, first /
in the first ten), the index's wall time, and the queries that missed. A library already made is reused
(its next pass reads only what changed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import words_corpus  # noqa: E402

import mediasearch  # noqa: E402

BUNDLE = HERE.parent / "tests" / "fixtures" / "bundle"


def rank_of(hits, expected: str) -> int | None:
    """1-based rank of the expected file among the hits (a copy of it counts), else None."""
    for i, hit in enumerate(hits, start=1):
        if expected in (hit.path, *hit.copies):
            return i
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=HERE / "work" / "words_corpus")
    ap.add_argument("--library", type=Path, default=HERE / "work" / "words_library")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.corpus / "queries.json").exists():
        words_corpus.build(args.corpus)
    queries = json.loads((args.corpus / "queries.json").read_text())
    corpus = args.corpus.resolve()
    started = time.monotonic()
    with mediasearch.open(args.library, model=str(BUNDLE), write=True) as lib:
        summary = lib.index(corpus)
    indexing = time.monotonic() - started
    results = []
    with mediasearch.open(args.library, model=str(BUNDLE)) as lib:
        for q in queries:
            hits = lib.search(q["query"], limit=10)
            found = {"rank": rank_of(hits, str(corpus / q["file"])), "first": hits[0].path if hits else None}
            results.append(q | found)
    report(results, summary, indexing)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


def report(results: list[dict], summary, indexing: float) -> None:
    print(f"index: {summary.added} added, text read in {summary.read} pictures, {indexing:.1f} s")
    print(f"({os.cpu_count()} CPUs)")
    kinds: dict[str, list[dict]] = {}
    for r in results:
        kinds.setdefault(r["kind"], []).append(r)
    print(f"{'kind':12s} {'queries':>7s} {'R@1':>5s} {'R@10':>5s}")
    for kind, rows in sorted(kinds.items()):
        print(f"{kind:12s} {len(rows):7d} {recall(rows, 1):5.2f} {recall(rows, 10):5.2f}")
    print(f"{'all':12s} {len(results):7d} {recall(results, 1):5.2f} {recall(results, 10):5.2f}")
    for r in results:
        if r["rank"] != 1:
            got = f"expected {r['file']} at {r['rank']}, got {r['first']}"
            print(f"  missed first: {r['query']!r} ({r['kind']}): {got}")


def recall(rows: list[dict], k: int) -> float:
    return sum(1 for r in rows if r["rank"] is not None and r["rank"] <= k) / max(1, len(rows))


if __name__ == "__main__":
    main()
