"""What a result must be: one object every face fills and both backends read.

A new filter is a field here (and its check in `accept`, which every hit passes
through), plus one clause in each backend's query: `catalog.matching_segments`
for the local index, `store._conditions` for the shared store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mediasearch.paths import under_any
from mediasearch.places import Near


@dataclass
class Filters:
    """What a result must be.  Filters on facts are also pushed into each backend's own query."""

    kinds: Sequence[str] = ()
    within: Sequence[str] = ()
    after: datetime | None = None
    before: datetime | None = None
    min_score: float | None = None
    exclude_hashes: frozenset[str] = frozenset()
    near: Near | None = None  # where it was taken: a circle, or named regions and countries

    @property
    def on_facts(self) -> bool:
        return bool(self.kinds or self.within or self.after or self.before or self.near)

    def accept(self, facts: dict, score: float) -> bool:
        if self.kinds and facts["kind"] not in self.kinds:
            return False
        if self.within and not under_any(facts["path"], [os.fspath(p) for p in self.within]):
            return False
        taken = facts.get("taken") or facts["mtime"]  # the capture time; the mtime until it is read
        if self.after and taken < self.after.timestamp():
            return False
        if self.before and taken >= self.before.timestamp():
            return False
        if self.near and not self.near.holds(
            facts.get("latitude"), facts.get("longitude"), facts.get("region"), facts.get("country")
        ):
            return False
        if facts.get("hash") in self.exclude_hashes:
            return False
        return self.min_score is None or score >= self.min_score

    @property
    def after_stamp(self) -> float | None:
        return None if self.after is None else self.after.timestamp()

    @property
    def before_stamp(self) -> float | None:
        return None if self.before is None else self.before.timestamp()
