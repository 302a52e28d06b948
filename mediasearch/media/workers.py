"""Decoding in worker processes, so that a decoder that crashes loses its file, not the pass.

Pillow, libheif, LibRaw, libsndfile and FFmpeg are C libraries reading files
anybody can put in a folder; a segfault in one of them would end the process
that called it, on every pass.  `index` and `watch` therefore decode in a few
worker processes (started by a forkserver that has the decoders imported, so
a worker starts in milliseconds): a worker that dies fails its file with the
signal that killed it ("the decoder crashed (signal 11)"), one that stops
answering for HANG_S is killed and fails its file, and a new worker takes the
next file.

A worker sends segments back as it decodes them, over a pipe that holds about
one segment, so a long recording never sits in memory whole.  A file is
decoded in two steps: a decoder thread asks for its first READ_AHEAD segments
(the worker is then free again); the rest, when there is more, is asked for
when the pass gets to that file, by a worker that decodes the file again and
skips what was sent.  Every worker reserves its memory from the one budget of
the parent (IMAGE_BUDGET), so the budget still bounds all decoders together.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

from mediasearch.errors import DecodeError
from mediasearch.media.decoded import Decoded, failure
from mediasearch.media.pictures import IMAGE_BUDGET
from mediasearch.media.sound import READ_AHEAD

PARKED = 2  # long recordings kept open, paused, in a worker of their own (more are decoded again later)
HANG_S = 120.0  # a worker silent this long (no segment, no request) is taken for hung
POLL_S = 0.2  # how often a wait for a worker looks whether the pass is stopping
# Imported once in the forkserver, which runs each decoder once, so that each worker starts warm.
PRELOAD = ["mediasearch.media.warmup"]


class Stopped(Exception):
    """The pass is stopping: a wait for a worker was given up (not a failure of the file)."""


class DecoderPool:
    """Up to `size` worker processes decoding, one file each at a time, for whichever thread asks; up to
    PARKED more keep a long recording open, paused after its first segments, until the pass gets to it.

    `setup` is run in each worker as it starts; only code can pass it (tests use it to
    make a decoder crash or hang), never a file, an option or the environment.
    """

    def __init__(
        self,
        size: int,
        max_duration: float | None = None,
        setup: Callable[[], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        warn: Callable[[str], None] = lambda message: None,
    ):
        self.size, self.max_duration, self.setup, self.stopping = size, max_duration, setup, stopping
        self.warn = warn
        self.here = False  # no worker could start: decode in this process, as before workers existed
        self._context = _context()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._parked = 0
        self._closed = False
        self._cond = threading.Condition()

    def decode(self, path: str | Path) -> Decoded | DecodeError:
        """A file's first segments (the rest on demand), or its failure: media.decode_or_error, in a worker."""
        if self.here:
            return decode_here(path, self.max_duration)
        try:
            worker = self._take()
        except OSError as exc:  # this interpreter cannot be started again (a path the user may not run, a sandbox)
            return self._without_workers(exc, path)
        try:
            decoded, paused = worker.first(path, self.max_duration, self.stopping)
        except BaseException as exc:
            self._give_back(worker)
            if isinstance(exc, DecodeError):
                return exc
            raise
        if paused and self._park():
            decoded.more = _Parked(self, worker, path, decoded)  # the worker goes on where it paused
            return decoded
        if paused:
            worker.drop()
            decoded.more = self._rest(path, decoded)  # decoded again from the start, when the pass is there
        self._give_back(worker)
        return decoded

    def pictures(self, path: str | Path, times: list[float] | None = None) -> Iterator[tuple[float | None, object]]:
        """What text is read in (ocr.pictures: the picture, or a video's frames at `times`), upright at the size
        reading needs, decoded in a worker as the vector pass's pictures are: a decoder that crashes on it fails
        its text (DecodeError), not the pass.  A frame at a time: one is never held while the next decodes."""
        if not self.here:
            try:
                worker = self._take()
            except OSError as exc:
                self._without_workers(exc)
            else:
                try:
                    yield from worker.request(("pictures", str(path), times), path, Decoded("", []), self.stopping)
                finally:
                    self._give_back(worker)  # killed when the caller stopped halfway (out of step)
                return
        yield from pictures_or_error(str(path), times)

    def _without_workers(self, exc: OSError, path: str | Path | None = None) -> Decoded | DecodeError | None:
        """Once told, every file is decoded in this process: a pass still completes where no worker can start,
        without the protection from decoders that crash."""
        with self._cond:
            told, self.here = self.here, True
        if not told:
            self.warn(f"decoder workers cannot start here ({exc.strerror or exc}): decoding in this process")
        return decode_here(path, self.max_duration) if path is not None else None

    def _rest(self, path: str | Path, decoded: Decoded) -> Iterator:
        """The segments after the first ones, decoded again from the start by a worker that skips those."""
        worker = self._take()
        try:
            rest = (str(path), self.max_duration, len(decoded.ready), None)
            yield from worker.request(rest, path, decoded, self.stopping)
        finally:
            self._give_back(worker)

    def _take(self) -> _Worker:
        """An idle worker, or a new one while fewer than `size` are decoding; else wait for one."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._idle or len(self._all) - self._parked < self.size)
            if self._closed:
                raise Stopped
            if self._idle:
                return self._idle.pop()
            worker = _Worker(self._context, self.setup)
            self._all.add(worker)
            return worker

    def _park(self) -> bool:
        with self._cond:
            if self._parked >= PARKED or self._closed:
                return False
            self._parked += 1
            return True

    def _unpark(self, worker: _Worker) -> None:
        with self._cond:
            self._parked -= 1
        self._give_back(worker)

    def _give_back(self, worker: _Worker) -> None:
        """Back to the idle workers if it is in step (between files), else killed."""
        with self._cond:
            if worker.usable and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                worker.kill()
            self._cond.notify_all()

    def close(self) -> None:
        """Stop every worker now (a stop, or the end of the pass); waits in other threads end at once."""
        with self._cond:
            self._closed = True
            workers, self._idle = list(self._all), []
            self._cond.notify_all()
        for worker in workers:
            worker.kill()


class _Parked:
    """The rest of a recording whose worker paused after its first segments: an iterator that tells the
    worker to go on when iterated, or to drop the file when closed before that."""

    def __init__(self, pool: DecoderPool, worker: _Worker, path: str | Path, decoded: Decoded):
        self.pool, self.worker, self.path, self.decoded = pool, worker, path, decoded
        self.stream: Iterator | None = None
        self.done = False

    def __iter__(self) -> _Parked:
        return self

    def __next__(self):
        if self.done:
            raise StopIteration
        if self.stream is None:
            self.stream = self.worker.resume(self.path, self.decoded, self.pool.stopping)
        try:
            return next(self.stream)
        except BaseException:
            self._finish()
            raise

    def close(self) -> None:
        if self.done:
            return
        if self.stream is None:
            self.worker.drop()
        else:
            self.stream.close()  # mid-file: the worker is out of step and is killed
        self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.pool._unpark(self.worker)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context, setup: Callable[[], None] | None):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, setup), daemon=True, name="mediasearch-decoder")
        _start_without_main(self.process)
        child.close()
        self.usable = True  # between files: ready for the next request
        self._held: list = []  # budget reservations made for the worker, released if it dies
        self._ending = threading.Lock()  # the pool and a decode thread may both end a worker at a stop
        self._ended = False

    def first(self, path, max_duration, stopping) -> tuple[Decoded, bool]:
        """The first READ_AHEAD segments and the facts so far; True when the worker paused with more to come."""
        decoded = Decoded("", [])
        decoded.ready.extend(self.request((str(path), max_duration, 0, READ_AHEAD), path, decoded, stopping))
        return decoded, not self.usable

    def resume(self, path, decoded: Decoded, stopping) -> Iterator:
        """The segments after the pause, to the end of the file."""
        self._send("go", path)
        return self._relay(path, decoded, stopping)

    def drop(self) -> None:
        """Tell a paused worker to forget its file; it is then ready for another."""
        try:
            self.conn.send("drop")
            self.usable = True
        except OSError:
            self.kill()

    def request(self, message: tuple, path, decoded: Decoded, stopping) -> Iterator:
        """What the worker sends for one request, filling in `decoded`'s kind, facts and note: (path,
        max_duration, skip, limit) asks for segments [skip, skip + limit) of a file, the worker pausing after
        them when there is more (and `usable` staying False); ("pictures", path, times) for what is read."""
        self.usable = False  # until the worker says it is done with this file
        self._send(message, path)
        return self._relay(path, decoded, stopping)

    def _send(self, message, path) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise DecodeError(path, self._death()) from exc

    def _relay(self, path, decoded: Decoded, stopping) -> Iterator:
        """The worker's segments until it is done, pauses or fails; its budget requests served meanwhile."""
        try:
            while True:
                message = self._receive(path, stopping)
                if message[0] == "segment":
                    yield message[1]
                elif message[0] == "reserve":
                    self._reserve(message[1])
                elif message[0] == "release":
                    self._held.pop().__exit__(None, None, None)
                elif message[0] == "error":
                    self.usable = True
                    raise DecodeError(path, message[1])
                else:  # ("done" or "paused", kind, facts, note)
                    _, decoded.kind, facts, decoded.note = message[:4]
                    decoded.facts.update(facts)
                    self.usable = message[0] == "done"
                    return
        finally:
            self._release_all()

    def _receive(self, path, stopping) -> tuple:
        """The worker's next message; a dead worker or a hung one fails the file, a stop gives up waiting."""
        waited = 0.0
        try:
            while not self.conn.poll(POLL_S):
                waited += POLL_S
                if stopping():
                    raise Stopped
                if waited >= HANG_S:
                    self.kill()
                    raise DecodeError(path, f"the decoder stopped answering for {HANG_S:.0f} s: given up")
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            raise DecodeError(path, self._death()) from exc

    def _death(self) -> str:
        """Why the worker's pipe closed: the signal that killed it, or its exit status."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"the decoder crashed (signal {-code}, {signal.Signals(-code).name})"
        return f"the decoder crashed (exit status {code})"

    def _reserve(self, cost: int) -> None:
        reservation = IMAGE_BUDGET.reserve(cost)
        reservation.__enter__()
        self._held.append(reservation)
        self.conn.send(("granted",))

    def _release_all(self) -> None:
        while self._held:
            self._held.pop().__exit__(None, None, None)

    def kill(self) -> None:
        """End the worker, once: two threads closing one pipe at once closed its descriptor twice (EBADF)."""
        self.usable = False
        with self._ending:
            if self._ended:
                return
            self._ended = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


_START = threading.Lock()


def _start_without_main(process) -> None:
    """Start a worker that runs mediasearch's code only.  multiprocessing would run the calling program's
    main module again in it (a script without an `if __name__ == "__main__"` guard would then run twice,
    a console script would be imported in every worker): for the instant of the start, __main__ names no
    file, so the worker does not import it."""
    main = sys.modules["__main__"]
    with _START:
        spec, file = getattr(main, "__spec__", None), main.__dict__.pop("__file__", None)
        main.__spec__ = None
        try:
            process.start()
        finally:
            main.__spec__ = spec
            if file is not None:
                main.__file__ = file


def _context():
    """forkserver where there is one (a fork of a small, clean server), else spawn: never a plain fork of a
    process holding threads and an ONNX session."""
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(PRELOAD)
    return context


def prepare() -> None:
    """Start the forkserver now, in the background (its warm-up takes a second or more), so that it is
    ready when the first file is decoded; a pass calls this before it walks and hashes."""
    if _context().get_start_method() == "forkserver":
        threading.Thread(target=_start_forkserver, daemon=True, name="mediasearch-forkserver").start()


def _start_forkserver() -> None:
    from multiprocessing import forkserver

    forkserver.ensure_running()


# ----------------------------------------------------------------------------- in the worker


def decode_here(path: str | Path, max_duration: float | None) -> Decoded | DecodeError:
    """What a worker gives for a file, decoded in this process: its segments and when and where it was taken."""
    from mediasearch import capture, media

    decoded = media.decode_or_error(path, max_duration)
    if not isinstance(decoded, DecodeError):
        try:
            decoded.facts["capture"] = capture.metadata(str(path), decoded.kind)
        except Exception:  # metadata is optional: the file is still indexed, dated by its mtime
            decoded.facts["capture"] = {}
    return decoded


def _serve(conn, setup: Callable[[], None] | None) -> None:
    """A worker's life: decode the files asked for, one at a time, until the pipe closes."""
    from mediasearch import capture, media

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    IMAGE_BUDGET.delegate(lambda cost: _ask(conn, cost), lambda cost: conn.send(("release", cost)))
    if setup is not None:
        setup()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if message[0] == "pictures":
            _send_pictures(conn, *message[1:])
            continue
        path, max_duration, skip, limit = message
        decoded = media.decode_or_error(path, max_duration)
        if skip == 0 and not isinstance(decoded, DecodeError):  # when and where, read here for the same reason
            try:
                decoded.facts["capture"] = capture.metadata(str(path), decoded.kind)
            except Exception:  # metadata is optional: the file is still indexed, dated by its mtime
                decoded.facts["capture"] = {}
        _answer(conn, path, decoded, skip, limit)


