"""The work items of a pass: a file seen on disk, a file to embed (a Job), and some of its segments for one
tower's model batch (a Unit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasearch import capture, media, places
from mediasearch.catalog import FileRow
from mediasearch.errors import DecodeError


@dataclass
class Seen:
    path: str
    rel: str
    root_id: int
    size: int
    mtime: float


@dataclass
class Job:
    """A file to embed: where it is, what the catalog had, its content hash, windows already stored."""

    item: Seen
    row: FileRow | None
    digest: str
    kind: str  # as sniffed by triage
    stored: set[tuple] = field(default_factory=set)
    file_id: int | None = None
    failed: bool = False


@dataclass
class Unit:
    """Some segments of one file, all for one tower, embedded together in a model batch."""

    job: Job
    decoded: media.Decoded | DecodeError
    segments: list[media.Segment] = field(default_factory=list)
    last: bool = True

    @property
    def kind(self) -> str:
        """The tower these segments go to."""
        return self.segments[0].modality if self.segments else getattr(self.decoded, "kind", "")

    @property
    def spans(self) -> list:
        return [s.span for s in self.segments]

    @property
    def tensors(self) -> list:
        return [s.tensor for s in self.segments]

    @property
    def modalities(self) -> list[str]:
        return [s.modality for s in self.segments]


def when_and_where(path: str, kind: str | None, mtime: float, read: dict | None = None) -> dict:
    """A file's capture columns: when it was taken and the source of that, its coordinates and place
    (`read`: what capture.metadata found already, in a decoder worker)."""
    found = capture.finish(read, mtime) if read is not None else capture.read(path, kind, mtime)
    place = places.place_of(found.latitude, found.longitude)
    return {
        "taken": found.taken,
        "taken_source": found.source,
        "latitude": found.latitude,
        "longitude": found.longitude,
        "city": place.city if place else None,
        "region": (place.region or None) if place else None,
        "country": place.country if place else None,
    }
