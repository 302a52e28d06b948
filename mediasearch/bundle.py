"""Find, download and check the CLIPCLAP model bundle.

A bundle is a folder of ONNX towers plus tokenizer and configs.  `--model` names
either a local folder or a hub repo id; a repo id is fetched once with the hub's
own client (cache, resume, progress bar, HF_HUB_OFFLINE honoured) into
mediasearch's cache directory, and served from that cache ever after without
touching the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mediasearch.errors import BundleError
from mediasearch.paths import cache_dir
from mediasearch.runtime import hub_client

DEFAULT_MODEL = "antflydb/clipclap"

ONNX_FILES = (
    "text_model.onnx",
    "text_projection.onnx",
    "visual_model.onnx",
    "visual_projection.onnx",
    "audio_model.onnx",
    "audio_projection.onnx",
)
CONFIG_FILES = (
    "tokenizer.json",
    "preprocessor_config.json",
    "clip_config.json",
    "projection_training_metadata.json",
)
BUNDLE_FILES = ONNX_FILES + CONFIG_FILES

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Bundle:
    """A checked bundle on disk: where it is, where it came from, which revision."""

    path: Path
    source: str
    revision: str

    def file(self, name: str) -> Path:
        return self.path / name

    def config(self) -> dict:
        return json.loads(self.file("clip_config.json").read_text())

    @property
    def precision(self) -> str:
        return precision_of(self.revision)


INT8_SUFFIX = "+int8"


def precision_of(revision: str | None) -> str:
    """int8 copies carry their own revision (REVISION+int8); everything else is fp32."""
    return "int8" if (revision or "").endswith(INT8_SUFFIX) else "fp32"


def base_revision(revision: str) -> str:
    """The fp32 bundle's revision that an int8 copy was made from."""
    return revision.removesuffix(INT8_SUFFIX)


def model_name(model: str | None) -> str:
    """The model to use: the option, else MEDIASEARCH_MODEL, else the default repo."""
    return model or os.environ.get("MEDIASEARCH_MODEL") or DEFAULT_MODEL


def is_repo_id(name: str) -> bool:
    """A hub repo id looks like owner/name and is not an existing local path."""
    return bool(_REPO_ID.match(name)) and not Path(name).expanduser().exists()


def hub_cache() -> Path:
    return cache_dir() / "models"


def resolve(model: str | None = None) -> Bundle:
    """Return the bundle for `model`, downloading a repo id on first use.

    The revision is a fingerprint of the bundle's content, so the same model is
    recognised wherever it lies (a moved folder, a copy of a hub snapshot).
    """
    name = model_name(model)
    if not is_repo_id(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise BundleError(
                f"model folder {path} does not exist: point --model (or MEDIASEARCH_MODEL) "
                "at a folder holding the CLIPCLAP files, or at a hub repo id such as "
                f"{DEFAULT_MODEL}"
            )
        check(path)
        return Bundle(path.resolve(), str(path.resolve()), _fingerprint(path))
    path = _cached(name)
    if path is None or _missing(path):
        path = pull(name)
    check(path)
    return Bundle(path, name, _fingerprint(path))


def _hub_settings() -> dict:
    """HF_ENDPOINT and HF_HUB_OFFLINE as they are now.

    The hub client reads both once, at import; reading them per call keeps a
    process (or a test) that changes them honest.
    """
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "local_files_only": offline}


def pull(repo_id: str) -> Path:
    """Download (or finish downloading) a hub bundle into the cache; return its folder."""
    settings = _hub_settings()
    snapshot_download = hub_client(offline=settings["local_files_only"]).snapshot_download
    try:
        if settings["local_files_only"]:
            raise BundleError("HF_HUB_OFFLINE is set")
        folder = snapshot_download(repo_id, cache_dir=hub_cache(), allow_patterns=list(BUNDLE_FILES), **settings)
    except Exception as exc:  # the hub client raises many types; all mean the same here
        raise BundleError(
            f"could not download {repo_id} ({_reason(exc)}) and no complete copy is cached: "
            "connect to the internet once and run `mediasearch model pull`, or point --model "
            "at a folder that holds the CLIPCLAP files"
        ) from exc
    path = Path(folder)
    missing = _missing(path)
    if missing:
        raise BundleError(f"{repo_id} has no {missing[0]}: it is not a CLIPCLAP bundle")
    return path


def _cached(repo_id: str) -> Path | None:
    """The cached snapshot folder for repo_id, without any network access."""
    try:
        return Path(
            hub_client().snapshot_download(
                repo_id, cache_dir=hub_cache(), allow_patterns=list(BUNDLE_FILES), local_files_only=True
            )
        )
    except Exception:
        return None


def _missing(path: Path) -> list[str]:
    return [name for name in BUNDLE_FILES if not (path / name).is_file()]


def check(path: Path) -> None:
    """Fail with one sentence naming the first missing, empty or unreadable file."""
    for name in BUNDLE_FILES:
        file = path / name
        if not file.is_file():
            raise BundleError(
                f"the model bundle at {path} has no {name}: download the whole bundle "
                "again (`mediasearch model pull`) or point --model at a complete copy"
            )
        if file.stat().st_size == 0:
            raise BundleError(f"{file} is empty: the download was cut short; run `mediasearch model pull`")
    try:
        config = json.loads((path / "clip_config.json").read_text())
        config["audio_config"]["sample_rate"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path / 'clip_config.json'} is not a CLIPCLAP config ({exc})") from exc


def _fingerprint(path: Path) -> str:
    """A bundle's revision: file sizes plus the hash of the small files.

    The projections and configs are small and differ between any two trained
    versions, so hashing them (not the 1 GB towers) tells bundles apart quickly.
    The answer is remembered in the cache against every file's size, mtime and
    inode (as the catalog trusts an unchanged file), which saves a query 15 ms.
    """
    stats = [(path / name).stat() for name in BUNDLE_FILES]
    seen = ";".join(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}" for st in stats)
    memo = cache_dir() / "revisions" / hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:24]
    try:
        remembered = json.loads(memo.read_text())
        if remembered.get("seen") == seen:
            return remembered["revision"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    for name, st in zip(BUNDLE_FILES, stats, strict=True):
        digest.update(f"{name}:{st.st_size}\n".encode())
        if st.st_size < 16 * 1024 * 1024:
            digest.update((path / name).read_bytes())
    revision = "local-" + digest.hexdigest()[:16]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        work = memo.with_name(f".{memo.name}.{os.getpid()}")
        work.write_text(json.dumps({"path": str(path), "seen": seen, "revision": revision}))
        os.replace(work, memo)
    except OSError:
        pass  # a read-only cache: hash again next time
    return revision


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
