"""A corpus for words search: pictures with text (and many without), names, tags and captions, with queries.

    python benchmarks/words_corpus.py OUT_DIR          # writes the files and OUT_DIR/queries.json

Every file is made here, deterministically (seeded), from DejaVu fonts (Debian's fonts-dejavu-core): nothing
is downloaded. Kinds of case, each with queries naming the one file that should come first:

- screenshot, receipt, letter: clean rendered text (a phone screenshot, a shop receipt, an invoice letter);
- sign: a sign in a scene, warped in perspective; blur, noise, lowlight, inverse (light on dark): degraded text;
- rot90, rot180: text turned in the pixels; exif: text stored sideways with an EXIF orientation to undo it;
- small: small text in a 12 MP (4000x3000) photo; accents: é ü ß; plate: number plates; spine: a book spine;
- name: words only in the file or folder name; tag: FLAC/Ogg sound tags; caption: EXIF/XMP captions.

Most pictures hold no text at all ("photos" of shapes and gradients), so a text index must not find
things in them. queries.json: [{"query", "file" (relative), "kind"}].
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")
SANS, BOLD, SERIF, MONO = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A DejaVu face; the corpus needs real glyphs (accents included), never Pillow's bitmap default."""
    return ImageFont.truetype(str(FONTS / name), size)


