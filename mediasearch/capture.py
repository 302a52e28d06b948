"""When and where a file was taken, from its own metadata.

A file's modification time is the day it was copied, restored or synced, not
the day the picture was taken: a phone's camera roll copied today is all "from
today".  So each file's capture time is read from what the camera or recorder
wrote into it, and the mtime is only the fallback:

- pictures (JPEG, HEIC, TIFF, PNG's eXIf, WebP, camera RAW): EXIF
  DateTimeOriginal with OffsetTimeOriginal when present (sub-seconds ignored),
  else DateTimeDigitized, else DateTime.  Without an offset the time is local
  time, as cameras write it (so it is read in this machine's zone);
- videos: QuickTime/MP4 `com.apple.quicktime.creationdate` (local time with its
  zone, as iPhones write it), else `creation_time` (UTC);
- sounds: the recording date tag (ID3 TDRC, Vorbis DATE, M4A ©day).

A date that is obviously wrong falls back to the mtime too: before 1900, in the
future, the 0000:00:00 placeholder, 1970-01-01 or 1904-01-01 (a camera whose
clock battery died, a QuickTime zero).

Coordinates come from the EXIF GPS IFD, QuickTime/MP4 ISO 6709 `location`
(©xyz, or com.apple.quicktime.location.ISO6709) and XMP exif:GPSLatitude /
exif:GPSLongitude.  0,0 (what a phone without a fix writes) counts as none.
Nothing here touches the network.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

EXIF, QUICKTIME, TAG, MTIME = "exif", "quicktime", "tag", "mtime"

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATE_TIME, _ORIGINAL, _DIGITIZED = 0x0132, 0x9003, 0x9004
_OFFSET, _OFFSET_ORIGINAL, _OFFSET_DIGITIZED = 0x9010, 0x9011, 0x9012
_RAW_HEAD = 4 * 1024 * 1024  # a TIFF-based RAW keeps its EXIF near the start
_TIFF_MAGIC = {b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"IIU\x00": b"II*\x00"}  # Olympus ORF, Panasonic RW2
_PLACEHOLDER_DAYS = (date(1970, 1, 1), date(1904, 1, 1))
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Capture:
    """A file's capture time (seconds since the epoch), where it came from, and its coordinates."""

    taken: float
    source: str
    latitude: float | None = None
    longitude: float | None = None

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def read(path: str, kind: str | None, mtime: float) -> Capture:
    """What the file says about when and where it was taken; the mtime when it says nothing usable.

    Never raises for a file's content: a damaged or hostile header is simply no metadata.
    """
    return finish(metadata(path, kind), mtime)


def metadata(path: str, kind: str | None) -> dict:
    """The file's own word, without the mtime fallback: {"taken": seconds or None, "source",
    "latitude", "longitude"}.  Plain values, so a decoder worker can read it (a header that crashes
    a C library then costs a worker, not the pass) and send it back with the file's facts."""
    when: datetime | None = None
    source = MTIME
    where: tuple[float, float] | None = None
    try:
        if kind == "image":
            when, where = _picture(path)
            source = EXIF
        elif kind == "video":
            when, where = _movie(path)
            source = QUICKTIME
        elif kind == "audio":
            when, source = _recording(path), TAG
    except Exception:  # noqa: BLE001 - metadata is optional; the file's vectors are what matter
        when = None
    latitude, longitude = where if where else (None, None)
    return {"taken": plausible(when), "source": source, "latitude": latitude, "longitude": longitude}


def finish(found: dict, mtime: float) -> Capture:
    """A capture from what `metadata` found, the mtime standing in for a time it did not find."""
    if found.get("taken") is None:
        return Capture(mtime, MTIME, found.get("latitude"), found.get("longitude"))
    return Capture(found["taken"], found["source"], found.get("latitude"), found.get("longitude"))


def plausible(when: datetime | None, now: datetime | None = None) -> float | None:
    """The moment as a timestamp, or None when it cannot be a capture time."""
    if when is None:
        return None
    try:
        aware = when if when.tzinfo else when.astimezone()  # naive: this machine's local time
    except (ValueError, OverflowError, OSError):  # year 1 and the like: no zone arithmetic reaches it
        return None
    if when.date() in _PLACEHOLDER_DAYS or aware < _EARLIEST:
        return None
    if aware > (now or datetime.now(UTC)) + timedelta(days=1):  # a day's slack for zones
        return None
    return aware.timestamp()


