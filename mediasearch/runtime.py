"""Process-wide settings, made once and in one place.

Pillow's pixel limit, warning filters, the log levels of libraries that talk
too much, onnxruntime's telemetry and the hub client's offline switch are all
global to the process.  They are set here, from the main thread, before any
decoder thread starts, never from inside a decode.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from typing import NoReturn

_done = threading.Event()
_lock = threading.Lock()


def private_files() -> None:
    """Everything a mediasearch command writes is its user's alone: folders 0700, files 0600.

    The cache holds thumbnails of private pictures, sound pictures, remembered queries and what
    the model learnt of the machine; the library, every path indexed.  A umask of 077 for the
    command's process covers every writer (ours and the libraries', such as the hub's downloads),
    whatever the user's umask; a cache folder made before this is closed to others as well.
    Only the command-line entry point calls this: a program using the Python API keeps its umask.
    """
    os.umask(0o077)
    from mediasearch.paths import cache_dir

    try:
        mode = os.stat(cache_dir()).st_mode & 0o777
        if mode & 0o077:
            os.chmod(cache_dir(), mode & 0o700)
    except OSError:
        pass  # not made yet (it will be, privately), or not ours to change


def configure() -> None:
    """Set every process-wide knob mediasearch relies on (idempotent)."""
    if _done.is_set():
        return
    with _lock:
        if _done.is_set():
            return
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        # Pillow's own settings (the pixel limit, the HEIF opener) are made by media.configure_pillow()
        # on the first decode, so a text query never imports Pillow (60 ms).
        # Decoders warn about odd but readable files (truncated EXIF, palette transparency...):
        # a file is either indexed or failed with one reason, never a wall of warnings.
        warnings.filterwarnings("ignore", module=r"PIL\..*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"librosa\..*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"librosa\..*")
        # The quantiser advises on pre-processing; that advice is not for users.
        logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
        # Pillow logs its decoders' complaints ("More samples per pixel than can be decoded"): the
        # file's one failure reason already says it.
        logging.getLogger("PIL").setLevel(logging.CRITICAL)
        # mediasearch speaks through click, never through logging; libraries that log to the root
        # logger (onnxruntime's quantiser: "consider pre-processing") are not for users.
        logging.getLogger().setLevel(logging.ERROR)
        _done.set()


def hub_client(offline: bool | None = None):
    """The huggingface_hub module with its offline switch as the environment says now.

    The client reads HF_HUB_OFFLINE once, at import; mediasearch honours it per
    call, so a process (or a test) that changes it is not misled.
    """
    import huggingface_hub
    from huggingface_hub import constants

    if offline is not None:
        constants.HF_HUB_OFFLINE = offline
    return huggingface_hub


def quiet_native_stderr() -> None:
    """Keep C libraries' own chatter (libmpg123, libtiff, libjpeg) off the user's terminal.

    They write straight to file descriptor 2.  Python's sys.stderr moves to a
    duplicate of the real stderr, and descriptor 2 itself goes to /dev/null, so
    mediasearch's own messages (and tracebacks) still reach the user.
    """
    if getattr(sys.stderr, "_mediasearch_quiet", False):
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    stream = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace")
    stream._mediasearch_quiet = True  # type: ignore[attr-defined]
    sys.stderr = stream


def leave(code: object = 0) -> NoReturn:
    """End a finished command's process now, without the libraries' own teardown.

    onnxruntime, FAISS and the rest take ~65 ms to tear themselves down (measured: 160 ms
    for one text tower's session), time a query's user waits for and that does nothing a
    finished command needs: every command has closed its library, committed its writes and
    saved its files by the time it returns.  Only the console entry point calls this.
    """
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    status = code if isinstance(code, int) else 0 if code is None else 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `mediasearch query ... | head -1`: the reader has what it wanted
        status = status or 0
    try:
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(status)
