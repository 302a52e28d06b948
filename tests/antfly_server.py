"""A real `antfly standalone` for the store tests: started, killed and restarted by the tests.

The binary comes from the `antfly-cli` wheel (a test dependency).  Two things
stand between that wheel and a running server on a small machine, both handled
here and nowhere else:

- pip installs the binary without its execute bit: a copy with the bit set is
  made in the test cache (site-packages is left as pip wrote it);
- with fewer than 6 CPUs the server's embedded inference worker never becomes
  ready and startup fails after about a minute (see antfly_cpus.c): the process is
  started with antfly_cpus.c preloaded, built here with the C compiler.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
NEEDS_SHIM_BELOW = 6  # CPUs: 4 fails, 6 works (antfly-cli 0.2.5, measured)


class Unavailable(Exception):
    """Antfly cannot be started on this machine; the reason says why (the tests skip with it)."""


def binary(cache: Path) -> Path:
    """The antfly executable from the antfly-cli wheel, made executable in a copy if need be."""
    try:
        import antfly_cli
    except ImportError as exc:
        raise Unavailable("the antfly-cli package is not installed (pip install -e '.[test]')") from exc
    packaged = Path(antfly_cli.__file__).parent / "bin" / "antfly"
    if not packaged.is_file():
        raise Unavailable(f"antfly-cli has no binary at {packaged} (not a Linux x86-64 wheel?)")
    if os.access(packaged, os.X_OK):
        return packaged
    cache.mkdir(parents=True, exist_ok=True)
    copy = cache / "antfly"
    if not copy.exists() or copy.stat().st_size != packaged.stat().st_size:
        shutil.copyfile(packaged, copy)
        copy.chmod(0o755)
    return copy


def cpu_shim(cache: Path) -> Path | None:
    """The preload library for machines with too few CPUs for Antfly, or None where none is needed."""
    if len(os.sched_getaffinity(0)) >= NEEDS_SHIM_BELOW:
        return None
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("too few CPUs for antfly standalone here, and no C compiler to build antfly_cpus.c")
    out = cache / "cpus.so"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", out, HERE / "antfly_cpus.c", "-ldl"], check=True)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AntflyServer:
    """One standalone node on 127.0.0.1 with its own data folder."""

    def __init__(self, folder: Path, cache: Path, env: dict | None = None, args: tuple = ()):
        self.folder = folder
        self.exe = binary(cache)
        self.shim = cpu_shim(cache)
        self.port, self.health_port = free_port(), free_port()
        self.env = env or {}
        self.args = args
        self.process: subprocess.Popen | None = None
        self.log = folder / "antfly.log"

    def url(self, table: str) -> str:
        return f"http://127.0.0.1:{self.port}/{table}"

    def start(self, wait: float = 90.0) -> AntflyServer:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        env = os.environ | {"HOME": str(self.folder)} | self.env  # its model folders default to ~/.antfly
        if self.shim:
            env["LD_PRELOAD"] = str(self.shim)
        command = [
            self.exe, "standalone", "--host", "127.0.0.1", "--port", str(self.port),
            "--health-port", str(self.health_port), "--data-dir", str(self.folder / "data"), *self.args,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"antfly standalone exited ({self.process.returncode}): {self.tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.kill()
        raise Unavailable(f"antfly standalone did not answer within {wait:.0f} s: {self.tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/db/v1/status", timeout=1) as answer:
                return answer.status < 500
        except OSError as exc:
            return getattr(exc, "code", 0) in (401, 403)  # up, with --auth

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would end it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"
