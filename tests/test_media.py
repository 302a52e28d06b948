"""Decoding: kinds by content, every picture mode, audio windows, and bad input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from conftest import INPUTS, SAMPLES
from PIL import Image

from mediasearch import media
from mediasearch.errors import DecodeError


def test_kinds_come_from_content_not_extension(tmp_path):
    disguised = tmp_path / "photo.wav"
    disguised.write_bytes((INPUTS / "landscape.jpg").read_bytes())
    assert media.kind_of(disguised) == "image"
    assert media.kind_of(SAMPLES / "rain-noise.mp3") == "audio"
    assert media.kind_of(SAMPLES / "tone-a440.ogg") == "audio"
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert media.kind_of(notes) is None
    video = tmp_path / "clip.bin"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(32))
    assert media.kind_of(video) == "video"


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.iterdir() if p.suffix != ".md"))
def test_every_sample_decodes(name):
    decoded = media.decode(SAMPLES / name)
    assert decoded.tensors and len(decoded.tensors) == len(decoded.spans)


def test_transparent_pixels_are_laid_on_white(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)  # fully transparent black
    rgba[16:48, 16:48] = (200, 30, 30, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    on_white = np.full((64, 64, 3), 255, np.uint8)
    on_white[16:48, 16:48] = (200, 30, 30)
    Image.fromarray(on_white).save(tmp_path / "white.png")
    assert np.array_equal(
        media.decode(tmp_path / "logo.png").tensors[0], media.decode(tmp_path / "white.png").tensors[0]
    )


# Four patches side by side: a red, a mid grey, white and black, each 16 px wide.
PATCHES = [(200, 30, 30), (128, 128, 128), (255, 255, 255), (0, 0, 0)]
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "F"}


def _patches(width: int = 64, height: int = 40) -> Image.Image:
    arr = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(PATCHES):
        arr[:, i * width // 4 : (i + 1) * width // 4] = colour
    return Image.fromarray(arr)


def _in_mode(img: Image.Image, mode: str) -> Image.Image:
    """The patches in a Pillow mode; 16-bit grey holds the full 0-65535 range, as a 16-bit file does."""
    if mode == "I;16":
        grey = np.asarray(img.convert("L"), np.uint16) * 257
        return Image.fromarray(grey)  # uint16: mode I;16
    return img.convert("RGBA").convert(mode)


def _assert_patches(rgb: Image.Image, mode: str, tolerance: float = 24) -> None:
    """Each patch's mean colour is the original's (grey modes: its luminance), within the mode's rounding."""
    arr = np.asarray(rgb, np.float64)
    width = arr.shape[1]
    for i, colour in enumerate(PATCHES):
        patch = arr[2:-2, i * width // 4 + 2 : (i + 1) * width // 4 - 2].reshape(-1, 3).mean(axis=0)
        want = np.array(colour, np.float64)
        if mode in GREY_MODES:
            want = np.full(3, 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])
        assert np.abs(patch - want).max() <= tolerance, (mode, i, patch.round(), want)


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F", "RGBa"]
)
def test_every_pillow_mode_becomes_rgb(mode):
    rgb = media.to_rgb(_in_mode(_patches(), mode))
    assert rgb.mode == "RGB" and rgb.size == (64, 40)
    _assert_patches(rgb, mode, tolerance=128 if mode == "1" else 24)  # bilevel: dithered black and white


@pytest.mark.parametrize(
    "mode, name, options",
    [
        ("I;16", "deep.png", {}),
        ("I;16", "deep.tif", {}),
        ("P", "palette.gif", {}),
        ("P", "palette.png", {}),
        ("1", "scan.tif", {"compression": "group4"}),
    ],
)
def test_large_pictures_of_every_mode_are_reduced(tmp_path, monkeypatch, mode, name, options):
    """Pictures over REDUCE_ABOVE are box-reduced after decoding, whatever their mode (16-bit grey, palette,
    a bilevel fax scan); the threshold is lowered so that a 1,800 x 1,000 picture stands for a 25 MP one."""
    monkeypatch.setattr(media.pictures, "REDUCE_ABOVE", 1_000_000)
    _in_mode(_patches(1800, 1000), mode).save(tmp_path / name, **options)
    img, size = media.load_image(tmp_path / name)
    assert size == (1800, 1000) and img.mode == "RGB" and img.size == (900, 500), "reduced by 2"
    _assert_patches(img, mode, tolerance=128 if mode == "1" else 24)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    img = Image.fromarray(np.full((8, 8), 40000, np.uint16))
    assert np.asarray(media.to_rgb(img))[0, 0].tolist() == [40000 >> 8] * 3


