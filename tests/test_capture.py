"""Capture time and coordinates read from files the tests write with real metadata, phone-style."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import av
import mutagen
import numpy as np
import pytest
from mutagen.id3 import TDRC
from mutagen.mp4 import MP4
from PIL import Image, TiffImagePlugin
from PIL.TiffImagePlugin import IFDRational

from mediasearch import capture, media

SAMPLES = Path(__file__).parent.parent / "sample_media"
MTIME = 1_700_000_000.0
LISBON = (38.7223, -9.1393)  # 38°43'20.28"N 9°8'21.48"W
SUMMER = datetime(2019, 7, 15, 10, 30, tzinfo=timezone(timedelta(hours=1))).timestamp()


def _dms(value: float) -> tuple:
    value = abs(value)
    degrees, minutes = int(value), int(value * 60 % 60)
    return (IFDRational(degrees), IFDRational(minutes), IFDRational(round(value * 3600 % 60 * 100), 100))


def phone_exif(original="2019:07:15 10:30:00", offset="+01:00", where=LISBON, **more) -> Image.Exif:
    """EXIF as a phone writes it: DateTime, DateTimeOriginal with its offset, a GPS IFD."""
    exif = Image.Exif()
    exif[0x0132] = more.get("datetime", "2001:01:01 00:00:00")
    inner = exif.get_ifd(0x8769)
    if original is not None:
        inner[0x9003] = original
    if offset:
        inner[0x9011] = offset
    if "digitized" in more:
        inner[0x9004] = more["digitized"]
    if where:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N" if where[0] >= 0 else "S", _dms(where[0])
        gps[3], gps[4] = "E" if where[1] >= 0 else "W", _dms(where[1])
    return exif


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("HEIF", "heic")])
def test_exif_time_offset_and_gps_of_each_picture_format(tmp_path, fmt, suffix):
    media.configure_pillow()
    path = tmp_path / f"IMG_0001.{suffix}"
    Image.new("RGB", (64, 48), "teal").save(path, fmt, exif=phone_exif())
    found = capture.read(str(path), media.kind_of(path), MTIME)
    assert (found.taken, found.source) == (SUMMER, "exif")
    assert found.latitude == pytest.approx(LISBON[0], abs=1e-6)
    assert found.longitude == pytest.approx(LISBON[1], abs=1e-6)


def _tiff_with_exif(path: Path, when: str, where=LISBON) -> Path:
    """A TIFF whose EXIF and GPS directories are real sub-IFDs, as cameras (and DNG) write them."""
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x0132] = "2001:01:01 00:00:00"
    info[0x8769] = {0x9003: when}
    info[0x8825] = {1: "N", 2: _dms(where[0]), 3: "W", 4: _dms(where[1])}
    Image.new("RGB", (64, 48), "olive").save(path, "TIFF", tiffinfo=info)
    return path


def test_tiff_and_tiff_based_camera_raw(tmp_path):
    """TIFF through Pillow; a .dng (TIFF inside) and an Olympus-style .orf (TIFF with its own magic)
    through their own directories, without developing the RAW."""
    local = datetime(2020, 2, 29, 23, 59, 58).timestamp()  # no offset: this machine's local time
    tiff = _tiff_with_exif(tmp_path / "scan.tif", "2020:02:29 23:59:58")
    dng = shutil.copy(tiff, tmp_path / "raw.dng")
    orf = tmp_path / "raw.orf"
    orf.write_bytes(b"IIRO" + tiff.read_bytes()[4:])
    for path in (tiff, dng, orf):
        found = capture.read(str(path), "image", MTIME)
        assert (found.taken, found.source) == (local, "exif"), path
        assert (round(found.latitude, 4), round(found.longitude, 4)) == LISBON


def test_xmp_coordinates_in_a_jpeg_app1_packet(tmp_path):
    path = tmp_path / "edited.jpg"
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="41,8.982N">'
        b"<exif:GPSLongitude>8,36.6594W</exif:GPSLongitude></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    Image.new("RGB", (64, 48), "navy").save(path, xmp=packet)
    found = capture.read(str(path), "image", MTIME)
    assert (found.source, found.taken) == ("mtime", MTIME)
    assert (found.latitude, found.longitude) == pytest.approx((41.1497, -8.61099))


@pytest.mark.parametrize(
    ("original", "digitized", "expected"),
    [
        ("0000:00:00 00:00:00", None, datetime(2001, 1, 1).timestamp()),  # placeholder: DateTime instead
        ("1970:01:01 00:00:12", None, datetime(2001, 1, 1).timestamp()),  # dead clock battery
        ("0001:01:01 00:00:00", None, datetime(2001, 1, 1).timestamp()),  # no local time that early
        ("1888:01:01 10:00:00", "2012:12:12 12:12:12", datetime(2012, 12, 12, 12, 12, 12).timestamp()),
        ("2019:07:15 10:30:00.123", None, datetime(2019, 7, 15, 10, 30).timestamp()),  # sub-seconds ignored
        (f"{datetime.now().year + 2}:01:01 10:00:00", None, datetime(2001, 1, 1).timestamp()),  # the future
    ],
)
def test_wrong_dates_fall_back_in_order(tmp_path, original, digitized, expected):
    path = tmp_path / "odd.jpg"
    more = {"digitized": digitized} if digitized else {}
    Image.new("RGB", (32, 32)).save(path, exif=phone_exif(original, offset=None, where=None, **more))
    assert capture.read(str(path), "image", MTIME) == capture.Capture(expected, "exif")


def test_no_usable_date_at_all_is_the_mtime(tmp_path):
    path = tmp_path / "reset.jpg"
    exif = phone_exif("0000:00:00 00:00:00", offset=None, where=(0.0, 0.0), datetime="1970:01:01 00:00:00")
    Image.new("RGB", (32, 32)).save(path, exif=exif)
    assert capture.read(str(path), "image", MTIME) == capture.Capture(MTIME, "mtime")  # 0,0 is no fix


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM\x00*" + b"\xff" * 64, b"RIFF" * 9])
def test_hostile_headers_are_no_metadata(tmp_path, content):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    for kind in ("image", "video", "audio"):
        assert capture.read(str(path), kind, MTIME) == capture.Capture(MTIME, "mtime")


def _movie(path: Path, metadata: dict, options: dict | None = None) -> Path:
    """A short H.264 clip with container metadata, as the phone's muxer leaves it."""
    with av.open(str(path), "w", options=options or {}) as out:
        out.metadata.update(metadata)
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_android_style_mp4_creation_time_utc_and_xyz_location(tmp_path):
    path = _movie(
        tmp_path / "VID_20180512.mp4",
        {"creation_time": "2018-05-12T10:00:00.000000Z", "location": "+38.7223-009.1393/"},
    )
    found = capture.read(str(path), media.kind_of(path), MTIME)
    assert found == capture.Capture(datetime(2018, 5, 12, 10, tzinfo=UTC).timestamp(), "quicktime", *LISBON)


