"""Fuzz the decoders through `mediasearch index`: a harness run by hand, not a CI test.

Small samples of every format mediasearch reads (JPEG, PNG, HEIC, DNG, MP3, FLAC,
Ogg, M4A, MP4, MKV; from sample_media/, cut short, or made here with soundfile
and PyAV) are mutated (bytes flipped, runs overwritten, integers set to extremes,
pieces duplicated, deleted or cut off; half of the damage lands in the header),
and each format's mutants are indexed by a real `mediasearch index` under an
address-space cap and a timeout, a few hundred files a run.  Then each mutant is
decoded once more, alone, through the same decoder workers, to time it.

    python scripts/fuzz.py --mutants 1000            # every format, 1,000 mutants each
    python scripts/fuzz.py --formats mkv,dng --mutants 50 --seed 7

It prints, per format: mutants run, indexed, failed by reason (the reason
without its details), decoder crashes, hangs, `index` runs that did not end
with status 0 or 3 (a crash of the pass itself) and the slowest mutants; and
overall the peak RSS of the largest process.  Mutants that crash or hang are
kept in --work for a look; the rest are deleted as each run ends.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_media"
BUNDLE = ROOT / "tests" / "fixtures" / "bundle"
FORMATS = ("jpeg", "png", "heic", "dng", "mp3", "flac", "ogg", "m4a", "mp4", "mkv")
KINDS = ["flip", "run", "extreme", "duplicate", "delete", "truncate"]
EXTREMES = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff", b"\x00")


# ----------------------------------------------------------------------------- seeds


def seeds(work: Path) -> dict[str, tuple[bytes, str]]:
    """One small valid file a format: (its bytes, its extension)."""
    made = work / "seeds"
    made.mkdir(parents=True, exist_ok=True)
    return {
        "jpeg": ((SAMPLES / "cat-chelsea.jpg").read_bytes(), ".jpg"),
        "png": ((SAMPLES / "horse-silhouette.png").read_bytes(), ".png"),
        "heic": ((SAMPLES / "cat-chelsea.heic").read_bytes(), ".heic"),
        "dng": ((SAMPLES / "coffee-cup.dng").read_bytes(), ".dng"),
        "mp3": ((SAMPLES / "rain-noise.mp3").read_bytes()[:24_000], ".mp3"),  # MPEG frames stand alone: cut short
        "flac": (_flac(made / "tone.flac"), ".flac"),
        "ogg": ((SAMPLES / "tone-a440.ogg").read_bytes(), ".ogg"),
        "m4a": ((SAMPLES / "weather-report.m4a").read_bytes(), ".m4a"),
        "mp4": ((SAMPLES / "street-clip.mp4").read_bytes(), ".mp4"),
        "mkv": (_mkv(made / "clip.mkv"), ".mkv"),
    }


def _flac(path: Path) -> bytes:
    import soundfile as sf

    t = np.arange(16_000 * 3) / 16_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t))).astype(np.float32), 16_000)
    return path.read_bytes()


def _mkv(path: Path) -> bytes:
    """Three seconds of 160x120 H.264 and an AAC tone, made with PyAV: about 20 KB."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"g": "10", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=16_000)
        audio.layout = "mono"
        for i in range(30):
            arr = np.zeros((120, 160, 3), np.uint8)
            arr[..., i // 10] = 180
            arr[40:80, 4 * i : 4 * i + 30] = 255
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for start in range(0, 48_000, 1024):
            t = (np.arange(1024) + start) / 16_000
            frame = av.AudioFrame.from_ndarray(
                (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None], "flt", "mono"
            )
            frame.sample_rate, frame.pts = 16_000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path.read_bytes()


# ----------------------------------------------------------------------------- mutation


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four kinds of damage; half of them land in the first 512 bytes, where headers are."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if len(out) < 8:
            break
        at = int(rng.integers(0, min(512, len(out)))) if rng.random() < 0.5 else int(rng.integers(0, len(out)))
        kind = rng.choice(
            ["flip", "run", "extreme", "duplicate", "delete", "truncate"], p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]
        )
        if kind == "flip":
            for spot in rng.integers(0, len(out), int(rng.integers(1, 17))):
                out[int(spot)] ^= int(rng.integers(1, 256))
        elif kind == "run":
            size = int(rng.integers(1, 65))
            fill = rng.choice([0, 255, -1])
            out[at : at + size] = rng.bytes(size) if fill < 0 else bytes([int(fill)]) * size
        elif kind == "extreme":
            value = EXTREMES[int(rng.integers(0, len(EXTREMES)))]
            out[at : at + len(value)] = value
        elif kind == "duplicate":
            size = int(rng.integers(16, 1025))
            out[at:at] = out[int(rng.integers(0, len(out))) :][:size]
        elif kind == "delete":
            del out[at : at + int(rng.integers(1, 1025))]
        else:
            del out[int(rng.integers(len(out) // 8, len(out))) :]
    return bytes(out)


def fix_checksums(data: bytes) -> bytes:
    """PNG chunks' and Ogg pages' CRCs made right again, so that the damage reaches the decoder behind
    the checksum instead of stopping at it (done for half of the PNG and Ogg mutants)."""
    out = bytearray(data)
    if out[:8] == b"\x89PNG\r\n\x1a\n":
        at = 8
        while at + 12 <= len(out):
            size = struct.unpack(">I", out[at : at + 4])[0]
            if at + 12 + size > len(out):
                break
            out[at + 8 + size : at + 12 + size] = struct.pack(">I", zlib.crc32(out[at + 4 : at + 8 + size]))
            at += 12 + size
    at = out.find(b"OggS")
    while 0 <= at and at + 27 <= len(out):
        end = at + 27 + out[at + 26] + sum(out[at + 27 : at + 27 + out[at + 26]])
        if end > len(out):
            break
        out[at + 22 : at + 26] = bytes(4)
        out[at + 22 : at + 26] = struct.pack("<I", _ogg_crc(bytes(out[at:end])))
        at = out.find(b"OggS", end)
    return bytes(out)


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, no final xor."""
    if not _OGG_TABLE:
        for i in range(256):
            crc = i << 24
            for _ in range(8):
                crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            _OGG_TABLE.append(crc & 0xFFFFFFFF)
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_TABLE[(crc >> 24) ^ byte]
    return crc


_OGG_TABLE: list[int] = []


def mutants(seed_data: bytes, count: int, rng: np.random.Generator) -> list[bytes]:
    """`count` distinct mutants (identical ones would be reused by hash, not decoded again)."""
    seen: set[bytes] = {hashlib.sha256(seed_data).digest()}
    out: list[bytes] = []
    while len(out) < count:
        data = mutate(seed_data, rng)
        if rng.random() < 0.5:
            data = fix_checksums(data)
        digest = hashlib.sha256(data).digest()
        if digest not in seen:
            seen.add(digest)
            out.append(data)
    return out


# ----------------------------------------------------------------------------- running


def index_run(folder: Path, work: Path, cap: int, timeout: float) -> dict:
    """`mediasearch index --json` of one folder under the cap and timeout; its summary, status, time, peak."""
    env = dict(os.environ, MEDIASEARCH_HOME=str(work / "library"), MEDIASEARCH_CACHE=str(work / "cache"))
    env.update(HF_HUB_OFFLINE="1", ORT_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))
    shutil.rmtree(work / "library", ignore_errors=True)
    command = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE), "--json"]

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.nice(10)

    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limits, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout, "summary": None, "stderr": ""}
    try:
        summary = json.loads(done.stdout)
    except ValueError:
        summary = None
    return {"status": done.returncode, "seconds": time.monotonic() - started, "summary": summary, "stderr": done.stderr}


def timed_decodes(paths: list[Path], cap: int) -> list[tuple[float, str]]:
    """Each file decoded alone, whole, through the decoder workers `index` uses: (seconds, name)."""
    script = f"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from mediasearch.media.workers import DecoderPool
pool = DecoderPool(1)
paths = sys.stdin.read().splitlines()
pool.decode(paths[0])  # the workers' forkserver warms up once: not the file's time
for path in paths:
    started = time.monotonic()
    decoded = pool.decode(path)
    if not hasattr(decoded, "reason"):
        decoded.read_all()
    print(json.dumps([time.monotonic() - started, path]), flush=True)
pool.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], input="\n".join(map(str, paths)), capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=lambda: os.nice(10),
    )  # fmt: skip
    return [tuple(json.loads(line)) for line in done.stdout.splitlines() if line.startswith("[")]


def reason_class(reason: str) -> str:
    """A failure's reason without its details (parentheses, sizes, paths), to count like with like."""
    text = re.sub(r"\([^()]*(\([^()]*\)[^()]*)*\)", "", reason)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return " ".join(text.split())[:90]


def fuzz_format(name: str, seed: tuple[bytes, str], count: int, args, rng) -> dict:
    data, suffix = seed
    work = args.work / name
    folder = work / "mutants"
    report = {
        "mutants": 0, "indexed": 0, "failed": 0, "reasons": collections.Counter(), "crashes": [], "hangs": [],
        "bad_runs": [], "tracebacks": 0, "seconds": 0.0, "examples": {},
    }  # fmt: skip
    timings: list[tuple[float, str]] = []
    for first in range(0, count, args.per_run):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        paths = []
        for i, mutant in enumerate(mutants(data, min(args.per_run, count - first), rng)):
            paths.append(folder / f"{name}-{first + i:05d}{suffix}")
            paths[-1].write_bytes(mutant)
        run = index_run(folder, work, args.cap, args.timeout)
        report["mutants"] += len(paths)
        report["seconds"] += run["seconds"]
        report["tracebacks"] += run["stderr"].count("Traceback")
        if run["status"] not in (0, 3) or run["summary"] is None:
            report["bad_runs"].append({"first": first, "status": run["status"], "stderr": run["stderr"][-500:]})
            _keep(folder, args.work / "kept" / f"{name}-run-{first}")
            continue
        summary = run["summary"]
        report["indexed"] += summary["added"] + summary["reused"]
        report["failed"] += summary["failed"]
        for failure in summary["failures"]:
            reason = failure["error"]
            report["reasons"][reason_class(reason)] += 1
            report["examples"].setdefault(reason_class(reason), f"{Path(failure['path']).name}: {reason}")
            where = "crashes" if "decoder crashed" in reason else "hangs" if "stopped answering" in reason else None
            if where:
                report[where].append(f"{Path(failure['path']).name}: {reason}")
                _keep(Path(failure["path"]), args.work / "kept")
        timings += timed_decodes(paths, args.cap)
    shutil.rmtree(folder, ignore_errors=True)
    report["slowest"] = [(round(s, 2), Path(p).name) for s, p in sorted(timings, reverse=True)[:3]]
    report["reasons"] = dict(report["reasons"].most_common())
    return report


def _keep(path: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.copytree(path, into / path.name, dirs_exist_ok=True)
    elif path.exists():
        shutil.copy(path, into)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=1000, help="mutants a format")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--per-run", type=int, default=500, help="mutants a `mediasearch index` run")
    ap.add_argument("--cap", type=float, default=3.0, help="address-space cap of each run, GB")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds an `index` run may take")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mediasearch-fuzz")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    args.cap = int(args.cap * 1024**3)
    args.work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    found = seeds(args.work)
    results = {}
    for name in args.formats.split(","):
        results[name] = fuzz_format(name, found[name], args.mutants, args, rng)
        _print(name, results[name])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total = sum(r["mutants"] for r in results.values())
    print(f"\n{total} mutants; peak RSS of the largest process {peak:.0f} MB; work in {args.work}")
    if args.json:
        args.json.write_text(json.dumps({"formats": results, "peak_rss_mb": peak}, indent=1))


def _print(name: str, r: dict) -> None:
    print(
        f"{name}: {r['mutants']} mutants, {r['indexed']} indexed, {r['failed']} failed, "
        f"{len(r['crashes'])} crashes, {len(r['hangs'])} hangs, {len(r['bad_runs'])} bad runs, "
        f"{r['tracebacks']} tracebacks, {r['seconds']:.0f} s; slowest {r['slowest']}",
        flush=True,
    )
    for reason, n in r["reasons"].items():
        print(f"    {n:5d}  {reason}    e.g. {r['examples'][reason][:160]}", flush=True)


if __name__ == "__main__":
    main()
