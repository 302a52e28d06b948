"""The query language, parsed once here for every face (command line, API, page, MCP).

A query is words.  `-word` (or `-"a phrase"`) pushes results away from it, as
`--not` does; `"a quoted phrase"` is kept together.  A hyphen inside a word
(`well-known`, `555-0199`) is part of the word, and an unclosed quote runs to
the end of the text, so every text parses: there are no syntax errors for a
user to meet.

In the vector half, the positive words and phrases are one text, in the order
given (CLIP reads "dog barking" as one scene), and each negative term is
embedded on its own and averaged (see search.combine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A term: an optional leading '-', then a quoted phrase (closed or running to the end) or a bare word.
_TERM = re.compile(r'(-?)(?:"([^"]*)"?|(\S+))')


@dataclass(frozen=True)
class Term:
    """One word or quoted phrase of a query."""

    text: str
    phrase: bool = False
    negative: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed query: its terms in the order given."""

    terms: tuple[Term, ...] = field(default_factory=tuple)

    @property
    def positive(self) -> list[Term]:
        return [t for t in self.terms if not t.negative]

    @property
    def negative(self) -> list[Term]:
        return [t for t in self.terms if t.negative]

    @property
    def text(self) -> str:
        """The positive words and phrases as one text, for the text tower ("" when there are none)."""
        return " ".join(t.text for t in self.positive)

    @property
    def negative_texts(self) -> list[str]:
        """Each negative word or phrase, embedded on its own."""
        return [t.text for t in self.negative]

    def __bool__(self) -> bool:
        return bool(self.terms)


def parse(text: str | None) -> Query:
    """Words, `-word` and "quoted phrases"; whitespace inside a phrase is tidied to single spaces."""
    terms = []
    for match in _TERM.finditer(text or ""):
        minus, phrase, word = match.groups()
        if phrase is not None:
            body = " ".join(phrase.split())
            if body:
                terms.append(Term(body, phrase=True, negative=bool(minus)))
        elif word is not None and word != "-":
            terms.append(Term(word, negative=bool(minus)))
        # a lone '-' or an empty "" is nothing
    return Query(tuple(terms))


def pushing_away(text: str, nots) -> str:
    """The query text with each `--not` (or `not=`) text added as a negative phrase, as `-"TEXT"` means."""
    return " ".join([text, *(f'-"{n.replace(chr(34), " ")}"' for n in nots)]).strip()
