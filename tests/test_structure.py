"""The package's shape (ARCHITECTURE.md): imports go one way, nothing private crosses a module,
bpy stays in the add-on, and test fixtures and training tools stay out of the runtime package.

The graph includes imports inside functions: a lazy import hides a cycle from Python, not from a
reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

from testing_paths import ROOT

BACKEND = ROOT / "backend"
PACKAGES = ("avatartex", "avatartex_tools")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BACKEND).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (BACKEND / package).rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, relative ones
    resolved; ``from pkg import module`` counts as importing the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            submodules = [n for n in names if f"{base}.{n}" in known]
            found += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    table = modules()
    known = set(table)
    return {
        name: {target for target, _, _ in imports(name, path, known) if target in known and target != name}
        for name, path in table.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle_and_reads_relative_imports():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    edges = graph()
    assert "avatartex.engines.base" in edges["avatartex.engines.classic.inpaint"]
    assert "avatartex.atlas_filters" in edges["avatartex.engines.classic.inpaint"]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_runtime_package_never_imports_the_tools():
    for name, targets in graph().items():
        if name.startswith("avatartex.") or name == "avatartex":
            assert not any(t.startswith("avatartex_tools") for t in targets), name


def test_no_private_name_crosses_a_module():
    table = modules()
    known = set(table)
    offenders = [
        f"{name}:{line} takes {n} from {target}"
        for name, path in table.items()
        for target, names, line in imports(name, path, known)
        for n in names
        if n.startswith("_") and not n.startswith("__") and target in known
    ]
    assert not offenders, "\n".join(offenders)


def test_bpy_only_in_the_addon():
    """The backend and the build never import bpy (the add-on's own tests and benchmarks, which run
    inside Blender, do)."""
    outside = [*BACKEND.rglob("*.py"), ROOT / "build.py"]
    offenders = []
    for path in outside:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "bpy" or n.startswith("bpy.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_addon_modules_take_nothing_private_from_each_other():
    addon = ROOT / "avatartex_addon"
    offenders = []
    for path in addon.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                offenders += [
                    f"{path.name}:{node.lineno} {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not offenders, offenders


def test_fixtures_and_training_data_live_outside_the_runtime_package():
    runtime = BACKEND / "avatartex"
    text = "\n".join(p.read_text() for p in runtime.rglob("*.py"))
    for marker in ("def build_sd_folder", "def atlas_from_textured_mesh", "def train("):
        assert marker not in text, marker
    assert (BACKEND / "avatartex_tools" / "tiny_models.py").exists()
