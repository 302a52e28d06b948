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
RSS and wall time of a real `mediasearch index` under /usr/bin/time -v (and the
peak RSS of its largest decoder worker, which /usr/bin/time does not see), and
the slowest files to decode.  Reading text in pictures (OCR) is on, as in
`index` by default: the made files include what reading decodes again at up to
2048 px (16-bit, palette, CMYK and LA pictures, animated GIF and WebP, a
120 MP transparent PNG, a 64 MP 16-bit scan, a 20000x300 panorama, noise, a
page of tiny text, EXIF orientations 5-8, a 1x1 picture, a video damaged in the
middle), and it
reports how many were read, what `status` says waits, each note from reading
and the slowest pictures to read.  --no-ocr runs the same without reading.
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
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

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


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def card(text: str, size: int = 40) -> Image.Image:
    font = ImageFont.truetype(FONT, size)
    img = Image.new("RGB", (int(font.getlength(text)) + 60, size + 60), (250, 250, 250))
    ImageDraw.Draw(img).text((30, 25), text, font=font, fill=(15, 15, 15))
    return img


def make_for_reading(folder: Path) -> None:
    """Pictures and a video that reach the text reader, which decodes them again at up to 2048 px."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    sign = card("Harbour Ferry")
    Image.fromarray(np.asarray(sign.convert("L")).astype(np.uint16) * 257).save(folder / "deep16.png")
    sign.convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png", transparency=0)
    sign.convert("CMYK").save(folder / "cmyk.jpg")
    sign.convert("LA").save(folder / "grey-alpha.png")
    frames = [card(f"Frame {i}") for i in range(5)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(folder / "animated.webp", save_all=True, append_images=frames[1:], duration=100)
    stored_as = {5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}
    for orientation, stored in stored_as.items():
        exif = Image.Exif()
        exif[0x0112] = orientation  # stored turned, as a camera does; a viewer shows the card upright
        card(f"Orientation {orientation}").transpose(stored).save(folder / f"exif{orientation}.jpg", exif=exif)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(folder / "one-pixel.png")
    Image.new("RGB", (1, 1), (10, 20, 30)).save(folder / "one-pixel.jpg")
    panorama = Image.new("RGB", (20_000, 300), (200, 220, 240))
    for x in range(0, 20_000, 2500):
        panorama.paste(card(f"Sign {x}", 60), (x + 100, 80))
    panorama.save(folder / "panorama.jpg", quality=85)
    Image.fromarray(rng.integers(0, 255, (2000, 2000, 3), dtype=np.uint8)).save(folder / "noise.png")
    page, font = Image.new("RGB", (1754, 2480), "white"), ImageFont.truetype(FONT, 9)
    draw = ImageDraw.Draw(page)
    for y in range(20, 2460, 12):
        for x in range(20, 1700, 60):
            draw.text((x, y), ("tiny", "print", "clause", "42")[(x + y) % 4], font=font, fill="black")
    page.save(folder / "tiny-text-page.png")
    if not (folder / "huge-transparent.png").exists():  # 120 MP: legal, and 480 MB decoded
        huge = Image.new("RGBA", (11_000, 10_900), (255, 255, 255, 0))
        huge.paste(card("Huge but legal", 200), (500, 500))
        huge.save(folder / "huge-transparent.png", compress_level=1)
    if not (folder / "scan16.png").exists():  # 64 MP of 16-bit grey: 128 MB decoded
        deep = np.zeros((8000, 8000), np.uint16)
        deep[500:700, 300:5000] = 60000
        Image.fromarray(deep).save(folder / "scan16.png", compress_level=1)
    damaged_video(folder / "damaged-middle.mp4", rng)


def damaged_video(path: Path, rng: np.random.Generator) -> None:
    """A 30 s H.264 video of title cards, a fifth of it overwritten with noise from the middle on."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=2)
    stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
    stream.options = {"g": "2", "preset": "ultrafast"}
    for i in range(60):
        picture = Image.new("RGB", (640, 360), (40 + i, 90, 160))
        picture.paste(card(f"Scene {i // 6}").resize((480, 120)), (80, 120))
        frame = av.VideoFrame.from_image(picture)
        frame.pts, frame.time_base = i, Fraction(1, 2)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = bytearray(path.read_bytes())
    middle, length = len(data) // 2, len(data) // 5
    data[middle : middle + length] = rng.integers(0, 255, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def index(corpus: Path, bundle: str, library: Path, ocr: bool) -> tuple[dict, dict, list[str]]:
    """`index --json` under /usr/bin/time -v: its summary, time's figures, and what it wrote on stderr."""
    env = dict(os.environ, MEDIASEARCH_HOME=str(library))
    env.pop("MEDIASEARCH_NO_OCR", None)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mediasearch", "index", str(corpus), "--model", bundle]
    cmd += ["--json"] + ([] if ocr else ["--no-ocr"])
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    watcher = threading.Thread(target=watch_peaks, args=(process, peaks), daemon=True)
    watcher.start()
    stdout, stderr = process.communicate()
    watcher.join()
    if process.returncode not in (0, 3):  # 3: the pass finished, some files failed (expected here)
        raise SystemExit(f"index failed ({process.returncode}):\n{stderr[-3000:]}")
    timing, said = {}, []
    for line in stderr.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("Maximum resident set size (kbytes)", "Elapsed (wall clock) time (h:mm:ss or m:ss)"):
            timing[key] = value
        elif not line.startswith("\t") and not line.startswith("Command exited"):
            said.append(line)
    timing["largest decoder worker's peak RSS (kbytes)"] = max(peaks.values(), default=0)
    return json.loads(stdout), timing, said


def watch_peaks(process: subprocess.Popen, peaks: dict[int, int]) -> None:
    """The peak RSS (VmHWM) of every process below `process` other than the indexing one: decoder workers are
    the forkserver's children, which /usr/bin/time's figure (the indexing process's own) leaves out."""
    while process.poll() is None:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry))
        below, todo = [], list(children.get(process.pid, []))  # /usr/bin/time's child is the indexing process
        indexing = set(todo)
        while todo:
            pid = todo.pop()
            below.append(pid)
            todo += children.get(pid, [])
        for pid in below:
            if pid in indexing:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
        time.sleep(0.1)


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


