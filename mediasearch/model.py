"""The CLIPCLAP towers: model-ready tensors in, 512-d unit vectors out.

Each modality is an encoder ONNX file followed by a projection ONNX file.  Both
sessions load only when that modality is first used, so a text query never
pays for the image or audio towers.  Outputs are picked by name
(`pooler_output`), and the final L2 normalise is ours: no graph output is
normalised.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mediasearch.bundle import Bundle
from mediasearch.catalog import DIM
from mediasearch.errors import BundleError, DecodeError
from mediasearch.media import silent_features
from mediasearch.paths import cache_dir
from mediasearch.remembered import QueryCache

PROVIDERS = ["CPUExecutionProvider"]  # every session runs on the CPU
MAX_TOKENS = 77
BOS, EOS = 49406, 49407


class TowerFiles(NamedTuple):
    encoder: str
    projection: str
    max_batch: int  # rows per run when the export batches


TOWERS = {
    "text": TowerFiles("text_model.onnx", "text_projection.onnx", 32),
    "image": TowerFiles("visual_model.onnx", "visual_projection.onnx", 16),
    "audio": TowerFiles("audio_model.onnx", "audio_projection.onnx", 4),
}


def _ort():
    # onnxruntime's Linux build starts a telemetry uploader that looks up an outside host unless this
    # is set before its import; mediasearch never goes online once the model is on disk.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort  # ~0.3 s: only commands that run a tower pay for it

    ort.disable_telemetry_events()
    ort.set_default_logger_severity(3)
    return ort


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _quick_copy(bundle: Bundle, name: str, make) -> Path:
    """A copy of a bundle file in the form that loads fastest, made once per bundle revision in
    the cache by make(source, target); where it cannot be made (a read-only cache, a full disk, a
    file it cannot read, a cache folder it may not enter), the bundle's own file, which holds the
    same model."""
    folder = cache_dir() / "mapped" / bundle.revision
    target = folder / name
    try:
        if target.exists():  # PermissionError where the cache is another user's (private, 0700)
            return target
        folder.mkdir(parents=True, exist_ok=True)
        make(bundle.file(name), target)
    except Exception:
        return bundle.file(name)
    return target


def mapped_copy(bundle: Bundle, name: str) -> Path:
    """The same tower with its weights in a file of their own beside the graph, which onnxruntime
    maps instead of parsing out of one large protobuf: a session for the 250 MB text tower in
    ~0.06 s instead of ~0.45 s (measured).  Making it takes a few seconds, once."""

    def make(source: Path, target: Path) -> None:
        import onnx  # only to make the copy

        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".making-"))
        try:
            onnx.save_model(
                onnx.load(str(source)),
                str(work / target.name),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=f"{target.name}.data",
                size_threshold=1024,
            )
            os.replace(work / f"{target.name}.data", target.parent / f"{target.name}.data")
            os.replace(work / target.name, target)  # the graph last: once it is there, the copy is whole
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return _quick_copy(bundle, name, make)


def fast_tokenizer(bundle: Bundle) -> Path:
    """The bundle's tokenizer with its merges written as "a b" strings instead of ["a", "b"] pairs:
    the same tokenizer (the tokenizers library reads both forms), loaded in 46 ms instead of 68
    (measured).  Not made where a merge holds a space (the string form would split it)."""

    def make(source: Path, target: Path) -> None:
        config = json.loads(source.read_text(encoding="utf-8"))
        merges = config["model"]["merges"]
        if merges and isinstance(merges[0], list):
            if any(" " in part for pair in merges for part in pair):
                raise ValueError("a merge holds a space")
            config["model"]["merges"] = [" ".join(pair) for pair in merges]
        work = target.with_name(f".{target.name}-{os.getpid()}.tmp")
        work.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        os.replace(work, target)

    return _quick_copy(bundle, "tokenizer.json", make)


class Tower:
    """One modality's encoder + projection, loaded on first use."""

    def __init__(self, bundle: Bundle, kind: str, one_shot: bool = False):
        self.bundle = bundle
        self.kind = kind
        self.one_shot = one_shot
        self.encoder_file, self.projection_file, self.max_batch = TOWERS[kind]
        self._encoder = None
        self._projection = None
        self.batched: bool | None = None

    def _session(self, name: str):
        ort = _ort()
        opts = ort.SessionOptions()
        # Idle worker threads sleep instead of spinning: spinning threads of one tower
        # steal the cores that decoding, FAISS and the other towers need (measured:
        # a search right after a text embed went from 24 ms to 6 ms).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = self.bundle.file(name)
        if self.one_shot:
            # A process that runs a tower once (a text query) should not repack every weight for
            # faster repeated runs: session creation 0.3-0.47 s -> 0.21 s, one run +13 ms (measured).
            opts.add_session_config_entry("session.disable_prepacking", "1")
            if self.kind == "text" and name == self.encoder_file:
                path = mapped_copy(self.bundle, name)
        try:
            return ort.InferenceSession(str(path), opts, providers=PROVIDERS)
        except Exception as exc:
            raise BundleError(
                f"{path} could not be loaded ({str(exc).splitlines()[0][:200]}): the file is "
                "damaged or not an ONNX model; download the bundle again with `mediasearch model pull`"
            ) from exc

    def load(self) -> None:
        if self._encoder is not None:
            return
        self._encoder = self._session(self.encoder_file)
        self._projection = self._session(self.projection_file)
        outputs = [o.name for o in self._encoder.get_outputs()]
        if "pooler_output" not in outputs:
            raise BundleError(f"{self.bundle.file(self.encoder_file)} has no pooler_output (outputs: {outputs})")

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Vectors for one batch of ready inputs, unit length."""
        self.load()
        pooled = self._encoder.run(["pooler_output"], feeds)[0]
        proj_in = self._projection.get_inputs()[0].name
        projected = self._projection.run(None, {proj_in: pooled.astype(np.float32)})[0]
        return normalize(projected)

    def batch_size(self, example: dict[str, np.ndarray]) -> int:
        """max_batch if a batch of 2 gives the rows of two batches of 1, else 1.

        Some exports bake batch 1 into internal reshapes; the probe runs once per
        bundle revision and tower, and the answer is kept in the cache directory.
        """
        if self.batched is None:
            self.batched = self._probe(example)
        return self.max_batch if self.batched else 1

    def _probe(self, example: dict[str, np.ndarray]) -> bool:
        record = _probe_record(self.bundle, self.kind)
        known = remembered_batching(self.bundle, self.kind)
        if known is not None:
            return known
        rng = np.random.default_rng(0)
        pair = {k: np.concatenate([v[:1], _perturb(v[:1], rng)]) for k, v in example.items()}
        apart = np.concatenate([self.run({k: v[i : i + 1] for k, v in pair.items()}) for i in range(2)])
        try:
            together = self.run(pair)
        except MemoryError:
            return False  # no answer: do not remember it, ask again next time
        except Exception as exc:
            if "alloc" in str(exc).lower():
                return False  # onnxruntime's out-of-memory: no answer either
            batched = False  # the export refuses a batch of two (a baked batch-1 reshape)
        else:
            if self.bundle.precision == "int8":
                # Dynamic int8 scales activations per batch, so rows differ at quantisation-noise
                # level; a baked batch-1 reshape gives unrelated rows, far below this.
                batched = bool(np.min(np.sum(together * apart, axis=1)) >= 0.995)
            else:
                batched = bool(np.allclose(together, apart, atol=1e-4))
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"batched": batched}))
        except OSError:
            pass  # the cache is an optimisation: an unwritable one only means probing again next time
        return batched

    def embed(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Vectors for any number of rows, in batches this tower supports."""
        n = len(next(iter(inputs.values())))
        if n == 0:
            return np.zeros((0, DIM), np.float32)
        size = self.batch_size(inputs)
        parts = [self.run({k: v[i : i + size] for k, v in inputs.items()}) for i in range(0, n, size)]
        return np.concatenate(parts)


