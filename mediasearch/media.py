"""Media decoding: files in, model-ready tensors out, exactly as the contract says.

Images follow transformers' CLIPImageProcessor (PIL, bicubic shortest-side 224,
centre crop, CLIP mean/std); audio follows ClapFeatureExtractor with the
larger_clap settings (48 kHz mono, repeat-pad to 10 s, Slaney log-mel, 1001x64).
Anything that cannot be decoded raises DecodeError with the path and the reason.

The decoders (Pillow, soundfile, soxr, librosa) are imported on first use: a
text query imports this module but decodes nothing, and librosa alone takes
about half a second to import.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mediasearch.errors import DecodeError

# ----------------------------------------------------------------------------- kinds

# Camera RAW files: most are TIFF inside, so the name decides that LibRaw (rawpy), not Pillow, reads them.
RAW_EXTENSIONS = {
    ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2", ".raf", ".pef",
    ".srw", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f",
}  # fmt: skip
IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".hif",
    ".avif", ".jp2", ".j2k", ".jpf", ".jpx", ".j2c", ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".psd", ".mpo",
    ".dds", ".ico", ".icns", ".qoi", ".pcx", ".sgi", ".rgb", ".xbm",
} | RAW_EXTENSIONS  # fmt: skip
AUDIO_EXTENSIONS = {
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".m4b", ".aac", ".alac", ".opus", ".wma", ".aif",
    ".aiff", ".aifc", ".amr", ".awb", ".caf", ".mka", ".ac3", ".eac3", ".dts", ".mp2", ".mpa", ".au", ".snd",
    ".ape", ".wv", ".tta", ".w64", ".voc", ".spx", ".weba",
}  # fmt: skip
VIDEO_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".mpg", ".mpeg", ".3gp", ".3g2", ".mts", ".m2ts",
    ".ts", ".vob", ".ogv", ".flv", ".f4v", ".asf", ".divx", ".mxf", ".m2v", ".mpe", ".rm", ".rmvb",
}  # fmt: skip
SNIFF_BYTES = 4096
# ISO-BMFF brands (bytes 8-12 after "ftyp"): HEIF pictures, M4A sound; any other brand is a video.
_PICTURE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"crx "}
_SOUND_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}

# MPEG audio frame headers: bitrates (kbit/s) by version group and layer, sample rates by version.
_MPEG_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(head: bytes, at: int) -> int | None:
    """The length of the MPEG audio frame whose header starts at `at`, or None if it is not one."""
    if len(head) < at + 4 or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[at + 1] >> 3) & 3, 4 - ((head[at + 1] >> 1) & 3)
    bitrate_index, rate_index, padding = head[at + 2] >> 4, (head[at + 2] >> 2) & 3, (head[at + 2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values: free-format or not MPEG audio at all
    bitrate = _MPEG_BITRATES[(1 if version == 3 else 2, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if layer == 2 or version == 3 else 72
    return per_frame * bitrate // rate + padding


def _looks_like_mp3(head: bytes) -> bool:
    """An MP3 without an ID3 tag: two valid frame headers in a row (one 0xFFE sync alone is
    common in pictures and other binary files, which must not be taken for sound)."""
    length = _mpeg_frame_length(head, 0)
    if length is None:
        return False
    if len(head) < length + 4:
        return len(head) < SNIFF_BYTES  # a tiny file: one frame is all there is
    return _mpeg_frame_length(head, length) is not None


def sniff(head: bytes) -> str | None:
    """The kind ("image", "audio", "video") that a file's first bytes announce."""
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:4] in (b"GIF8",):
        return "image"
    if head[:2] == b"BM" and len(head) >= 14 or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF":
        return {b"WEBP": "image", b"WAVE": "audio", b"AVI ": "video"}.get(head[8:12])
    if head[:4] in (b"fLaC", b"OggS", b"caff", b"#!AM") or head[:3] == b"ID3":
        return "audio"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head[:4] in (b"8BPS", b"DDS ", b"qoif") or head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return "image"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "image" if brand in _PICTURE_BRANDS else "audio" if brand in _SOUND_BRANDS else "video"
    if head[:4] == b"\x1aE\xdf\xa3" or head[:4] == b"\x30\x26\xb2\x75":  # Matroska/WebM, ASF/WMV/WMA
        return "video"
    if _looks_like_mp3(head):
        return "audio"
    return None


