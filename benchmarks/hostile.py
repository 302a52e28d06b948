"""Index a hostile corpus and report what happened: a harness run by hand, not a CI test.

The corpus is other projects' collections of malformed and unusual media (the
test data in the source distributions of Pillow and mutagen, fetched from PyPI
with pip) plus files made here that reproduce what real folders hold: lying
headers, absurd sample rates, NaN samples, truncated recordings, names that are
not UTF-8 or hold control characters, links to / and /proc, empty files, text
named like pictures, decompression bombs.

    python benchmarks/hostile.py --bundle tests/fixtures/bundle            # fetch once, then index
    python benchmarks/hostile.py --bundle tests/fixtures/bundle --no-fetch # only the made files

It prints the summary's counts (which must add up to the files walked), peak
RSS and wall time of a real `mediasearch index` under /usr/bin/time -v, and the
slowest files to decode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

HERE = Path(__file__).parent
SOURCES = ("pillow", "mutagen")  # sdists whose test data are malformed and unusual media
DATA_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico", ".pcd", ".fli", ".psd", ".tga",
    ".ppm", ".pgm", ".sgi", ".jp2", ".j2k", ".dds", ".icns", ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".m4a", ".aif", ".aiff", ".wma", ".ape", ".mpc", ".wv", ".spx", ".dsf", ".tta", ".ofr", ".mp4", ".bin", "",
}  # fmt: skip


def fetch(corpus: Path) -> None:
    """Unpack the media test data of a few projects' source distributions into corpus/<project>."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in SOURCES:
            if (corpus / name).exists():
                continue
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp, name],
                check=True,
            )
            archive = next(p for p in Path(tmp).iterdir() if p.name.lower().startswith(name) and ".tar" in p.name)
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    parts = Path(member.name).parts
                    wanted = member.isfile() and any(p.lower() in ("tests", "test") for p in parts)
                    if wanted and Path(member.name).suffix.lower() in DATA_SUFFIXES and member.size < 50_000_000:
                        target = corpus / name / Path(*parts[1:])
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
            archive.unlink()


def make_our_own(folder: Path) -> None:
    """What real folders hold, made here."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(np.arange(48_000 * 30) / 7)).astype(np.float32)
    sf.write(folder / "one-hertz.wav", np.zeros(100_000, np.float32), 1)
    sf.write(folder / "liar.wav", tone[:48_000], 48_000, subtype="FLOAT")
    data = bytearray((folder / "liar.wav").read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    (folder / "liar.wav").write_bytes(bytes(data))
    nan = tone[:96_000].copy()
    nan[::7] = np.nan
    sf.write(folder / "nan.wav", nan, 48_000, subtype="FLOAT")
    sf.write(folder / "cut.flac", tone, 48_000)
    whole = (folder / "cut.flac").read_bytes()
    (folder / "cut.flac").write_bytes(whole[: len(whole) // 2])
    (folder / "pcd-like.bin").write_bytes(b"\xff" * 8192)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture\n")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "ok.png")
    shutil.copy(folder / "ok.png", os.fsencode(folder) + b"/latin1-\xe9\xff.png")
    shutil.copy(folder / "ok.png", folder / "new\nline\ttab\x1b[31m.png")
    for name, target in (("to-root", "/"), ("to-proc", "/proc")):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
    header = bytearray((folder / "ok.png").read_bytes()[:33])
    header[16:24] = (60_000).to_bytes(4, "big") + (60_000).to_bytes(4, "big")  # a 3.6 GP header
    (folder / "bomb.png").write_bytes(bytes(header) + bytes(100))


def index(corpus: Path, bundle: str, library: Path) -> tuple[dict, dict]:
    env = dict(os.environ, MEDIASEARCH_HOME=str(library))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mediasearch", "index", str(corpus), "--model", bundle]
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: the pass finished, some files failed (expected here)
        raise SystemExit(f"index failed ({done.returncode}):\n{done.stderr[-3000:]}")
    timing = {}
    for line in done.stderr.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("Maximum resident set size (kbytes)", "Elapsed (wall clock) time (h:mm:ss or m:ss)"):
            timing[key] = value
    return json.loads(done.stdout), timing


def slowest(corpus: Path, count: int = 8) -> list[tuple[float, str, str]]:
    from mediasearch import media, runtime
    from mediasearch.errors import DecodeError

    runtime.configure()  # as the CLI does: Pillow's limit, no warnings, C libraries' chatter off the terminal
    runtime.quiet_native_stderr()
    times = []
    for dirpath, _dirs, files in os.walk(corpus):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or media.kind_of(path) not in ("image", "audio"):
                continue
            start = time.perf_counter()
            result = media.decode_or_error(path)
            outcome = result.reason if isinstance(result, DecodeError) else f"{len(result.read_all().spans)} segments"
            times.append((time.perf_counter() - start, path, outcome))
    return sorted(times, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--corpus", type=Path, default=HERE / "work" / "hostile")
    parser.add_argument("--no-fetch", action="store_true")
    args = parser.parse_args()
    if not args.no_fetch:
        fetch(args.corpus)
    make_our_own(args.corpus / "made-here")
    walked = sum(
        1
        for d, _s, files in os.walk(args.corpus)
        for f in files
        if not f.startswith(".") and not os.path.islink(os.path.join(d, f))
    )
    hidden = [os.path.join(d, f) for d, _s, files in os.walk(args.corpus) for f in files if f.startswith(".")]
    with tempfile.TemporaryDirectory() as library:
        summary, timing = index(args.corpus, args.bundle, Path(library))
    counted = sum(summary[k] for k in ("added", "updated", "unchanged", "reused", "failed", "ignored"))
    print(f"files walked: {walked} (plus {len(hidden)} hidden, skipped)")
    print(
        f"added {summary['added']}, failed {summary['failed']}, ignored {summary['ignored']}, "
        f"reused {summary['reused']} = {counted} {'(adds up)' if counted == walked else '(DOES NOT ADD UP)'}"
    )
    for key, value in timing.items():
        print(f"{key}: {value}")
    reasons: dict[str, int] = {}
    for failure in summary["failures"]:
        reason = failure["error"].split("(")[0].strip()
        reasons[reason] = reasons.get(reason, 0) + 1
    print("failures by reason:")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4}  {reason}")
    print("slowest files to decode:")
    for seconds, path, outcome in slowest(args.corpus):
        print(f"  {seconds:7.3f}s  {os.path.relpath(path, args.corpus)!r}: {outcome}")


if __name__ == "__main__":
    main()
