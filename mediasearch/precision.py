"""int8 copies of the towers, and the measurement that says how close they stay to fp32.

Its own module because it needs both the bundle (where copies live) and the
model (to measure them): bundle.py and model.py stay free of each other.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from mediasearch.bundle import CONFIG_FILES, INT8_SUFFIX, ONNX_FILES, Bundle
from mediasearch.errors import BundleError
from mediasearch.media import audio_features, image_tensor
from mediasearch.model import Embedder
from mediasearch.paths import cache_dir

# Per-channel int8 weights with a 7-bit range: on AVX2 without VNNI the u8s8 kernels
# would otherwise saturate, and measured here it was also the fastest variant.
QUANTIZATION = "pc7"


def with_precision(bundle: Bundle, precision: str | None, log=lambda message: None) -> Bundle:
    """The bundle itself for fp32; for int8, quantised copies made once in the cache.

    int8 uses onnxruntime's dynamic quantisation (int8 weights per output
    channel, activations quantised on the fly) of the MatMul and Gemm layers,
    which carry nearly all of the towers' work.  The copies live in
    $MEDIASEARCH_CACHE/int8/REVISION and count as their own revision, so a
    library never mixes the two.
    """
    if precision in (None, "fp32"):
        return bundle
    if precision != "int8":
        raise BundleError(f"unknown precision {precision!r}: use fp32 or int8")
    folder = cache_dir() / "int8" / f"{bundle.revision}-{QUANTIZATION}"
    if not (folder / "complete").exists():
        _quantize(bundle.path, folder, log)
    quantized = Bundle(folder, bundle.source, bundle.revision + INT8_SUFFIX)
    if not (folder / "fidelity.json").exists():
        log("measuring the int8 copies against fp32 (once)")
        (folder / "fidelity.json").write_text(json.dumps(fidelity(bundle, quantized)))
    return quantized


def _quantize(source: Path, folder: Path, log) -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime's import, as model._ort does
    from onnxruntime.quantization import QuantType, quantize_dynamic  # heavy; needed once per bundle

    folder.mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        shutil.copyfile(source / name, folder / name)
    for name in ONNX_FILES:
        log(f"making an int8 copy of {name} (once)")
        tmp = folder / f".{name}.tmp"
        quantize_dynamic(
            str(source / name),
            str(tmp),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            reduce_range=True,
        )
        os.replace(tmp, folder / name)
    (folder / "complete").write_text("ok\n")


def probe_inputs() -> dict[str, object]:
    """A small fixed set of texts, pictures and sounds for comparing two bundles."""
    from PIL import Image

    rng = np.random.default_rng(42)
    texts = [
        "a dog barking",
        "rain on a tin roof",
        "a portrait of a smiling woman",
        "city traffic at night",
        "a cat sleeping on a sofa",
        "ocean waves",
        "a red sports car",
        "birds singing in a forest",
    ]
    pictures = []
    for i in range(8):
        yy, xx = np.mgrid[0:300, 0:400]
        base = np.stack([np.sin(xx / (10 + 7 * i)), np.cos(yy / (8 + 5 * i)), np.sin((xx + yy) / (20 + i))], -1)
        arr = ((base * 0.5 + 0.5) * 255 + rng.normal(0, 25, base.shape)).clip(0, 255).astype(np.uint8)
        pictures.append(image_tensor(Image.fromarray(arr)))
    sounds = []
    t = np.arange(48000 * 4) / 48000
    for i in range(4):
        wave = 0.3 * np.sin(2 * np.pi * (220 * (i + 1)) * t) + rng.normal(0, 0.05 * (i + 1), t.shape)
        sounds.append(audio_features(wave.astype(np.float32)))
    return {"text": texts, "image": np.stack(pictures), "audio": np.stack(sounds)}


def fidelity(reference: Bundle, other: Bundle) -> dict[str, float]:
    """Lowest cosine per modality between two bundles' vectors on probe_inputs()."""
    inputs = probe_inputs()
    a, b = Embedder(reference), Embedder(other)
    pairs = {
        "text": (a.embed_texts(inputs["text"]), b.embed_texts(inputs["text"])),
        "image": (a.embed_pixels(inputs["image"]), b.embed_pixels(inputs["image"])),
        "audio": (a.embed_features(inputs["audio"]), b.embed_features(inputs["audio"])),
    }
    return {kind: round(float(np.min(np.sum(x * y, axis=1))), 5) for kind, (x, y) in pairs.items()}
