"""What the user sees: the terminal (injected, so tests can pretend), safe names, JSON, progress.

File names are data, not output: a name may hold a newline, a tab or a
terminal escape sequence, or bytes that are not UTF-8.  Every line the CLI
writes for people, on stdout and on stderr, goes through one writer (`say`),
which escapes control characters the way `ls` and fd do, whatever the line was
built from; `--json` and `-0` give names exactly.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from dataclasses import dataclass, field

import click


@dataclass
class Terminal:
    """Where output goes and what it can do (httpie's Environment, in small)."""

    stdout_isatty: bool = False
    stderr_isatty: bool = False
    home: str = field(default_factory=lambda: os.path.expanduser("~"))
    graphics: str | None = None  # "kitty" or "iterm": a terminal that shows pictures inline

    @classmethod
    def detect(cls) -> Terminal:
        env = os.environ
        graphics = None
        if env.get("KITTY_WINDOW_ID") or env.get("TERM") == "xterm-kitty":
            graphics = "kitty"
        elif env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm"):
            graphics = "iterm"
        return cls(sys.stdout.isatty(), sys.stderr.isatty(), graphics=graphics)

    def tilde(self, path: str) -> str:
        """The home folder as ~, the way people write it."""
        if self.home and self.home != "/" and (path == self.home or path.startswith(self.home + "/")):
            return "~" + path[len(self.home) :]
        return path

    def picture(self, path: str, size: int = 256) -> str | None:
        """An inline thumbnail in this terminal's own protocol, or None where it has none.

        kitty's graphics protocol and iTerm2's inline images (which WezTerm also
        speaks) both take a base64 PNG; other terminals get nothing.
        """
        if self.graphics is None:
            return None
        try:
            from PIL import Image, ImageOps

            from mediasearch.media import configure_pillow

            configure_pillow()  # HEIC previews need the HEIF opener
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)
                img.thumbnail((size, size))
                buffer = io.BytesIO()
                img.convert("RGB").save(buffer, "PNG")
        except Exception:
            return None
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        if self.graphics == "iterm":
            return f"\x1b]1337;File=inline=1;size={len(buffer.getvalue())};preserveAspectRatio=1:{data}\x07"
        chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
        parts = []
        for i, chunk in enumerate(chunks):
            more = 1 if i < len(chunks) - 1 else 0
            head = f"a=T,f=100,m={more}" if i == 0 else f"m={more}"
            parts.append(f"\x1b_G{head};{chunk}\x1b\\")
        return "".join(parts)


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}


def display(text: str) -> str:
    """A name made safe for a line of output: control characters and undecodable bytes escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogate escape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(_ESCAPES.get(ch) or f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def say(text: str, err: bool = False, bold: bool = False) -> None:
    """Write one line for people (stdout, or stderr with err): the CLI's one writer of lines.

    The whole line is escaped here, not each name by its caller, so no message can forget a
    name: one holding ESC or a newline can neither colour the terminal nor forge a line.
    (`display` leaves printable text alone, so a name escaped earlier stays as it was.)
    """
    line = display(text)
    click.echo(click.style(line, bold=True) if bold else line, err=err)


def say_fields(fields: list[str]) -> None:
    """One tab-separated line on stdout, each field escaped (a tab inside a name cannot add a column)."""
    click.echo("\t".join(display(f) for f in fields))


def say_json(data) -> None:
    """One JSON document on stdout (control characters escaped by JSON itself, see `to_json`)."""
    click.echo(to_json(data))


def draw(sequence: str) -> None:
    """The one unescaped write: an inline picture this module made (`Terminal.picture`)."""
    click.echo(sequence)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """A number and its noun, singular or plural as English has it: 1 folder, 2 folders, 1 copy, 2 copies."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def json_path(path: str, key: str = "path") -> dict:
    """A path for JSON output: the text, plus the exact bytes in base64 when it is not valid UTF-8.

    `KEY` is always a string (undecodable bytes shown as U+FFFD); `KEY_bytes`
    appears only for names that are not UTF-8, and holds the name exactly.
    """
    raw = os.fsencode(path)
    try:
        return {key: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {key: raw.decode("utf-8", "replace"), f"{key}_bytes": base64.b64encode(raw).decode("ascii")}


def hit_json(hit, locations: bool = True) -> dict:
    """A search.Hit as every face gives it in JSON (`query --json`, the page's API, MCP): the path
    exactly (json_path), copies as text; coordinates only where they may go (see Hit.as_dict)."""
    return hit.as_dict(locations) | json_path(hit.path) | {"copies": [json_path(c)["path"] for c in hit.copies]}


_C1 = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}


def to_json(data) -> str:
    """JSON text; C1 control characters (which json leaves raw, and some terminals obey) escaped too."""
    return json.dumps(data, ensure_ascii=False).translate(_C1)


def raw_path(path: str) -> bytes:
    """The exact bytes of a path, for -0 output."""
    return os.fsencode(path)


class Progress:
    """A tqdm bar on a terminal, nothing on a pipe.  Counts what takes the time (segments)."""

    def __init__(self, terminal: Terminal, unit: str, quiet: bool = False):
        self.bar = None
        self.enabled = terminal.stderr_isatty and not quiet
        self.unit = unit

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True, leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