def test_exif_orientation_is_applied():
    decoded = media.decode(INPUTS / "rotated.jpg")
    stored = Image.open(INPUTS / "rotated.jpg")
    assert (decoded.facts["width"], decoded.facts["height"]) == (stored.height, stored.width)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    a, b = media.decode(tmp_path / "anim.gif").tensors[0], media.decode(tmp_path / "red.png").tensors[0]
    assert np.allclose(a, b, atol=0.05)


# ----------------------------------------------------------------------------- bad input


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(bytes(64))
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
    )


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "file is empty"),
        ("empty.wav", b"", "file is empty"),
        ("notes.jpg", b"just some text, not a picture\n", "not a readable image"),
        ("bomb.png", _png_header(50_000, 50_000), "refused as a decompression bomb"),
        ("readme.txt", b"hello", "not a picture, sound or video file"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        media.decode(path)
    assert reason in err.value.reason and err.value.path == str(path)


@pytest.mark.parametrize("name", ["landscape.jpg", "portrait.png"])
def test_truncated_pictures_are_refused(tmp_path, name):
    data = (INPUTS / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="not a readable image"):
        media.decode(path)


def test_wav_header_without_data(tmp_path):
    sf.write(tmp_path / "nothing.wav", np.zeros(0, np.float32), 48000)
    with pytest.raises(DecodeError, match="no audio samples"):
        media.decode(tmp_path / "nothing.wav")


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="cannot read file"):
        media.decode(tmp_path / "gone.wav")


def test_silence_and_a_click_give_defined_vectors(embedder, tmp_path):
    """Silence is a valid (if dull) sound; a 0.05 s click is repeat-padded to 10 s like the reference."""
    sf.write(tmp_path / "silence.wav", np.zeros(48000 * 2, np.float32), 48000)
    click = np.zeros(2400, np.float32)
    click[:48] = 0.9
    sf.write(tmp_path / "click.wav", click, 48000)
    silent = media.decode(tmp_path / "silence.wav")
    assert np.allclose(silent.tensors[0], -100.0)
    vectors = embedder.embed_decoded([silent, media.decode(tmp_path / "click.wav")])
    for v in vectors:
        assert v.shape == (1, 512) and np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5
    assert float(vectors[0][0] @ vectors[1][0]) < 0.9999


def test_repeat_pad_matches_the_reference_rule():
    clip = np.linspace(-1, 1, 7_000, dtype=np.float32)  # 68 whole repeats (476,000 samples), then 4,000 zeros
    feats = media.audio_features(clip)
    assert feats.shape == (1, 1001, 64)
    manual = np.pad(np.tile(clip, 68), (0, 480_000 - 68 * 7_000))
    assert np.allclose(feats, media.audio_features(manual))
    assert not np.allclose(feats, media.audio_features(np.tile(clip, 69)[:480_000])), "the tail is zeros, not more"


def test_window_plan():
    assert media.windows(4.0) == [(0.0, 4.0)]
    assert media.windows(10.0) == [(0.0, 10.0)]
    assert media.windows(10.5) == [(0.0, 10.0), (0.5, 10.5)]
    assert media.windows(26.0) == [(0.0, 10.0), (8.0, 18.0), (16.0, 26.0)]


