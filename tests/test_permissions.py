"""Permissions and full disks, for real: a non-root user (setpriv) and a small tmpfs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import BUNDLE, INPUTS

NOBODY = 65534
SETPRIV = shutil.which("setpriv")
pytestmark = [
    pytest.mark.slow,  # a process per command, as another user
    pytest.mark.skipif(
        os.geteuid() != 0 or SETPRIV is None, reason="needs root to run commands as another user (setpriv)"
    ),
]


@pytest.fixture
def shared():
    """A folder every user can reach (pytest's own tmp folder is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mediasearch-perm-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def owned_by_nobody(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, NOBODY, NOBODY)
    return path


def mediasearch(*args: str, home: Path, user: int | None = NOBODY) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        MEDIASEARCH_HOME=str(home / "lib"),
        MEDIASEARCH_CACHE=str(home / "cache"),
        HOME=str(home),
    )
    prefix = [SETPRIV, f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    cmd = [*prefix, sys.executable, "-m", "mediasearch", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_a_file_refused_by_permissions_is_retried_once_readable(shared):
    home = owned_by_nobody(shared / "home")
    media = owned_by_nobody(shared / "media")
    shutil.copy(INPUTS / "portrait.png", media / "open.png")
    locked = media / "locked.png"
    shutil.copy(INPUTS / "landscape.jpg", locked)
    locked.chmod(0o000)
    first = mediasearch("index", str(media), "--model", str(BUNDLE), "--json", home=home)
    assert first.returncode == 3, first.stderr  # finished, with a failure: scripts can tell
    summary = json.loads(first.stdout)
    assert summary["added"] == 1 and summary["failed"] == 1
    assert "Permission denied" in summary["failures"][0]["error"]
    locked.chmod(0o644)  # only its permissions change: size and mtime stay the same
    again = json.loads(mediasearch("index", "--json", home=home).stdout)
    assert again["updated"] == 1 and again["failed"] == 0


def test_an_unreadable_subfolder_keeps_its_files(shared):
    home = owned_by_nobody(shared / "home")
    media = owned_by_nobody(shared / "media")
    private = owned_by_nobody(media / "private")
    shutil.copy(INPUTS / "portrait.png", media / "open.png")
    shutil.copy(INPUTS / "landscape.jpg", private / "mine.jpg")
    assert (
        json.loads(mediasearch("index", str(media), "--model", str(BUNDLE), "--json", home=home).stdout)["added"] == 2
    )
    os.chown(private, 0, 0)
    private.chmod(0o700)  # another user locked it
    result = mediasearch("index", "--json", home=home)
    assert result.returncode == 0 and json.loads(result.stdout)["removed"] == 0
    assert "Permission denied" in result.stderr
    status = json.loads(mediasearch("status", "--json", home=home).stdout)
    assert status["counts"]["indexed"] == 2


def test_a_read_only_library_answers_queries_and_status(shared):
    home = owned_by_nobody(shared / "home")
    media = shared / "media"
    media.mkdir()
    shutil.copy(INPUTS / "portrait.png", media / "p.png")
    built = mediasearch("index", str(media), "--model", str(BUNDLE), home=home, user=None)
    assert built.returncode == 0, built.stderr
    library = home / "lib"
    for path in [library, *library.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o500 if path.is_dir() else 0o400)  # an archived library: nobody may write it
    before = {p.name: p.read_bytes() for p in library.iterdir()}
    query = mediasearch("query", "x", "--json", home=home)
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)[0]["path"] == str(media / "p.png")
    assert mediasearch("status", "--json", home=home).returncode == 0
    assert {p.name: p.read_bytes() for p in library.iterdir()} == before
    index = mediasearch("index", home=home)
    assert index.returncode == 1 and "Traceback" not in index.stderr and len(index.stderr.splitlines()) == 1


def test_a_full_disk_is_one_line_and_loses_nothing(shared):
    disk = shared / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        media = shared / "media"
        media.mkdir()
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        for i in range(900):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(media / f"p{i:03}.png")
        result = mediasearch("index", str(media), "--model", str(BUNDLE), home=disk, user=None)
        assert result.returncode == 1, result.stderr
        assert "disk" in result.stderr and "full" in result.stderr and "Traceback" not in result.stderr
        status = mediasearch("status", "--json", home=disk, user=None)
        assert status.returncode == 0, status.stderr
        kept = json.loads(status.stdout)["counts"]["indexed"]
        assert 0 < kept < 900
        query = mediasearch("query", "x", "--json", "-n", "1000", home=disk, user=None)
        assert query.returncode == 0 and len(json.loads(query.stdout)) == kept
    finally:
        subprocess.run(["umount", str(disk)])
