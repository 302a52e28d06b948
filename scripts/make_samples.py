"""Make the phone-and-camera samples in sample_media/ from the ones already there (dev only).

    pip install pidng --no-deps      # writes the DNG; mediasearch itself never imports it
    python scripts/make_samples.py

- street-clip.mp4: 8 s of 640x360 H.264 with AAC sound: three scenes (drawn here) and a tone
  that changes with them; made for this project, CC0.
- cat-chelsea.heic: cat-chelsea.jpg saved as HEIC (HEVC, as iPhones save), CC0 like its source.
- weather-report.m4a: weather-report.flac as AAC in M4A (as voice memos are saved), CC0.
- coffee-cup.dng: coffee-cup.png turned into a 16-bit RGGB Bayer mosaic and saved as a DNG
  camera RAW (no embedded preview, so LibRaw develops it), CC0 like its source.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pillow_heif
import soundfile as sf
from PIL import Image, ImageDraw

SAMPLES = Path(__file__).parent.parent / "sample_media"


def clip(path: Path, seconds: int = 8, size=(640, 360), fps: int = 25) -> None:
    container = av.open(str(path), "w", options={"movflags": "faststart"})
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.options = {"g": str(2 * fps), "crf": "28", "preset": "medium"}
    audio = container.add_stream("aac", rate=48_000)
    audio.layout = "mono"
    scenes = [((20, 90, 160), "sea"), ((200, 170, 60), "sand"), ((30, 120, 40), "forest")]
    for i in range(seconds * fps):
        t = i / fps
        colour, _ = scenes[min(int(t / (seconds / 3)), 2)]
        img = Image.new("RGB", size, colour)
        draw = ImageDraw.Draw(img)
        x = int(40 + t * 60) % size[0]
        draw.ellipse((x, 120, x + 90, 210), fill=(250, 250, 240))
        draw.rectangle((0, 300, size[0], 360), fill=tuple(c // 2 for c in colour))
        frame = av.VideoFrame.from_image(img)
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    rate, block, done = 48_000, 1024, 0
    total = seconds * rate
    while done < total:
        t = (np.arange(block) + done) / rate
        pitch = (220.0, 330.0, 440.0)[min(int(t[0] / (seconds / 3)), 2)]
        wave = (0.25 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, done
        for packet in audio.encode(frame):
            container.mux(packet)
        done += block
    for packet in audio.encode():
        container.mux(packet)
    container.close()


def m4a(source: Path, path: Path) -> None:
    samples, rate = sf.read(source, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    container = av.open(str(path), "w", format="ipod")
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "mono"
    for start in range(0, len(mono), 1024):
        frame = av.AudioFrame.from_ndarray(mono[None, start : start + 1024], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def dng(source: Path, path: Path) -> None:
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CFAPattern, DNGVersion, PhotometricInterpretation

    rgb = np.asarray(Image.open(source).convert("RGB")).astype(np.uint16)
    height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    linear = ((rgb[:height, :width] / 255.0) ** 2.2 * 4095).astype(np.uint16)  # 12-bit linear light
    mosaic = np.zeros((height, width), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]  # R G
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]  # G B
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, 1)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, 0)
    tags.set(Tag.WhiteLevel, 4095)
    tags.set(Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]])
    tags.set(Tag.CalibrationIlluminant1, 21)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    tags.set(Tag.Make, "mediasearch")
    tags.set(Tag.Model, "sample")
    writer = RAW2DNG()
    writer.options(tags, path=str(path.parent), compress=False)
    writer.convert(mosaic, filename=path.stem)


def main() -> None:
    clip(SAMPLES / "street-clip.mp4")
    heif = pillow_heif.from_pillow(Image.open(SAMPLES / "cat-chelsea.jpg"))
    heif.save(SAMPLES / "cat-chelsea.heic", quality=80)
    m4a(SAMPLES / "weather-report.flac", SAMPLES / "weather-report.m4a")
    dng(SAMPLES / "coffee-cup.png", SAMPLES / "coffee-cup.dng")
    for name in ("street-clip.mp4", "cat-chelsea.heic", "weather-report.m4a", "coffee-cup.dng"):
        print(f"{name}: {(SAMPLES / name).stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