# ---------------------------------------------------------------------- pictures


def _picture(path: str) -> tuple[datetime | None, tuple[float, float] | None]:
    """EXIF (and XMP) of a picture, through Pillow, or the TIFF structure of a camera RAW."""
    from PIL import Image

    from mediasearch import media

    if media.is_raw(path):
        exif = _raw_exif(path)
        return (exif_time(exif), exif_gps(exif)) if exif is not None else (None, None)
    media.configure_pillow()  # HEIC through pillow-heif
    with Image.open(path) as img:  # a TIFF's inner directories are read from the open file
        exif = img.getexif()
        return exif_time(exif), exif_gps(exif) or xmp_gps(_xmp_of(img))


def _raw_exif(path: str):
    """EXIF of a RAW: its own TIFF directories when it is TIFF inside, else its embedded JPEG's."""
    from PIL import Image

    with open(path, "rb") as handle:
        head = handle.read(_RAW_HEAD)
    head = _TIFF_MAGIC.get(head[:4], head[:4]) + head[4:]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        exif = Image.Exif()
        exif.load(head)
        if exif or exif.get_ifd(_EXIF_IFD):
            return exif
    import rawpy

    with rawpy.imread(path) as raw:
        thumb = raw.extract_thumb()
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    with Image.open(io.BytesIO(thumb.data)) as preview:
        return preview.getexif()


def _xmp_of(img) -> bytes:
    """The XMP packet Pillow found (JPEG APP1, WebP, PNG iTXt, TIFF tag 700), as bytes."""
    packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    if not packet and hasattr(img, "tag_v2"):
        packet = img.tag_v2.get(700, b"")
    return packet.encode() if isinstance(packet, str) else bytes(packet)


def exif_time(exif) -> datetime | None:
    """DateTimeOriginal (+OffsetTimeOriginal), else DateTimeDigitized, else DateTime."""
    inner = exif.get_ifd(_EXIF_IFD)
    for stamp_tag, offset_tag, where in (
        (_ORIGINAL, _OFFSET_ORIGINAL, inner),
        (_DIGITIZED, _OFFSET_DIGITIZED, inner),
        (_DATE_TIME, _OFFSET, exif),
    ):
        when = parse_exif_time(where.get(stamp_tag), inner.get(offset_tag))
        if plausible(when) is not None:
            return when
    return None


def parse_exif_time(value, offset=None) -> datetime | None:
    """'2019:07:15 10:30:00' (sub-seconds and trailing junk ignored), with '+01:00' when given."""
    text = _text(value)
    match = re.match(r"\s*(\d{4})[:-](\d\d)[:-](\d\d)[ T](\d\d):(\d\d)(?::(\d\d))?", text)
    if not match:
        return None
    try:
        parts = [int(g or 0) for g in match.groups()]
        when = datetime(*parts)
    except ValueError:  # 0000:00:00 00:00:00 and other impossible dates
        return None
    zone = _zone(_text(offset))
    return when.replace(tzinfo=zone) if zone else when


def _zone(text: str) -> timezone | None:
    match = re.fullmatch(r"\s*([+-])(\d\d):?(\d\d)\s*", text or "")
    if not match:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    if minutes > 14 * 60:
        return None
    return timezone(timedelta(minutes=minutes if match.group(1) == "+" else -minutes))


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ") if isinstance(value, str) else ""


def exif_gps(exif) -> tuple[float, float] | None:
    """Latitude and longitude from the GPS IFD, signed by their N/S and E/W references."""
    gps = exif.get_ifd(_GPS_IFD)
    if not gps:
        return None
    latitude = _degrees(gps.get(2), _text(gps.get(1)), "S")
    longitude = _degrees(gps.get(4), _text(gps.get(3)), "W")
    return checked(latitude, longitude)


def _degrees(value, reference: str, negative: str) -> float | None:
    """Degrees, minutes, seconds (rationals) as signed decimal degrees."""
    try:
        parts = [float(v) for v in value]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not 1 <= len(parts) <= 3:
        return None
    parts += [0.0] * (3 - len(parts))
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    return -degrees if reference.upper().startswith(negative) else degrees


