"""What every decoder returns: segments of model input with their times, and facts about the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mediasearch.errors import DecodeError

Span = tuple[float | None, float | None]


class Segment(NamedTuple):
    """One piece of a file for the model: where it is, its model input, and which tower takes it."""

    span: Span
    tensor: np.ndarray
    modality: str  # "image" or "audio"; a video has both


@dataclass
class Decoded:
    """What one file gives the model: segments and some facts.

    `ready` holds the segments decoded so far; a long recording (or a video)
    keeps the rest in `more`, read on demand, so it never sits in memory whole.
    `note` says when a file could only be read in part (a damaged tail, the
    duration cap).
    """

    kind: str
    ready: list[Segment]
    facts: dict = field(default_factory=dict)
    more: Iterator[Segment] | None = None
    note: str | None = None

    @property
    def tensors(self) -> list[np.ndarray]:
        return [s.tensor for s in self.ready]

    @property
    def spans(self) -> list[Span]:
        return [s.span for s in self.ready]

    @property
    def modalities(self) -> list[str]:
        return [s.modality for s in self.ready]

    def read_all(self) -> Decoded:
        """Every segment in `ready` (for short jobs: `embed`, a query example)."""
        if self.more is not None:
            self.ready.extend(self.more)
            self.more = None
        return self

    def close(self) -> None:
        if self.more is not None:
            self.more.close()  # type: ignore[attr-defined]
            self.more = None


# How a failure for want of memory begins: such a file is tried again on the next pass, when memory allows.
OUT_OF_MEMORY = "not enough memory to decode"
_ALLOCATION_FAILURES = ("unable to allocate", "cannot allocate memory", "out of memory", "memory allocation failed")


def out_of_memory(exc: BaseException) -> bool:
    """Whether an error is an allocation that failed (Python's, numpy's, FFmpeg's, LibRaw's, libsndfile's),
    which says nothing about the file: it must never be recorded as the file being damaged."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "LibRawUnsufficientMemoryError":
        return True
    return any(words in str(exc).lower() for words in _ALLOCATION_FAILURES)


def failure(path, exc: Exception) -> DecodeError:
    """Any error of a decoder as the file's one-line failure."""
    if isinstance(exc, DecodeError):
        return exc
    if out_of_memory(exc):
        return DecodeError(path, f"{OUT_OF_MEMORY} it ({first_line(exc)}); it is tried again on the next pass")
    return DecodeError(path, f"could not be decoded ({type(exc).__name__}: {first_line(exc)})")  # a decoder bug


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line of at most 200 characters, for a per-file reason."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
