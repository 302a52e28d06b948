"""The CLI as a user runs it: embed and model commands, errors, and no network use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BUNDLE, INPUTS, SAMPLES
from hubserver import HubServer

from mediasearch.cli import cli


def run(*args, **kw):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_embed_prints_texts_then_files_in_order(reference):
    meta, refs = reference
    result = run(
        "embed",
        "--model",
        str(BUNDLE),
        "--text",
        "a dog barking",
        "--text",
        "x",
        str(INPUTS / "landscape.jpg"),
        str(INPUTS / "tone48k.wav"),
    )
    assert result.exit_code == 0, result.output
    rows = lines(result.stdout)
    assert [r["input"] for r in rows] == [
        "a dog barking",
        "x",
        str(INPUTS / "landscape.jpg"),
        str(INPUTS / "tone48k.wav"),
    ]
    assert [r["modality"] for r in rows] == ["text", "text", "image", "audio"]
    assert rows[3]["start"] == 0.0 and rows[3]["end"] == 3.0 and rows[2]["start"] is None
    vec = np.array(rows[2]["embedding"], np.float32)
    assert len(vec) == 512 and float(vec @ refs["file:landscape.jpg"]) > 0.9999
    assert float(np.array(rows[0]["embedding"]) @ refs["text:0"]) > 0.9999


def test_embed_reports_bad_files_and_carries_on(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a jpeg")
    result = run("embed", "--model", str(BUNDLE), str(bad), str(SAMPLES / "long-recording.flac"))
    assert result.exit_code == 3, "finished, with a file that failed"
    rows = lines(result.stdout)
    assert rows[0]["input"] == str(bad) and "error" in rows[0] and "embedding" not in rows[0]
    assert [(r["start"], r["end"]) for r in rows[1:]] == [(0.0, 10.0), (8.0, 18.0), (11.138, 21.138)]
    assert f"skipping {bad}" in result.stderr


def test_embed_needs_input():
    result = CliRunner().invoke(cli, ["embed", "--model", str(BUNDLE)])
    assert result.exit_code == 2 and "give at least one" in result.output


def test_missing_model_is_one_line_not_a_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["embed", "--model", str(tmp_path / "nope"), "--text", "x"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: model folder") and "Traceback" not in result.output


def test_model_info_json():
    result = run("model", "info", "--model", str(BUNDLE), "--json", "--probe")
    data = json.loads(result.stdout)
    assert data["dimension"] == 512 and data["sample_rate"] == 48000
    assert data["batched"] == {"text": True, "image": True, "audio": True}
    assert data["providers"] == ["CPUExecutionProvider"]
    assert data["files"]["audio_model.onnx"] == (BUNDLE / "audio_model.onnx").stat().st_size
    text = run("model", "info", "--model", str(BUNDLE)).stdout
    assert "batched" in text and "audio_model.onnx" in text


def test_model_pull_from_local_hub(monkeypatch):
    with HubServer(BUNDLE, "antflydb/clipclap") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        result = run("model", "pull")
        assert result.exit_code == 0, result.output
        path = result.stdout.strip()
        assert os.path.isfile(os.path.join(path, "audio_model.onnx"))
        assert len(hub.downloads()) == 10
        info = json.loads(run("model", "info", "--json").stdout)
        assert info["path"] == path and info["source"] == "antflydb/clipclap"
        assert len(hub.downloads()) == 10


def test_every_command_has_help_with_an_example():
    def walk(group, prefix):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, prefix + [name])
            else:
                yield prefix + [name], command

    for path, command in walk(cli, []):
        assert command.help and "Example" in command.help, path


STRACE = shutil.which("strace")


@pytest.mark.slow
@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_no_network_connection_once_the_model_is_on_disk(tmp_path, monkeypatch):
    """Run real commands under strace: no connect() may leave the machine."""
    with HubServer(BUNDLE, "antflydb/clipclap") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        assert run("model", "pull").exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ORT_"))}
    log = tmp_path / "strace.log"
    files = [str(SAMPLES / "cat-chelsea.jpg"), str(SAMPLES / "rain-noise.mp3")]
    for model in ("antflydb/clipclap", str(BUNDLE)):
        cmd = [
            STRACE,
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto",
            "-o",
            str(log),
            sys.executable,
            "-m",
            "mediasearch",
            "embed",
            "--model",
            model,
            "--text",
            "hi",
            *files,
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        calls = [line for line in log.read_text().splitlines() if "sa_family=AF_INET" in line]
        outside = [c for c in calls if not re.search(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"', c)]
        assert outside == [], outside


# ----------------------------------------------------------------------------- library commands


@pytest.fixture
def indexed_cli(indexed_library):
    """(media folder, `index --json` summary): sample media indexed once per session, copied per test."""
    return indexed_library


def test_index_json_summary(indexed_cli):
    _, summary = indexed_cli
    assert set(summary) == {
        "added",
        "updated",
        "unchanged",
        "reused",
        "removed",
        "failed",
        "failed_new",
        "ignored",
        "failures",
        "offline",
        "read",
        "seconds",
    }
    assert summary["added"] == 12
    again = json.loads(run("index", "--json").stdout)  # no PATH: rescan the library's folders
    assert again["unchanged"] == 12 and again["added"] == 0


def test_index_human_summary_goes_to_stderr(media_dir):
    result = run("index", str(media_dir), "--model", str(BUNDLE))
    assert result.stdout == "" and "12 added" in result.stderr and result.exit_code == 0


def test_query_outputs(indexed_cli):
    folder, _ = indexed_cli
    plain = run("query", "a cat", "-n", "3").stdout.splitlines()
    assert len(plain) == 3 and all(len(line.split("\t")) in (2, 3) for line in plain)
    rows = json.loads(run("query", "--like", str(folder / "coffee-cup.png"), "--json", "--include-examples").stdout)
    assert rows[0]["path"] == str(folder / "coffee-cup.png") and rows[0]["score"] == pytest.approx(1, abs=1e-5)
    assert set(rows[0]) >= {"path", "kind", "score", "start", "end"}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    paths = run("query", "sound", "--type", "audio", "--paths").stdout.splitlines()
    assert paths and all(os.path.isabs(p) and p.endswith((".wav", ".flac", ".ogg", ".mp3")) for p in paths)
    nul = run("query", "x", "--paths", "-0", "-n", "2").stdout
    assert nul.count("\0") == 2 and "\n" not in nul


def test_query_errors(indexed_cli, tmp_path):
    result = CliRunner().invoke(cli, ["query", "x", "--type", "documents"])
    assert result.exit_code == 2 and "unknown kind" in result.output
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    result = CliRunner().invoke(cli, ["query", "--like", str(bad)])
    assert result.exit_code == 1 and "cannot be used" in result.output
    result = CliRunner().invoke(cli, ["query", "x", "--library", str(tmp_path / "absent"), "--model", str(BUNDLE)])
    assert result.exit_code == 1 and "no library at" in result.output
    assert not (tmp_path / "absent").exists(), "reading never creates a library"


def test_status_and_failures(media_dir):
    (media_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE)]).exit_code == 3
    data = json.loads(run("status", "--json").stdout)
    assert data["counts"]["indexed"] == 12 and data["counts"]["failed"] == 1
    assert data["counts"]["image"] == 6 and data["counts"]["audio"] == 6
    assert data["index"]["vectors"] == 15 and data["index"]["current"]
    assert data["roots"] == [
        {
            "path": str(media_dir.resolve()),
            "files": 12,
            "state": "online",
            "reason": None,
            "options": {"hidden": False, "excludes": [], "follow_links": False},
        }
    ]
    text = run("status", "--failures").stdout
    assert "broken.jpg: not a readable image" in text


def test_forget(indexed_cli, tmp_path):
    folder, _ = indexed_cli
    result = CliRunner().invoke(cli, ["forget", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "is not a folder of this library" in result.output
    assert run("forget", str(folder)).exit_code == 0
    data = json.loads(run("status", "--json").stdout)
    assert data["roots"] == [] and data["segments"] == 0 and data["index"]["vectors"] == 0


def test_other_model_is_refused_in_one_line(indexed_cli, tmp_path):
    folder, _ = indexed_cli
    other = tmp_path / "other"
    shutil.copytree(BUNDLE, other)
    (other / "projection_training_metadata.json").write_text("{}")
    result = CliRunner().invoke(cli, ["index", str(folder), "--model", str(other)])
    assert result.exit_code == 1 and "--reembed" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["query", "x", "--model", str(other)])
    assert result.exit_code == 1 and "--reembed" in result.output
    assert json.loads(run("index", str(folder), "--model", str(other), "--reembed", "--json").stdout)["updated"] == 12


def test_second_writer_is_told_who_holds_the_library(indexed_cli):
    from mediasearch.storage import Storage

    with Storage(None, write=True):
        result = CliRunner().invoke(cli, ["index"])
        assert result.exit_code == 1 and f"pid {os.getpid()}" in result.output


def test_deleted_index_file_is_rebuilt_by_query_without_writing(indexed_cli):
    from mediasearch.paths import library_dir

    def files():  # SQLite's own -wal/-shm coordination files aside
        return {p.name: p.read_bytes() for p in library_dir().iterdir() if not p.name.endswith(("-wal", "-shm"))}

    (library_dir() / "vectors.faiss").unlink()
    before = files()
    assert len(json.loads(run("query", "x", "--json").stdout)) == 10
    assert json.loads(run("status", "--json").stdout)["counts"]["indexed"] == 12
    assert files() == before, "a query never writes to the library"
    assert run("index", "--json").exit_code == 0
    assert (library_dir() / "vectors.faiss").exists(), "the next writer saves it"


@pytest.mark.slow
def test_int8_library_keeps_its_precision(media_dir):
    result = run("index", str(media_dir), "--model", str(BUNDLE), "--precision", "int8", "--json")
    assert json.loads(result.stdout)["added"] == 12
    rows = json.loads(run("query", "--like", str(media_dir / "chirp.wav"), "--json", "--include-examples").stdout)
    assert rows[0]["path"] == str(media_dir.resolve() / "chirp.wav")
    assert len(json.loads(run("query", "a cat", "--json").stdout)) == 10  # int8 text tower, from the library
    refused = CliRunner().invoke(cli, ["query", "a cat", "--precision", "fp32"])
    assert refused.exit_code == 1 and "--reembed" in refused.output
    info = json.loads(run("model", "info", "--model", str(BUNDLE), "--precision", "int8", "--json").stdout)
    assert info["precision"] == "int8" and min(info["int8_cosine_vs_fp32"].values()) >= 0.99


def test_terminal_gets_a_table_and_a_progress_bar_a_pipe_gets_neither(media_dir):
    from mediasearch.terminal import Terminal

    tty = Terminal(stdout_isatty=True, stderr_isatty=True)
    result = CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE)], obj=tty)
    assert result.exit_code == 0, result.output
    assert "segment/s" in result.stderr and "0/15 " in result.stderr, "counts segments: 12 files, 15 windows"
    piped = CliRunner().invoke(cli, ["index", "--json"], obj=Terminal())
    assert "segment" not in piped.stderr and piped.stderr == ""
    header, *table = CliRunner().invoke(cli, ["query", "a cat", "-n", "3"], obj=tty).stdout.splitlines()
    table = [line for line in table if not line.startswith(" " * 8)]  # not the lines saying which words matched
    assert header.split() in (["score", "kind", "taken", "time", "path"], ["score", "kind", "taken", "path"])
    assert len(table) == 3 and all("\t" not in line and line.split()[1] in ("image", "audio") for line in table)
    assert len({line.index(str(media_dir.resolve())) for line in table}) == 1, "paths line up"
    lines = CliRunner().invoke(cli, ["query", "a cat", "-n", "3"], obj=Terminal()).stdout.splitlines()
    assert all(len(line.split("\t")) in (2, 3) for line in lines)


# ----------------------------------------------------------------------------- the command line as typed


def test_words_need_no_quotes_and_h_is_help(indexed_cli):
    quoted = json.loads(run("query", "a dog barking", "--json").stdout)
    assert json.loads(run("query", "a", "dog", "barking", "--json").stdout) == quoted
    for args in (["-h"], ["query", "-h"], ["index", "-h"], ["model", "info", "-h"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout, args


def test_a_word_naming_a_file_is_an_example_unless_literal(indexed_cli, monkeypatch):
    folder, _ = indexed_cli
    monkeypatch.chdir(folder)
    result = run("query", "./cat-chelsea.jpg", "--json")
    assert "taking ./cat-chelsea.jpg as an example file" in result.stderr
    like = run("query", "--like", "cat-chelsea.jpg", "--json").stdout
    assert result.stdout == like
    literal = run("query", "./cat-chelsea.jpg", "--literal", "--json")
    assert literal.stderr == "" and literal.stdout != like


def test_more_like_this_leaves_out_the_example_and_folds_copies(indexed_cli):
    folder, _ = indexed_cli
    shutil.copy(folder / "rocket-launch.jpg", folder / "rocket-copy.jpg")
    assert run("index", "--json").exit_code == 0
    rows = json.loads(run("query", "--like", str(folder / "cat-chelsea.jpg"), "--json", "-n", "20").stdout)
    paths = [r["path"] for r in rows]
    assert str(folder / "cat-chelsea.jpg") not in paths and len(paths) == len(set(paths)) == 11
    rocket = next(r for r in rows if "rocket" in r["path"])
    original = folder / "rocket-launch.jpg"  # the older of the two: the copy was made just now
    assert rocket["path"] == str(original) and rocket["copies"] == [str(folder / "rocket-copy.jpg")]
    assert rocket["mtime"] == original.stat().st_mtime, "the facts shown are the original's"
    kept = json.loads(run("query", "--like", str(folder / "cat-chelsea.jpg"), "--include-examples", "--json").stdout)
    assert kept[0]["path"] == str(folder / "cat-chelsea.jpg")


@pytest.mark.parametrize(
    "args, says",
    [
        (["x", "-0"], "add --paths"),
        (["x", "--json", "--paths"], "leave out --paths"),
        (["x", "--min-score", "nan"], "not a cosine score"),
        (["x", "--after", "last tuesday"], "is not a date"),
        (["x", "--type", "spreadsheets"], "unknown kind"),
    ],
)
def test_meaningless_options_are_refused_with_a_reason(indexed_cli, args, says):
    result = CliRunner().invoke(cli, ["query", *args])
    assert result.exit_code == 2 and says in result.output, result.output


def test_dates_and_kinds_as_people_write_them(indexed_cli):
    folder, _ = indexed_cli
    os.utime(folder / "chirp.wav", (1e9, 1e9))  # 2001
    assert run("index", "--json").exit_code == 0
    recent = {r["path"] for r in json.loads(run("query", "x", "--after", "2w", "--json", "-n", "50").stdout)}
    taken_2012 = str(folder / "hubble-deep-field.jpg")  # its EXIF says when it was taken: 2012-09-17
    assert str(folder / "chirp.wav") not in recent and taken_2012 not in recent and len(recent) == 10
    old = json.loads(run("query", "x", "--before", "2001-09-09T02:00", "--json").stdout)
    assert [r["path"] for r in old] == [str(folder / "chirp.wav")]
    sounds = json.loads(run("query", "x", "--type", "sounds", "--json", "-n", "50").stdout)
    assert {r["kind"] for r in sounds} == {"audio"} and len(sounds) == 6
    both = json.loads(run("query", "x", "--type", "photos,recordings", "--json", "-n", "50").stdout)
    assert len(both) == 12


def test_the_terminal_table_reads_like_fd(indexed_cli):
    from mediasearch.terminal import Terminal

    folder, _ = indexed_cli
    tty = Terminal(stdout_isatty=True, home=str(folder.parent))
    lines = CliRunner().invoke(cli, ["query", "rain", "-n", "12"], obj=tty).stdout.splitlines()
    said = [line.strip() for line in lines if line.startswith(" " * 8)]
    assert said == ["name: rain noise"], "the file whose name holds the word says so under its row"
    lines = [line for line in lines if not line.startswith(" " * 8)]
    assert lines[0].split() == ["score", "kind", "taken", "time", "path"] and len(lines) == 13
    assert all("~/media/" in line and str(folder) not in line for line in lines[1:])
    starts = {line.index("~") for line in lines[1:]}
    assert len(starts) == 1, "paths line up whatever the time ranges"
    ranges = [line.split()[3] for line in lines[1:] if line.split()[1] == "audio"]
    assert ranges and all(re.fullmatch(r"\d+:\d\d\.\d-\d+:\d\d\.\d", r) for r in ranges), ranges
    piped = CliRunner().invoke(cli, ["query", "rain", "-n", "12"], obj=Terminal(home=str(folder.parent))).stdout
    assert not piped.startswith("score") and str(folder) in piped, "pipes get full paths, no header"


def test_previews_where_the_terminal_shows_pictures(indexed_cli):
    from mediasearch.terminal import Terminal

    kitty = Terminal(stdout_isatty=True, graphics="kitty")
    out = CliRunner().invoke(cli, ["query", "a cat", "--preview", "--type", "image", "-n", "2"], obj=kitty).stdout
    assert out.count("\x1b_Ga=T,f=100") == 2
    iterm = Terminal(stdout_isatty=True, graphics="iterm")
    out = CliRunner().invoke(cli, ["query", "a cat", "--preview", "-n", "1", "--type", "image"], obj=iterm).stdout
    assert "\x1b]1337;File=inline=1" in out
    plain = Terminal(stdout_isatty=True)
    out = CliRunner().invoke(cli, ["query", "a cat", "--preview", "-n", "2"], obj=plain).stdout
    assert "\x1b" not in out


def test_index_a_file_and_tell_scripts_about_failures(indexed_cli, tmp_path):
    folder, _ = indexed_cli
    shutil.copy(INPUTS / "gray.png", folder / "new.png")
    one = CliRunner().invoke(cli, ["index", str(folder / "new.png"), "--json"])
    assert one.exit_code == 0 and json.loads(one.stdout)["added"] == 1
    outside = tmp_path / "elsewhere.png"
    shutil.copy(INPUTS / "gray.png", outside)
    refused = CliRunner().invoke(cli, ["index", str(outside)])
    assert refused.exit_code == 2 and "not inside a library folder" in refused.output
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    failed = CliRunner().invoke(cli, ["index", "--json"])
    assert failed.exit_code == 3 and json.loads(failed.stdout)["failed"] == 1


def test_embed_reads_file_names_and_texts_from_stdin(tmp_path):
    names = b"\0".join(os.fsencode(INPUTS / n) for n in ("tiny.png", "tone48k.wav")) + b"\0"
    result = run("embed", "--model", str(BUNDLE), "--files-from", "-", "-0", input=names)
    assert [r["input"] for r in lines(result.stdout)] == [str(INPUTS / "tiny.png"), str(INPUTS / "tone48k.wav")]
    texts = run("embed", "--model", str(BUNDLE), "--texts-from", "-", input="a dog\nrain on a roof\n")
    assert [r["input"] for r in lines(texts.stdout)] == ["a dog", "rain on a roof"]


def test_embed_uses_the_librarys_model_without_the_network(indexed_cli):
    result = run("embed", "--text", "hello")
    assert result.exit_code == 0 and lines(result.stdout)[0]["modality"] == "text"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell):
    env = dict(os.environ, _MEDIASEARCH_COMPLETE=f"{shell}_source")
    done = subprocess.run([sys.executable, "-m", "mediasearch"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "_MEDIASEARCH_COMPLETE" in done.stdout


@pytest.mark.slow
def test_making_int8_copies_says_nothing_but_what_it_does(tmp_path):
    env = dict(os.environ, MEDIASEARCH_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "mediasearch", "model", "info", "--model", str(BUNDLE), "--precision", "int8"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "making an int8 copy" in done.stderr


def test_a_repeated_query_text_does_not_load_the_text_tower(indexed_cli, monkeypatch):
    from mediasearch import model

    first = json.loads(run("query", "a dog barking", "--not", "rain", "--json").stdout)

    def refuse(self):
        raise AssertionError("the text tower must not load for words asked before")

    monkeypatch.setattr(model.Tower, "load", refuse)
    again = json.loads(run("query", "a dog barking", "--not", "rain", "--json").stdout)
    assert again == first
    with pytest.raises(AssertionError, match="must not load"):
        run("query", "words never asked", "--json")


@pytest.mark.slow
def test_the_real_entry_point_keeps_output_and_exit_status(media_dir, tmp_path):
    """`mediasearch` ends its process without the libraries' teardown (runtime.leave): every byte
    of output and every exit status must still come out as the command meant."""
    (media_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "mediasearch", *args], capture_output=True, text=True, timeout=300)

    indexed = run("index", str(media_dir), "--model", str(BUNDLE), "--json")
    assert indexed.returncode == 3 and json.loads(indexed.stdout)["failed"] == 1
    found = run("query", "a dog barking", "--json", "-n", "200")
    assert found.returncode == 0 and len(json.loads(found.stdout)) == json.loads(indexed.stdout)["added"]
    assert run("query", "x", "--type", "nonsense").returncode == 2
    missing = run("query", "x", "--library", str(tmp_path / "absent"))
    assert missing.returncode == 1 and "there is no library" in missing.stderr
    assert run("status", "--json").returncode == 0


# ----------------------------------------------------------------------------- what a careful user trips on

EVIL = "bad\x1b[31m\nforged: line"  # a name that would colour the terminal and start a line of its own


@pytest.mark.slow
def test_names_reach_the_terminal_escaped_in_every_line(media_dir, tmp_path):
    (media_dir / f"{EVIL}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # fails: a `skipping` line
    links = media_dir / f"links{EVIL}"
    links.mkdir()
    os.symlink("/proc/self", links / f"proc{EVIL}")  # a link into /proc: the walk warns
    os.symlink(links, links / f"loop{EVIL}")  # a link loop: the walk warns again
    results = [
        CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE), "--follow-links"]),
        CliRunner().invoke(cli, ["status", "--failures"]),
        CliRunner().invoke(cli, ["query", "--like", str(tmp_path / f"missing{EVIL}.jpg")]),  # click's own error
        CliRunner().invoke(cli, ["forget", str(tmp_path / EVIL)]),  # the core's error
    ]
    assert "skipping" in results[0].stderr and "symlink loop" in results[0].stderr
    assert "pseudo-filesystem" in results[0].stderr
    for result in results:
        for text in (result.stdout, result.stderr):
            assert "\x1b" not in text and "\\e[31m\\nforged: line" in text + results[0].stderr
            assert not any(line.startswith("forged") for line in text.splitlines()), text


@pytest.mark.slow
def test_failures_that_stand_are_told_until_fixed(media_dir):
    broken = media_dir / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    first = CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE)])
    assert first.exit_code == 3 and "1 failed," in first.stderr
    again = CliRunner().invoke(cli, ["index"])
    assert again.exit_code == 3, "a failure that stands is not forgotten by the next pass"
    assert "12 unchanged, 1 failed (0 new, 1 from earlier passes)" in again.stderr
    data = json.loads(CliRunner().invoke(cli, ["index", "--json"]).stdout)
    assert (data["failed"], data["failed_new"], data["unchanged"]) == (1, 0, 12)
    assert [(f["path"], f["new"]) for f in data["failures"]] == [(str(broken.resolve()), False)]
    status = json.loads(run("status", "--json").stdout)
    assert [f["path"] for f in status["failures"]] == [str(broken.resolve())]
    assert status["failures"][0]["error"].startswith("not a readable image")
    shutil.copy(INPUTS / "landscape.jpg", broken)  # fixed
    fixed = CliRunner().invoke(cli, ["index", "--json"])
    assert fixed.exit_code == 0 and json.loads(fixed.stdout)["failed"] == 0
    assert json.loads(run("status", "--json").stdout)["failures"] == []


@pytest.mark.slow
def test_a_reason_never_repeats_the_path(media_dir):
    broken = media_dir / "broken.jpg"
    broken.write_text("a text file named like a picture")
    result = CliRunner().invoke(cli, ["index", str(media_dir), "--model", str(BUNDLE)])
    line = next(line for line in result.stderr.splitlines() if line.startswith("skipping"))
    assert line.count("broken.jpg") == 1 and line.startswith(f"skipping {broken.resolve()}: not a readable"), line


@pytest.mark.parametrize(
    "args, says",
    [
        (["query"], "give a query"),
        (["query", "  "], "give a query"),
        (["query", "--not", "rain"], "give a query"),
        (["query", "--like", "/no/such/file.jpg"], "does not exist"),
        (["forget", "/no/such/folder"], "is not a folder of this library"),
        (["index", "--store", "antfly.lan/media"], "is not a store address"),
        (["index", "--hidden"], "name the folders"),
        (["embed"], "give at least one"),
        (["watch", "--exclude", "x"], "name the folders"),
        (["serve", "--port", "70000"], "70000"),
        (["status", "--nope"], "No such option"),
        (["model", "info", "--precision", "int4"], "int4"),
    ],
)
def test_usage_mistakes_exit_2_everywhere(indexed_cli, args, says):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and says in result.output, result.output


def test_index_a_file_that_did_not_change_counts_it_unchanged(indexed_cli):
    folder, _ = indexed_cli
    data = json.loads(run("index", str(folder / "cat-chelsea.jpg"), "--json").stdout)
    assert (data["unchanged"], data["added"], data["updated"], data["failed"]) == (1, 0, 0, 0)


def test_a_first_index_without_a_model_leaves_nothing_behind(media_dir):
    from mediasearch.paths import library_dir

    result = CliRunner().invoke(cli, ["index", str(media_dir), "--model", "someone/unreachable-model"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not library_dir().exists(), "no catalog, no lock: no half-made library"
    status = CliRunner().invoke(cli, ["status"])
    assert status.exit_code == 1 and "there is no library" in status.output


def test_query_in_a_folder_outside_the_library_says_so(indexed_cli, tmp_path):
    folder, _ = indexed_cli
    result = CliRunner().invoke(cli, ["query", "sunset", "--in", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and f"is not in the library (its folders: {folder})" in result.output
    assert len(json.loads(run("query", "sunset", "--in", str(folder.parent), "--json").stdout)) == 10
    inside = folder / "deeper"
    inside.mkdir()
    assert json.loads(run("query", "sunset", "--in", str(inside), "--json").stdout) == []


def test_a_word_naming_a_file_that_is_not_media_points_to_literal(indexed_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").write_text("shopping list")
    result = CliRunner().invoke(cli, ["query", "notes"])
    assert result.exit_code == 1 and "taking notes as an example file" in result.stderr
    assert "--literal" in result.output.strip().splitlines()[-1]
    assert CliRunner().invoke(cli, ["query", "notes", "--literal"]).exit_code == 0


def test_model_info_reads_without_loading_a_tower(monkeypatch):
    from mediasearch import model

    def refuse(self):
        raise AssertionError("model info must not make an ONNX session")

    with monkeypatch.context() as patched:
        patched.setattr(model.Tower, "load", refuse)
        data = json.loads(run("model", "info", "--model", str(BUNDLE), "--json").stdout)
        assert (data["text_width"], data["image_width"], data["audio_width"]) == (32, 32, 128)
        assert data["batched"] == {"text": None, "image": None, "audio": None}, "never probed in this cache"
        assert data["onnxruntime"] and data["providers"] == ["CPUExecutionProvider"]
        assert "not probed yet" in run("model", "info", "--model", str(BUNDLE)).stdout
    run("model", "info", "--model", str(BUNDLE), "--probe")
    monkeypatch.setattr(model.Tower, "load", refuse)
    remembered = json.loads(run("model", "info", "--model", str(BUNDLE), "--json").stdout)["batched"]
    assert remembered == {"text": True, "image": True, "audio": True}


def test_serve_on_a_taken_port_says_so_in_one_line(indexed_cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "mediasearch", "serve", "--port", str(port)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is taken (another server?): choose one with --port"
    ]


def test_help_and_counts_read_as_english(tmp_path):
    top = run("-h").stdout
    assert "..." not in top.split("Commands:")[1], "no summary cut short"
    assert "Find the pictures, sounds and videos nearest to some words and/or example files" in " ".join(top.split())
    query_help = " ".join(run("query", "-h").stdout.split())
    assert "Only image, audio or video files" in query_help and "An example picture, sound or video" in query_help
    index_help = run("index", "-h").stdout
    assert "x>=" not in index_help and "0.0166" not in index_help
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(INPUTS / "gray.png", one / "gray.png")
    assert run("index", str(one), "--model", str(BUNDLE)).exit_code == 0
    text = run("status").stdout
    assert f"folder:   {one} (1 file)" in text and "indexed:  1 file (" in text, text
    assert "1 segment\n" in text and "1 vector," in text and "1 files" not in text
