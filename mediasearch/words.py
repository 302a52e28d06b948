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
