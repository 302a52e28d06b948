"""Media decoding: files in, model-ready tensors out, exactly as the contract says.

Images follow transformers' CLIPImageProcessor (PIL, bicubic shortest-side 224,
centre crop, CLIP mean/std); audio follows ClapFeatureExtractor with the
larger_clap settings (48 kHz mono, repeat-pad to 10 s, Slaney log-mel, 1001x64).
Anything that cannot be decoded raises DecodeError with the path and the reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediasearch.errors import DecodeError

# ----------------------------------------------------------------------------- kinds

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".mpg", ".mpeg", ".3gp"}


def sniff(head: bytes) -> str | None:
    """The kind ("image", "audio", "video") that a file's first bytes announce."""
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:4] in (b"GIF8",):
        return "image"
    if head[:2] == b"BM" and len(head) >= 14 or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF":
        return {b"WEBP": "image", b"WAVE": "audio", b"AVI ": "video"}.get(head[8:12])
    if head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3":
        return "audio"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio"  # an MPEG audio frame header (MP3 without ID3 tag)
    if head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3":
        return "video"
    return None


def kind_of(path: Path) -> str | None:
    """Decide a file's kind by its content; the extension only breaks ties.

    Returns None for files that are neither media nor claim to be.  A file whose
    extension claims a media kind but whose content says nothing is still given
    that kind, so decoding fails on it with a clear reason instead of the file
    silently vanishing from the index.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = b""
    kind = sniff(head)
    if kind:
        return kind
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


@dataclass
class Decoded:
    """What one file gives the model: one or more segments and some facts."""

    kind: str
    tensors: list[np.ndarray]
    spans: list[tuple[float | None, float | None]]
    facts: dict = field(default_factory=dict)


def decode(path: str | Path) -> Decoded:
    """Decode an image or audio file into model input, or raise DecodeError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise DecodeError(path, "file is empty")
    kind = kind_of(path)
    if kind == "image":
        img, (width, height) = load_image(path)
        return Decoded("image", [image_tensor(img)], [(None, None)], {"width": width, "height": height})
    if kind == "audio":
        return decode_audio(path)
    if kind == "video":
        raise DecodeError(path, "video is not supported yet")
    raise DecodeError(path, "not an image or sound file mediasearch can read")


def decode_or_error(path: str | Path) -> Decoded | DecodeError:
    """decode(), with any failure returned as a DecodeError so one file never stops a run."""
    try:
        return decode(path)
    except DecodeError as exc:
        return exc
    except Exception as exc:  # a decoder bug: still reported per file
        return DecodeError(path, f"could not be decoded ({type(exc).__name__}: {exc})")


# ----------------------------------------------------------------------------- images

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
IMAGE_SIZE = 224
MAX_PIXELS = 256_000_000  # past this a "picture" is a decompression bomb, not a photo
DRAFT_SHORT_SIDE = 448  # reduced-scale JPEG decoding keeps at least twice the model's 224


def load_image(path: Path, reduced: bool = True):
    """Open a picture upright and as 8-bit RGB; return it and its full upright size.

    EXIF orientation is applied; 16-bit pictures are scaled to 8 bits (not
    clipped); transparent pixels are laid over white, the way a viewer with a
    light background shows them; animated formats give their first frame.
    A large JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, by the
    decoder itself) whose short side stays at least DRAFT_SHORT_SIDE pixels,
    which is several times faster and changes the vector very little (see
    README); reduced=False decodes every pixel.
    """
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, at our limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(path)
            if img.width * img.height > MAX_PIXELS:
                raise DecodeError(
                    path,
                    f"{img.width}x{img.height} pixels is over the {MAX_PIXELS // 1_000_000} MP limit: "
                    "refused as a decompression bomb",
                )
            size = img.size
            if reduced and img.format == "JPEG" and min(size) >= 2 * DRAFT_SHORT_SIDE:
                scale = min(size) / DRAFT_SHORT_SIDE
                img.draft(img.mode, (int(size[0] / scale), int(size[1] / scale)))
            img.load()
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                size = size[::-1]
            img = ImageOps.exif_transpose(img)
            return to_rgb(img), size
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(path, f"refused as a decompression bomb ({exc})") from exc
    except Exception as exc:
        raise DecodeError(path, f"not a readable image ({_first_line(exc)})") from exc


