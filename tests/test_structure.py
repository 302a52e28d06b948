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
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "mediasearch":
                found |= {f"mediasearch.{alias.name}" for alias in node.names}
    return found


def internal_graph() -> dict[str, set[str]]:
    modules = {f"mediasearch.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
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
    used = set().union(*(imports(p) for p in PACKAGE.glob("*.py")))
    roots = {name.split(".")[0] for name in used}
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
        if name in INDIRECT:
            continue
        assert MODULES.get(name, name) in roots, f"{name} is declared but mediasearch never imports it"


def test_the_installed_tool_never_imports_torch_or_transformers():
    used = set().union(*(imports(p) for p in PACKAGE.glob("*.py")))
    assert not {m.split(".")[0] for m in used} & {"torch", "transformers"}
