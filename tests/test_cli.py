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
    assert result.exit_code == 1
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
    result = run("model", "info", "--model", str(BUNDLE), "--json")
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
        assert result.exit_code == 0
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
