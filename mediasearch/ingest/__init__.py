"""Bringing the library in step with folders: walk, compare, reuse, embed, commit.

One pass (`index`) and the watcher share the same per-file logic: a file whose
size and mtime match the catalog costs nothing; new or changed content is
hashed, and a hash the catalog already knows reuses its vectors (renames,
moves, copies) without the model; everything else is decoded and embedded in
batches.  Each batch is one SQLite transaction, so an interrupted run loses at
most the batch in flight.  A long recording is committed a few windows at a
time, so stopping keeps what was embedded and the next pass resumes it.

The rooms of a pass, one module each: changes (what is new, changed or gone), triage (what needs no
model), pipeline (decoding ahead of the model, batches), commits (what each step writes), text (OCR after
the vectors) and catchup (an older library brought up to date without embedding).
"""

from mediasearch.ingest.indexer import Indexer
from mediasearch.ingest.summary import Change, Summary

__all__ = ["Change", "Indexer", "Summary"]
