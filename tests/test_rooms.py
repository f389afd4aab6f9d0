"""The house plan in README ("What is inside") is true of the source: every room of the package is in its table,
and a room imports only rooms above it (read from the source with ``ast``, function-level imports included)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bdh_graph"


def table_ranks() -> dict[str, int]:
    """Each room named in README's table of rooms, by its row (rooms named in one row share it)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What is inside", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `bdh_graph.")]
    return {room: rank for rank, cell in enumerate(rows) for room in re.findall(r"`bdh_graph\.(\w+)`", cell)}


def rooms() -> list[str]:
    """The package's rooms: its subpackages and its top-level modules (not ``__init__``)."""
    return sorted([p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
                  + [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"])


def imported_rooms(path: Path) -> set[str]:
    """The rooms of ``bdh_graph`` that the module at ``path`` imports (relative or absolute, at any depth)."""
    package = list(path.relative_to(PACKAGE).parts[:-1])  # the module's package, below bdh_graph
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module.split(".") + [alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ["bdh_graph"] + package[:len(package) - (node.level - 1)]
            names = [base + (node.module.split(".") if node.module else []) + [alias.name] for alias in node.names]
        else:
            continue
        found |= {name[1] for name in names if name[0] == "bdh_graph" and len(name) > 1}
    return found


def test_every_room_is_in_the_table():
    assert sorted(table_ranks()) == rooms()


@pytest.mark.parametrize("room", rooms())
def test_a_room_imports_only_rooms_above_it(room):
    rank = table_ranks()
    assert room in rank, f"room {room} is not in README's table of rooms"
    files = sorted((PACKAGE / room).rglob("*.py")) if (PACKAGE / room).is_dir() else [PACKAGE / f"{room}.py"]
    upward = {f"{path.relative_to(PACKAGE)} imports {other}" for path in files
              for other in imported_rooms(path) - {room} if rank.get(other, len(rank)) >= rank[room]}
    assert not upward, f"room {room} (row {rank[room]}) imports rooms at or below it: {sorted(upward)}"


def test_the_import_reader_sees_relative_and_absolute_imports():
    assert imported_rooms(PACKAGE / "plots" / "network.py") >= {"interop", "network"}
    assert imported_rooms(PACKAGE / "cli" / "__init__.py") >= {"cli"}
    assert "errors" in imported_rooms(PACKAGE / "distributed.py")


def test_test_modules_share_code_through_helpers_only():
    """A test module never imports another (its test functions are not helpers): shared code is in helpers.py,
    fixtures in conftest.py."""
    tests = sorted(Path(__file__).parent.glob("test_*.py"))
    importing = {path.name: sorted(name for name in module_imports(path) if name.startswith("test_")) for path in tests}
    assert {name: found for name, found in importing.items() if found} == {}


def module_imports(path: Path) -> set[str]:
    """The top-level names of the modules that the module at ``path`` imports (absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found
