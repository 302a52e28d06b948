"""`mediasearch serve` (the page and its API) and `mediasearch mcp` (the same calls for an assistant)."""

from __future__ import annotations

import os

import click

from mediasearch.cli.base import (
    _open,
    cli,
    library_option,
    model_option,
    precision_option,
    warn,
)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (others need a token).")
@click.option("--port", "-p", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--token",
    envvar="MEDIASEARCH_TOKEN",
    help="Token every request must carry (from MEDIASEARCH_TOKEN; made up and printed once when another address "
    "than 127.0.0.1 is given without one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--share-locations",
    is_flag=True,
    help="Put files' coordinates in the API's answers when listening beyond 127.0.0.1 (place names always are).",
)
@model_option
@library_option
def serve(host, port, token, open_browser, share_locations, model, library) -> None:
    """Serve the search page, its JSON API and Termite-compatible embeddings.

    The page searches by words or by a dropped file and plays sounds and videos
    from their best moment.  The library is opened read-only, so `serve` runs
    beside `watch` and sees what it adds.  It listens on 127.0.0.1 only, unless
    --host says otherwise; then a token is required on every request.

    Example: mediasearch serve --open
    """
    import secrets

    import uvicorn

    from mediasearch.server import LOOPBACK, Settings, create_app, listen, uvicorn_config

    _open(library).close()  # a missing library is one clear line, before the server starts
    sock = listen(host, port)  # a taken port is one line too, before anything says it serves
    port = sock.getsockname()[1]  # --port 0: the one the system chose
    if host not in LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
        warn(f"listening beyond this machine: every request needs the token {token}")
    app = create_app(Settings(library, host, port, token, model, share_locations=share_locations))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    warn(f"mediasearch is serving {url} (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.Server(uvicorn_config(app, sock)).run(sockets=[sock])


@cli.command(name="mcp")
@click.option(
    "--share-locations",
    is_flag=True,
    help="Put files' coordinates in the answers (place names always are): the assistant's model may run elsewhere.",
)
@model_option
@precision_option
@library_option
def mcp_command(share_locations, model, precision, library) -> None:
    """Let an AI assistant search the library (MCP over stdio).

    An MCP client (Claude Desktop, an IDE, an agent) starts this command and
    talks to it on stdin/stdout.  Tools: search (words, example files, filters),
    similar (more like a result) and status; results carry paths, scores, time
    spans and small thumbnails.  Read-only and offline: nothing is changed or
    downloaded (pull the model first, or index once).

    Example: mediasearch mcp --library ~/.local/share/mediasearch
    """
    os.environ["HF_HUB_OFFLINE"] = "1"  # a tool call never downloads; a missing model is a tool error saying so
    from mediasearch.mcp import serve

    serve(library, model=model, precision=precision, locations=share_locations)