def test_iphone_style_mov_keys_creation_date_with_zone_and_iso6709(tmp_path):
    metadata = {
        "creation_time": "2018-05-12T10:00:00.000000Z",
        "com.apple.quicktime.creationdate": "2018-05-12T12:30:00+0200",
        "com.apple.quicktime.location.ISO6709": "+41.1497-008.6110+010.000/",
    }
    path = _movie(tmp_path / "IMG_0002.mov", metadata, {"movflags": "use_metadata_tags"})
    found = capture.read(str(path), "video", MTIME)
    assert found == capture.Capture(datetime(2018, 5, 12, 10, 30, tzinfo=UTC).timestamp(), "quicktime", 41.1497, -8.611)


def test_a_movie_without_metadata_is_its_mtime(tmp_path):
    path = _movie(tmp_path / "plain.mp4", {})
    assert capture.read(str(path), "video", MTIME) == capture.Capture(MTIME, "mtime")


def _tagged(tmp_path: Path, sample: str, write) -> Path:
    path = Path(shutil.copy(SAMPLES / sample, tmp_path / sample))
    tagged = mutagen.File(path)
    if tagged.tags is None:
        tagged.add_tags()
    write(tagged)
    tagged.save()
    return path


@pytest.mark.parametrize(
    ("sample", "write", "expected"),
    [
        (
            "rain-noise.mp3",
            lambda t: t.tags.add(TDRC(encoding=3, text=["2019-07-15T10:30"])),
            datetime(2019, 7, 15, 10, 30),
        ),
        ("tone-a440.ogg", lambda t: t.__setitem__("date", ["2017-03-02"]), datetime(2017, 3, 2)),
        ("weather-report.flac", lambda t: t.__setitem__("DATE", ["2016"]), datetime(2016, 1, 1)),
    ],
)
def test_recording_date_tags(tmp_path, sample, write, expected):
    path = _tagged(tmp_path, sample, write)
    assert capture.read(str(path), media.kind_of(path), MTIME) == capture.Capture(expected.timestamp(), "tag")


def test_m4a_day_atom(tmp_path):
    path = Path(shutil.copy(SAMPLES / "weather-report.m4a", tmp_path / "memo.m4a"))
    tags = MP4(path)
    tags["\xa9day"] = ["2015-06-01T08:00:00Z"]
    tags.save()
    found = capture.read(str(path), media.kind_of(path), MTIME)
    assert found == capture.Capture(datetime(2015, 6, 1, 8, tzinfo=UTC).timestamp(), "tag")


def test_untagged_sound_is_its_mtime():
    assert capture.read(str(SAMPLES / "chirp.wav"), "audio", MTIME) == capture.Capture(MTIME, "mtime")
