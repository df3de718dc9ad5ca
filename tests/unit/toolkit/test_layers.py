"""The toolkit's folders are its layers, and imports run one way: a module imports nothing from
a layer above its own (README, "Layout"); TYPE_CHECKING-only imports are types, not imports.
And no function in the toolkit runs over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TOOLKIT = Path(__file__).resolve().parents[3] / "toolkit"

#: Lowest first. monitor and chaos share a rank and do not import each other; so do report
#: and chaostoolkit.
LAYERS = {
    "errors": 0,
    "settings": 0,
    "yamlfile": 0,
    "interrupts": 0,
    "data": 0,
    "releases": 1,
    "guards": 2,
    "lab": 3,
    "deploy": 4,
    "monitor": 5,
    "chaos": 5,
    "experiments": 6,
    "report": 7,
    "chaostoolkit": 7,
    "view": 8,
    "cli": 9,
    # The package itself: its version, and the Chaos Toolkit's `discover` entry point.
    "__init__": 9,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cli"  # `toolkit` itself: __version__, for the CLI


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every toolkit import outside `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    package = ".".join(path.relative_to(TOOLKIT.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, m) for line, m in found if m == "toolkit" or m.startswith("toolkit.")]


MODULES = sorted(p for p in TOOLKIT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(TOOLKIT)) for p in MODULES])
def test_no_module_imports_a_layer_above_its_own(path: Path):
    own = ".".join(path.relative_to(TOOLKIT.parent).with_suffix("").parts)
    own_layer = _layer(own)
    for line, module in _imports(path):
        theirs = _layer(module)
        if module == "toolkit":
            continue  # the package's __version__
        assert LAYERS[theirs] <= LAYERS[own_layer], f"{path}:{line} imports {module}"
        if LAYERS[theirs] == LAYERS[own_layer]:
            assert theirs == own_layer or LAYERS[theirs] == 0, f"{path}:{line} imports {module}"


def test_every_package_is_a_known_layer():
    packages = {p.name for p in TOOLKIT.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in TOOLKIT.glob("*.py")} - {"__init__"}
    assert packages | modules <= set(LAYERS)


def test_no_function_in_the_toolkit_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(TOOLKIT)}:{node.lineno} {node.name} ({length} lines)"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := node.end_lineno - node.lineno + 1) > 60
    ]
    assert long == []
