"""Command-line values as people type them: dates and kinds.

Dates: `2024-01-05`, `2024-01-05T10:00`, `2024-01-05 10:00:30`, relative
`90m`, `12h`, `7d`, `2w`, `6mo`, `1y` (that long ago), and `now`, `today`,
`yesterday`.  Kinds: one vocabulary, `image` and `audio` (the words `--json`
and `status` use), with plurals and the other common names accepted.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import click

KIND_NAMES = {
    "image": ("image", "images", "img", "picture", "pictures", "pic", "pics", "photo", "photos"),
    "audio": ("audio", "sound", "sounds", "recording", "recordings", "music", "song", "songs", "voice"),
    "video": ("video", "videos", "movie", "movies", "clip", "clips", "film", "films"),
}
_ALIASES = {name: kind for kind, names in KIND_NAMES.items() for name in names}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(mo|m|h|d|w|y)$")
_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "mo": 30 * 86_400, "y": 365 * 86_400}

WHEN_HELP = (
    "a date (2024-01-05), a date and time (2024-01-05T10:00), or how long ago "
    "(90m, 12h, 7d, 2w, 6mo, 1y, today, yesterday)"
)


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A moment in local time from what people write; ValueError, saying the forms, if it is none."""
    try:
        moment = _moment(text, now)
    except (ValueError, OverflowError):  # OverflowError: "1e9y" ago is before any calendar
        raise ValueError(f"{text!r} is not a date; use {WHEN_HELP}") from None
    try:
        moment.timestamp()  # what filters compare; year 1 in local time has none
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{text!r} is out of the range of dates this system can compare") from None
    return moment


def _moment(text: str, now: datetime | None) -> datetime:
    now = now or datetime.now()
    word = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if word in ("now",):
        return now
    if word == "today":
        return midnight
    if word == "yesterday":
        return midnight - timedelta(days=1)
    match = _RELATIVE.match(word)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    return datetime.fromisoformat(text.strip().replace(" ", "T", 1) if " " in text.strip() else text.strip())


def parse_kinds(text: str) -> tuple[str, ...]:
    """Kinds from a comma-separated list of any of their names; ValueError names the unknown one."""
    kinds = []
    for word in filter(None, (w.strip().lower() for w in text.split(","))):
        if word not in _ALIASES:
            raise ValueError(f"unknown kind {word!r}: use image, audio or video (or photos, sounds, movies...)")
        kinds.append(_ALIASES[word])
    return tuple(dict.fromkeys(kinds))


def parse_score(text) -> float:
    """A cosine score: a number from -1 to 1 (NaN is not one)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    if math.isnan(number) or not -1.0 <= number <= 1.0:
        raise ValueError(f"{text!r} is not a cosine score: use a number from -1 to 1")
    return number


def parse_hours(text) -> float:
    """A length of recording in hours, at least a minute (a shorter cap would index nothing useful)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number of hours") from None
    if math.isnan(number) or number < 1 / 60:
        raise ValueError(f"{text!r} is less than a minute: give hours (0.5 is half an hour)")
    return number


class Parsed(click.ParamType):
    """A click type over one of the parsers above: its ValueError is the usage error shown."""

    def __init__(self, name: str, parse):
        self.name, self.parse = name, parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_near(text: str):
    """A place filter: LAT,LON[,KM] or a city, region or country (the gazetteer loads only for this)."""
    from mediasearch.places import parse_near as parse

    return parse(text)


WHEN, KINDS, SCORE = Parsed("when", parse_when), Parsed("kind", parse_kinds), Parsed("score", parse_score)
HOURS = Parsed("hours", parse_hours)
NEAR_HELP = (
    "LAT,LON[,KM] (a circle, 25 km unless given), a city (a circle of 25 km around it; the most populous "
    "of the name unless qualified: 'Porto, Portugal'), or a region or country (files whose place lies in it)"
)
