"""Query texts on disk: remembered by default, never when turned off, and forgotten on request (issue 22)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BUNDLE, INPUTS

from mediasearch.cli import cli

SECRET = "my neighbour's lost passport"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cache_holds(cache: Path, text: str) -> list[Path]:
    """Every file under the cache whose bytes hold the text in the clear."""
    return [p for p in cache.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


@pytest.fixture
def indexed(tmp_path, isolated) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "tiny.png")
    assert run("index", str(folder), "--model", str(BUNDLE)).exit_code == 0
    return isolated / "cache"


def test_query_texts_are_remembered_by_default_and_forgotten_on_request(indexed):
    assert run("query", SECRET, "--json").exit_code == 0
    assert cache_holds(indexed, SECRET) == [indexed / "queries.db"], "remembered, in plain text, in queries.db"
    forgot = run("forget", "--queries", "--json")
    assert forgot.exit_code == 0 and json.loads(forgot.stdout)["queries_forgotten"] == 1
    assert cache_holds(indexed, SECRET) == [] and not (indexed / "queries.db").exists()
    again = run("forget", "--queries")
    assert again.exit_code == 0 and "forgot 0 remembered query texts" in again.stderr
    assert run("forget").exit_code == 2, "neither a folder nor --queries is a usage mistake"


@pytest.mark.parametrize("off", ["0", "off", "no"])
def test_remembering_turned_off_writes_no_query_text(indexed, monkeypatch, off):
    monkeypatch.setenv("MEDIASEARCH_REMEMBER_QUERIES", off)
    first = run("query", SECRET, "--json")
    assert first.exit_code == 0 and json.loads(first.stdout), "the query still answers"
    assert cache_holds(indexed, SECRET) == [] and not (indexed / "queries.db").exists()
    monkeypatch.setenv("MEDIASEARCH_REMEMBER_QUERIES", "1")
    assert run("query", SECRET, "--json").stdout == first.stdout, "the same answer, remembered or not"
    assert cache_holds(indexed, SECRET) == [indexed / "queries.db"]