def _perturb(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second, different row of the same kind for the batching probe."""
    if rows.dtype.kind == "i":
        return rows.copy()[:, ::-1].copy() if rows.shape[1] > 2 else rows.copy()
    return (rows + rng.normal(0, 0.5, rows.shape)).astype(rows.dtype)


class Embedder:
    """Text, image and audio vectors from one bundle."""

    def __init__(self, bundle: Bundle, one_shot: bool = False):
        self.bundle = bundle
        self.one_shot = one_shot  # a query process: remembers text vectors, loads towers for one run
        self.towers = {kind: Tower(bundle, kind, one_shot) for kind in TOWERS}
        self._tokenizer = None

    def warm_text(self) -> None:
        """Load the tokenizer and the text tower now (a query does it while the index opens)."""
        _ = self.tokenizer
        self.towers["text"].load()

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            path = fast_tokenizer(self.bundle) if self.one_shot else self.bundle.file("tokenizer.json")
            try:
                self._tokenizer = Tokenizer.from_file(str(path))
            except Exception as exc:
                raise BundleError(f"{path} is not a tokenizers file ({exc}): download the bundle again") from exc
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        return self._tokenizer

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """input_ids and attention_mask per the contract: BOS..EOS, at most 77, end kept."""
        rows = []
        for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=True):
            ids = list(enc.ids)
            if not ids or ids[0] != BOS:
                ids.insert(0, BOS)
            if ids[-1] != EOS:
                ids.append(EOS)
            if len(ids) > MAX_TOKENS:
                ids = ids[: MAX_TOKENS - 1] + [EOS]
            rows.append(ids)
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), EOS, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), np.float32)
        if self.one_shot:
            return self._remembered(list(texts))
        return self._run_texts(texts)

    def knows(self, texts: Sequence[str]) -> bool:
        """Whether every text's vector is remembered (then a query never loads the text tower)."""
        return self.one_shot and all(v is not None for v in QueryCache(self.bundle.revision).get(list(texts)))

    def _remembered(self, texts: list[str]) -> np.ndarray:
        cache = QueryCache(self.bundle.revision)
        found = cache.get(texts)
        missing = [t for t, v in zip(texts, found, strict=True) if v is None]
        if missing:
            fresh = dict(zip(missing, self._run_texts(missing), strict=True))
            cache.put(fresh)
            found = [fresh[t] if v is None else v for t, v in zip(texts, found, strict=True)]
        return np.stack(found)

    def _run_texts(self, texts: Sequence[str]) -> np.ndarray:
        tower = self.towers["text"]
        size = tower.batch_size(self.tokenize(texts[:1]))
        # Tokenise per batch so padding only reaches the longest text of that batch.
        parts = [tower.run(self.tokenize(texts[i : i + size])) for i in range(0, len(texts), size)]
        return np.concatenate(parts)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """pixels: [N, 3, 224, 224] float32, as media.image_tensor makes them."""
        return self.towers["image"].embed({"pixel_values": pixels})

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """features: [N, 1, T, 64] float32 log-mel, as media.audio_features makes them."""
        return self.towers["audio"].embed({"input_features": features})

    def embed_decoded(self, items: Sequence) -> list[np.ndarray]:
        """Vectors for decoded items (anything with `tensors` and `modalities`), one row per tensor.

        Tensors are batched across items by modality, so the pictures of many
        files share the image tower's batches, and a video's frames and
        soundtrack go to their two towers.
        """
        out = [np.zeros((len(item.tensors), DIM), np.float32) for item in items]
        for kind, run in (("image", self.embed_pixels), ("audio", self.embed_features)):
            places = [(i, j) for i, item in enumerate(items) for j, m in enumerate(item.modalities) if m == kind]
            if not places:
                continue
            vectors = run(np.stack([items[i].tensors[j] for i, j in places]))
            for (i, j), vector in zip(places, vectors, strict=True):
                out[i][j] = vector
        return out

    def embed_each(self, paths: Sequence, results: Sequence) -> list:
        """Vectors for the decoded items among `results`, errors passed through, in order.

        An item whose vectors are not finite (the model met input it cannot
        represent) becomes an error: no NaN vector is ever stored or printed.
        """
        good = [r for r in results if not isinstance(r, DecodeError)]
        vectors = iter(self.embed_decoded(good)) if good else iter(())
        out = []
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, DecodeError):
                out.append(result)
                continue
            vecs = next(vectors)
            if not np.isfinite(vecs).all():
                out.append(DecodeError(path, "the model gave a non-finite vector for it"))
                continue
            out.append(vecs)
        return out

    def probe_all(self) -> dict[str, bool]:
        """Load every tower and run its batching probe (for `model info`)."""
        examples = {
            "text": self.tokenize(["a probe sentence"]),
            "image": {"pixel_values": np.zeros((1, 3, 224, 224), np.float32)},
            "audio": {"input_features": silent_features()[None]},
        }
        for tower in self.towers.values():
            tower.load()
        return {kind: self.towers[kind].batch_size(examples[kind]) > 1 for kind in TOWERS}