def checked(latitude: float | None, longitude: float | None) -> tuple[float, float] | None:
    """Coordinates on Earth, rounded to ~1 cm; 0,0 (no fix) and anything out of range are none."""
    if latitude is None or longitude is None or not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or (latitude == 0 and longitude == 0):
        return None
    return round(latitude, 7), round(longitude, 7)


_XMP_GPS = re.compile(rb"exif:GPS(Latitude|Longitude)\s*(?:=\s*[\"']([^\"'<]*)[\"']|>\s*([^<]*)<)")


def xmp_gps(packet: bytes) -> tuple[float, float] | None:
    """exif:GPSLatitude/Longitude of an XMP packet, as attributes or elements ("38,43.338N")."""
    found = {}
    for match in _XMP_GPS.finditer(packet or b""):
        found.setdefault(match.group(1), (match.group(2) or match.group(3) or b"").decode("ascii", "replace"))
    return checked(_xmp_degrees(found.get(b"Latitude")), _xmp_degrees(found.get(b"Longitude")))


def _xmp_degrees(text: str | None) -> float | None:
    """XMP's GPSCoordinate: 'DDD,MM,SSk' or 'DDD,MM.mmk' with k one of N, S, E, W."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*", text or "")
    if not match:
        return None
    degrees, minutes, seconds = (float(g or 0) for g in match.groups()[:3])
    value = degrees + minutes / 60 + seconds / 3600
    return -value if match.group(4) in "SW" else value


# ---------------------------------------------------------------------- videos


def _movie(path: str) -> tuple[datetime | None, tuple[float, float] | None]:
    """A movie's creation date and ISO 6709 location from its container's metadata (PyAV)."""
    import av

    with av.open(path, metadata_errors="ignore") as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        for stream in container.streams:
            for key, value in stream.metadata.items():
                tags.setdefault(key.lower(), value)
    when = parse_iso_time(tags.get("com.apple.quicktime.creationdate"))
    if plausible(when) is None:
        when = parse_iso_time(tags.get("creation_time"), utc=True)
    where = iso6709(tags.get("com.apple.quicktime.location.iso6709") or tags.get("location") or "")
    return when, where


def parse_iso_time(text: str | None, utc: bool = False) -> datetime | None:
    """'2018-05-12T10:00:00.000000Z', '2018-05-12T12:00:00+0200' and the like; naive is UTC if utc."""
    match = re.match(
        r"\s*(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?", text or ""
    )
    if not match:
        return None
    try:
        when = datetime(*(int(g or 0) for g in match.groups()[:6]))
    except ValueError:
        return None
    zone = UTC if match.group(7) == "Z" else _zone(match.group(7) or "")
    if zone is None and utc:
        zone = UTC
    return when.replace(tzinfo=zone) if zone else when


_ISO6709 = re.compile(r"\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def iso6709(text: str) -> tuple[float, float] | None:
    """'+38.7223-009.1393+050.000/' (degrees, as phones write it) as latitude, longitude."""
    match = _ISO6709.match(text or "")
    if not match:
        return None
    return checked(float(match.group(1)), float(match.group(2)))


# ---------------------------------------------------------------------- sounds


def _recording(path: str) -> datetime | None:
    """The recording date tag of a sound, through mutagen (ID3 TDRC, Vorbis DATE, M4A ©day)."""
    import mutagen

    tags = getattr(mutagen.File(path), "tags", None)
    if not tags:
        return None
    for key in ("TDRC", "TDOR", "date", "DATE", "\xa9day"):
        try:
            values = tags[key]
        except (KeyError, ValueError, TypeError):
            continue
        values = getattr(values, "text", values)
        for value in values if isinstance(values, list) else [values]:
            when = parse_tag_date(str(value))
            if plausible(when) is not None:
                return when
    return None


def parse_tag_date(text: str) -> datetime | None:
    """'2019', '2019-07', '2019-07-15' or a full time (local unless zoned): the period's first moment."""
    when = parse_iso_time(text)
    if when is not None:
        return when
    match = re.match(r"\s*(\d{4})(?:-(\d\d)(?:-(\d\d))?)?\s*$", text or "")
    if not match:
        return None
    try:
        return datetime(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        return None