def kind_of(path: str | Path) -> str | None:
    """Decide a file's kind by its content; the extension only breaks ties.

    Returns None for files that are neither media nor claim to be.  A file whose
    extension claims a media kind but whose content says nothing is still given
    that kind, so decoding fails on it with a clear reason instead of the file
    silently vanishing from the index.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        head = b""
    ext = os.path.splitext(path)[1].lower()
    if ext in RAW_EXTENSIONS and head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"IIU\x00", b"FUJI"):
        return "image"
    kind = sniff(head)
    if kind:
        return kind
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


Span = tuple[float | None, float | None]


class Segment(NamedTuple):
    """One piece of a file for the model: where it is, its model input, and which tower takes it."""

    span: Span
    tensor: np.ndarray
    modality: str  # "image" or "audio"; a video has both


@dataclass
class Decoded:
    """What one file gives the model: segments and some facts.

    `ready` holds the segments decoded so far; a long recording (or a video)
    keeps the rest in `more`, read on demand, so it never sits in memory whole.
    `note` says when a file could only be read in part (a damaged tail, the
    duration cap).
    """

    kind: str
    ready: list[Segment]
    facts: dict = field(default_factory=dict)
    more: Iterator[Segment] | None = None
    note: str | None = None

    @property
    def tensors(self) -> list[np.ndarray]:
        return [s.tensor for s in self.ready]

    @property
    def spans(self) -> list[Span]:
        return [s.span for s in self.ready]

    @property
    def modalities(self) -> list[str]:
        return [s.modality for s in self.ready]

    def read_all(self) -> Decoded:
        """Every segment in `ready` (for short jobs: `embed`, a query example)."""
        if self.more is not None:
            self.ready.extend(self.more)
            self.more = None
        return self

    def close(self) -> None:
        if self.more is not None:
            self.more.close()  # type: ignore[attr-defined]
            self.more = None


def content_hash(path: str) -> str:
    digest = hashlib.sha256()  # SHA-NI makes it twice as fast as blake2b here
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def decode(path: str | Path, max_duration: float | None = None) -> Decoded:
    """Decode an image or audio file into model input, or raise DecodeError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise DecodeError(path, "file is empty")
    configure_pillow()
    kind = kind_of(path)
    if kind == "image":
        with IMAGE_BUDGET.reserve(image_cost(path)):
            img, (width, height) = load_raw(path) if is_raw(path) else load_image(path)
            tensor = image_tensor(img)
        return Decoded("image", [Segment((None, None), tensor, "image")], {"width": width, "height": height})
    if kind == "audio":
        return decode_audio(path, max_duration or MAX_DURATION_S)
    if kind == "video":
        return decode_video(path, max_duration or MAX_DURATION_S)
    raise DecodeError(path, "not a picture, sound or video file mediasearch can read")


def decode_or_error(path: str | Path, max_duration: float | None = None) -> Decoded | DecodeError:
    """decode(), with any failure returned as a DecodeError so one file never stops a run."""
    try:
        return decode(path, max_duration)
    except DecodeError as exc:
        return exc
    except MemoryError:
        return DecodeError(path, "too large to decode in the memory available")
    except Exception as exc:  # a decoder bug: still reported per file
        return DecodeError(path, f"could not be decoded ({type(exc).__name__}: {_first_line(exc)})")


# ----------------------------------------------------------------------------- images

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
IMAGE_SIZE = 224
# Past this a "picture" is a decompression bomb, not a photo.  Chosen for memory: at 4 bytes a
# pixel (RGBA, CMYK, 32-bit grey) the largest picture accepted is 480 MB, and Pillow's decoders
# peak at about twice that; the decoding budget below lets such a picture through alone, which
# with the full-size towers loaded keeps `index` under 2.5 GB.
MAX_PIXELS = 120_000_000
DRAFT_SHORT_SIDE = 448  # reduced-scale decoding keeps at least twice the model's 224
REDUCE_ABOVE = 16_000_000  # pictures larger than this are box-reduced right after decoding


