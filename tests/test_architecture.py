"""Dependencies point one way (docs/architecture.md): stages know only the leaves, `pipeline` alone
combines them with `store`, and `schedule`, `cli` and `web` sit on top. The architecture page and
the README's command table name what exists."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "digest"

LEAVES = {"models", "errors"}
#: Small shared helpers any stage may use: they import nothing but the leaves.
HELPERS = {"urls", "sanitize", "tokens", "netguard", "httpclient"}
#: ``reader`` is the reading side (fetch, parse, opml), one package as Miniflux's internal/reader.
STAGES = {"reader", "topics", "dedup", "summarize", "render", "send", "report", "bounces"}
#: What each part of the package may import from the others (besides itself).
ALLOWED: dict[str, set[str]] = {
    **dict.fromkeys(LEAVES, LEAVES),
    **dict.fromkeys(HELPERS, LEAVES | HELPERS),
    **dict.fromkeys(STAGES, LEAVES | HELPERS),
    "config": LEAVES | {"urls"},
    "store": LEAVES | {"tokens"},
    #: Logs, metrics, memory, signals, healthd: apart from the stages; metrics read the store.
    "infra": LEAVES | {"store"},
    "pipeline": LEAVES | HELPERS | STAGES | {"config", "store"},
}
#: On top: they may use anything below them; nothing in ALLOWED may import them.
TOP = {"schedule", "cli", "web", "__main__"}


# --------------------------------------------------------------------------- the import checker


@dataclass(frozen=True)
class Edge:
    """``module`` (dotted) imports the part ``target`` of the package on ``line``."""

    module: str
    target: str
    line: int


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` reads from (``from ..store import db`` included)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every dotted name a module imports, wherever the statement is (functions, TYPE_CHECKING)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            yield base, node.lineno
            # `from digest import store` imports the module digest.store.
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def part_of(module: str) -> str:
    """The top-level part of the package a dotted module belongs to (``digest.store.db``: store)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "digest" else ""


def edges_of(source: str, module: str, *, is_package: bool = False) -> set[Edge]:
    """The parts of the package (other than its own) that ``module``'s source imports."""
    own = part_of(module)
    known = set(parts())
    found = set()
    for name, line in _imported_names(ast.parse(source), module, is_package):
        target = part_of(name)
        if target in known and target != own:
            found.add(Edge(module, target, line))
    return found


def wrong_way(edges: set[Edge]) -> list[str]:
    """One line per edge that goes the wrong way (a part importing what it may not)."""
    problems = []
    for edge in sorted(edges, key=lambda e: (e.module, e.line, e.target)):
        part = part_of(edge.module)
        if part in TOP:
            if edge.target == "__main__":
                problems.append(f"{edge.module}:{edge.line} imports {edge.target}")
        elif part not in ALLOWED:
            problems.append(f"{edge.module}: new part of the package: say in ALLOWED what it uses")
        elif edge.target not in ALLOWED[part]:
            problems.append(f"{edge.module}:{edge.line} imports digest.{edge.target}")
    return problems


