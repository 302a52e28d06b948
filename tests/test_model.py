"""The model pipeline against transformers' own processors and models (fixture bundle)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLE, INPUTS

from mediasearch import media
from mediasearch.bundle import resolve
from mediasearch.model import EOS, MAX_TOKENS, Embedder

FIDELITY = 0.9999
RESAMPLED = 0.98  # 44.1 and 16 kHz sources: soxr here, scipy's resample_poly in the reference


def embed_file(embedder, name):
    decoded = media.decode(INPUTS / name)
    return embedder.embed_decoded([decoded])[0]


def test_text_vectors_match_reference(embedder, reference):
    meta, refs = reference
    vectors = embedder.embed_texts(meta["texts"])
    cosines = [float(vectors[i] @ refs[f"text:{i}"]) for i in range(len(meta["texts"]))]
    assert min(cosines) >= FIDELITY, cosines


def test_text_vectors_do_not_depend_on_batch_company(embedder, reference):
    meta, _ = reference
    together = embedder.embed_texts(meta["texts"])
    alone = np.concatenate([embedder.embed_texts([t]) for t in meta["texts"]])
    assert np.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        "landscape.jpg",
        "portrait.png",
        "tiny.png",
        "gray.png",
        "palette.gif",
        "cmyk.jpg",
        "photo.webp",
        "bitmap.bmp",
        "scan.tiff",
        "deep16.png",
        "rotated.jpg",
    ],
)
def test_image_vectors_match_reference(embedder, reference, name):
    _, refs = reference
    vector = embed_file(embedder, name)
    assert vector.shape == (1, 512)
    assert float(vector[0] @ refs[f"file:{name}"]) >= FIDELITY


@pytest.mark.parametrize("name", ["tone48k.wav", "tenseconds48k.flac", "half48k.wav"])
def test_48k_audio_vectors_match_reference(embedder, reference, name):
    _, refs = reference
    assert float(embed_file(embedder, name)[0] @ refs[f"file:{name}"]) >= FIDELITY


@pytest.mark.parametrize("name", ["stereo44k.wav", "speech16k.wav"])
def test_resampled_audio_vectors_match_reference(embedder, reference, name):
    _, refs = reference
    assert float(embed_file(embedder, name)[0] @ refs[f"file:{name}"]) >= RESAMPLED


def test_vectors_are_unit_float32_512(embedder):
    vectors = embedder.embed_texts(["one", "two"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_long_text_is_cut_to_77_tokens_keeping_the_end_token(embedder):
    batch = embedder.tokenize(["word " * 200, "short"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == (2, MAX_TOKENS)
    assert ids[0, -1] == EOS and ids[0, 0] == 49406
    assert mask[1].sum() == 3 and ids[1, 3:].tolist() == [EOS] * (MAX_TOKENS - 3)


def test_batched_images_equal_single_images(embedder):
    names = ["landscape.jpg", "portrait.png", "tiny.png"]
    pixels = np.stack([media.decode(INPUTS / n).tensors[0] for n in names])
    together = embedder.embed_pixels(pixels)
    apart = np.concatenate([embedder.embed_pixels(p[None]) for p in pixels])
    assert np.allclose(together, apart, atol=1e-5)


def test_tower_that_does_not_batch_falls_back_to_batch_one(tmp_path, reference):
    """A projection whose rows leak into each other must be run one row at a time."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    width = 32
    weight = np.random.default_rng(1).normal(size=(width, 512)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w"], ["y"]),
            helper.make_node("ReduceMean", ["y"], ["m"], axes=[0], keepdims=1),
            helper.make_node("Add", ["y", "m"], ["output"]),  # mixes the batch: like a baked reshape
        ],
        "leaky",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 512])],
        [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, folder / "visual_projection.onnx")
    embedder = Embedder(resolve(str(folder)))
    pixels = np.stack([media.decode(INPUTS / n).tensors[0] for n in ["landscape.jpg", "tiny.png"]])
    together = embedder.embed_pixels(pixels)
    apart = np.concatenate([embedder.embed_pixels(p[None]) for p in pixels])
    assert embedder.towers["image"].batched is False
    assert np.allclose(together, apart, atol=1e-6)
    assert embedder.probe_all()["image"] is False and embedder.probe_all()["text"] is True


def test_towers_load_only_when_needed(bundle, monkeypatch):
    """A text query opens the text tower's two files and no other model file."""
    import onnxruntime

    opened: list[str] = []
    real = onnxruntime.InferenceSession

    def session(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    embedder = Embedder(bundle)
    assert opened == [], "making an embedder loads nothing"
    embedder.embed_texts(["a cat"])
    assert sorted(opened) == ["text_model.onnx", "text_projection.onnx"]


def test_long_recording_gives_one_vector_per_window(embedder, tmp_path):
    import soundfile as sf

    t = np.arange(int(48000 * 25.5)) / 48000
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 48000)
    decoded = media.decode(tmp_path / "long.wav")
    assert decoded.spans == [(0.0, 10.0), (8.0, 18.0), (15.5, 25.5)]
    vectors = embedder.embed_decoded([decoded])[0]
    assert vectors.shape == (3, 512)


def test_a_query_loads_the_mapped_text_tower_with_the_same_vectors(bundle, embedder, reference, tmp_path, monkeypatch):
    """One-shot text towers load a copy whose weights onnxruntime maps (made once in the cache):
    the same graph and weights, so the same vectors as the bundle's own file."""
    from mediasearch.model import Embedder, mapped_copy
    from mediasearch.paths import cache_dir

    meta, _ = reference
    vectors = Embedder(bundle, one_shot=True).embed_texts(meta["texts"])  # a fresh cache: the tower runs
    copy = cache_dir() / "mapped" / bundle.revision / "text_model.onnx"
    assert copy.exists() and (copy.parent / "text_model.onnx.data").stat().st_size > copy.stat().st_size
    assert np.allclose(vectors, embedder.embed_texts(meta["texts"]), atol=1e-6)
    assert mapped_copy(bundle, "text_model.onnx") == copy  # made once, then found

    (tmp_path / "unwritable").write_text("a file where the cache folder should be")
    monkeypatch.setenv("MEDIASEARCH_CACHE", str(tmp_path / "unwritable"))
    assert mapped_copy(bundle, "text_model.onnx") == bundle.file("text_model.onnx")  # falls back


def test_a_query_process_reads_the_same_tokenizer_faster(bundle, embedder):
    """One-shot processes read a copy of tokenizer.json with string merges: the same tokens."""
    from mediasearch.model import Embedder
    from mediasearch.paths import cache_dir

    rng = np.random.default_rng(3)
    alphabet = list("abcdefghijklmnopqrstuvwxyz      .,!?'-0123456789éüßøçñ日本語ä👍\t\n") + ["'s", "n't", "</w>"]
    texts = ["".join(rng.choice(alphabet, rng.integers(1, 120))) for _ in range(1500)]
    texts += ["a dog barking", "Rain on a TIN roof!!", "naïve café", "  spaces   everywhere  ", "x" * 400]
    quick = Embedder(bundle, one_shot=True)
    assert quick.tokenizer is not None and (cache_dir() / "mapped" / bundle.revision / "tokenizer.json").exists()
    for text in texts:
        a, b = quick.tokenize([text]), embedder.tokenize([text])
        assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(
            a["attention_mask"], b["attention_mask"]
        )
