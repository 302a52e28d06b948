"""What a file is, decided by its content: picture, sound, video, or none of these.

The extension only breaks ties, so a JPEG named .wav is a picture and a text
file named .mp3 still fails with a reason instead of vanishing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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


def content_hash(path: str) -> str:
    """The file's SHA-256: the catalog's key for reusing vectors across renames and copies."""
    digest = hashlib.sha256()  # SHA-NI makes it twice as fast as blake2b here
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