def module_of(path: Path) -> tuple[str, bool]:
    """``src/digest/store/db.py`` -> ("digest.store.db", False); a package's __init__ -> True."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    if rel.name == "__init__":
        return ".".join(rel.parts[:-1]), True
    return ".".join(rel.parts), False


@cache
def parts() -> list[str]:
    return sorted(
        p.name.removesuffix(".py")
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    )


@cache
def edges_by_part() -> dict[str, set[Edge]]:
    found: dict[str, set[Edge]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.py")):
        module, is_package = module_of(path)
        source = path.read_text(encoding="utf-8")
        found[part_of(module)] |= edges_of(source, module, is_package=is_package)
    return found


@pytest.mark.parametrize("part", parts())
def test_each_part_of_the_package_imports_only_what_lies_below_it(part: str) -> None:
    assert part in ALLOWED or part in TOP, f"{part}: new module: say in ALLOWED what it may import"
    assert wrong_way(edges_by_part().get(part, set())) == []


WRONG_WAY_SPELLINGS = [
    "from digest import store",
    "from .store import db",
    "import digest.store.db as x",
    "from digest.store import Store",
    "import digest.store",
    "from . import store",
    "def later():\n    from digest.store.items import insert_items\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from digest.store import Store\n",
    "import importlib\nstore = importlib.import_module('digest.store')\n",
]


@pytest.mark.parametrize("source", WRONG_WAY_SPELLINGS)
def test_every_spelling_of_a_stage_importing_store_is_caught(source: str) -> None:
    problems = wrong_way(edges_of(source, "digest.report"))
    assert problems, source
    assert all("digest.store" in p and p.startswith("digest.report:") for p in problems)


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("digest.summarize.llm", False, "from ..store import db"),
        ("digest.summarize.llm", False, "from .. import config"),
        ("digest.summarize", True, "from .. import pipeline"),
        ("digest.topics.matcher", False, "from ..store.db import engine"),
    ],
)
def test_relative_imports_from_a_subpackage_resolve_to_the_part_they_name(
    module: str, is_package: bool, source: str
) -> None:
    [edge] = edges_of(source, module, is_package=is_package)
    assert edge.target in {"store", "config", "pipeline"}
    assert wrong_way({edge})


@pytest.mark.parametrize(
    "source",
    [
        "from digest.models import FetchRequest",
        "from . import errors",
        "from .urls import canonical_url",
        "import digest.models as m",
        "from digest import models, errors",
        "from .report import something_of_its_own",
        "import httpx",
    ],
)
def test_what_a_stage_may_import_is_not_reported(source: str) -> None:
    assert wrong_way(edges_of(source, "digest.report")) == []


def test_a_wrong_way_edge_names_the_module_and_the_line() -> None:
    source = '"""A stage."""\n\nimport httpx\n\n\ndef f():\n    from digest import cli\n'
    assert wrong_way(edges_of(source, "digest.report")) == ["digest.report:7 imports digest.cli"]


# ------------------------------------------------------------------------ the docs tell the truth

ARCHITECTURE = REPO / "docs" / "architecture.md"


def module_table() -> list[str]:
    """The first column of docs/architecture.md's module table (``| `fetch` | ... |``)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text.split("| module |", 1)[1]
    names = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names.extend(re.findall(r"`([\w./]+)`", line.split("|")[1]))
    return names


def exists_in_package(name: str) -> bool:
    path = SRC / name.removesuffix("/").replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_architecture_table_names_only_modules_that_exist() -> None:
    names = module_table()
    assert len(names) > 10
    assert [n for n in names if not exists_in_package(n)] == []


def test_every_part_of_the_package_is_in_the_architecture_table() -> None:
    named = {n.split(".")[0].removesuffix("/") for n in module_table()}
    assert sorted(set(parts()) - named - {"__main__"}) == []


def test_every_file_the_architecture_page_names_exists() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"[\w/]+\.py\b", text)) | set(re.findall(r"`([\w/]+/)`", text))
    missing = [n for n in sorted(named) if not any((root / n).exists() for root in (SRC, REPO))]
    assert missing == []


def cli_commands() -> list[list[str]]:
    """Every leaf command of the ``digest`` Click group, as its words (``[subscribers, list]``)."""
    from digest.cli import app

    def walk(group: click.Group, path: list[str]) -> Iterator[list[str]]:
        for name, command in sorted(group.commands.items()):
            if command.hidden:
                continue
            if isinstance(command, click.Group):
                yield from walk(command, [*path, name])
            else:
                yield [*path, name]

    return list(walk(app, []))


def readme_command_cells() -> list[str]:
    """The first cells of README.md's command table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| command |", 1)[1]
    cells = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells.append(line.split(" | ")[0])
    return cells


@pytest.mark.parametrize("words", cli_commands(), ids=" ".join)
def test_every_cli_command_is_in_the_readme_table(words: list[str]) -> None:
    # `digest feeds import FILE.opml` / `export`: a subcommand may follow its group's first one.
    group, *sub = words
    cells = [c for c in readme_command_cells() if re.search(rf"`digest {group}\b", c)]
    assert cells, f"digest {group} is not in README.md's command table"
    if sub:
        assert any(
            re.search(rf"[`/ ]{sub[0]}\b", c.split(f"digest {group}", 1)[1]) for c in cells
        ), f"digest {' '.join(words)} is not in README.md's command table"
