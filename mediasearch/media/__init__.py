"""Media decoding: files in, model-ready tensors out, exactly as the contract says.

One decoder per kind of file, chosen by one table (DECODERS) from the kind the
content announces (sniff.py): pictures (pictures.py), camera RAW (raw.py),
sound (sound.py) and video (video.py, with FFmpeg's part in ffmpeg.py).  Every
decoder returns a Decoded (decoded.py); anything that cannot be decoded raises
DecodeError with the path and the reason.

The decoders' libraries (Pillow, soundfile, soxr, librosa, PyAV) are imported
on first use: a text query imports this package but decodes nothing, and
librosa alone takes about half a second to import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mediasearch.errors import DecodeError
from mediasearch.media import ffmpeg
from mediasearch.media.decoded import OUT_OF_MEMORY, Decoded, Segment, Span, failure, first_line, out_of_memory
from mediasearch.media.pictures import (
    DRAFT_SHORT_SIDE,
    IMAGE_BUDGET,
    MAX_PIXELS,
    REDUCE_ABOVE,
    configure_pillow,
    decode_picture,
    image_tensor,
    load_image,
    to_rgb,
)
from mediasearch.media.raw import decode_raw, is_raw, load_raw
from mediasearch.media.sniff import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    RAW_EXTENSIONS,
    VIDEO_EXTENSIONS,
    content_hash,
    kind_of,
    sniff,
)
from mediasearch.media.sound import (
    MAX_DURATION_S,
    SAMPLE_RATE,
    audio_features,
    decode_audio,
    expected_segments,
    samples_between,
    silent_features,
    windows,
)
from mediasearch.media.video import decode_video

__all__ = [
    "AUDIO_EXTENSIONS", "DECODERS", "DRAFT_SHORT_SIDE", "IMAGE_BUDGET", "IMAGE_EXTENSIONS", "MAX_DURATION_S",
    "MAX_PIXELS", "OUT_OF_MEMORY", "RAW_EXTENSIONS", "REDUCE_ABOVE", "SAMPLE_RATE", "VIDEO_EXTENSIONS", "Decoded",
    "Segment", "Span", "audio_features", "configure_pillow", "content_hash", "decode", "decode_or_error",
    "expected_segments", "failure", "ffmpeg", "image_tensor", "is_raw", "kind_of", "load_image", "load_raw",
    "out_of_memory", "samples_between", "silent_features", "sniff", "thumbnail", "thumbnail_jpeg", "to_rgb",
    "windows",
]  # fmt: skip

# The one table: a file's decoder by its kind ("raw" is a picture LibRaw, not Pillow, reads).
DECODERS: dict[str, Callable[[Path, float], Decoded]] = {
    "image": decode_picture,
    "raw": decode_raw,
    "audio": decode_audio,
    "video": decode_video,
}


def decode(path: str | Path, max_duration: float | None = None) -> Decoded:
    """Decode a picture, sound or video into model input, or raise DecodeError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise DecodeError(path, "file is empty")
    configure_pillow()
    kind = kind_of(path)
    if kind == "image" and is_raw(path):
        kind = "raw"
    if kind not in DECODERS:
        raise DecodeError(path, "not a picture, sound or video file mediasearch can read")
    return DECODERS[kind](path, max_duration or MAX_DURATION_S)


def decode_or_error(path: str | Path, max_duration: float | None = None) -> Decoded | DecodeError:
    """decode(), with any failure returned as a DecodeError so one file never stops a run."""
    try:
        return decode(path, max_duration)
    except Exception as exc:  # not enough memory, or a decoder bug: still reported per file
        return failure(path, exc)


def thumbnail(path: str | Path, kind: str, size: int, name: str | Path | None = None):
    """An upright RGB picture of a picture (or a video's first key frame) at most `size` on its long
    side, made with Pillow; None for a sound or a video without frames.  The one way every face (the
    page's thumbnails, MCP's pictures) makes them.  name: the file's own name where `path` is another
    way to it (/dev/fd/N), so camera RAW is still known by its extension."""
    configure_pillow()
    if kind == "image":
        image, _ = load_raw(Path(path)) if is_raw(name or path) else load_image(Path(path))
    elif kind == "video":
        first = next(iter(ffmpeg.pick_frames(path, 10.0, 1)), None)
        if first is None:
            return None
        image = to_rgb(first[1])
    else:
        return None
    image.thumbnail((size, size))
    return image


def thumbnail_jpeg(path: str | Path, kind: str, size: int, name: str | Path | None = None) -> bytes | None:
    """thumbnail() as JPEG bytes (None for a sound); whatever the decoders raise is a DecodeError."""
    import io

    try:
        image = thumbnail(path, kind, size, name)
    except DecodeError:
        raise
    except Exception as exc:  # Pillow and FFmpeg have many ways to refuse a file
        raise DecodeError(name or path, f"no thumbnail ({type(exc).__name__}: {first_line(exc)})") from exc
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=82)
    return buffer.getvalue()
