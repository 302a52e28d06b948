"""Make README's screenshot of the search page (docs/page.png) from a realistic library.

sample_media is copied into ~/Media/samples of a stand-in home folder (so the
cards show `~/Media/samples`, never a temporary path), indexed, served by a real
`mediasearch serve` on 127.0.0.1, and photographed in Debian's headless
Chromium once every thumbnail and sound picture in view has loaded and every
player knows its duration (no `0:00 / 0:00`).

    python scripts/screenshot.py                      # the small test bundle, docs/page.png
    python scripts/screenshot.py --model antflydb/clipclap --query "a cat"

With the test bundle (random weights) the ranking means nothing, but every
part of the page is real; with the real model it is a real answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_media"
BUNDLE = ROOT / "tests" / "fixtures" / "bundle"

# True once every picture in view has loaded and every player in view knows its duration.
READY = """
const inView = (e) => { const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; };
const pictures = [...document.querySelectorAll('#results img')].filter(inView);
const players = [...document.querySelectorAll('#results audio, #results video')].filter(inView);
return document.querySelectorAll('#results .card').length > 0
  && pictures.every((i) => i.complete && i.naturalWidth > 0)
  && players.every((p) => p.readyState >= 1 && p.duration > 0);
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(check: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def library(home: Path, model: str) -> dict:
    """sample_media in ~/Media/samples of the stand-in home, indexed; the environment that finds it."""
    media = home / "Media" / "samples"
    shutil.copytree(SAMPLES, media, ignore=shutil.ignore_patterns("*.md"))
    env = dict(os.environ, HOME=str(home), MEDIASEARCH_HOME=str(home / ".local/share/mediasearch"))
    env.setdefault("MEDIASEARCH_CACHE", str(home / ".cache/mediasearch"))  # keep a downloaded model's cache
    env |= {"ORT_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "mediasearch", "index", str(media), "--model", model]
    subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def serve(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "mediasearch", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening() -> bool:
        if server.poll() is not None:
            raise SystemExit(f"the server ended: {server.stderr.read().decode()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait(listening, "the server")
    return server, f"http://127.0.0.1:{port}"


def photograph(url: str, query: str, out: Path, size: str) -> None:
    from urllib.parse import urlencode

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--disable-background-networking", "--no-first-run", f"--window-size={size}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}/?{urlencode({'q': query})}")
        wait(lambda: driver.execute_script(READY), "the page's pictures and players")
        driver.execute_script("document.activeElement.blur()")  # no caret or focus ring in the picture
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("MEDIASEARCH_MODEL") or str(BUNDLE), help="bundle or hub id")
    parser.add_argument("--query", default="a cat", help="what the page searches for")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    parser.add_argument("--size", default="1280,1000", help="the browser window, WIDTH,HEIGHT")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mediasearch-shot-") as folder:
        env = library(Path(folder) / "home" / "sam", args.model)
        server, url = serve(env)
        try:
            photograph(url, args.query, args.out, args.size)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
