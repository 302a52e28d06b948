"""`mediasearch mcp`: the library's searches as Model Context Protocol tools, over stdio.

A face like the command line and the page: it parses a tool's arguments, calls
the Python API and serialises what comes back.  The library is opened
read-only for the whole session (so it runs beside `watch` and sees what it
adds), nothing is downloaded, and the SDK runs each call in its worker threads,
which the Library is made for.

Every hit is one text block of JSON, exactly what `query --json` prints for it
(a name holding a newline or an escape sequence stays inside a JSON string),
plus `file_id`, followed by a small JPEG of a picture or a video's first frame.
The same rows come as structured content, {"hits": [...]}, for programs.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

import mediasearch
from mediasearch import __version__
from mediasearch.errors import MediasearchError, UsageError
from mediasearch.params import NEAR_HELP, WHEN_HELP, parse_kinds, parse_score, parse_when
from mediasearch.terminal import display, hit_json, to_json

THUMB_SIZE = 128  # pixels on the long side: enough to recognise a picture, a few KB of JPEG
MAX_LIMIT = 100  # results in one answer (each may carry a thumbnail)
INSTRUCTIONS = (
    "Search the user's own pictures, sounds and videos on this machine by meaning. `search` takes words "
    '(-word pushes away, "a phrase" stays together) and/or example files; `similar` finds more like a '
    "result (pass its file_id). Results are best first, with a cosine score, the best moment of a recording "
    "(start/end, seconds) and a thumbnail of each picture or video."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Text = Annotated[str, Field(description='Words to search for (-word pushes results away, "a phrase" stays whole)')]
Files = Annotated[list[str], Field(description="Absolute paths of example files (pictures, sounds, videos)")]
Kinds = Annotated[list[str], Field(description="Only these kinds: image, audio, video (or photos, sounds, movies...)")]
Folders = Annotated[list[str], Field(description="Only files under these folders (absolute paths)")]
When = Annotated[str | None, Field(description=f"Only files taken (else modified) at or after this: {WHEN_HELP}")]
Before = Annotated[str | None, Field(description="Only files taken (else modified) before this (same forms as after)")]
Near = Annotated[str | None, Field(description=f"Only files taken near a place: {NEAR_HELP}")]
Limit = Annotated[int, Field(description=f"How many files, 1 to {MAX_LIMIT}")]
MinScore = Annotated[float | None, Field(description="Only results with at least this cosine score (-1 to 1)")]
Thumbnails = Annotated[bool, Field(description="Attach a small JPEG of each picture or video")]


class Face:
    """The tools, over one read-only Library shared by the SDK's worker threads.  locations: put files'
    coordinates in answers (an assistant's model often runs elsewhere: place names always go, as serve
    does beyond 127.0.0.1)."""

    def __init__(self, library: mediasearch.Library, locations: bool = False):
        self.library, self.locations = library, locations

    def search(
        self,
        text: Text = "",
        like: Files = [],  # noqa: B006 - the SDK builds the schema from these defaults and never mutates them
        unlike: Files = [],  # noqa: B006
        kinds: Kinds = [],  # noqa: B006
        folders: Folders = [],  # noqa: B006
        after: When = None,
        before: Before = None,
        near: Near = None,
        limit: Limit = 10,
        min_score: MinScore = None,
        thumbnails: Thumbnails = True,
    ) -> CallToolResult:
        """Find the user's pictures, sounds and videos nearest to some words and/or example files,
        away from others; copies of one content are one result, examples are left out."""
        return self._answer(
            lambda f: self.library.search(text, like=_paths(like), unlike=_paths(unlike), **f),
            kinds, folders, after, before, near, limit, min_score, thumbnails,
        )  # fmt: skip

    def similar(
        self,
        file: Annotated[int | str, Field(description="A result's file_id (or the absolute path of an indexed file)")],
        kinds: Kinds = [],  # noqa: B006
        folders: Folders = [],  # noqa: B006
        after: When = None,
        before: Before = None,
        near: Near = None,
        limit: Limit = 10,
        min_score: MinScore = None,
        thumbnails: Thumbnails = True,
    ) -> CallToolResult:
        """More like an indexed file, from its stored vectors (the file and its copies are left out)."""
        target = file if isinstance(file, int) else Path(file).expanduser()
        return self._answer(
            lambda f: self.library.similar(target, **f),
            kinds, folders, after, before, near, limit, min_score, thumbnails,
        )  # fmt: skip

    def status(self) -> CallToolResult:
        """The library: its folders (and which are offline), counts by kind and state, model, index."""
        try:
            data = self.library.status()
        except MediasearchError as exc:
            return _error(exc)
        return CallToolResult(content=[TextContent(type="text", text=to_json(data))], structured_content=data)

    def _answer(self, run, kinds, folders, after, before, near, limit, min_score, thumbnails) -> CallToolResult:
        """Parse the filters every search shares, run the search, serialise its hits (or the error)."""
        try:
            filters = _filters(kinds, folders, after, before, limit, min_score) | {"near": near}
            hits = run(filters)
        except (MediasearchError, ValueError) as exc:
            return _error(exc)
        rows = [hit_json(hit, self.locations) | {"file_id": hit.file_id} for hit in hits]
        content: list[ContentBlock] = []
        for hit, row in zip(hits, rows, strict=True):
            content.append(TextContent(type="text", text=to_json(row)))
            picture = self._thumbnail(hit) if thumbnails else None
            if picture is not None:
                content.append(ImageContent(type="image", data=_base64(picture), mime_type="image/jpeg"))
        if not content:
            content.append(TextContent(type="text", text="no results"))
        return CallToolResult(content=content, structured_content={"hits": rows})

    def _thumbnail(self, hit) -> bytes | None:
        """A picture's or video's JPEG; none for a sound, another machine's file, or a file that moved,
        changed or no longer reads since it was indexed (the hit itself still counts)."""
        if hit.kind not in ("image", "video") or hit.file_id is None:
            return None
        try:
            return self.library.thumbnail(hit.file_id, THUMB_SIZE)
        except MediasearchError:
            return None


def _filters(kinds, folders, after, before, limit, min_score) -> dict:
    """The API's keyword arguments from the tool's: the command line's parsers, the same words."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be between 1 and {MAX_LIMIT}")
    return {
        "kinds": parse_kinds(",".join(kinds)),
        "within": _paths(folders),
        "after": _when(after),
        "before": _when(before),
        "limit": limit,
        "min_score": None if min_score is None else parse_score(min_score),
    }


