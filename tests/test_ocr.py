"""The OCR reader with its real PP-OCRv5 weights: accents, turned text, EXIF orientation, no text."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mediasearch import ocr

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@pytest.fixture(scope="module")
def reader():
    return ocr.Reader(threads=2)


def card(text: str, size: int = 40) -> Image.Image:
    font = ImageFont.truetype(FONT, size)
    img = Image.new("RGB", (int(font.getlength(text)) + 60, size + 60), (250, 250, 250))
    ImageDraw.Draw(img).text((30, 25), text, font=font, fill=(15, 15, 15))
    return img


def texts(reader, img: Image.Image) -> str:
    return " ".join(line.text for line in reader.read(np.asarray(img)))


def test_accents_are_read_as_written(reader):
    assert "Café Müller" in texts(reader, card("Café Müller"))


def test_upside_down_and_sideways_text_is_read(reader):
    assert "Lemon drizzle" in texts(reader, card("Lemon drizzle").rotate(180))
    assert "WINTER ORCHARD" in texts(reader, card("WINTER ORCHARD").rotate(90, expand=True))
    assert "WINTER ORCHARD" in texts(reader, card("WINTER ORCHARD").rotate(-90, expand=True))


def test_a_picture_without_text_reads_nothing(reader):
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)).resize((400, 300), Image.BICUBIC)
    assert reader.read(np.asarray(smooth)) == []


def test_exif_orientation_is_applied_before_reading(reader, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; a viewer turns it back 90 degrees clockwise
    path = tmp_path / "sideways.jpg"
    card("Sprint goals", 48).rotate(90, expand=True).save(path, exif=exif, quality=95)
    upright = ocr.load(str(path))
    assert upright.shape[1] > upright.shape[0]  # turned back to the wide card
    assert "Sprint goals" in " ".join(line.text for line in reader.read_file(str(path)))


@pytest.mark.slow
def test_small_text_in_a_12_megapixel_photo(reader, tmp_path):
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(60, 200, (3, 4, 3), dtype=np.uint8)).resize((4000, 3000), Image.BICUBIC)
    photo.paste(card("Gelateria Fiorentina", 44), (2600, 2300))
    path = tmp_path / "big.jpg"
    photo.save(path, quality=90)
    assert "Gelateria Fiorentina" in " ".join(line.text for line in reader.read_file(str(path)))


def test_the_fingerprint_names_the_weights():
    assert ocr.fingerprint().startswith("ppocrv5-") and ocr.fingerprint() == ocr.fingerprint()


PEAK_OF_LOAD = """
import resource, sys
from mediasearch import ocr, runtime
runtime.configure()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rgb = ocr.load(sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, *rgb.shape[:2])
"""


@pytest.mark.slow
def test_a_huge_transparent_picture_is_read_within_about_its_decoded_size(reader, tmp_path):
    """A picture of many megapixels is reduced right after decoding, before it is turned and flattened: each
    of those made a full-size copy, and a 120 MP transparent PNG took 2.9 GB to read (its vectors 0.95 GB)."""
    import subprocess
    import sys

    big = Image.new("RGBA", (6000, 6000), (255, 255, 255, 0))
    big.paste(card("Huge but legal", 160), (400, 400))
    path = tmp_path / "huge.png"
    big.save(path, compress_level=1)
    done = subprocess.run([sys.executable, "-c", PEAK_OF_LOAD, str(path)], capture_output=True, text=True, check=True)
    grew_kb, height, width = map(int, done.stdout.split())
    decoded_kb = 6000 * 6000 * 4 // 1024  # Pillow holds RGBA at 4 bytes a pixel
    assert grew_kb < 1.5 * decoded_kb, f"reading's decode grew by {grew_kb // 1024} MB, {decoded_kb // 1024} decoded"
    assert (height, width) == (ocr.OCR_SIDE, ocr.OCR_SIDE)
    assert "Huge but legal" in " ".join(line.text for line in reader.read_file(str(path)))


AFTER_A_TGA = """
import sys
from mediasearch import media, ocr
ocr.load(sys.argv[1])
print(ocr.load(sys.argv[2]).shape[:2], media.decode_or_error(sys.argv[2]).facts)
"""


def test_what_a_picture_is_taken_for_does_not_depend_on_the_pictures_before_it(tmp_path):
    """Pillow 13 registers a format's plugin when it first opens a file of its extension and tries formats in
    that order, so after a TGA it took a good icon (Pillow's own test pillow.ico) for a TGA: "its text could not
    be read (cannot load this image)" when a decoder worker had read a TGA before.  Every format registered at
    once, in Pillow's own order, makes each file's format the same in every process."""
    import struct
    import subprocess
    import sys

    Image.new("RGB", (200, 32), (200, 10, 10)).save(tmp_path / "banner.tga")
    png = tmp_path / "icon.png"
    Image.new("RGB", (256, 256), (10, 200, 10)).save(png)
    size = 70_000  # an icon whose size field a TGA header parses as a valid depth (as pillow.ico's)
    entry = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, size, 22)
    (tmp_path / "icon.ico").write_bytes(entry + png.read_bytes() + bytes(size - png.stat().st_size))
    script = [sys.executable, "-c", AFTER_A_TGA, str(tmp_path / "banner.tga"), str(tmp_path / "icon.ico")]
    done = subprocess.run(script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["(256,", "256)", "{'width':", "256,", "'height':", "256}"]


@pytest.mark.slow
def test_a_large_16_bit_scan_is_decoded_within_what_its_decoding_reserves(tmp_path):
    """Deep samples were made 8-bit through int64 arrays: a 64 MP 16-bit PNG took 1.1 GB to decode, for its
    text and for its vector alike, where the decoders' budget reserves 8 bytes a pixel (0.5 GB)."""
    import subprocess
    import sys

    from mediasearch.media.pictures import image_cost

    deep = np.zeros((6000, 6000), np.uint16)
    deep[500:700, 300:5000] = 60000
    path = tmp_path / "scan16.png"
    Image.fromarray(deep).save(path, compress_level=1)
    done = subprocess.run([sys.executable, "-c", PEAK_OF_LOAD, str(path)], capture_output=True, text=True, check=True)
    grew_kb = int(done.stdout.split()[0])
    assert grew_kb * 1024 < image_cost(path), f"grew by {grew_kb // 1024} MB, {image_cost(path) >> 20} MB reserved"


def test_reading_reserves_the_pixels_it_decodes(tmp_path, monkeypatch):
    """The decoders' budget bounds them all together only if each reserves what it decodes.  Reading reserved
    what the vector pass decodes, a JPEG at a quarter of its side, but decodes one under 4000 px whole: a 7 MP
    JPEG reserved 6 MB for 57 MB decoded."""
    from contextlib import contextmanager

    from mediasearch.media.pictures import IMAGE_BUDGET

    reserved: list[int] = []
    real = IMAGE_BUDGET.reserve

    @contextmanager
    def recording(cost: int):
        reserved.append(cost)
        with real(cost):
            yield

    monkeypatch.setattr(IMAGE_BUDGET, "reserve", recording)
    for (width, height), decoded in (((3000, 2400), 3000 * 2400), ((4000, 3000), 2000 * 1500)):
        reserved.clear()
        path = tmp_path / f"photo{width}.jpg"
        card("Gelateria", 60).resize((width, height)).save(path, quality=80)
        ocr.load(str(path))
        assert reserved and max(reserved) >= decoded * 8, (width, reserved)


def test_an_allocation_failing_while_a_picture_is_decoded_for_reading_is_not_the_picture_s_fault(tmp_path, monkeypatch):
    """A decoder's allocation that fails with another error than MemoryError (an OSError with ENOMEM, as the vector
    pass already allows for) was "not a readable image": its text marked read, never read again."""
    from PIL import ImageFile

    from mediasearch.media.decoded import OUT_OF_MEMORY, failure

    path = tmp_path / "letter.png"
    card("Nordwind").save(path)

    def short(self):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(ImageFile.ImageFile, "load", short)
    with pytest.raises(Exception) as caught:
        ocr.load(str(path))
    assert failure(str(path), caught.value).reason.startswith(OUT_OF_MEMORY), caught.value