class MemoryBudget:
    """Decoder threads reserve the bytes a decode will hold before starting it.

    A count of threads does not bound memory when one picture can take 600 MB:
    this does.  A job larger than the whole budget runs alone.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.free = capacity
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, cost: int):
        cost = min(max(cost, 0), self.capacity)
        with self._cond:
            self._cond.wait_for(lambda: self.free >= cost)
            self.free -= cost
        try:
            yield
        finally:
            with self._cond:
                self.free += cost
                self._cond.notify_all()


IMAGE_BUDGET = MemoryBudget(800 * 1024 * 1024)


_PILLOW_READY = threading.Event()
_PILLOW_LOCK = threading.Lock()


def configure_pillow() -> None:
    """Pillow's process-wide settings, made once: our pixel limit, and HEIF/HEIC through pillow-heif.

    Called from runtime.configure() at start-up and, for library users, on the
    first decode; never changes anything after that.
    """
    if _PILLOW_READY.is_set():
        return
    with _PILLOW_LOCK:
        if _PILLOW_READY.is_set():
            return
        import pillow_heif
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, at our limit
        pillow_heif.register_heif_opener()  # HEIC/HEIF (AVIF is Pillow's own)
        _PILLOW_READY.set()


def is_raw(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


RAW_PREVIEW_SHORT_SIDE = DRAFT_SHORT_SIDE  # an embedded preview this large stands for the RAW


def load_raw(path: Path):
    """A camera RAW upright as 8-bit RGB: its embedded JPEG preview when it is at least 448 px on
    the short side (what cameras show, and fast), else a half-size development by LibRaw."""
    import io

    import rawpy
    from PIL import Image

    try:
        with rawpy.imread(str(path)) as raw:
            size = (raw.sizes.width, raw.sizes.height)
            if raw.sizes.flip in (5, 6):
                size = size[::-1]
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                preview = Image.open(io.BytesIO(thumb.data))
                if min(preview.size) >= RAW_PREVIEW_SHORT_SIDE:
                    preview = _flip(preview, raw.sizes.flip)
                    return to_rgb(preview), size
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return Image.fromarray(rgb), size
    except DecodeError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise DecodeError(path, f"not a readable camera RAW file ({_first_line(exc)})") from exc


def _flip(image, flip: int):
    """LibRaw's flip code applied to a preview (development applies it by itself)."""
    from PIL import Image

    turns = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}
    return image.transpose(turns[flip]) if flip in turns else image


