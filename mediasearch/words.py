"""Words: one normalisation for everything mediasearch matches as text (OCR, names, tags, captions, queries).

Both sides of a text match go through `terms`, so "cafe muller" finds "Café Müller" and "Café" finds "cafe":
case is folded, accents are taken off by Unicode decomposition (NFKD) and the letters NFKD cannot split
(ß, æ, ø, œ, ł, ...) are spelled out. A word joined by punctuation ("Wi-Fi", "2024-0815", "555-0199") is
indexed both as its parts and joined, so "wifi", "wi fi", "0815" and "20240815" all match it.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

# Letters that NFKD leaves whole; spelled the way people type them without the key.
_SPELL = str.maketrans(
    {"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ŋ": "n", "ħ": "h"}
)
_CHUNK = re.compile(r"\S+")
_PART = re.compile(r"[^\W_]+")  # letters and digits; "_" splits as punctuation does
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")

# Words too common to find anything on their own: a query made only of these matches no text.
STOP = frozenset(
    """a an the of and or in on at to for with from by as is are was be this that it its my our your
    photo photos picture pictures image images pic img dsc video clip file
    der die das den dem des ein eine und oder im am zu mit von le la les un une et ou du de des
    el los las y en il lo e""".split()
)
MAX_TEXT = 20_000  # characters of words kept per row: bounded on hostile tags and walls of OCR text


def fold(text: str) -> str:
    """Case and accents folded away: the form every stored and queried word takes."""
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_SPELL)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def terms(text: str) -> list[str]:
    """The words of a text as they are indexed and queried: folded, split, punctuation-joined parts kept whole too."""
    out: list[str] = []
    for chunk in _CHUNK.findall(fold(text[:MAX_TEXT])):
        parts = _PART.findall(chunk)
        out += parts
        if len(parts) > 1:
            out.append("".join(parts))
    return out


def indexed(text: str) -> str:
    """The text stored in the full-text table: its terms separated by spaces (FTS5 then splits on spaces)."""
    return " ".join(terms(text))


def split_name(name: str) -> str:
    """A file or folder name as words: 'grandmaBirthday_cake' -> 'grandma Birthday cake', digits set apart."""
    return " ".join(_CAMEL.sub(" ", part) for part in re.split(r"[\W_]+", name) if part)


def name_words(rel: str) -> str:
    """The words of a file's path inside its library: each folder's name and the file's own name, split."""
    path = PurePath(rel)
    names = [*path.parent.parts, path.stem]
    return " ".join(split_name(n) for n in names if n not in ("", ".", ".."))


def query_terms(text: str) -> list[str]:
    """A query's words that may match text: stop words dropped (a query of only stop words matches nothing)."""
    return [t for t in terms(text) if t not in STOP]


# Sound and video tags that hold words people search by (mutagen's "easy" names, and the comment frames).
TAG_KEYS = ("title", "artist", "album", "albumartist", "composer", "genre", "comment", "description")
_XMP_FIELDS = re.compile(rb"<(dc:description|dc:subject|dc:title|photoshop:Headline)\b.*?</\1>", re.S)
_XMP_ITEM = re.compile(rb"<rdf:li\b[^>]*>([^<]{1,2000})</rdf:li>")
_IPTC = {(2, 5): "title", (2, 25): "keywords", (2, 105): "headline", (2, 120): "caption"}


def metadata_texts(path: str, kind: str | None) -> dict[str, str]:
    """The words a file's metadata holds: {"tag": ...} for sounds and videos, {"caption": ...} for
    pictures. Read by mutagen (tags) and Pillow (EXIF, XMP, IPTC); a file whose metadata cannot be
    read simply has none (its vectors and name still find it)."""
    try:
        if kind in ("audio", "video"):
            text = _tags(path)
            return {"tag": text} if text else {}
        if kind == "image":
            text = _caption(path)
            return {"caption": text} if text else {}
    except Exception:  # hostile or odd metadata must never fail the file
        return {}
    return {}


def _tags(path: str) -> str:
    import mutagen

    found: list[str] = []
    easy = mutagen.File(path, easy=True)
    for key in TAG_KEYS:
        found += [str(v) for v in (easy.get(key) or [])] if easy is not None and easy.tags is not None else []
    full = mutagen.File(path)
    tags = getattr(full, "tags", None)
    if tags is not None and hasattr(tags, "getall"):  # ID3 comments are not among the easy keys
        found += [str(t) for frame in tags.getall("COMM") for t in frame.text]
    elif type(tags).__name__ == "MP4Tags":
        found += [str(t) for key in ("\xa9cmt", "desc") for t in (tags.get(key) or [])]  # MP4 atoms
    return _joined(found)


def _caption(path: str) -> str:
    from PIL import Image, IptcImagePlugin

    found: list[str] = []
    with Image.open(path) as img:
        exif = img.getexif()
        found += [_exif_text(exif.get(tag)) for tag in (0x010E, 0x9C9B, 0x9C9C, 0x9C9E)]  # description, XP*
        packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
        if isinstance(packet, str):
            packet = packet.encode("utf-8", "replace")
        for field in _XMP_FIELDS.finditer(packet[:1_000_000]):
            found += [m.decode("utf-8", "replace") for m in _XMP_ITEM.findall(field.group(0))]
        iptc = IptcImagePlugin.getiptcinfo(img) or {}
        for key in _IPTC:
            values = iptc.get(key)
            for value in values if isinstance(values, list) else [values] if values else []:
                found.append(value.decode("utf-8", "replace"))
    return _joined(found)


def _exif_text(value) -> str:
    """An EXIF text: ASCII, or Windows' XP tags as UTF-16 bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-16-le", "replace").rstrip("\x00")
    if isinstance(value, tuple):  # XP tags may come as a tuple of byte values
        return bytes(value).decode("utf-16-le", "replace").rstrip("\x00")
    return str(value or "").strip("\x00 ")


def _joined(found: list[str]) -> str:
    """Distinct non-empty texts in their order, one a line, bounded."""
    seen: dict[str, None] = {}
    for text in found:
        text = text.strip()
        if text and text not in seen:
            seen[text] = None
    return "\n".join(seen)[:MAX_TEXT]
