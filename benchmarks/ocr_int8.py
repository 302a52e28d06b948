"""Does int8 pay for the OCR reader? fp32 PP-OCRv5 beside dynamic int8 copies, on the words corpus.

    python benchmarks/words_corpus.py /tmp/words_corpus
    nice -n 10 python benchmarks/ocr_int8.py /tmp/words_corpus

The PP-OCRv5 ONNX files keep their weights in Constant nodes, which onnxruntime's quantiser skips (it
quantises initializers only: as shipped, `quantize_dynamic` leaves the graphs unchanged). Here the
weight tensors are moved to initializers first, then two int8 variants are made with
onnxruntime.quantization.quantize_dynamic: every Conv and MatMul of detection and MatMul of recognition
("all"), and recognition's MatMuls only ("rec"). Each reader reads the same decoded pictures in turn;
prints the queries read (as benchmarks/ocr_engines.py counts them) and seconds per picture, detection
alone and in all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_engines import PICTURE_KINDS, found  # noqa: E402

from mediasearch import ocr  # noqa: E402


def with_initializers(source: Path, target: Path) -> None:
    """A copy of a model whose weight tensors (Constant nodes of 2+ dimensions) are initializers."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "Constant"]:
        tensor = next((a.t for a in node.attribute if a.name == "value"), None)
        if tensor is not None and len(tensor.dims) >= 2:
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            graph.node.remove(node)
    onnx.save(model, str(target))


def variant(base: Path, out: Path, quantised: dict[str, list[str]]) -> Path:
    """A model folder like the wheel's, with the named models quantised (their operator types given)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("det", "cls", "rec"):
        (out / name).mkdir(parents=True, exist_ok=True)
        if name in quantised:
            plain = out / name / "plain.onnx"
            with_initializers(base / name / f"{name}.onnx", plain)
            quantize_dynamic(str(plain), str(out / name / f"{name}.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=quantised[name])  # fmt: skip
            plain.unlink()
        else:
            shutil.copy(base / name / f"{name}.onnx", out / name / f"{name}.onnx")
    shutil.copy(base / "ppocrv5_dict.txt", out / "ppocrv5_dict.txt")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--textless", type=int, default=10)
    args = ap.parse_args()
    queries = [q for q in json.loads((args.corpus / "queries.json").read_text()) if q["kind"] in PICTURE_KINDS]
    files = sorted({q["file"] for q in queries})
    files += sorted(str(p.relative_to(args.corpus)) for p in (args.corpus / "photos").glob("*"))[: args.textless]
    base = ocr.model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        readers = {
            "fp32": ocr.Reader(threads=2),
            "int8 all": ocr.Reader(2, variant(base, Path(tmp) / "all", {"det": ["Conv", "MatMul"], "rec": ["MatMul"]})),
            "int8 rec": ocr.Reader(2, variant(base, Path(tmp) / "rec", {"rec": ["MatMul"]})),
        }
        pictures = {f: ocr.load(str(args.corpus / f)) for f in files}
        for reader in readers.values():
            reader.read(pictures[files[0]])  # sessions made before timing
        texts = {n: {} for n in readers}
        seconds = {n: {"detection": 0.0, "all": 0.0} for n in readers}
        for f in files:  # the readers take turns on each picture: a busy machine slows them alike
            for name, reader in readers.items():
                t0 = time.perf_counter()
                reader.detect(pictures[f])
                seconds[name]["detection"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                texts[name][f] = [line.text for line in reader.read(pictures[f])]
                seconds[name]["all"] += time.perf_counter() - t0
    for name in readers:
        ok = sum(found(q["query"], texts[name][q["file"]]) for q in queries)
        per = ", ".join(f"{k} {v / len(files):.3f} s" for k, v in seconds[name].items())
        print(f"{name:9s} read {ok}/{len(queries)} queries; per picture: {per}")


if __name__ == "__main__":
    main()
