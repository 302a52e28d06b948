"""Video speed and memory: a harness run by hand (not in CI).

    python benchmarks/video.py --bundle /tmp/fullbundle     # the full-size random-weight bundle

Makes (once, in benchmarks/work/video) a 10-minute 1080p H.264 video with AAC
sound (a new scene every 20 s, motion within each), a 30 s 4K video and a
10-hour small video with sound, then prints, from one run on this machine:

- `mediasearch index` of the 10-minute video end to end (a real process): wall
  time, and how many times faster than real time; frames and windows embedded;
- the cost per embedded frame of choosing and decoding it (key frames only),
  beside the image tower's cost per frame, and the soundtrack's decoding cost
  beside the audio tower's per window;
- peak RSS of `mediasearch index` on the 4K and on the 10-hour video.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).parent


def make(path: Path, seconds: int, size: tuple[int, int], fps: int, scene_s: float, rate: int = 48_000) -> Path:
    if path.exists():
        return path
    tmp = path.with_suffix(".part" + path.suffix)
    container = av.open(str(tmp), "w", format="mp4" if path.suffix == ".mp4" else None)
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.options = {"g": str(2 * fps), "preset": "ultrafast", "crf": "30"}
    audio = container.add_stream("aac", rate=rate)
    audio.layout = "mono"
    rng = np.random.default_rng(0)
    canvas, canvas_scene = None, -1
    done = 0
    for i in range(seconds * fps):
        t = i / fps
        scene = int(t // scene_s)
        if scene != canvas_scene:  # one wide picture a scene, panned across: cheap to make, real motion
            tile = rng.integers(0, 255, (9, 16 + int(scene_s), 3), dtype=np.uint8)
            block = size[1] // 9 + 1
            canvas = np.kron(tile, np.ones((block, block, 1), np.uint8))[: size[1]]
            canvas_scene = scene
        x = int((t - scene * scene_s) * block)
        frame = np.ascontiguousarray(canvas[:, x : x + size[0]])
        out = av.VideoFrame.from_ndarray(frame, format="rgb24")
        out.pts, out.time_base = i, Fraction(1, fps)
        for packet in video.encode(out):
            container.mux(packet)
        while done < (i + 1) * rate / fps:  # sound keeps pace with the picture
            tt = (np.arange(1024) + done) / rate
            wave = (0.2 * np.sin(2 * np.pi * (200 + 40 * (scene % 7)) * tt)).astype(np.float32)[None]
            sound = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
            sound.sample_rate, sound.pts = rate, done
            for packet in audio.encode(sound):
                container.mux(packet)
            done += 1024
    for stream in (video, audio):
        for packet in stream.encode():
            container.mux(packet)
    container.close()
    os.replace(tmp, path)
    return path


def index(path: Path, bundle: str, work: Path) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS (bytes) and the summary of a real `mediasearch index` of one video."""
    folder = work / f"only-{path.stem}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.link(path, folder / path.name)
    library = work / f"lib-{path.stem}"
    shutil.rmtree(library, ignore_errors=True)
    env = dict(os.environ, MEDIASEARCH_HOME=str(library))
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mediasearch", "index", str(folder), "--json"]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--model", bundle], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return wall, int(done.stderr.strip().splitlines()[-1]) * 1024, json.loads(done.stdout)


def costs(path: Path, bundle: str) -> dict:
    """Per embedded frame and per window: decoding against the towers."""
    from mediasearch import media
    from mediasearch.bundle import resolve
    from mediasearch.media import ffmpeg, sound
    from mediasearch.model import Embedder

    start = time.perf_counter()
    frames = [media.image_tensor(media.to_rgb(img)) for _t, img in ffmpeg.pick_frames(path, 10.0, 600)]
    frame_decode = (time.perf_counter() - start) / len(frames)
    reader = ffmpeg.AvAudio(path)
    decoded = media.Decoded("audio", [])
    start = time.perf_counter()
    windows = [s.tensor for s in sound.read_windows(path, reader, decoded, media.MAX_DURATION_S)]
    window_decode = (time.perf_counter() - start) / len(windows)
    embedder = Embedder(resolve(bundle))
    embedder.embed_pixels(np.stack(frames[:2]))
    start = time.perf_counter()
    embedder.embed_pixels(np.stack(frames[:32]))
    frame_model = (time.perf_counter() - start) / min(32, len(frames))
    embedder.embed_features(np.stack(windows[:2]))
    start = time.perf_counter()
    embedder.embed_features(np.stack(windows[:8]))
    window_model = (time.perf_counter() - start) / min(8, len(windows))
    return {
        "frames": len(frames),
        "windows": len(windows),
        "frame_decode_ms": 1000 * frame_decode,
        "frame_model_ms": 1000 * frame_model,
        "window_decode_ms": 1000 * window_decode,
        "window_model_ms": 1000 * window_model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--work", type=Path, default=HERE / "work" / "video")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, flags: "
          f"{' '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}")  # fmt: skip
    ten = make(args.work / "ten-minutes-1080p.mp4", 600, (1920, 1080), 25, 20.0)
    wall, rss, summary = index(ten, args.bundle, args.work)
    c = costs(ten, args.bundle)
    print(f"10-minute 1080p video: indexed in {wall:.1f} s wall = {600 / wall:.1f}x real time, peak RSS "
          f"{rss / 1e9:.2f} GB; {c['frames']} frames and {c['windows']} windows embedded")  # fmt: skip
    print(f"per frame: choosing and decoding {c['frame_decode_ms']:.1f} ms, image tower {c['frame_model_ms']:.1f} ms")
    print(f"per window: decoding {c['window_decode_ms']:.1f} ms, audio tower {c['window_model_ms']:.1f} ms")
    four_k = make(args.work / "thirty-seconds-4k.mp4", 30, (3840, 2160), 25, 10.0)
    wall, rss, _ = index(four_k, args.bundle, args.work)
    print(f"30 s 4K video: {wall:.1f} s wall, peak RSS {rss / 1e9:.2f} GB")
    long = make(args.work / "ten-hours-small.mp4", 36_000, (128, 72), 1, 300.0, rate=16_000)
    wall, rss, summary = index(long, args.bundle, args.work)
    print(f"10-hour video: {wall:.1f} s wall, peak RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