def slowest_to_read(corpus: Path, count: int = 8) -> list[tuple[float, str, str]]:
    """Each picture decoded for reading and read, as `index` reads it (in this process), timed."""
    from mediasearch import media, ocr
    from mediasearch.errors import DecodeError

    reader = ocr.Reader()
    times = []
    for dirpath, _dirs, files in os.walk(corpus):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or media.kind_of(path) != "image":
                continue
            start = time.perf_counter()
            try:
                picture = ocr.load(path)
                boxes = len(reader.detect(picture))
                outcome = f"{picture.shape[1]}x{picture.shape[0]}, {boxes} regions, {len(reader.read(picture))} lines"
            except DecodeError as exc:
                outcome = exc.reason
            except Exception as exc:
                outcome = f"FAILED ({type(exc).__name__}: {exc})"
            times.append((time.perf_counter() - start, path, outcome))
    return sorted(times, reverse=True)[:count]


def status_words(library: Path) -> dict:
    env = dict(os.environ, MEDIASEARCH_HOME=str(library))
    done = subprocess.run([sys.executable, "-m", "mediasearch", "status", "--json"], env=env, capture_output=True)
    return json.loads(done.stdout)["words"]


def tell_said(said: list[str]) -> None:
    """What index wrote on stderr, by kind: skipped files (their reasons are in the summary), notes from reading
    by reason, anything else whole; and whether a line holds a control character or a traceback."""
    reading = [line for line in said if "its text could not be read" in line or "text of its frames" in line]
    other = [line for line in said if line not in reading and not line.startswith("skipping ")]
    print(f"stderr: {len(said)} lines, {len(said) - len(reading) - len(other)} skipping, {len(reading)} from reading")
    reasons: dict[str, int] = {}
    for line in reading:
        reason = line.rsplit("could not be read (", 1)[-1].split("(")[0].strip(" )")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4}  reading: {reason}")
    for line in reading[:20]:
        print(f"        {line[:200]}")
    for line in other:
        print(f"  other: {line[:200]!r}")
    forged = [line for line in said if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in line)]
    print(f"lines with a control character: {len(forged)}; tracebacks: {sum('Traceback' in line for line in said)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--corpus", type=Path, default=HERE / "work" / "hostile")
    parser.add_argument("--no-fetch", action="store_true")
    parser.add_argument("--no-ocr", action="store_true", help="index --no-ocr: no text read in pictures")
    args = parser.parse_args()
    if not args.no_fetch:
        fetch(args.corpus)
    make_our_own(args.corpus / "made-here")
    make_for_reading(args.corpus / "made-for-reading")
    walked = sum(
        1
        for d, _s, files in os.walk(args.corpus)
        for f in files
        if not f.startswith(".") and not os.path.islink(os.path.join(d, f))
    )
    hidden = [os.path.join(d, f) for d, _s, files in os.walk(args.corpus) for f in files if f.startswith(".")]
    with tempfile.TemporaryDirectory() as library:
        summary, timing, said = index(args.corpus, args.bundle, Path(library), not args.no_ocr)
        words = status_words(Path(library))
    counted = sum(summary[k] for k in ("added", "updated", "unchanged", "reused", "failed", "ignored"))
    print(f"files walked: {walked} (plus {len(hidden)} hidden, skipped)")
    print(
        f"added {summary['added']}, failed {summary['failed']}, ignored {summary['ignored']}, "
        f"reused {summary['reused']} = {counted} {'(adds up)' if counted == walked else '(DOES NOT ADD UP)'}"
    )
    for key, value in timing.items():
        print(f"{key}: {value}")
    print(f"vector pass (the summary's seconds): {summary['seconds']:.1f} s; text read in {summary['read']} files")
    print(f"status words: {words}")
    tell_said(said)
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
    if not args.no_ocr:
        print("slowest pictures to read (decoded for reading and read, in this process):")
        for seconds, path, outcome in slowest_to_read(args.corpus):
            print(f"  {seconds:7.3f}s  {os.path.relpath(path, args.corpus)!r}: {outcome}")


if __name__ == "__main__":
    main()
