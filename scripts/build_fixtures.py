"""Build random-weight CLIPCLAP bundles and reference vectors (dev-only tool).

Why: the real CLIPCLAP weights cannot be had offline, but the pipeline can be
proven without them.  This script builds the *real architectures* (transformers'
CLIPModel and unfused ClapAudioModel) with random weights, exports every tower
under the contract's file and tensor names, and computes reference vectors with
transformers' own processors and PyTorch models.  mediasearch must reproduce
them from the ONNX files alone.

    python scripts/build_fixtures.py                 # small bundle + references -> tests/fixtures
    python scripts/build_fixtures.py --full-size DIR # ~900 MB bundle for benchmarks

Needs torch, transformers and open_clip_torch (for the CLIP BPE vocabulary);
none of them is a runtime dependency of mediasearch.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

SMALL = {
    "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
    "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
    "audio": dict(
        patch_embeds_hidden_size=16,
        hidden_size=128,
        depths=[1, 1, 2, 1],
        num_attention_heads=[1, 2, 4, 4],
    ),
}
FULL = {
    "text": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
    "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    "audio": dict(
        patch_embeds_hidden_size=128,
        hidden_size=1024,
        depths=[2, 2, 12, 2],
        num_attention_heads=[4, 8, 16, 32],
    ),
}

TEXTS = [
    "a dog barking",
    "",
    "A photograph of a red bicycle leaning against a brick wall in the late afternoon sun, "
    "with long shadows stretching across the cobblestones, a cat sleeping on the saddle, "
    "pigeons gathering near a bakery window and a child running past holding a blue balloon "
    "while an old man reads a newspaper on a wooden bench beside the fountain",
    "ein Hund bellt laut im Garten",
    "犬が吠えている",
    "Ça sonne: l'été, très chaud!",
]


# --------------------------------------------------------------------------- tokenizer


def build_tokenizer(out: Path) -> None:
    """Write tokenizer.json built from open_clip's CLIP BPE vocabulary (49,408 tokens)."""
    from importlib.util import find_spec

    from transformers import CLIPTokenizer

    # Locate the vocabulary without importing open_clip (it needs torchvision).
    bpe = Path(find_spec("open_clip").submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    tok.model_max_length = 77
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        shutil.copy(Path(tmp) / "tokenizer.json", out / "tokenizer.json")


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


# --------------------------------------------------------------------------- models


class AudioProjection(torch.nn.Module):
    """CLAP's projection, an L2 normalise, then CLIPCLAP's trained 512->512 linear."""

    def __init__(self, clap_projection: torch.nn.Module, dim: int = 512):
        super().__init__()
        self.clap = clap_projection
        self.bridge = torch.nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.clap(x)
        x = torch.nn.functional.normalize(x, dim=-1)
        return self.bridge(x)


class Tower(torch.nn.Module):
    """Wrap a transformers encoder so ONNX sees (last_hidden_state, pooler_output)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args):
        out = self.model(*args, return_dict=True)
        return out.last_hidden_state, out.pooler_output


def build_models(sizes: dict, seed: int = 0):
    from transformers import ClapAudioConfig, ClapAudioModel, CLIPConfig, CLIPModel
    from transformers.models.clap.modeling_clap import ClapProjectionLayer

    torch.manual_seed(seed)
    clip_cfg = CLIPConfig(
        text_config=dict(sizes["text"], eos_token_id=2, max_position_embeddings=77, vocab_size=49408),
        vision_config=dict(sizes["vision"], image_size=224, patch_size=32),
        projection_dim=512,
    )
    clip = CLIPModel(clip_cfg).eval()
    audio_cfg = ClapAudioConfig(**sizes["audio"], enable_fusion=False, projection_dim=512)
    audio = ClapAudioModel(audio_cfg).eval()
    clap_proj = ClapProjectionLayer(audio_cfg)
    audio_proj = AudioProjection(clap_proj).eval()
    # Random init leaves BatchNorm at identity and LayerNorms trivial; perturb every
    # parameter a little so a wrong preprocessing step cannot hide behind them.
    with torch.no_grad():
        for module in (clip, audio, audio_proj):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        bn = audio.audio_encoder.batch_norm
        bn.running_mean.copy_(torch.randn_like(bn.running_mean) * 5 - 40)
        bn.running_var.copy_(torch.rand_like(bn.running_var) * 300 + 100)
    return clip, audio, audio_proj, clip_cfg, audio_cfg


def export(module, args, path: Path, inputs, outputs, axes) -> None:
    # The exporter restores the wrapper's mode afterwards, and a fresh wrapper is in
    # training mode: put it in eval first so the PyTorch references stay in eval too.
    module.eval()
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )


def export_bundle(out: Path, sizes: dict) -> tuple:
    out.mkdir(parents=True, exist_ok=True)
    clip, audio, audio_proj, clip_cfg, audio_cfg = build_models(sizes)
    ids = torch.tensor([[49406, 320, 1929, 49407], [49406, 320, 49407, 49407]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        export(
            Tower(clip.text_model),
            (ids, mask),
            out / "text_model.onnx",
            ["input_ids", "attention_mask"],
            ["last_hidden_state", "pooler_output"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
                "pooler_output": {0: "batch"},
            },
        )
        tdim = clip_cfg.text_config.hidden_size
        vdim = clip_cfg.vision_config.hidden_size
        export(
            clip.text_projection,
            (torch.randn(2, tdim),),
            out / "text_projection.onnx",
            ["input"],
            ["output"],
            {"input": {0: "batch"}, "output": {0: "batch"}},
        )
        export(
            Tower(clip.vision_model),
            (torch.randn(2, 3, 224, 224),),
            out / "visual_model.onnx",
            ["pixel_values"],
            ["last_hidden_state", "pooler_output"],
            {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}},
        )
        export(
            clip.visual_projection,
            (torch.randn(2, vdim),),
            out / "visual_projection.onnx",
            ["input"],
            ["output"],
            {"input": {0: "batch"}, "output": {0: "batch"}},
        )
        export(
            Tower(audio),
            (torch.randn(2, 1, 1001, 64),),
            out / "audio_model.onnx",
            ["input_features"],
            ["last_hidden_state", "pooler_output"],
            {
                "input_features": {0: "batch", 2: "time"},
                "last_hidden_state": {0: "batch"},
                "pooler_output": {0: "batch"},
            },
        )
        export(
            audio_proj,
            (torch.randn(2, audio_cfg.hidden_size),),
            out / "audio_projection.onnx",
            ["input"],
            ["output"],
            {"input": {0: "batch"}, "output": {0: "batch"}},
        )
    build_tokenizer(out)
    write_configs(out, clip_cfg, audio_cfg)
    return clip, audio, audio_proj


def write_configs(out: Path, clip_cfg, audio_cfg) -> None:
    from transformers import CLIPImageProcessorPil

    CLIPImageProcessorPil().save_pretrained(out)
    config = {
        "model_type": "clipclap",
        "embedding_dim": 512,
        "text_config": {"hidden_size": clip_cfg.text_config.hidden_size, "max_length": 77},
        "vision_config": {"hidden_size": clip_cfg.vision_config.hidden_size, "image_size": 224},
        "audio_config": {
            "hidden_size": audio_cfg.hidden_size,
            "sample_rate": 48000,
            "max_length_s": 10,
            "num_mel_bins": 64,
        },
        "note": "random-weight fixture built by mediasearch scripts/build_fixtures.py",
    }
    (out / "clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    meta = {"dataset": "none (random weights)", "seed": 0}
    (out / "projection_training_metadata.json").write_text(json.dumps(meta, indent=2) + "\n")


# --------------------------------------------------------------------------- inputs


def make_inputs(out: Path) -> dict[str, dict]:
    """Write the fidelity inputs; return {name: how to build the reference}."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    specs: dict[str, dict] = {}

    def picture(w: int, h: int) -> np.ndarray:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack(
            [np.sin(xx / (w / 7 + 1)) * 100 + 120, np.cos(yy / (h / 5 + 1)) * 90 + 120, (xx + yy) % 256],
            axis=-1,
        )
        noise = rng.normal(0, 20, size=(h, w, 3))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    def save(name: str, img: Image.Image, **kw) -> None:
        img.save(out / name, **kw)
        specs[name] = {"kind": "image"}

    save("landscape.jpg", Image.fromarray(picture(640, 427)), quality=92)
    save("portrait.png", Image.fromarray(picture(300, 500)))
    save("tiny.png", Image.fromarray(picture(10, 10)))
    save("gray.png", Image.fromarray(picture(320, 240)).convert("L"))
    save("palette.gif", Image.fromarray(picture(256, 256)).convert("P", palette=Image.Palette.ADAPTIVE))
    save("cmyk.jpg", Image.fromarray(picture(400, 300)).convert("CMYK"), quality=95)
    save("photo.webp", Image.fromarray(picture(500, 375)), quality=90)
    save("bitmap.bmp", Image.fromarray(picture(260, 230)))
    save("scan.tiff", Image.fromarray(picture(333, 250)))
    # 16-bit grayscale: mediasearch scales to 8 bits (>> 8) instead of clipping.
    g16 = (picture(280, 210)[..., 0].astype(np.uint16) * 257 + rng.integers(0, 256, (210, 280))).astype(np.uint16)
    Image.fromarray(g16).save(out / "deep16.png")
    specs["deep16.png"] = {"kind": "image", "reference": "scaled_8bit"}
    # EXIF orientation 6: stored sideways, shown upright after a 90° turn.
    upright = Image.fromarray(picture(300, 400))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(out / "rotated.jpg", exif=exif, quality=95)
    specs["rotated.jpg"] = {"kind": "image", "reference": "exif_transposed"}

    t = lambda sr, s: np.arange(int(sr * s)) / sr  # noqa: E731

    def sound(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
        x = t(sr, seconds)
        sig = 0.3 * np.sin(2 * np.pi * 440 * x) * np.exp(-((x % 1.0) * 3))
        sig += 0.2 * np.sin(2 * np.pi * (200 + 300 * x) * x) + rng.normal(0, 0.05, x.shape)
        if channels == 2:
            sig = np.stack([sig, 0.5 * np.roll(sig, 100) + rng.normal(0, 0.02, x.shape)], axis=1)
        return sig.astype(np.float32)

    for name, sr, secs, ch, subtype in [
        ("tone48k.wav", 48000, 3.0, 1, "PCM_16"),
        ("tenseconds48k.flac", 48000, 10.0, 1, "PCM_24"),
        ("half48k.wav", 48000, 0.5, 1, "FLOAT"),
        ("stereo44k.wav", 44100, 4.0, 2, "PCM_16"),
        ("speech16k.wav", 16000, 5.0, 1, "PCM_16"),
    ]:
        sf.write(out / name, sound(sr, secs, ch), sr, subtype=subtype)
        specs[name] = {"kind": "audio", "sr": sr}
    return specs


# --------------------------------------------------------------------------- references


def reference_image(path: Path, how: str | None) -> Image.Image:
    """The picture handed to transformers' processor for this input."""
    from PIL import ImageOps

    img = Image.open(path)
    if how == "exif_transposed":
        return ImageOps.exif_transpose(img)
    if how == "scaled_8bit":
        arr = np.asarray(img).astype(np.uint16) >> 8
        return Image.fromarray(arr.astype(np.uint8))
    return img


def reference_audio(path: Path) -> np.ndarray:
    data, sr = sf.read(path, dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    if sr != 48000:
        g = np.gcd(sr, 48000)
        mono = resample_poly(mono, 48000 // g, sr // g)
    return mono


def compute_references(bundle: Path, inputs: Path, specs: dict, models: tuple) -> dict:
    from transformers import ClapFeatureExtractor, CLIPImageProcessorPil, CLIPTokenizer

    clip, audio, audio_proj = models
    tok = CLIPTokenizer.from_pretrained(bundle)
    proc = CLIPImageProcessorPil.from_pretrained(bundle)
    fe = ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        padding_value=0.0,
        return_attention_mask=False,
        frequency_min=50,
        frequency_max=14000,
        top_db=None,
        truncation="rand_trunc",
        padding="repeatpad",
    )
    refs: dict[str, np.ndarray] = {}
    with torch.no_grad():
        enc = tok(TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
        text = clip.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        text = getattr(text, "pooler_output", text)
        for i in range(len(TEXTS)):
            refs[f"text:{i}"] = _unit(text[i].numpy())
        for name, spec in specs.items():
            path = inputs / name
            if spec["kind"] == "image":
                img = reference_image(path, spec.get("reference"))
                pix = proc(images=img, return_tensors="pt")["pixel_values"]
                vec = clip.get_image_features(pixel_values=pix)
                vec = getattr(vec, "pooler_output", vec)
            else:
                feats = fe(reference_audio(path), sampling_rate=48000, return_tensors="pt")["input_features"]
                vec = audio_proj(audio(input_features=feats).pooler_output)
            refs[f"file:{name}"] = _unit(vec[0].numpy())
    return refs


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full-size", type=Path, help="write a full-size random bundle here and stop")
    args = ap.parse_args()
    if args.full_size:
        export_bundle(args.full_size, FULL)
        print(f"full-size bundle written to {args.full_size}")
        return
    bundle, inputs = FIXTURES / "bundle", FIXTURES / "inputs"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.rmtree(inputs, ignore_errors=True)
    models = export_bundle(bundle, SMALL)
    specs = make_inputs(inputs)
    refs = compute_references(bundle, inputs, specs, models)
    buf = io.BytesIO()
    np.savez(buf, **refs)
    (FIXTURES / "reference.npz").write_bytes(buf.getvalue())
    (FIXTURES / "reference.json").write_text(
        json.dumps({"texts": TEXTS, "files": specs}, indent=2, ensure_ascii=False) + "\n"
    )
    size = sum(f.stat().st_size for f in bundle.iterdir())
    print(f"bundle {size / 1e6:.1f} MB, {len(refs)} reference vectors")
    subprocess.run(["ls", "-la", str(bundle)], check=False)


if __name__ == "__main__":
    main()
