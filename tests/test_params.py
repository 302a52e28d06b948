"""Dates and kinds as people type them."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
import pytest

from mediasearch.params import KINDS, SCORE, parse_when

NOW = datetime(2026, 11, 26, 15, 30, 0)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-05", datetime(2024, 1, 5)),
        ("2024-01-05T10:00", datetime(2024, 1, 5, 10, 0)),
        ("2024-01-05 10:00:30", datetime(2024, 1, 5, 10, 0, 30)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("12h", NOW - timedelta(hours=12)),
        ("90m", NOW - timedelta(minutes=90)),
        ("6mo", NOW - timedelta(days=180)),
        ("1y", NOW - timedelta(days=365)),
        ("today", datetime(2026, 11, 26)),
        ("Yesterday", datetime(2026, 11, 25)),
        ("now", NOW),
    ],
)
def test_dates_people_write(text, expected):
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["last tuesday", "2024-13-01", "7 parsecs", ""])
def test_what_is_not_a_date(text):
    with pytest.raises(ValueError):
        parse_when(text, NOW)


def test_kinds_by_any_common_name():
    kinds = KINDS
    assert kinds.convert("images", None, None) == ("image",)
    assert kinds.convert("sounds,photos", None, None) == ("audio", "image")
    assert kinds.convert("Recording, pictures, image", None, None) == ("audio", "image")
    assert kinds.convert("movies", None, None) == ("video",)
    with pytest.raises(click.BadParameter, match="unknown kind 'documents'"):
        kinds.convert("documents", None, None)


@pytest.mark.parametrize("text", ["nan", "1.5", "-2", "high"])
def test_scores_are_cosines(text):
    with pytest.raises(click.BadParameter):
        SCORE.convert(text, None, None)