def _probe_record(bundle: Bundle, kind: str) -> Path:
    return cache_dir() / "probes" / f"{bundle.revision}-{kind}.json"


def remembered_batching(bundle: Bundle, kind: str) -> bool | None:
    """Whether a tower batches, as its probe found it once (None: never probed)."""
    try:
        return bool(json.loads(_probe_record(bundle, kind).read_text())["batched"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _input_width(path: Path) -> int | None:
    """The width a projection takes (the last dimension of its input), read from the graph in the
    file: no session is made, and the weights of the large encoders are never read."""
    import onnx  # the projection graphs are small (0.1-2.4 MB here)

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return (dims[-1].dim_value or None) if dims else None


def _onnxruntime_version() -> str:
    """onnxruntime's version from its package metadata, without importing it (0.3 s)."""
    from importlib import metadata

    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return _ort().__version__


def model_info(bundle: Bundle, probe: bool = False) -> dict:
    """What `model info` shows: files, dimensions, batching per tower, provider.

    Read from the bundle's files and the remembered probes, without making a session: on the
    full model, loading every tower takes seconds and a gigabyte.  probe: load every tower and
    run its batching probe now (once per bundle revision; remembered after).
    """
    config = bundle.config()
    audio = config.get("audio_config", {})
    if probe:
        Embedder(bundle).probe_all()
    batched = {kind: remembered_batching(bundle, kind) for kind in TOWERS}
    widths = {kind: _input_width(bundle.file(files.projection)) for kind, files in TOWERS.items()}
    return {
        "source": bundle.source,
        "path": str(bundle.path),
        "revision": bundle.revision,
        "dimension": config.get("embedding_dim", config.get("projection_dim", DIM)),
        "text_width": widths["text"],
        "image_width": widths["image"],
        "audio_width": widths["audio"],
        "sample_rate": audio.get("sample_rate"),
        "max_length_s": audio.get("max_length_s"),
        "batched": batched,
        "providers": PROVIDERS,
        "onnxruntime": _onnxruntime_version(),
        "files": {f.name: f.stat().st_size for f in sorted(bundle.path.iterdir()) if f.is_file()},
        "precision": bundle.precision,
        "int8_cosine_vs_fp32": _read_json(bundle.path / "fidelity.json"),
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
