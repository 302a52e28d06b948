"""Does static int8 pay for the OCR reader? Calibrated (QDQ) int8 copies of PP-OCRv5 beside fp32, on the words corpus.

    python benchmarks/words_corpus.py /tmp/words_corpus
    nice -n 10 python benchmarks/ocr_static_int8.py /tmp/words_corpus

benchmarks/ocr_int8.py measures dynamic int8 (activations quantised on the fly), which onnxruntime runs
slower than fp32 for these convolutions. Static int8 fixes the activations' ranges from calibration
pictures, so the convolutions run as int8 kernels (VNNI, AMX where the CPU has them). The calibration
pictures are made here, not taken from the corpus the recall is measured on: lines of words in Pillow's
own font (dark on light and light on dark, 14 to 64 px) for recognition, and scenes holding a few such
lines for detection. Variants: recognition whole, recognition's convolutions only, recognition's first
half of convolutions, and detection with recognition. Prints the picture queries read (as
benchmarks/ocr_engines.py counts them) and recognition's speed-up on the corpus' own text lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_engines import PICTURE_KINDS, found  # noqa: E402

from mediasearch import ocr  # noqa: E402

WORDS = (
    "the quick brown fox jumps over a lazy dog Invoice 2024-0815 Café Müller opening hours 9:41 €12,50 total".split()
)


class Calibration:
    """Seeded calibration inputs for the recognition and detection models."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def colours(self) -> tuple:
        dark = tuple(int(v) for v in self.rng.integers(0, 80, 3))
        light = tuple(int(v) for v in self.rng.integers(170, 256, 3))
        return (dark, light) if self.rng.random() < 0.7 else (light, dark)

    def line(self) -> np.ndarray:
        size = int(self.rng.integers(14, 64))
        face = ImageFont.load_default(size=size)
        text = " ".join(self.rng.choice(WORDS, int(self.rng.integers(1, 7))))
        fg, bg = self.colours()
        img = Image.new("RGB", (int(face.getlength(text)) + size, int(size * 1.6)), bg)
        ImageDraw.Draw(img).text((size // 2, size // 4), text, font=face, fill=fg)
        return np.asarray(img)

    def scene(self) -> np.ndarray:
        w, h = int(self.rng.integers(600, 1400)), int(self.rng.integers(600, 1400))
        img = Image.fromarray(self.rng.integers(0, 255, (3, 4, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        for _ in range(int(self.rng.integers(0, 6))):
            img.paste(
                Image.fromarray(self.line()), (int(self.rng.integers(0, w - 50)), int(self.rng.integers(0, h - 30)))
            )
        return np.asarray(img)


def rec_input(crop: np.ndarray) -> np.ndarray:
    ratio = min(ocr.MAX_RATIO, crop.shape[1] / max(1, crop.shape[0]))
    return ocr._normalised(crop, ocr.REC_HEIGHT, max(ocr.REC_HEIGHT, int(np.ceil(ocr.REC_HEIGHT * ratio / 8) * 8)))[
        None
    ]


def det_input(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, ocr.DET_SIDE / max(h, w))
    dh, dw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
    small = np.asarray(Image.fromarray(rgb).resize((dw, dh), Image.BILINEAR), np.float32) / 255.0
    return np.ascontiguousarray(((small[:, :, ::-1] - ocr._MEAN) / ocr._STD).transpose(2, 0, 1)[None])


class Feed:
    """onnxruntime.quantization's CalibrationDataReader over a list of inputs."""

    def __init__(self, inputs: list[np.ndarray]) -> None:
        self.inputs = iter(inputs)

    def get_next(self):
        x = next(self.inputs, None)
        return None if x is None else {"x": x}


def variant(
    out: Path, plain: Path, calibration: Calibration, rec_part: float | None, det: bool, prepared: dict
) -> Path:
    """A folder like the wheel's: int8 recognition (all ops, or this fraction of its Conv nodes) and maybe
    int8 detection; the rest copied."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    source = ocr.model_dir()
    for name in ("det", "cls", "rec"):
        (out / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name / f"{name}.onnx", out / name / f"{name}.onnx")
    shutil.copy(source / "ppocrv5_dict.txt", out)
    jobs = [("rec", rec_part)] + ([("det", None)] if det else [])
    for name, part in jobs:
        model = str(prepared[name])
        nodes = None
        if part is not None:
            convs = [n.name for n in onnx.load(model).graph.node if n.op_type == "Conv"]
            nodes = convs[: int(len(convs) * part)]
        inputs = [rec_input(calibration.line()) for _ in range(64)] if name == "rec" else []
        inputs = inputs or [det_input(calibration.scene()) for _ in range(12)]
        quantize_static(model, str(out / name / f"{name}.onnx"), Feed(inputs), quant_format=QuantFormat.QDQ,
                        per_channel=True, nodes_to_quantize=nodes, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)  # fmt: skip
    return out


def main() -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    args = ap.parse_args()
    queries = [q for q in json.loads((args.corpus / "queries.json").read_text()) if q["kind"] in PICTURE_KINDS]
    files = sorted({q["file"] for q in queries})
    pictures = {f: ocr.load(str(args.corpus / f)) for f in files}
    work = Path(tempfile.mkdtemp(prefix="ocr_static_int8."))
    try:
        prepared = {}
        for name in ("rec", "det"):
            prepared[name] = work / f"{name}-prepared.onnx"
            quant_pre_process(
                str(ocr.model_dir() / name / f"{name}.onnx"), str(prepared[name]), skip_symbolic_shape=True
            )
        readers = {"fp32": ocr.Reader()}
        for label, part, det in (("rec int8", None, False), ("rec convs", 1.0, False), ("rec half", 0.5, False),
                                 ("det+rec int8", None, True)):  # fmt: skip
            folder = variant(work / label.replace(" ", "-"), work, Calibration(), part, det, prepared)
            readers[label] = ocr.Reader(folder=folder)
        lines = [c for f in files for c in crops(readers["fp32"], pictures[f])][:80]
        base = None
        for label, reader in readers.items():
            texts = {f: [line.text for line in reader.read(pictures[f])] for f in files}
            read = [found(q["query"], texts[q["file"]]) for q in queries]
            seconds = recognition_seconds(reader, lines)
            base = base or seconds
            missed = [q["query"] for q, ok in zip(queries, read, strict=True) if not ok]
            print(f"{label:14s} read {sum(read)}/{len(read)}  recognition x{base / seconds:.2f}  missed: {missed}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def crops(reader: ocr.Reader, rgb: np.ndarray) -> list[np.ndarray]:
    found_, _ = reader._upright([ocr._crop(rgb, box) for box in reader.detect(rgb)])
    return found_


def recognition_seconds(reader: ocr.Reader, lines: list[np.ndarray]) -> float:
    """Median of three runs over the same text lines (one at a time, as the reader does)."""
    reader.recognise(lines[:2])
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        reader.recognise(lines)
        runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


if __name__ == "__main__":
    main()
