"""The whole index against OCR alone: mediasearch's index (vectors and text) per picture, beside what
rapidocr-onnxruntime 1.4.4's default pipeline spends reading the same pictures, per kind of picture.

    nice -n 10 python benchmarks/words_speed.py [--bundle DIR] [--per-kind 6] [--rounds 3]

Four kinds of picture, made here (DejaVu text; seeded):

- photo: 12 MP (4032x3024) phone photos without text, JPEG: the bulk of a real library;
- screenshot: phone screenshots (1170x2532) full of app text, PNG;
- document: A4 pages scanned at 300 dpi (2480x3508), a letter's paragraphs, JPEG;
- small: 12 MP phone photos with a small sign somewhere in them, JPEG.

Each round, kind by kind and side by side (so a busy machine slows both alike): rapidocr reads every picture
of the kind (RapidOCR() as it comes, given the path: its own decoding is timed, warmed first), then
mediasearch indexes a fresh copy of the kind's folder in a new library (`Library.index`, OCR on: decoding in
its workers, the image tower, the catalog, reading the text, saving), and indexes it once more with
ocr=False (what a text-less tool costs). The model, the OCR reader and the decoder workers are warmed by a
first pass on other pictures, as rapidocr's engine is; a library's fixed costs (its lock, its first save)
stay in.

Prints, per kind, the median over rounds of seconds per picture: rapidocr's OCR alone, mediasearch's whole
index, its vector pass alone (ocr=False) and the time until the vector pass was done (when the pictures are
findable), with the ratio whole index / rapidocr (the target: at most 0.5 for every kind). Quality is
benchmarks/words.py's (recall) and benchmarks/ocr_engines.py's (what each engine reads).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from words_corpus import BOLD, SANS, SERIF, noisy, scene, screenshot, text_block  # noqa: E402

import mediasearch  # noqa: E402

BUNDLE = HERE.parent / "tests" / "fixtures" / "bundle"
KINDS = ("photo", "screenshot", "document", "small")
WORDS = (
    "invoice receipt harbour station platform ticket museum bakery opening hours garden library concert "
    "pharmacy parking ferry timetable coffee market river bridge castle summer winter number account "
    "delivery address street avenue meeting agenda budget report weather forecast"
).split()


def make(kind: str, i: int, rng: np.random.Generator, folder: Path) -> None:
    """One picture of a kind, written into folder."""
    words = lambda n: " ".join(rng.choice(WORDS, n))  # noqa: E731
    if kind == "photo":
        scene(rng, (4032, 3024)).save(folder / f"IMG_{i:04d}.jpg", quality=90)
    elif kind == "screenshot":
        screenshot([words(3).title() for _ in range(16)]).save(folder / f"Screenshot_{i:04d}.png")
    elif kind == "document":
        page = Image.new("RGB", (2480, 3508), (252, 252, 250))
        page.paste(text_block([words(4).upper()], BOLD, 64, bg=(252, 252, 250)), (200, 240))
        body = text_block([words(7).capitalize() + "." for _ in range(40)], SERIF, 42, bg=(252, 252, 250))
        page.paste(body, (200, 500))
        noisy(page, rng, 3).convert("L").save(folder / f"scan_{i:04d}.jpg", quality=85)
    else:
        photo = scene(rng, (4032, 3024))
        sign = text_block([words(2).upper(), words(3)], SANS, 40, pad=14)
        photo.paste(sign, (int(rng.integers(200, 3400)), int(rng.integers(200, 2700))))
        ImageDraw.Draw(photo)  # nothing else: the sign is the only text
        photo.save(folder / f"IMG_{5000 + i:04d}.jpg", quality=90)


def corpus(root: Path, per_kind: int) -> dict[str, list[Path]]:
    rng = np.random.default_rng(7)
    made = {}
    for kind in (*KINDS, "warm"):
        folder = root / kind
        folder.mkdir(parents=True)
        for i in range(per_kind if kind != "warm" else 2):
            make(kind if kind != "warm" else ("small", "screenshot")[i], i, rng, folder)
        made[kind] = sorted(folder.iterdir())
    return made


def rapidocr_reader(threads: int | None):
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR() if threads is None else RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def read(path: Path) -> list[float]:
        """Its own timing of each stage: detection, angle, recognition (zeros when nothing was found)."""
        _result, elapse = engine(str(path))
        return list(elapse or [0.0, 0.0, 0.0])

    return read


def index_seconds(model, folder: Path, library: Path, ocr: bool) -> tuple[float, float]:
    """Seconds for the whole index of a folder, and seconds until its vector pass was done."""
    started = time.perf_counter()
    vectors_done = []

    def reading():
        vectors_done.append(time.perf_counter())
        return None

    with mediasearch.open(library, model=model, write=True) as lib:
        lib.index(folder, ocr=ocr, reading=reading)
    total = time.perf_counter() - started
    return total, (vectors_done[0] if vectors_done else started + total) - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=BUNDLE, help="model bundle (default: the small random one)")
    ap.add_argument("--per-kind", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rapidocr-threads", type=int, help="default: rapidocr's own setting")
    args = ap.parse_args()
    os.environ.pop("MEDIASEARCH_NO_OCR", None)
    work = Path(tempfile.mkdtemp(prefix="words_speed."))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> None:
    from mediasearch.bundle import resolve
    from mediasearch.model import Embedder

    pictures = corpus(work / "corpus", args.per_kind)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; flags: {cpu_flags()}")
    print(f"bundle {args.bundle}; {args.per_kind} pictures a kind, {args.rounds} rounds")
    model = Embedder(resolve(str(args.bundle)))
    rapid = rapidocr_reader(args.rapidocr_threads)
    for path in pictures["warm"]:
        rapid(path)
    index_seconds(model, pictures["warm"][0].parent, work / "warm-library", True)
    figures: dict[str, dict[str, list[float]]] = {k: {"rapid": [], "whole": [], "vectors": [], "findable": []}
                                                  for k in KINDS}  # fmt: skip
    for r in range(args.rounds):
        for kind in KINDS:
            n = len(pictures[kind])
            t0 = time.perf_counter()
            for path in pictures[kind]:
                rapid(path)
            figures[kind]["rapid"].append((time.perf_counter() - t0) / n)
            for ocr, key in ((True, "whole"), (False, "vectors")):
                copy = work / f"r{r}-{kind}-{key}"
                shutil.copytree(pictures[kind][0].parent, copy)
                total, findable = index_seconds(model, copy, work / f"lib-r{r}-{kind}-{key}", ocr)
                figures[kind][key].append(total / n)
                if ocr:
                    figures[kind]["findable"].append(findable / n)
            print(f"  round {r + 1} {kind}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in figures[kind].items()))
    print("\nseconds per picture (median of rounds); ratio: the median of each round's index / rapidocr")
    print(f"{'kind':12s}{'rapidocr':>10s}{'index':>10s}{'ratio':>8s}{'vectors':>10s}{'findable':>10s}")
    for kind in KINDS:
        m = {k: statistics.median(v) for k, v in figures[kind].items()}
        ratio = statistics.median(w / r for w, r in zip(figures[kind]["whole"], figures[kind]["rapid"], strict=True))
        print(f"{kind:12s}{m['rapid']:10.3f}{m['whole']:10.3f}{ratio:8.2f}{m['vectors']:10.3f}{m['findable']:10.3f}")
    rapid_all = sum(statistics.median(figures[k]["rapid"]) for k in KINDS)
    whole_all = sum(statistics.median(figures[k]["whole"]) for k in KINDS)
    print(f"{'all':12s}{rapid_all / len(KINDS):10.3f}{whole_all / len(KINDS):10.3f}{whole_all / rapid_all:8.2f}")
    stages(pictures, rapid)


def stages(pictures: dict[str, list[Path]], rapid) -> None:
    """Where reading text spends its time, per kind: rapidocr's own stage timings beside mediasearch.ocr's
    (decoding, detection, angle, recognition), seconds per picture, one run each."""
    from mediasearch import ocr

    reader = ocr.Reader()
    print("\nreading alone, seconds per picture: rapidocr det / cls / rec; mediasearch decode / det / cls / rec")
    for kind in KINDS:
        theirs = np.mean([rapid(path) for path in pictures[kind]], axis=0)
        ours = np.mean([our_stages(reader, path) for path in pictures[kind]], axis=0)
        print(f"{kind:12s}" + " / ".join(f"{t:.3f}" for t in theirs) + "    " + " / ".join(f"{t:.3f}" for t in ours))


def our_stages(reader, path: Path) -> list[float]:
    from mediasearch import ocr

    times, t0 = [], time.perf_counter()
    rgb = ocr.load(str(path))
    times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    boxes = reader.detect(rgb)
    times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    crops, _turns = reader._upright([rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]) if boxes else ([], [])
    times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    reader.recognise(crops)
    return [*times, time.perf_counter() - t0]


def cpu_flags() -> str:
    """The CPU's vector extensions that matter to onnxruntime (AVX2, AVX-512, VNNI, AMX)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return " ".join(f for f in wanted if f in flags.split())


if __name__ == "__main__":
    main()
