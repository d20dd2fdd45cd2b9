"""Imports run one way (DESIGN.md section 1), read from the source with ast, nothing imported.

- a task module imports the registry (``rnnkit.tasks``) and the shared ``rnnkit.tasks.options`` and
  ``rnnkit.tasks.common``, never another task module;
- ``rnnkit.data`` is a leaf: it imports only itself and the foundations (errors, config);
- the apps (``rnnkit.apps``) sit above train and tasks: only the command line imports them.
"""

import ast
from pathlib import Path

import pytest

import rnnkit

PACKAGE = Path(rnnkit.__file__).parent
# what any task module may import from tasks/: the registry and the shared modules
TASK_SHARED = {"rnnkit.tasks", "rnnkit.tasks.options", "rnnkit.tasks.common", "rnnkit.tasks.presets"}
DATA_ALLOWED = ("rnnkit.data", "rnnkit.errors", "rnnkit.config")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every rnnkit module that ``source`` (the text of ``module``) imports, anywhere in it, relative
    imports resolved; ``from rnnkit.x import y`` counts as ``rnnkit.x.y`` where that is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {m for m in found if m == "rnnkit" or m.startswith("rnnkit.")}


def imported_modules(path: Path) -> set[str]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_import_reader_sees_every_form():
    source = """
import numpy
import rnnkit.errors
from rnnkit import checkpoint, __version__
from rnnkit.tasks import register_task, lm
from . import classify
from .options import add_rnn_options
from ..data.text import iter_lines


def later():
    from rnnkit.models import load_model
"""
    assert imports_in(source, "rnnkit.tasks.tag") == {
        "rnnkit.errors", "rnnkit.checkpoint", "rnnkit", "rnnkit.tasks", "rnnkit.tasks.lm", "rnnkit.tasks.classify",
        "rnnkit.tasks.options", "rnnkit.data.text", "rnnkit.models",
    }  # fmt: skip
    assert "rnnkit.tasks.lm" in imported_modules(PACKAGE / "tasks" / "__init__.py")


@pytest.mark.parametrize("path", [p for p in modules_under("tasks") if p.name != "__init__.py"], ids=str)
def test_no_task_module_imports_another(path):
    own = module_name(path)
    sideways = {m for m in imported_modules(path) if m.startswith("rnnkit.tasks") and m not in TASK_SHARED | {own}}
    assert not sideways, f"{own} imports {sorted(sideways)}; share code through rnnkit.tasks.options or .common"


@pytest.mark.parametrize("path", modules_under("data"), ids=str)
def test_data_imports_nothing_above_it(path):
    upward = {m for m in imported_modules(path) if not any(m == a or m.startswith(a + ".") for a in DATA_ALLOWED)}
    assert not upward, f"{module_name(path)} imports {sorted(upward)}; rnnkit.data is a leaf"


def test_only_the_command_line_imports_the_apps():
    importers = {
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if not module_name(p).startswith("rnnkit.apps")
        and any(m.startswith("rnnkit.apps") for m in imported_modules(p))
    }
    assert importers <= {"rnnkit.cli"}, importers
