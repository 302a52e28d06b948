"""`mediasearch serve`: the search page, its JSON API, and embeddings as Termite serves them.

Starlette on uvicorn.  The library is opened read-only, so the server runs
beside `watch` and sees what it adds (the index refreshes when the catalog
moves on).  Safe by default: it binds 127.0.0.1; any other address needs a
token, checked on every request; the Host header must name the server (DNS
rebinding); only files the catalog holds are served, checked at request time
against their library folder; bodies are bounded; every response carries a
Content-Security-Policy and `nosniff`.
"""

from mediasearch.server.app import create_app
from mediasearch.server.base import LOOPBACK, ApiError, Settings
from mediasearch.server.guard import listen, uvicorn_config

__all__ = ["LOOPBACK", "ApiError", "Settings", "create_app", "listen", "uvicorn_config"]