def _when(text: str | None) -> datetime | None:
    return parse_when(text) if text else None


def _paths(paths: list[str]) -> list[Path]:
    return [Path(p).expanduser() for p in paths]


def _base64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _error(exc: Exception) -> CallToolResult:
    """A tool error the assistant reads: the one-line message, names in it escaped as everywhere."""
    return CallToolResult(content=[TextContent(type="text", text=display(str(exc)))], is_error=True)


async def one_line_errors(ctx, call_next):
    """The SDK's own tool errors (arguments that do not fit the schema: pydantic's report, several
    lines) made one line, as every other error of every face is.  call_next gives the wire dict."""
    result = await call_next(ctx)
    if isinstance(result, dict) and result.get("isError"):
        for block in result.get("content") or ():
            if block.get("type") == "text":
                block["text"] = _one_line(block["text"])
    return result


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    kept = [_PYDANTIC_TAIL.sub("", line) for line in lines if line and not line.startswith("For further information")]
    return display("; ".join(kept))


_PYDANTIC_TAIL = re.compile(r"\s*\[type=.*$")  # "[type=..., input_value=...]": the caller's own value, again


def server(library: mediasearch.Library, locations: bool = False) -> MCPServer:
    """The MCP server with its three tools over this library."""
    face = Face(library, locations)
    app = MCPServer(
        "mediasearch", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING", middleware=[one_line_errors]
    )
    for tool in (face.search, face.similar, face.status):
        app.add_tool(tool, annotations=READ_ONLY, structured_output=False)
    return app


def serve(library: Path | None, model: str | None = None, precision: str | None = None, locations: bool = False):
    """Open the library read-only and answer MCP requests on stdin/stdout until stdin closes."""
    with mediasearch.open(library, model=model, precision=precision, log=_log) as opened:
        server(opened, locations).run("stdio")


def _log(message: str) -> None:
    """The library's warnings: stderr, which MCP clients keep as the server's log (stdout is the protocol)."""
    print(display(message), file=sys.stderr, flush=True)
