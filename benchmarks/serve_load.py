"""A bounded load test of `mediasearch serve` on loopback: a harness run by hand (not in CI).

    python benchmarks/serve_load.py --bundle tests/fixtures/bundle   # or a full-size bundle

A 100,000-item library (synthetic vectors, as in run.py) is served while
`mediasearch watch` adds real pictures to it; 16 clients send text queries for
60 s, then example uploads for 30 s.  Every request goes to 127.0.0.1 and the
loops stop by themselves.  Prints requests, errors, p50 and p99 of each phase.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the speed harness: its synthetic libraries)

from mediasearch.bundle import resolve  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(url: str, seconds: float, clients: int, request) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            i = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    ok = request(session, number, i).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - started)
                    errors[0] += 0 if ok else 1
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def report(name: str, latencies: list[float], errors: int, seconds: float) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(
        f"{name}: {len(ordered)} requests ({len(ordered) / seconds:.0f}/s), {errors} errors, "
        f"p50 {1000 * statistics.median(ordered):.0f} ms, p99 {1000 * p99:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--work", type=Path, default=HERE / "work" / "serve")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    library = run.synthetic_library(args.work, 100_000, resolve(args.bundle))
    incoming = args.work / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    env = dict(os.environ, MEDIASEARCH_HOME=str(library))
    port = free_port()
    cmd = [sys.executable, "-m", "mediasearch"]
    watcher = subprocess.Popen([*cmd, "watch", str(incoming), "-q"], env=env, stderr=subprocess.DEVNULL)
    server = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/api/status", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rng = np.random.default_rng(0)
        adding = threading.Event()

        def add_pictures() -> None:  # the watcher's work while the load runs: a picture every 0.2 s
            i = 0
            while not adding.is_set():
                Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(incoming / f"n{i:05}.png")
                i += 1
                time.sleep(0.2)

        feeder = threading.Thread(target=add_pictures)
        feeder.start()
        words = ["a dog", "rain", "a city at night", "the sea", "birdsong", "a red car", "laughter", "snow"]
        texts = load(url, args.seconds, 16, lambda s, n, i: s.get("/api/search", params={
            "q": f"{words[(n + i) % len(words)]} {n} {i}", "limit": 10}))  # fmt: skip
        report("text queries, 16 clients", *texts, args.seconds)
        example = (HERE.parent / "sample_media" / "cat-chelsea.jpg").read_bytes()
        uploads = load(url, args.seconds / 2, 16, lambda s, n, i: s.post(
            "/api/search", files={"file": ("cat.jpg", example, "image/jpeg")}, data={"limit": "10"}))  # fmt: skip
        report("example uploads, 16 clients", *uploads, args.seconds / 2)
        adding.set()
        feeder.join()
        found = httpx.get(url + "/api/search", params={"q": "x", "in": str(incoming), "limit": 500}, timeout=60)
        print(f"meanwhile the watcher added {len(found.json())} pictures, found by the server without a restart")
    finally:
        for process in (server, watcher):
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
