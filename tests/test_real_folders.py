"""Real folders: odd names, links, missing drives, hostile audio, damaged libraries, stopping."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import BUNDLE, INPUTS, wait_for_catalog

from mediasearch import media
from mediasearch.catalog import Catalog
from mediasearch.cli import cli
from mediasearch.errors import DecodeError
from mediasearch.paths import library_dir
from mediasearch.terminal import Terminal


def run(*args, terminal: Terminal | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, obj=terminal)


def index(folder, *extra):
    result = run("index", str(folder), "--model", str(BUNDLE), "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- names


def test_a_name_that_is_not_utf8_is_indexed_and_given_back_exactly(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9-\xff.png"  # Latin-1 bytes from an old USB stick
    shutil.copy(INPUTS / "portrait.png", raw)
    assert index(folder)["added"] == 1
    nul = subprocess.run(
        [sys.executable, "-m", "mediasearch", "query", "x", "--paths", "-0"],
        capture_output=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert nul.returncode == 0, nul.stderr
    assert nul.stdout == raw + b"\0"
    rows = json.loads(run("query", "x", "--json").stdout)
    assert base64.b64decode(rows[0]["path_bytes"]) == raw and "\ufffd" in rows[0]["path"]
    assert run("query", "x", "--paths").stdout == str(folder) + "/caf\\xe9-\\xff.png\n"
    assert index(folder)["unchanged"] == 1


def test_control_characters_cannot_forge_output_lines(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    evil = folder / "a\n0.9999\tpasswd\x1b[2J.png"
    shutil.copy(INPUTS / "portrait.png", evil)
    index(folder)
    for args in (["--paths"], [], ["-n", "1"]):
        out = run("query", "x", *args).stdout
        assert out.count("\n") == 1 and "\x1b" not in out and "\\n0.9999\\tpasswd\\e[2J" in out
    table = run("query", "x", terminal=Terminal(stdout_isatty=True)).stdout
    assert table.count("\n") == 2 and "\x1b[2J" not in table, "a header and one row"
    rows = json.loads(run("query", "x", "--json").stdout)
    assert rows[0]["path"] == str(evil)
    assert run("query", "x", "--paths", "-0").stdout_bytes == os.fsencode(evil) + b"\0"


# ----------------------------------------------------------------------------- links


def test_links_are_not_followed_unless_asked_and_never_into_proc(tmp_path):
    folder, outside = tmp_path / "media", tmp_path / "someone-else"
    folder.mkdir()
    outside.mkdir()
    shutil.copy(INPUTS / "portrait.png", folder / "mine.png")
    shutil.copy(INPUTS / "tiny.png", outside / "theirs.png")
    (folder / "to-root").symlink_to("/")
    (folder / "to-proc").symlink_to("/proc")
    (folder / "elsewhere").symlink_to(outside)
    (folder / "file-link.png").symlink_to(outside / "theirs.png")
    summary = index(folder)
    assert (summary["added"], summary["ignored"], summary["failed"]) == (1, 0, 0)
    result = run("index", str(folder), "--follow-links", "--json", "--exclude", "to-root")
    summary = json.loads(result.stdout)
    assert summary["added"] == 2 and "pseudo-filesystem" in result.stderr
    paths = {p for r in json.loads(run("query", "x", "--json").stdout) for p in [r["path"], *r["copies"]]}
    assert str(folder / "elsewhere" / "theirs.png") in paths, "stored under the path the user indexed"
    inside = json.loads(run("query", "x", "--json", "--in", str(folder / "elsewhere")).stdout)
    assert [r["path"] for r in inside] == [str(folder / "elsewhere" / "theirs.png")]


# ----------------------------------------------------------------------------- the library's data


def test_library_is_private_whatever_the_umask(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    old = os.umask(0)
    try:
        index(folder)
    finally:
        os.umask(old)
    lib = library_dir()
    assert stat.S_IMODE(lib.stat().st_mode) == 0o700
    with sqlite3.connect(lib / "catalog.db") as conn:  # 2 KB vectors pack 7 to a page, not 1
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16_384
    for name in ("catalog.db", "vectors.faiss", "vectors.json", "writer.lock"):
        assert stat.S_IMODE((lib / name).stat().st_mode) == 0o600, name


def test_a_missing_folder_is_offline_and_keeps_its_files(tmp_path):
    drive = tmp_path / "usb"
    drive.mkdir()
    for name in ("landscape.jpg", "tone48k.wav"):
        shutil.copy(INPUTS / name, drive / name)
    index(drive)
    drive.rename(tmp_path / "unplugged")
    result = run("index", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["removed"] == 0 and summary["offline"] == [str(drive)]
    assert "is offline" in result.stderr
    status = json.loads(run("status", "--json").stdout)
    assert status["counts"]["indexed"] == 2 and status["roots"][0]["state"] == "offline"
    drive.mkdir()  # the mount point is back, empty: an unmounted drive looks like this
    assert json.loads(run("index", "--json").stdout)["removed"] == 0
    drive.rmdir()
    (tmp_path / "unplugged").rename(drive)
    summary = json.loads(run("index", "--json").stdout)
    assert summary["unchanged"] == 2 and summary["added"] == 0 and summary["offline"] == []
    assert json.loads(run("status", "--json").stdout)["roots"][0]["state"] == "online"


def test_forget_is_the_way_to_drop_an_offline_folder(tmp_path):
    drive = tmp_path / "usb"
    drive.mkdir()
    shutil.copy(INPUTS / "tiny.png", drive / "t.png")
    index(drive)
    shutil.rmtree(drive)
    run("index")
    assert run("forget", str(drive)).exit_code == 0
    assert json.loads(run("status", "--json").stdout)["segments"] == 0


def test_a_damaged_catalog_is_one_line(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    index(folder)
    (library_dir() / "catalog.db").write_bytes(b"this is not a database" * 100)
    for args in (["status"], ["query", "x"], ["index"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "damaged" in result.output, result.output


def test_a_damaged_vector_file_is_not_served(tmp_path):
    folder = tmp_path / "media"
    shutil.copytree(Path(__file__).parent.parent / "sample_media", folder, ignore=shutil.ignore_patterns("*.md"))
    index(folder)
    good = json.loads(run("query", "a cat", "--json").stdout)
    path = library_dir() / "vectors.faiss"
    data = bytearray(path.read_bytes())
    pos = len(data) // 2
    data[pos : pos + 4000] = np.full(1000, 1e30, np.float32).tobytes()  # bit rot inside the vectors
    path.write_bytes(bytes(data))
    again = json.loads(run("query", "a cat", "--json").stdout)
    assert [(r["path"], r["score"]) for r in again] == [(r["path"], r["score"]) for r in good]


@pytest.mark.slow
def test_the_model_is_known_by_its_content(tmp_path):
    folder, model = tmp_path / "media", tmp_path / "model"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    shutil.copytree(BUNDLE, model)
    index(folder, "--model", str(model))
    model.rename(tmp_path / "moved")
    gone = CliRunner().invoke(cli, ["query", "x"])
    assert gone.exit_code == 1 and "is gone" in gone.output and "--model" in gone.output
    assert run("query", "x", "--model", str(tmp_path / "moved")).exit_code == 0
    assert index(folder, "--model", str(tmp_path / "moved"))["unchanged"] == 1
    assert run("query", "x").exit_code == 0, "the library now knows the new place"
    int8 = CliRunner().invoke(cli, ["query", "x", "--precision", "int8"])
    assert int8.exit_code == 1 and "leave out --precision" in int8.output


# ----------------------------------------------------------------------------- hostile media


def test_sample_rates_nobody_records_at_are_refused(tmp_path):
    sf.write(tmp_path / "one-hertz.wav", np.zeros(100_000, np.float32), 1)
    with pytest.raises(DecodeError, match="1 Hz is not one anybody records at"):
        media.decode(tmp_path / "one-hertz.wav")


def test_a_header_claiming_billions_of_frames_is_read_for_what_is_there(tmp_path):
    path = tmp_path / "liar.wav"
    sf.write(path, np.sin(np.arange(48_000 * 3) / 10).astype(np.float32) * 0.3, 48_000, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")  # ~1.1 billion samples claimed
    path.write_bytes(bytes(data))
    started = time.monotonic()
    decoded = media.decode(path).read_all()
    assert time.monotonic() - started < 10
    assert decoded.facts["duration"] == pytest.approx(3.0, abs=0.01) and len(decoded.spans) == 1


def test_a_truncated_recording_is_indexed_as_far_as_it_reads(tmp_path):
    path = tmp_path / "cut.flac"
    t = np.arange(48_000 * 40) / 48_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    decoded = media.decode(path).read_all()
    assert 5 < decoded.facts["duration"] < 40 and decoded.spans


def test_nan_samples_never_become_nan_vectors(tmp_path, embedder):
    samples = np.sin(np.arange(48_000 * 2) / 7).astype(np.float32) * 0.3
    samples[1000:3000] = np.nan
    samples[5000] = np.inf
    sf.write(tmp_path / "nan.wav", samples, 48_000, subtype="FLOAT")
    decoded = media.decode(tmp_path / "nan.wav").read_all()
    vectors = embedder.embed_each([str(tmp_path / "nan.wav")], [decoded])[0]
    assert np.isfinite(vectors).all() and abs(np.linalg.norm(vectors[0]) - 1) < 1e-5


def test_bytes_that_merely_start_like_mp3_are_not_taken_for_sound():
    pcd = b"\xff" * 4096  # a Kodak Photo CD starts like this
    assert media.sniff(pcd) is None
    fli = b"\xff\xfb\x0f\x00" + bytes(4092)  # one plausible header, then nothing like a second frame
    assert media.sniff(fli) is None
    mp3 = (SAMPLE_MP3 := (Path(__file__).parent.parent / "sample_media" / "rain-noise.mp3").read_bytes())
    assert media.sniff(mp3[:4096]) == "audio" and SAMPLE_MP3


# ----------------------------------------------------------------------------- stopping


@pytest.mark.slow
def test_sigint_stops_within_two_seconds_and_a_long_recording_resumes(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(folder / "hour.flac", (rng.normal(0, 0.1, 48_000 * 600)).astype(np.float32), 48_000)
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_catalog(proc, tmp_path / "lib", lambda catalog: catalog.segment_count() >= 8)
    assert proc.poll() is None, "the recording should still be in progress"
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert time.monotonic() - asked < 2.0 and proc.returncode == 130
    with closing(Catalog(tmp_path / "lib")) as catalog:
        kept, row = catalog.segment_count(), catalog.file(str(folder / "hour.flac"))
    assert kept >= 8 and row.status == "partial"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with closing(Catalog(tmp_path / "lib")) as catalog:
        ids, spans = catalog.all_segment_ids(), catalog.segment_spans(row.id)
    assert len(ids) == len(media.windows(600.0)) and ids[0] == 1, "the first windows were kept, not redone"
    assert sorted(start for start, _ in spans) == [start for start, _ in media.windows(600.0)]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="GNU time measures the peak RSS")
def test_pictures_near_the_pixel_limit_keep_index_under_the_memory_bound(tmp_path):
    """Several pictures just under the limit, decoded by four threads at once, used to take 9 GB."""
    from PIL import Image

    folder = tmp_path / "huge"
    folder.mkdir()
    width, height = 13_000, 9_200  # 119.6 MP, just under the 120 MP limit
    big = Image.linear_gradient("L").resize((width, height)).convert("RGBA")
    for i in range(4):
        big.save(folder / f"panorama{i}.png", compress_level=1)
    del big
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mediasearch", "index", str(folder)]
    done = subprocess.run([*cmd, "--model", str(BUNDLE), "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 4
    peak = int(done.stderr.strip().splitlines()[-1]) * 1024
    assert peak < 2.5e9, f"peak RSS {peak / 1e9:.2f} GB"
    print(f"\npeak RSS indexing four 120 MP pictures: {peak / 1e9:.2f} GB")


def test_max_duration_bounds_one_recording(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(48_000 * 100, np.float32), 48_000)
    decoded = media.decode(path, max_duration=30).read_all()
    assert decoded.facts["duration"] == 30.0 and decoded.spans[-1] == (20.0, 30.0)
    assert "--max-duration" in decoded.note


@pytest.mark.slow
def test_c_libraries_chatter_never_reaches_the_terminal(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    data = bytearray((Path(__file__).parent.parent / "sample_media" / "rain-noise.mp3").read_bytes())
    for at in range(2000, len(data) - 400, 997):  # damaged frames all through: libmpg123 complains about each
        data[at : at + 40] = bytes(range(40))
    (folder / "damaged.mp3").write_bytes(bytes(data))
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stderr.splitlines()[-1].startswith("1 added"), done.stderr
    assert len(done.stderr.splitlines()) <= 2, done.stderr  # the summary (and a note), nothing from C


@pytest.mark.slow
def test_two_processes_creating_one_library_at_once(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tiny.png", folder / "t.png")
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all("Traceback" not in err for _, err in outcomes), outcomes
    assert any(code == 0 for code, _ in outcomes)
    assert all(code == 0 or "is writing to" in err for code, err in outcomes), outcomes


def test_an_empty_library_with_no_model_yet_says_so_without_the_network(tmp_path):
    (tmp_path / "nothing").mkdir()
    assert index(tmp_path / "nothing")["added"] == 0
    result = CliRunner().invoke(cli, ["query", "x"])
    assert result.exit_code == 1 and "library is empty" in result.output