def test_reduced_scale_jpeg_decode_stays_faithful(embedder, tmp_path):
    """Large JPEGs decode at 1/2..1/8 scale; the vector must stay within 0.9999 of full decoding."""
    rng = np.random.default_rng(0)
    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB").resize((2400, 1600), Image.Resampling.BICUBIC)
    noisy = np.asarray(photo).astype(np.int16) + rng.normal(0, 6, (1600, 2400, 3)).astype(np.int16)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(tmp_path / "big.jpg", quality=90)
    reduced, size = media.load_image(tmp_path / "big.jpg")
    full, _ = media.load_image(tmp_path / "big.jpg", reduced=False)
    assert size == (2400, 1600) and reduced.size[1] < 1600 and min(reduced.size) >= media.DRAFT_SHORT_SIDE
    vectors = embedder.embed_pixels(np.stack([media.image_tensor(reduced), media.image_tensor(full)]))
    assert float(vectors[0] @ vectors[1]) >= 0.9999


# ----------------------------------------------------------------------------- phone and camera formats


def test_heic_equals_the_same_pixels_as_png(embedder, tmp_path):
    media.configure_pillow()
    pixels = Image.open(SAMPLES / "cat-chelsea.heic").convert("RGB")
    pixels.save(tmp_path / "same.png")
    heic, png = media.decode(SAMPLES / "cat-chelsea.heic"), media.decode(tmp_path / "same.png")
    assert heic.kind == "image" and heic.facts == {"width": 451, "height": 300}
    vectors = embedder.embed_decoded([heic, png])
    assert float(vectors[0][0] @ vectors[1][0]) >= 0.9999


FORMATS = [("AVIF", ".avif"), ("JPEG2000", ".jp2"), ("TGA", ".tga"), ("PPM", ".ppm"), ("QOI", ".qoi"),
           ("DDS", ".dds"), ("SGI", ".sgi"), ("PCX", ".pcx")]  # fmt: skip


@pytest.mark.parametrize("fmt, suffix", FORMATS)
def test_the_other_formats_pillow_reads(embedder, tmp_path, fmt, suffix):
    source = Image.open(SAMPLES / "coffee-cup.png").convert("RGB").reduce(2)  # QOI and DDS are Python codecs
    path = tmp_path / f"coffee{suffix}"
    source.save(path, format=fmt)
    assert media.kind_of(path) == "image"
    same = tmp_path / "same.png"
    Image.open(path).convert("RGB").save(same)
    vectors = embedder.embed_decoded([media.decode(path), media.decode(same)])
    assert float(vectors[0][0] @ vectors[1][0]) >= 0.9999


def test_camera_raw_is_developed_and_equals_its_pixels(embedder, tmp_path):
    decoded = media.decode(SAMPLES / "coffee-cup.dng")
    assert decoded.kind == "image" and decoded.facts == {"width": 600, "height": 400}
    developed, _ = media.load_raw(SAMPLES / "coffee-cup.dng")  # no preview inside: a half-size development
    assert developed.size == (300, 200)
    developed.save(tmp_path / "same.png")
    vectors = embedder.embed_decoded([decoded, media.decode(tmp_path / "same.png")])
    assert float(vectors[0][0] @ vectors[1][0]) >= 0.9999


def test_a_raw_with_a_large_preview_uses_the_preview(tmp_path, monkeypatch):
    import rawpy

    preview = Image.open(SAMPLES / "rocket-launch.jpg").resize((1200, 800))
    preview.save(tmp_path / "preview.jpg")

    class Thumb:
        format = rawpy.ThumbFormat.JPEG
        data = (tmp_path / "preview.jpg").read_bytes()

    class Raw:
        class sizes:  # noqa: N801 - rawpy's own attribute name
            width, height, flip = 6000, 4000, 0

        def extract_thumb(self):
            return Thumb()

        def postprocess(self, **_):
            raise AssertionError("a large enough preview must not be developed")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(rawpy, "imread", lambda path: Raw())
    img, size = media.load_raw(tmp_path / "camera.nef")
    assert size == (6000, 4000) and img.size == preview.size


@pytest.mark.parametrize(
    "name, kind",
    [
        ("cat-chelsea.heic", "image"),
        ("coffee-cup.dng", "image"),
        ("weather-report.m4a", "audio"),
        ("street-clip.mp4", "video"),
    ],
)
def test_phone_and_camera_kinds_come_from_content(tmp_path, name, kind):
    renamed = tmp_path / ("mystery" + (".dng" if name.endswith(".dng") else ""))
    renamed.write_bytes((SAMPLES / name).read_bytes())
    assert media.kind_of(renamed) == kind