def image_cost(path: Path) -> int:
    """Bytes a picture holds at its peak while decoding (the header is enough to tell)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
            jpeg = img.format == "JPEG"
    except Exception:
        return 0  # load_image will say what is wrong with it
    if jpeg and pixels > 4 * DRAFT_SHORT_SIDE**2:
        pixels = max(pixels // 16, 4 * DRAFT_SHORT_SIDE**2)  # decoded at a reduced scale
    return pixels * 4 * 2  # up to 4 bytes a pixel, and one working copy


def load_image(path: Path, reduced: bool = True):
    """Open a picture upright and as 8-bit RGB; return it and its full upright size.

    EXIF orientation is applied; 16-bit pictures are scaled to 8 bits (not
    clipped); transparent pixels are laid over white, the way a viewer with a
    light background shows them; animated formats give their first frame.
    A large JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, by the
    decoder itself) whose short side stays at least DRAFT_SHORT_SIDE pixels,
    and any picture over REDUCE_ABOVE pixels is box-reduced the same way right
    after decoding, which is several times faster, keeps memory low and changes
    the vector very little (see README); reduced=False decodes every pixel.
    """
    from PIL import Image, ImageOps

    try:
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
        if reduced and img.width * img.height > REDUCE_ABOVE:
            factor = min(img.size) // DRAFT_SHORT_SIDE
            if factor >= 2:
                img = img.reduce(factor)
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            size = size[::-1]
        img = ImageOps.exif_transpose(img)
        return to_rgb(img), size
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(path, f"refused as a decompression bomb ({exc})") from exc
    except MemoryError:
        raise
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
# Sample rates anybody records at lie between telephone (8 kHz; 4 kHz for old formats) and
# studio (768 kHz); outside that a header is lying, and a 1 Hz "recording" of 100 KB would
# stand for a day of sound.
MIN_RATE, MAX_RATE = 4_000, 768_000
MAX_DURATION_S = 12 * 3600.0  # the default cap on what one recording contributes (`--max-duration`)
READ_AHEAD = 16  # windows a decoder thread reads before handing a recording over


def expected_segments(path: str | Path, kind: str | None) -> int:
    """Roughly how many segments a file of this kind will give, for progress (a header's word is enough)."""
    if kind != "audio":
        return 1
    try:
        import soundfile as sf

        seconds = min(sf.info(str(path)).duration, MAX_DURATION_S)
    except Exception:
        return 1
    return len(windows(seconds)) if seconds > 0 else 1


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


def decode_audio(path: Path, max_duration: float = MAX_DURATION_S) -> Decoded:
    """Open a recording and read its first windows; the rest follow on demand.

    What a recording is comes from what can be read, never from the frame count
    a header claims (a few hundred bytes of MP3 can claim 2^63 frames): the file
    is read front to back, window by window, and its duration is where reading
    ends.  A damaged tail keeps what came before it, with a note.  libsndfile
    reads what it can (the fast path); FFmpeg reads the rest (M4A, AAC, WMA...).
    """
    snd = _open_sound(path)
    decoded = Decoded("audio", [], {"sample_rate": snd.samplerate, "channels": snd.channels})
    return _read_ahead(decoded, _read_windows(path, snd, decoded, max_duration))


def _open_sound(path: Path):
    """A reader with samplerate, channels, read() and close(): libsndfile's, else FFmpeg's."""
    import soundfile as sf

    from mediasearch import ffmpeg

    try:
        snd = sf.SoundFile(str(path))
    except Exception as exc:
        try:
            snd = ffmpeg.AvAudio(path)
        except DecodeError as other:
            # libsndfile's "possibly a pipe?" only means its MP3 reader gave up: FFmpeg's word is truer then.
            reason = _sndfile_reason(exc)
            message = other.reason if "pipe" in reason else f"not a readable sound file ({reason})"
            raise DecodeError(path, message) from exc
    if not MIN_RATE <= snd.samplerate <= MAX_RATE:
        snd.close()
        raise DecodeError(path, f"a sample rate of {snd.samplerate} Hz is not one anybody records at: refused")
    return snd


def _read_ahead(decoded: Decoded, stream: Iterator[Segment]) -> Decoded:
    """Read the first READ_AHEAD segments now (in the decoder thread); keep the rest for later."""
    try:
        for _ in range(READ_AHEAD):
            decoded.ready.append(next(stream))
    except StopIteration:
        return decoded
    except BaseException:
        stream.close()
        raise
    decoded.more = stream
    return decoded


# ----------------------------------------------------------------------------- video

FRAME_INTERVAL_S = 10.0  # within one long scene, a frame at least this often
MAX_FRAMES = 600  # frames of one video at most; a longer video spaces them out


def decode_video(path: Path, max_duration: float = MAX_DURATION_S) -> Decoded:
    """A video as frames (pictures, at scene changes and every FRAME_INTERVAL_S) and its
    soundtrack (the same 10 s windows as a sound file), each segment with its time.

    A file with sound and no picture is a sound; one with neither is an error.
    """
    from mediasearch import ffmpeg

    info = ffmpeg.probe(path)
    if not info.has_video:
        if info.has_audio:
            return decode_audio(path, max_duration)
        raise DecodeError(path, "holds neither pictures nor sound")
    seconds = min(info.duration or 0.0, max_duration)  # a declared duration can lie: it only spaces frames
    interval = max(FRAME_INTERVAL_S, seconds / MAX_FRAMES)
    duration = round(min(info.duration, max_duration), 3) if info.duration else None
    decoded = Decoded("video", [], {"width": info.width, "height": info.height, "duration": duration})
    return _read_ahead(decoded, _video_segments(path, decoded, info.has_audio, interval, max_duration))


def _video_segments(path: Path, decoded: Decoded, has_audio: bool, interval: float, max_duration: float):
    from mediasearch import ffmpeg

    count = 0
    for seconds, picture in ffmpeg.pick_frames(path, interval, MAX_FRAMES):
        if seconds > max_duration:
            break
        count += 1
        yield Segment((round(seconds, 3), round(seconds, 3)), image_tensor(to_rgb(picture)), "image")
    if has_audio:
        try:
            for segment in _read_windows(path, ffmpeg.AvAudio(path), decoded, max_duration):
                count += 1
                yield segment
        except DecodeError as exc:
            if not count:
                raise
            decoded.note = f"its sound could not be read ({exc.reason})"
    if not count:
        raise DecodeError(path, "no picture or sound in it could be read (blank, or damaged throughout)")


def _read_windows(path: Path, snd, decoded: Decoded, max_duration: float) -> Iterator[Segment]:
    """(span, log-mel) per window, read sequentially; sets the duration fact and any note at the end.

    A window starting at s is emitted once more than s + 10 s has been read (so
    it is not the last); at the end of the file the last window is aligned to
    end exactly there, as `windows()` plans it.
    """
    rate = snd.samplerate
    win, hop, limit = int(round(WINDOW_S * rate)), int(round(HOP_S * rate)), int(max_duration * rate)
    buf, offset, total, start, emitted = np.zeros(0, np.float32), 0, 0, 0, 0
    try:
        while total < limit:
            try:
                block = snd.read(min(hop, limit - total), dtype="float32", always_2d=True)
            except Exception as exc:
                decoded.note = f"read up to {total / rate:.1f} s: the rest is damaged ({_sndfile_reason(exc)})"
                break
            if len(block) == 0:
                break
            # NaN or infinite samples (damaged float audio) would poison the vector: they are silence.
            mono = np.nan_to_num(block.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
            buf = np.concatenate([buf, mono])
            total += len(block)
            while total > start + win:
                yield _window(buf, offset, start, start + win, rate)
                emitted, start = emitted + 1, start + hop
                # Keep from the last window's start: the final, end-aligned window starts after it.
                buf, offset = buf[start - hop - offset :], start - hop
        else:
            decoded.note = f"only the first {max_duration / 3600:g} h are indexed (the --max-duration cap)"
        if total == 0:
            raise DecodeError(path, "contains no audio samples" + (f" ({decoded.note})" if decoded.note else ""))
        decoded.facts.setdefault("duration", round(total / rate, 3))
        if total <= win:
            yield _window(buf, offset, 0, total, rate)
        elif not emitted or start - hop < total - win:
            yield _window(buf, offset, total - win, total, rate)
    finally:
        snd.close()


def _window(buf: np.ndarray, offset: int, first: int, end: int, rate: int) -> Segment:
    samples = resample(buf[first - offset : end - offset], rate)
    return Segment((round(first / rate, 3), round(end / rate, 3)), audio_features(samples), "audio")


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at 48 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE:
        return mono.astype(np.float32)
    import soxr

    return soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def audio_features(samples: np.ndarray) -> np.ndarray:
    """[1, 1001, 64] float32 log-mel of up to 10 s at 48 kHz, per ClapFeatureExtractor.

    librosa gives the same periodic-Hann STFT, Slaney mel filterbank and
    power-to-dB as the reference's feature extractor.
    """
    import librosa

    wave = np.asarray(samples, dtype=np.float64)[:WINDOW]
    if 0 < len(wave) < WINDOW:
        wave = np.tile(wave, WINDOW // len(wave))  # "repeatpad": whole repeats, then zeros
    wave = np.pad(wave, (0, WINDOW - len(wave)))
    spectrum = librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect")
    mel = _mel_bank() @ (np.abs(spectrum) ** 2)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T.astype(np.float32)[None]


def silent_features() -> np.ndarray:
    return audio_features(np.zeros(WINDOW, np.float32))


_MEL: list[np.ndarray] = []


def _mel_bank() -> np.ndarray:
    """[64, 513] Slaney-scale, Slaney-normalised triangular filters, 50-14,000 Hz (made once)."""
    if not _MEL:
        import librosa

        _MEL.append(
            librosa.filters.mel(
                sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, htk=False, norm="slaney"
            )
        )
    return _MEL[0]


def _sndfile_reason(exc: Exception) -> str:
    """libsndfile's message without its "Error opening 'PATH': " preamble (the caller names the file)."""
    text = _first_line(exc)
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    return text


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