def to_rgb(img):
    """Any Pillow mode to 8-bit RGB, scaling deep pictures and flattening alpha on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.int64)
        if img.mode == "I" and arr.max(initial=0) <= 255:
            arr = arr.clip(0, 255)
        else:
            arr = arr.clip(0, 65535) >> 8
        img = Image.fromarray(arr.astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        img = Image.fromarray((arr * scale).clip(0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def image_tensor(img) -> np.ndarray:
    """[3, 224, 224] float32 per CLIPImageProcessor: bicubic short side 224, centre crop."""
    from PIL import Image

    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(IMAGE_SIZE * long / short)
    new_w, new_h = (IMAGE_SIZE, new_long) if w <= h else (new_long, IMAGE_SIZE)
    resized = img.resize((new_w, new_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    arr = np.asarray(resized)
    top, left = (new_h - IMAGE_SIZE) // 2, (new_w - IMAGE_SIZE) // 2
    crop = arr[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE].astype(np.float32) / 255.0
    return ((crop - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- audio

SAMPLE_RATE = 48_000
WINDOW_S = 10.0
HOP_S = 8.0  # windows overlap by 2 s, so a sound up to 2 s long is never cut in two
WINDOW = int(SAMPLE_RATE * WINDOW_S)
N_FFT, HOP, N_MELS, F_MIN, F_MAX = 1024, 480, 64, 50.0, 14_000.0


def windows(duration: float) -> list[tuple[float, float]]:
    """Deterministic 10 s windows over a recording, as (start, end) seconds.

    Up to 10 s: one window, the whole clip (repeat-padded like the reference).
    Longer: windows start every 8 s; the last one is aligned to end exactly at
    the end of the recording, so every window holds 10 s of real sound.
    """
    if duration <= WINDOW_S:
        return [(0.0, duration)]
    spans = []
    start = 0.0
    while start + WINDOW_S < duration:
        spans.append((start, start + WINDOW_S))
        start += HOP_S
    last = (duration - WINDOW_S, duration)
    if spans[-1][0] < last[0]:
        spans.append(last)
    return spans


def decode_audio(path: Path) -> Decoded:
    """One log-mel tensor per window, read window by window (long files never sit in memory)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as snd:
            rate, frames = snd.samplerate, snd.frames
            if frames <= 0 or rate <= 0:
                raise DecodeError(path, "contains no audio samples")
            duration = frames / rate
            tensors, spans = [], []
            for start, end in windows(duration):
                first = int(round(start * rate))
                count = min(int(round((end - start) * rate)), frames - first)
                snd.seek(first)
                block = snd.read(count, dtype="float32", always_2d=True)
                if len(block) == 0:
                    raise DecodeError(path, f"no samples could be read at {start:.1f} s (truncated file?)")
                samples = resample(block.mean(axis=1), rate)
                tensors.append(audio_features(samples))
                spans.append((round(start, 3), round(end, 3)))
            facts = {"duration": round(duration, 3), "sample_rate": rate, "channels": snd.channels}
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(path, f"not a readable sound file ({_first_line(exc)})") from exc
    return Decoded("audio", tensors, spans, facts)


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at 48 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE:
        return mono.astype(np.float32)
    import soxr

    return soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def audio_features(samples: np.ndarray) -> np.ndarray:
    """[1, 1001, 64] float32 log-mel of up to 10 s at 48 kHz, per ClapFeatureExtractor."""
    wave = np.asarray(samples, dtype=np.float64)[:WINDOW]
    if 0 < len(wave) < WINDOW:
        wave = np.tile(wave, WINDOW // len(wave))  # "repeatpad": whole repeats, then zeros
    wave = np.pad(wave, (0, WINDOW - len(wave)))
    padded = np.pad(wave, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2
    mel = power @ _mel_bank().T
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)[None]


def silent_features() -> np.ndarray:
    return audio_features(np.zeros(WINDOW, np.float32))


_CACHE: dict[str, np.ndarray] = {}


def _hann() -> np.ndarray:
    if "hann" not in _CACHE:
        n = np.arange(N_FFT)
        _CACHE["hann"] = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)  # periodic
    return _CACHE["hann"]


def _mel_bank() -> np.ndarray:
    """[64, 513] Slaney-scale, Slaney-normalised triangular filters, 50-14,000 Hz."""
    if "mel" not in _CACHE:
        fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
        mels = np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2)
        edges = _mel_to_hz(mels)
        lower = (fft_freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
        upper = (edges[2:, None] - fft_freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
        bank = np.maximum(0, np.minimum(lower, upper))
        bank *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
        _CACHE["mel"] = bank
    return _CACHE["mel"]


_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0
_MIN_LOG_MEL, _LOGSTEP = _MIN_LOG_HZ / _F_SP, math.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    return hz / _F_SP if hz < _MIN_LOG_HZ else _MIN_LOG_MEL + math.log(hz / _MIN_LOG_HZ) / _LOGSTEP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    linear = mels * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return np.where(mels >= _MIN_LOG_MEL, log, linear)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