def scene(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A textless 'photo': a smooth colour gradient with soft blobs and a little sensor noise."""
    w, h = size
    small = rng.integers(0, 255, (4, 5, 3)).astype(np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(min(w, h) // 20, min(w, h) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(max(1, min(w, h) // 300)))
    return noisy(img, rng, 4)


def noisy(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    a = np.asarray(img, np.float32) + rng.normal(0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def text_block(
    lines: list[str], face: str, size: int, fg=(20, 20, 20), bg=(250, 250, 248), pad: int = 30, spacing: float = 1.5
) -> Image.Image:
    """Lines of text on a plain card, sized to fit."""
    f = font(face, size)
    width = max(int(f.getlength(line)) for line in lines) + 2 * pad
    height = int(len(lines) * size * spacing) + 2 * pad
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((pad, pad + int(i * size * spacing)), line, font=f, fill=fg)
    return img


def screenshot(lines: list[str]) -> Image.Image:
    """A phone screenshot: a status bar and app text, 1170 px wide like an iPhone's."""
    img = Image.new("RGB", (1170, 2532), (242, 242, 247))
    draw = ImageDraw.Draw(img)
    draw.text((60, 30), "9:41", font=font(BOLD, 44), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((60, 260 + i * 120), line, font=font(SANS, 56), fill=(10, 10, 10))
    return img


def on_scene(card: Image.Image, rng: np.random.Generator, size=(1600, 1200), warp: float = 0.0) -> Image.Image:
    """A card placed in a textless scene, optionally seen from the side (a perspective warp)."""
    bg = scene(rng, size)
    scale = min(0.8 * size[0] / card.width, 0.6 * size[1] / card.height, 1.0)
    card = card.resize((int(card.width * scale), int(card.height * scale)), Image.LANCZOS)
    if warp:
        w, h = card.size
        d = int(warp * h)
        # Near side taller than the far side: the usual look of a sign photographed from the left.
        coeffs = perspective_coeffs([(0, 0), (w, d), (w, h - d), (0, h)], [(0, 0), (w, 0), (w, h), (0, h)])
        card = card.convert("RGBA").transform((w, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    x = int(rng.integers(0, size[0] - card.width + 1))
    y = int(rng.integers(0, size[1] - card.height + 1))
    bg.paste(card, (x, y), card if card.mode == "RGBA" else None)
    return bg


def perspective_coeffs(dst: list[tuple[int, int]], src: list[tuple[int, int]]) -> list[float]:
    """The 8 coefficients Pillow's PERSPECTIVE transform wants to map dst corners back to src corners."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array([c for p in src for c in p], np.float64)
    return list(np.linalg.solve(np.array(rows, np.float64), b))


def plate(text: str) -> Image.Image:
    """A European-looking number plate: black letters on white with a blue band."""
    f = font(BOLD, 90)
    w = int(f.getlength(text)) + 160
    img = Image.new("RGB", (w, 150), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 60, 150), fill=(20, 50, 160))
    draw.rectangle((2, 2, w - 3, 147), outline=(0, 0, 0), width=4)
    draw.text((100, 20), text, font=f, fill=(0, 0, 0))
    return img


class Corpus:
    """Collects the files written and the queries that should find them."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.queries: list[dict] = []

    def picture(self, rel: str, img: Image.Image, kind: str, queries: list[str], **save) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90, **save) if path.suffix == ".jpg" else img.save(path, **save)
        self.queries += [{"query": q, "file": rel, "kind": kind} for q in queries]
        return path


def make_text_pictures(c: Corpus) -> None:
    r = c.rng
    c.picture(
        "shots/IMG_0101.png",
        screenshot(["Wi-Fi network: Nordlicht5G", "Wi-Fi password: sunflower42", "Guests welcome"]),
        "screenshot",
        ["wifi password", "sunflower42", "nordlicht5g network"],
    )
    c.picture(
        "shots/IMG_0102.png",
        screenshot(["Boarding pass", "Flight LH 1234 to Lisbon", "Gate B42  Seat 17C"]),
        "screenshot",
        ["boarding pass lisbon", "gate b42", "LH 1234"],
    )
    c.picture(
        "shots/IMG_0103.png",
        screenshot(["Dentist appointment", "Tuesday 14:30", "Dr. Okonkwo, Harbour St"]),
        "screenshot",
        ["dentist appointment", "okonkwo"],
    )
    c.picture(
        "shots/IMG_0104.png",
        screenshot(["Your parcel is on its way", "Tracking: ZX81 4471 9920", "Courier: Hermes"]),
        "screenshot",
        ["parcel tracking", "hermes courier"],
    )
    chats = [
        (["Mum: dinner at 7?", "Me: bring the lasagne"], ["dinner lasagne"]),
        (["Meeting moved to Friday", "Room Kilimanjaro"], ["meeting friday kilimanjaro"]),
        (["Door code 4821#", "Flat 3, second floor"], ["door code", "4821"]),
        (["Vaccination record", "Tetanus booster 2023"], ["tetanus booster"]),
        (["Bank transfer sent", "IBAN DE44 5001 0517"], ["bank transfer iban"]),
    ]
    for i, (lines, qs) in enumerate(chats):
        c.picture(f"shots/Screenshot_2024-0{i + 1}-1{i}.png", screenshot(lines), "screenshot", qs)
    c.picture(
        "scans/scan_0001.jpg",
        on_scene(
            text_block(
                [
                    "BÄCKEREI SONNENSCHEIN",
                    "2x Brezel      1.80",
                    "1x Kaffee      2.90",
                    "TOTAL EUR      4.70",
                    "Danke!",
                ],
                MONO,
                40,
            ),
            r,
        ),
        "receipt",
        ["bäckerei sonnenschein", "backerei brezel", "brezel kaffee"],
    )
    c.picture(
        "scans/scan_0002.jpg",
        on_scene(
            text_block(
                ["GREENGROCER & SONS", "Bananas        2.10", "Avocado        3.40", "TOTAL          5.50"], MONO, 40
            ),
            r,
        ),
        "receipt",
        ["greengrocer", "avocado bananas"],
    )
    c.picture(
        "scans/scan_0003.jpg",
        on_scene(
            text_block(["HARDWARE HAUS OLSEN", "Screws M4     4.99", "Drill bit     7.49", "VAT 19%"], MONO, 40), r
        ),
        "receipt",
        ["hardware olsen", "drill bit screws"],
    )
    c.picture(
        "scans/letter_01.png",
        text_block(
            [
                "Nordwind Energie GmbH",
                "INVOICE No. 2024-0815",
                "Dear Ms. Fernandes,",
                "please find enclosed the statement",
                "for your electricity contract.",
                "Amount due: 143.20 EUR",
            ],
            SERIF,
            34,
            pad=80,
        ),
        "letter",
        ["invoice 2024-0815", "invoice nordwind", "electricity contract", "fernandes statement"],
    )
    c.picture(
        "scans/letter_02.png",
        text_block(
            ["City Library of Tromsø", "Reminder: overdue books", "Return by 12 March", "Phone 555 0199"],
            SERIF,
            34,
            pad=80,
        ),
        "letter",
        ["library overdue", "555 0199", "tromsø reminder"],
    )
    c.picture(
        "scans/letter_03.png",
        text_block(
            ["Insurance certificate", "Policy 77-31-905", "Household contents", "Valid until 31 December"],
            SERIF,
            34,
            pad=80,
        ),
        "letter",
        ["insurance certificate", "household contents policy"],
    )
    signs = [
        ("SUNSET BOULEVARD", ["sunset boulevard"]),
        ("PLATFORM 9", ["platform 9"]),
        ("NO PARKING", ["no parking"]),
        ("FERRY TERMINAL", ["ferry terminal"]),
        ("MUSEUM OF MODERN ART", ["museum modern art"]),
        ("HOTEL ASTORIA", ["hotel astoria"]),
        ("BEACH CLOSED", ["beach closed"]),
        ("TAXI RANK", ["taxi rank"]),
    ]
    for i, (text, qs) in enumerate(signs):
        card = text_block([text], BOLD, 80, fg=(250, 250, 250), bg=(20, 90, 40), pad=40)
        c.picture(f"travel/P100{i}.jpg", on_scene(card, r, warp=0.12 + 0.04 * i), "sign", qs)
    degraded = [
        ("blur", ["OPENING HOURS", "Mon-Fri 9-18"], ["opening hours"], lambda im: blur(im, 2)),
        ("blur", ["LOST CAT", "answers to Pixel"], ["lost cat pixel"], lambda im: blur(im, 2.5)),
        ("noise", ["FARMERS MARKET", "every Saturday"], ["farmers market saturday"], lambda im: noisy(im, r, 28)),
        ("noise", ["YOGA CLASS", "Room 204"], ["yoga class"], lambda im: noisy(im, r, 35)),
        ("lowlight", ["EMERGENCY EXIT"], ["emergency exit"], lambda im: dim(im, r)),
        ("lowlight", ["KARAOKE NIGHT", "Thursday"], ["karaoke night"], lambda im: dim(im, r)),
        ("blur", ["PHARMACY", "open 24 hours"], ["pharmacy 24 hours"], lambda im: blur(im, 2)),
        ("noise", ["CAMPSITE RULES", "quiet after 22"], ["campsite rules"], lambda im: noisy(im, r, 30)),
        ("lowlight", ["WINE CELLAR", "Vintage 1998"], ["wine cellar vintage"], lambda im: dim(im, r)),
    ]
    for i, (kind, lines, qs, fx) in enumerate(degraded):
        c.picture(f"misc/DSC_{2000 + i}.jpg", fx(on_scene(text_block(lines, BOLD, 56), r)), kind, qs)
    for i, (lines, qs) in enumerate(
        [
            (["JAZZ FESTIVAL", "Main Stage 21:00"], ["jazz festival"]),
            (["SPACE INVADERS", "Insert Coin"], ["space invaders", "insert coin"]),
            (["GAME OVER"], ["game over"]),
        ]
    ):
        card = text_block(lines, BOLD, 60, fg=(240, 240, 200), bg=(15, 15, 30))
        c.picture(f"misc/poster_{i}.png", on_scene(card, r, size=(1200, 900)), "inverse", qs)
    for i, (lines, qs) in enumerate(
        [
            (["Chemistry notes", "Avogadro constant"], ["avogadro constant"]),
            (["Tide table Porthcurno"], ["tide table porthcurno"]),
        ]
    ):
        c.picture(f"misc/rot90_{i}.jpg", on_scene(text_block(lines, SANS, 48), r).rotate(90, expand=True), "rot90", qs)
    for i, (lines, qs) in enumerate(
        [
            (["Upside down menu", "Pancakes Waffles"], ["pancakes waffles"]),
            (["Quarterly report", "Revenue grew"], ["quarterly report revenue"]),
        ]
    ):
        c.picture(f"misc/rot180_{i}.jpg", on_scene(text_block(lines, SANS, 48), r).rotate(180), "rot180", qs)
    for i, (lines, qs, orientation) in enumerate(
        [
            (["Whiteboard: sprint goals", "Ship the importer"], ["sprint goals importer"], 6),
            (["Recipe: lemon drizzle cake"], ["lemon drizzle"], 8),
        ]
    ):
        upright = on_scene(text_block(lines, SANS, 48), r)
        stored = upright.rotate(90 if orientation == 6 else -90, expand=True)  # what the camera wrote
        exif = Image.Exif()
        exif[0x0112] = orientation
        c.picture(f"phone/IMG_{5000 + i}.jpg", stored, "exif", qs, exif=exif)
    for i, (text, qs) in enumerate(
        [("Gelateria Fiorentina", ["gelateria fiorentina"]), ("Bus 42 to Harbour", ["bus 42 harbour"])]
    ):
        big = scene(r, (4000, 3000))
        small = text_block([text], BOLD, 44, pad=16)
        big.paste(small, (int(r.integers(200, 3000)), int(r.integers(200, 2700))))
        c.picture(f"phone/IMG_{6000 + i}.jpg", big, "small", qs)
    accents = [
        (["Café Müller", "Kaffee & Kuchen"], ["cafe muller", "café müller"]),
        (["Große Straße 5"], ["grosse strasse", "große straße"]),
        (["Crème brûlée  6,50 €"], ["creme brulee"]),
        (["Über den Wolken"], ["uber den wolken"]),
        (["Smørrebrød"], ["smorrebrod"]),
        (["Señora Núñez"], ["senora nunez"]),
        (["Ærøskøbing Havn"], ["aeroskobing"]),
    ]
    for i, (lines, qs) in enumerate(accents):
        c.picture(f"travel/IMG_{7000 + i}.jpg", on_scene(text_block(lines, BOLD, 64), r), "accents", qs)
    for i, (text, qs) in enumerate(
        [
            ("RE16 TGK", ["RE16", "re16 tgk"]),
            ("B-MW 2071", ["MW 2071"]),
            ("KA 993 LP", ["ka 993"]),
            ("WX70 ZHN", ["WX70"]),
            ("M 4421 AB", ["4421 AB"]),
        ]
    ):
        c.picture(f"cars/IMG_{8000 + i}.jpg", on_scene(plate(text), r, warp=0.06), "plate", qs)
    spine = text_block(["THE WINTER ORCHARD  ·  H. ALSTON"], SERIF, 44, fg=(230, 220, 180), bg=(90, 20, 20))
    c.picture(
        "books/IMG_9001.jpg",
        on_scene(spine.rotate(90, expand=True), r, size=(1200, 1600)),
        "spine",
        ["winter orchard", "alston"],
    )
    spine = text_block(["Field Guide to Mosses"], SERIF, 44, fg=(20, 20, 20), bg=(200, 190, 120))
    c.picture(
        "books/IMG_9002.jpg",
        on_scene(spine.rotate(-90, expand=True), r, size=(1200, 1600)),
        "spine",
        ["field guide mosses"],
    )


def blur(img: Image.Image, radius: float) -> Image.Image:
    """Out of focus (or shaken): a Gaussian blur of the given radius."""
    return img.filter(ImageFilter.GaussianBlur(radius))


def dim(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Low light: a quarter of the light, and the noise a phone adds when it lifts it."""
    a = np.asarray(img, np.float32) * 0.22 + rng.normal(0, 5, (img.height, img.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def make_named(c: Corpus) -> None:
    """Words only in names: the pictures themselves are textless scenes."""
    r = c.rng
    for rel, qs in [
        ("family/grandmaBirthday_cake.png", ["grandma birthday cake", "birthday cake"]),
        ("trips/IMG_4412 - tram in Alfama.jpg", ["tram alfama"]),
        ("Reykjavik 2019/DSC_0001.jpg", ["reykjavik 2019", "reykjavik"]),
        ("misc/kitchen-renovation_before.jpg", ["kitchen renovation"]),
        ("misc/PassportScan.jpg", ["passport scan"]),
        ("Hochzeit Anna und Jonas/IMG_0002.jpg", ["hochzeit anna jonas"]),
        ("pets/rufus_first_swim.jpg", ["rufus swim"]),
        ("garden/TomatoHarvest2021.png", ["tomato harvest"]),
        ("Lisbon trip/pasteis_de_nata.jpg", ["pasteis nata"]),
        ("misc/car-insurance-claim-photo.jpg", ["insurance claim"]),
        ("Kyoto 2018/temple_gate.jpg", ["kyoto temple"]),
    ]:
        c.picture(rel, scene(r, (800, 600)), "name", qs)


def make_captioned(c: Corpus) -> None:
    """Captions in EXIF ImageDescription and XMP dc:description/dc:subject, on textless pictures."""
    r = c.rng
    exif = Image.Exif()
    exif[0x010E] = "Lighthouse at Hallig Hooge at dawn"
    c.picture("camera/DSC_3001.jpg", scene(r, (800, 600)), "caption", ["lighthouse hallig hooge"], exif=exif)
    xmp = XMP.format(
        desc="Picnic by the Danube with cousins",
        subjects="<rdf:li>picnic</rdf:li><rdf:li>Danube</rdf:li><rdf:li>Marguerite</rdf:li>",
    )
    c.picture("camera/DSC_3002.jpg", scene(r, (800, 600)), "caption", ["picnic danube", "marguerite"], xmp=xmp.encode())
    exif = Image.Exif()
    exif[0x010E] = "Sledging on Mount Tamalpais"
    c.picture("camera/DSC_3003.jpg", scene(r, (800, 600)), "caption", ["sledging tamalpais"], exif=exif)


XMP = (
    '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt><rdf:li xml:lang="x-default">{desc}'
    "</rdf:li></rdf:Alt></dc:description><dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>"
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def make_tagged(c: Corpus) -> None:
    """Sound files whose only words are their tags (FLAC Vorbis comments, Ogg Vorbis comments)."""
    import soundfile as sf
    from mutagen import File as MutagenFile

    rate = 22_050
    t = np.arange(rate * 2) / rate
    for rel, tags, qs in [
        (
            "music/track01.flac",
            {"title": "Moonlight Ferry", "artist": "Ines Caravela", "album": "Harbour Songs"},
            ["moonlight ferry", "ines caravela"],
        ),
        (
            "music/track02.ogg",
            {"title": "Lanterns", "artist": "The Quiet Owls", "comment": "recorded in Bergen"},
            ["quiet owls lanterns", "bergen"],
        ),
        (
            "music/track03.flac",
            {"title": "Blue Hour", "artist": "Tomasz Wierzbicki", "album": "Nocturnes"},
            ["wierzbicki nocturnes"],
        ),
    ]:
        path = c.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tone = 0.2 * np.sin(2 * math.pi * float(c.rng.integers(200, 800)) * t)
        sf.write(path, tone.astype(np.float32), rate, format="OGG" if rel.endswith(".ogg") else "FLAC")
        audio = MutagenFile(path)
        for key, value in tags.items():
            audio[key] = value
        audio.save()
        c.queries += [{"query": q, "file": rel, "kind": "tag"} for q in qs]


def make_textless(c: Corpus, count: int) -> None:
    """The bulk of a real library: photos holding no text."""
    for i in range(count):
        size = (1600, 1200) if i % 3 else (1200, 1600)
        c.picture(f"photos/DSC_{i:04d}.jpg", scene(c.rng, size), "none", [])


def build(root: Path, textless: int = 120, seed: int = 0) -> list[dict]:
    """Write the whole corpus under root (idempotent for a given seed) and return its queries."""
    c = Corpus(root, seed)
    make_text_pictures(c)
    make_named(c)
    make_captioned(c)
    make_tagged(c)
    make_textless(c, textless)
    (root / "queries.json").write_text(json.dumps(c.queries, indent=1, ensure_ascii=False))
    return c.queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--textless", type=int, default=120, help="pictures without text (default 120)")
    args = ap.parse_args()
    queries = build(args.out, args.textless)
    kinds: dict[str, int] = {}
    for q in queries:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(f"{len(queries)} queries over {len({q['file'] for q in queries})} files; by kind: {kinds}")


if __name__ == "__main__":
    main()
