"""Video and the sound formats FFmpeg reads: real files made with PyAV, the real towers."""

from __future__ import annotations

import json
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import BUNDLE, SAMPLES
from PIL import Image

from mediasearch import media
from mediasearch.cli import cli
from mediasearch.errors import DecodeError
from mediasearch.media import ffmpeg


def make_video(
    path: Path,
    seconds: float = 6,
    size=(320, 240),
    fps: int = 25,
    sound: bool = True,
    gop: int = 25,
    scene_every: float = 2.0,
    black: bool = False,
    fmt: str | None = None,
) -> Path:
    """Coloured scenes with a moving block, and a tone; H.264 + AAC."""
    container = av.open(str(path), "w", format=fmt)
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.options = {"g": str(gop), "preset": "ultrafast"}
    audio = container.add_stream("aac", rate=48_000) if sound else None
    if audio is not None:
        audio.layout = "stereo"
    for i in range(int(seconds * fps)):
        t = i / fps
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        if not black:
            arr[..., int(t // scene_every) % 3] = 180
            x = int(t * 50) % (size[0] - 40)
            arr[60:120, x : x + 40] = 255
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if audio is not None:
        rate, done = 48_000, 0
        while done < seconds * rate:
            t = (np.arange(1024) + done) / rate
            wave = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]).reshape(1, -1), format="flt", layout="stereo")
            frame.sample_rate, frame.pts = rate, done
            for packet in audio.encode(frame):
                container.mux(packet)
            done += 1024
        for packet in audio.encode():
            container.mux(packet)
    container.close()
    return path


def all_frames(path: Path) -> dict[float, Image.Image]:
    """Every frame, fully decoded, by time: the reference for the frames mediasearch picks."""
    with av.open(str(path)) as container:
        return {round(float(f.time), 3): f.to_image() for f in container.decode(video=0)}


def test_a_video_is_frames_and_soundtrack_with_times(tmp_path):
    path = make_video(tmp_path / "clip.mp4", seconds=12)
    decoded = media.decode(path).read_all()
    assert decoded.kind == "video" and decoded.facts["duration"] == pytest.approx(12, abs=0.1)
    frames = [s for s, m in zip(decoded.spans, decoded.modalities, strict=True) if m == "image"]
    sound = [s for s, m in zip(decoded.spans, decoded.modalities, strict=True) if m == "audio"]
    assert {0.0, 2.0, 4.0, 6.0, 8.0, 10.0} <= {s for s, _ in frames}, "every scene change is a frame"
    assert all(s == e for s, e in frames) and len(frames) < 12 * 25 / 10, "not every frame"
    assert sound == [(0.0, 10.0), pytest.approx((2.0, 12.0), abs=0.05)]


def test_a_frame_equals_the_same_picture_saved_losslessly(tmp_path, embedder):
    path = make_video(tmp_path / "clip.mp4")
    decoded = media.decode(path).read_all()
    reference = all_frames(path)
    vectors = embedder.embed_decoded([decoded])[0]
    checked = 0
    for (start, _), modality, vector in zip(decoded.spans, decoded.modalities, vectors, strict=True):
        if modality != "image":
            continue
        png = tmp_path / f"frame-{start}.png"
        reference[start].save(png)
        picture = embedder.embed_decoded([media.decode(png)])[0][0]
        assert float(vector @ picture) >= 0.9999
        checked += 1
    assert checked >= 3


def test_a_soundtrack_window_equals_the_same_sound_saved_as_wav(tmp_path, embedder):
    path = make_video(tmp_path / "clip.mp4", seconds=8)
    reader = ffmpeg.AvAudio(path)
    samples = reader.read(10**8)
    reader.close()
    sf.write(tmp_path / "track.wav", samples, reader.samplerate, subtype="FLOAT")
    video = media.decode(path).read_all()
    wav = media.decode(tmp_path / "track.wav").read_all()
    sound = [v for v, m in zip(embedder.embed_decoded([video])[0], video.modalities, strict=True) if m == "audio"]
    assert float(sound[0] @ embedder.embed_decoded([wav])[0][0]) >= 0.9999


def test_m4a_and_other_ffmpeg_sounds_equal_their_wav(tmp_path, embedder):
    decoded = media.decode(SAMPLES / "weather-report.m4a").read_all()
    reader = ffmpeg.AvAudio(SAMPLES / "weather-report.m4a")
    sf.write(tmp_path / "same.wav", reader.read(10**8), reader.samplerate, subtype="FLOAT")
    wav = media.decode(tmp_path / "same.wav").read_all()
    assert decoded.kind == "audio" and decoded.spans == wav.spans
    assert float(embedder.embed_decoded([decoded])[0][0] @ embedder.embed_decoded([wav])[0][0]) >= 0.9999


