"""The decode pipeline: files decoded in worker processes ahead of the model, cut into model batches,
embedded, and handed to the commit rules one batch at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from itertools import chain, islice

import numpy as np

from mediasearch import media
from mediasearch.catalog import DIM, to_blob
from mediasearch.errors import DecodeError
from mediasearch.ingest.constants import BATCH_FILES, DECODERS
from mediasearch.ingest.units import Job, Unit
from mediasearch.media.workers import POLL_S, DecoderPool, Stopped
from mediasearch.model import TOWERS


def _chunks(job: Job, decoded: media.Decoded) -> Iterator[Unit]:
    """A decoded file as units of one tower's model batch at most, skipping segments already stored."""
    pending: list[media.Segment] = []
    for segment in chain(decoded.ready, decoded.more or ()):
        if segment.span in job.stored:
            continue
        if pending and (
            segment.modality != pending[0].modality or len(pending) == TOWERS[pending[0].modality].max_batch
        ):
            yield Unit(job, decoded, pending, last=False)
            pending = []
        pending.append(segment)
    yield Unit(job, decoded, pending, last=True)


def _next_batch(units: Iterator[Unit]) -> list[Unit]:
    """Units until one model batch of either tower is full, or BATCH_FILES files are in."""
    batch: list[Unit] = []
    ready = {"image": 0, "audio": 0}
    files: set[int] = set()
    for unit in units:
        batch.append(unit)
        files.add(id(unit.job))
        if not isinstance(unit.decoded, DecodeError):
            ready[unit.kind] += len(unit.tensors)
        if len(files) >= BATCH_FILES or any(n >= TOWERS[k].max_batch for k, n in ready.items()):
            break
    return batch


class Pipeline:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

    def _embed_all(self, jobs: list[Job]) -> Iterator[tuple[Job, int]]:
        """Decode in threads, ahead of the model; embed and commit one model batch at a time.

        Files are handed to the decoder threads one by one; a batch closes as
        soon as it fills one model batch (16 pictures or 4 audio windows) or
        holds 16 files, so the model starts early, and a stop request is seen
        between batches (about a second apart with the full-size model).
        """
        if not jobs:
            return
        # Decoder threads each wait on a worker process; one worker more serves the rest of the recording
        # the pass is on (see media/workers.py), so a thread never waits on a worker the pass holds.
        workers = DecoderPool(
            DECODERS + 1, self.max_duration, self.decoder_setup, lambda: self.stopping, warn=self.warn
        )  # fmt: skip
        self._load_model_meanwhile()
        pool = ThreadPoolExecutor(DECODERS)
        window: deque = deque()
        try:
            upcoming = iter(jobs)
            for job in islice(upcoming, 2 * BATCH_FILES):
                window.append((job, pool.submit(workers.decode, job.item.path)))
            units = self._units(window, upcoming, pool, workers)
            while not self.stopping:
                batch = _next_batch(units)
                if not batch:
                    return
                self._embed_batch(batch)
                for unit in batch:
                    yield unit.job, max(1, len(unit.spans))
        finally:
            workers.close()  # first: a thread waiting on a worker is then answered at once
            pool.shutdown(wait=True, cancel_futures=True)
            for _job, future in window:
                finished = future.done() and not future.cancelled() and future.exception() is None
                if finished and isinstance(future.result(), media.Decoded):
                    future.result().close()

    def _units(self, window: deque, upcoming: Iterator[Job], pool, workers: DecoderPool) -> Iterator[Unit]:
        """Units in file order: a picture whole, a recording a model batch of windows at a time.

        Waits look at `stopping` every POLL_S, so a stop is seen while a decoder is busy (ends at once).
        """
        while window:
            job, future = window[0]
            decoded = self._result(future)
            if decoded is None:
                return
            window.popleft()
            for nxt in islice(upcoming, 1):
                window.append((nxt, pool.submit(workers.decode, nxt.item.path)))
            if isinstance(decoded, DecodeError):
                yield Unit(job, decoded)
                continue
            try:
                yield from _chunks(job, decoded)
            except Stopped:
                return
            except Exception as exc:  # a reader failing mid-recording, a worker dying: this file alone
                yield Unit(job, media.failure(job.item.path, exc))
            finally:
                decoded.close()

    def _result(self, future) -> media.Decoded | DecodeError | None:
        """A decoder thread's result, or None once the pass is stopping."""
        while not self.stopping:
            try:
                return future.result(timeout=POLL_S)
            except FutureTimeout:
                continue
            except Stopped:
                return None
        return None

    def _embed_batch(self, batch: list[Unit]) -> None:
        runnable = [u for u in batch if isinstance(u.decoded, DecodeError) or u.tensors]
        results = dict.fromkeys(map(id, batch), np.zeros((0, DIM), np.float32))
        if runnable:
            inputs = [u.decoded if isinstance(u.decoded, DecodeError) else u for u in runnable]
            outputs = self.embedder.embed_each([u.job.item.path for u in runnable], inputs)
            results.update(zip(map(id, runnable), outputs, strict=True))
            self.summary.batches += 1
        self._commit_batch(batch, [results[id(u)] for u in batch])

    def _commit_batch(self, batch: list[Unit], results: list) -> None:
        writes = []
        for unit, result in zip(batch, results, strict=True):
            if unit.job.failed:
                continue
            if isinstance(result, DecodeError):
                self._fail(unit.job.item, media.kind_of(unit.job.item.path), unit.job.digest, result.reason)
                unit.job.failed = True
                continue
            writes.append(
                (
                    unit,
                    [(s, e, to_blob(v), m) for (s, e), v, m in zip(unit.spans, result, unit.modalities, strict=True)],
                )
            )
        self._commit_units(writes)
