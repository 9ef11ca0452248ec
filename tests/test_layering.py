"""Layering: the library (envs/, memory/, maps/, agents/) never imports from chronotope.scripts.

``scripts/`` holds entry points, benchmarks and experiments built on the library; code the library needs lives in
the library. The check reads the source with :mod:`ast` (nothing is imported), so a lazy import inside a function,
a relative import climbing out of the package, or an ``importlib.import_module("chronotope.scripts...")`` with a
literal name is caught as well as a top-level ``import``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("envs", "memory", "maps", "agents")
FORBIDDEN = "chronotope.scripts"


def _forbidden(name: str | None) -> bool:
    return name is not None and (name == FORBIDDEN or name.startswith(FORBIDDEN + "."))


def _module_of(path: Path, root: Path) -> list[str]:
    """``memory/gaussian/splat.py`` -> ``['chronotope', 'memory', 'gaussian', 'splat']`` (package parts)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ["chronotope", *parts]


def _resolve_relative(node: ast.ImportFrom, module_parts: list[str], is_package: bool) -> str:
    package = module_parts if is_package else module_parts[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def scripts_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: what`` for every import of chronotope.scripts in the Python file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = _module_of(path, root)
    is_package = path.name == "__init__.py"
    if is_package:
        parts = parts[:-1]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve_relative(node, parts, is_package) if node.level else (node.module or "")
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        if any(_forbidden(n) for n in names):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def _library_files() -> list[Path]:
    files = [p for folder in LIBRARY for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50, f"expected the library's source under {ROOT}, found {len(files)} files"
    return files


def test_library_never_imports_scripts():
    bad = [hit for path in _library_files() for hit in scripts_imports(path)]
    assert not bad, "library code imports from chronotope.scripts:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "import chronotope.scripts.bench.common\n",
        "from chronotope.scripts.demo import ENVS\n",
        "from chronotope.scripts import viz\n",
        "def f():\n    from chronotope.scripts.viz.plots import _style\n",
        "from ...scripts.bench import common\n",  # relative, from memory/gaussian/x.py
        "import importlib\nimportlib.import_module('chronotope.scripts.bench.memory')\n",
    ],
)
def test_checker_catches_imports_of_scripts(tmp_path, source):
    path = tmp_path / "memory" / "gaussian" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert len(scripts_imports(path, tmp_path)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "from chronotope.memory.base import MemoryModule\n",
        "from ..base import MemoryModule\n",
        "import chronotope.scriptsx\n",
        "x = 'chronotope.scripts is documented in the README'\n",
    ],
)
def test_checker_passes_library_imports(tmp_path, source):
    path = tmp_path / "memory" / "gaussian" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert scripts_imports(path, tmp_path) == []