def pictures_or_error(path: str, times: list[float] | None) -> Iterator[tuple[float | None, object]]:
    """ocr.pictures, any failure of a decoder raised as the file's DecodeError (failure's reason): in a worker
    and in this process alike, so a reader sees one kind of failure, with the same reasons as the vector pass
    (a file short of memory "is tried again on the next pass")."""
    from mediasearch import ocr

    try:
        yield from ocr.pictures(path, times)
    except DecodeError:
        raise
    except Exception as exc:
        raise failure(path, exc) from exc


def _send_pictures(conn, path: str, times: list[float] | None) -> None:
    """What text is read in, a picture at a time, then ("done", ...); or ("error", reason) when it cannot be
    decoded (after the frames that could).  A broken pipe is not caught: it ends the worker."""
    try:
        for picture in pictures_or_error(path, times):
            conn.send(("segment", picture))
    except DecodeError as exc:
        conn.send(("error", exc.reason))
        return
    conn.send(("done", "image", {}, None))


def _ask(conn, cost: int) -> None:
    conn.send(("reserve", cost))
    conn.recv()  # ("granted",)


def _answer(conn, path: str, decoded: Decoded | DecodeError, skip: int, limit: int | None) -> None:
    """Send segments from `skip` on, then ("done", ...), or ("error", reason).  With a limit, pause after that
    many when there is more: ("paused", ...), then go on if told "go", or drop the file if told "drop"."""
    if isinstance(decoded, DecodeError):
        conn.send(("error", decoded.reason))
        return
    sent = 0
    try:
        for index, segment in enumerate(chain(decoded.ready, decoded.more or ())):
            if index < skip:
                continue
            if limit is not None and sent == limit:
                conn.send(("paused", decoded.kind, decoded.facts, decoded.note))
                if conn.recv() != "go":
                    return
                limit = None
            conn.send(("segment", segment))
            sent += 1
    except (EOFError, OSError):
        raise
    except Exception as exc:  # a reader failing mid-recording: the same reasons as decode_or_error gives
        conn.send(("error", failure(path, exc).reason))
        return
    finally:
        decoded.close()
    conn.send(("done", decoded.kind, decoded.facts, decoded.note))