def test_sound_only_and_picture_only_files(tmp_path):
    sound_only = tmp_path / "voice.mp4"
    make_video(tmp_path / "tmp.mp4")
    with av.open(str(tmp_path / "tmp.mp4")) as src, av.open(str(sound_only), "w") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    assert media.decode(sound_only).kind == "audio"
    silent = media.decode(make_video(tmp_path / "silent.mp4", sound=False)).read_all()
    assert silent.kind == "video" and set(silent.modalities) == {"image"}


@pytest.mark.parametrize("cut", ["head", "middle"])
def test_damaged_videos_index_what_decodes(tmp_path, cut):
    """A copy cut short keeps its first frame and the sound before the cut; a scratch in the middle loses
    what it covers, and the frames and sound on either side of it still index."""
    path = make_video(tmp_path / "clip.mkv", seconds=10, fmt="matroska")
    data = bytearray(path.read_bytes())
    if cut == "head":
        path.write_bytes(bytes(data[: len(data) // 50]))  # a copy cut short after its header
    else:
        middle = len(data) // 2
        data[middle : middle + 20_000] = bytes(20_000)  # a scratched disc
        path.write_bytes(bytes(data))
    decoded = media.decode(path).read_all()
    frames = [start for (start, _), kind in zip(decoded.spans, decoded.modalities, strict=True) if kind == "image"]
    sound = [span for span, kind in zip(decoded.spans, decoded.modalities, strict=True) if kind == "audio"]
    assert decoded.kind == "video" and frames[0] == 0.0 and sound and sound[0][0] == 0.0
    if cut == "head":
        assert frames == [0.0] and sound[-1][1] < 1.0, "only what came before the cut"
    else:
        assert frames[-1] == 8.0 and len(frames) >= 4, "the frames after the scratch are kept"
        assert sound[-1][1] > 5.0, "the sound goes on past the scratch"


def _odd_rate_video(path: Path, rate: int, samples: int) -> Path:
    """Two seconds of picture with a PCM soundtrack at any sample rate the muxer takes (H.264 + PCM in MKV)."""
    container = av.open(str(path), "w", format="matroska")
    video = container.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    audio = container.add_stream("pcm_s16le", rate=rate)
    audio.layout = "mono"
    for i in range(50):
        arr = np.zeros((48, 64, 3), np.uint8)
        arr[..., (i // 25) % 3], arr[10:20, i : i + 10] = 180, 255
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        container.mux(video.encode(frame))
    container.mux(video.encode())
    wave = (np.random.default_rng(0).standard_normal(samples) * 3000).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(wave, format="s16", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    container.mux(audio.encode(frame))
    container.mux(audio.encode())
    container.close()
    return path


@pytest.mark.parametrize("rate, samples", [(1, 3600), (2_000_000, 200_000)])
def test_a_soundtrack_at_an_impossible_rate_is_refused_and_the_frames_stay(tmp_path, rate, samples):
    decoded = media.decode(_odd_rate_video(tmp_path / "odd.mkv", rate, samples)).read_all()
    assert set(decoded.modalities) == {"image"}, "no window of the soundtrack"
    assert f"a sample rate of {rate} Hz is not one anybody records at" in decoded.note


def test_an_mp4_without_its_index_is_one_clear_failure(tmp_path):
    path = make_video(tmp_path / "clip.mp4")  # the muxer writes the index (moov) at the end
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    result = media.decode_or_error(path)
    assert isinstance(result, DecodeError) and "not a readable video" in result.reason


def test_black_video_without_sound_fails_with_a_reason(tmp_path):
    result = media.decode_or_error(make_video(tmp_path / "black.mp4", sound=False, black=True))
    assert isinstance(result, DecodeError) and "no picture or sound" in result.reason


def test_rotation_is_applied():
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    wide.putpixel((0, 0), (0, 0, 255))
    assert ffmpeg.upright(wide, -90).size == (20, 40)
    assert ffmpeg.upright(wide, -90).getpixel((19, 0)) == (0, 0, 255), "a phone shot upright, turned clockwise"
    assert ffmpeg.upright(wide, 90).getpixel((0, 39)) == (0, 0, 255)
    assert ffmpeg.upright(wide, 180).getpixel((39, 19)) == (0, 0, 255)
    assert ffmpeg.upright(wide, 0) is wide


def test_a_long_video_costs_its_kept_frames_not_all_of_them(tmp_path):
    path = make_video(tmp_path / "long.mp4", seconds=120, size=(160, 120), gop=50, scene_every=1000, sound=False)
    started = time.perf_counter()
    decoded = media.decode(path).read_all()
    seconds = time.perf_counter() - started
    frames = [s for s, _ in decoded.spans]
    assert 10 <= len(frames) <= 14, frames  # one scene: a frame every 10 s
    assert seconds < 5, seconds


def test_video_through_the_cli(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(SAMPLES / "street-clip.mp4", folder)
    shutil.copy(SAMPLES / "chirp.wav", folder)
    shutil.copy(SAMPLES / "cat-chelsea.jpg", folder)
    result = CliRunner().invoke(cli, ["index", str(folder), "--model", str(BUNDLE), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["added"] == 3, result.output
    videos = json.loads(CliRunner().invoke(cli, ["query", "sea", "--type", "video", "--json"]).stdout)
    assert [r["kind"] for r in videos] == ["video"] and videos[0]["matched"] in ("image", "audio")
    assert videos[0]["start"] is not None
    sounds = json.loads(CliRunner().invoke(cli, ["query", "sea", "--type", "audio", "--json"]).stdout)
    assert [Path(r["path"]).name for r in sounds] == ["chirp.wav"], "--type audio is sound files only"
    status = json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)
    assert status["counts"]["video"] == 1


def test_embed_prints_each_segment_of_a_video_with_its_modality():
    result = CliRunner().invoke(cli, ["embed", "--model", str(BUNDLE), str(SAMPLES / "street-clip.mp4")])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["modality"], r["start"]) for r in rows] == [
        ("image", 0.0), ("image", 2.68), ("image", 5.36), ("audio", 0.0)
    ]  # fmt: skip


def test_a_phone_video_shot_upright_is_seen_upright(tmp_path):
    """The track header's matrix (as phones write it) says: turn 90 degrees clockwise to show."""
    import struct

    path = tmp_path / "portrait.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    for i in range(25):
        arr = np.zeros((32, 64, 3), np.uint8)
        arr[:, :10] = 255  # a stripe on the left of the stored frame: the top of the picture as shot
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 44
    data[at : at + 36] = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    (seconds, picture), *_ = list(ffmpeg.pick_frames(path, 10.0, 5))
    assert picture.size == (32, 64), "portrait"
    assert picture.getpixel((16, 2))[0] > 200 and picture.getpixel((16, 60))[0] < 50, "the stripe is on top"


def _frames_video(path: Path, times: list[float], size=(160, 120), colours=None) -> Path:
    """A video whose frames are at the given times (variable frame rate)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=1000)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.time_base = Fraction(1, 1000)
    stream.options = {"g": "1"}  # every frame a key frame
    for i, t in enumerate(times):
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[..., (colours or [0, 1, 2])[i % 3]] = 200
        arr[: size[1] // 3, : size[0] // 3] = 255
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_variable_frame_rate_keeps_true_times(tmp_path):
    times = [0.0, 0.1, 0.15, 3.0, 3.02, 7.5, 12.25]
    decoded = media.decode(_frames_video(tmp_path / "vfr.mp4", times)).read_all()
    frames = [s for s, _ in decoded.spans]
    assert frames == [0.0, 3.02, 7.5, 12.25], "each cut at its own time; 3.0 repeats the first scene"


def test_a_single_frame_video_has_one_frame(tmp_path):
    decoded = media.decode(_frames_video(tmp_path / "one.mp4", [0.0])).read_all()
    assert decoded.spans == [(0.0, 0.0)]


@pytest.mark.slow
def test_an_8k_video_decodes_its_frames(tmp_path):
    decoded = media.decode(_frames_video(tmp_path / "8k.mp4", [0.0, 2.0], size=(7680, 4320))).read_all()
    assert decoded.facts["width"] == 7680 and len(decoded.spans) == 2
    assert all(t.shape == (3, 224, 224) for t in decoded.tensors)


def test_an_absurd_declared_duration_only_spaces_the_frames(tmp_path, monkeypatch):
    path = _frames_video(tmp_path / "liar.mp4", [0.0, 10.0, 20.0, 30.0], colours=[0, 0, 0])
    real_probe = ffmpeg.probe
    monkeypatch.setattr(ffmpeg, "probe", lambda p: real_probe(p).__class__(True, False, 10**9, 160, 120))
    started = time.perf_counter()
    decoded = media.decode(path, max_duration=3600).read_all()
    assert time.perf_counter() - started < 5 and [s for s, _ in decoded.spans] == [0.0, 10.0, 20.0, 30.0]
    assert decoded.facts["duration"] == 3600, "a 'billion-second' claim is held to the duration cap"
