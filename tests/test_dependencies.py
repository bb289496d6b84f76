"""Every declared dependency is used: imported by the code (or the tests, for dev ones), or named
below with the reason it is needed though nothing imports it."""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Runtime dependencies no module imports, and why they are declared anyway.
NOT_IMPORTED = {
    "python-multipart": "starlette parses the web forms with it (request.form())",
    "tzdata": "zoneinfo's time zones where the system has no tz database",
    "sniffio": "httpcore looks it up on every request; installed, it is found at once",
    "brotli": "aiohttp decodes Content-Encoding: br with it (feeds and pages served brotli)",
    "psycopg": "SQLAlchemy's postgresql+psycopg dialect imports it (PostgreSQL stores)",
}
#: Dev dependencies that are tools, plugins or stubs rather than imports.
DEV_TOOLS = {
    "mypy": "type checker",
    "ruff": "linter and formatter",
    "pytest-timeout": "pytest plugin ([tool.pytest.ini_options] timeout)",
    "types-psutil": "stubs for mypy",
    "codespell": "spelling check (pre-commit)",
    "validate-pyproject": "pyproject.toml check (pre-commit)",
    "pre-commit": "runs the hooks (make lint)",
    "time-machine": "pytest plugin fixture (time_machine)",
    "httpx2": "starlette.testclient's client (with httpx it warns that httpx is deprecated)",
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normalized(re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0])


@cache
def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def imported_distributions(*folders: str) -> set[str]:
    """The distributions whose top-level modules the Python files under ``folders`` import."""
    modules: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    by_module = packages_distributions()
    return {normalized(d) for m in modules for d in by_module.get(m, [])}


def test_every_runtime_dependency_is_imported_or_has_a_reason() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    declared = {requirement_name(s) for s in project["dependencies"]}
    unused = declared - imported_distributions("src")
    assert sorted(unused) == sorted(NOT_IMPORTED)


def test_every_dev_dependency_is_imported_or_is_a_tool() -> None:
    groups = pyproject()["dependency-groups"]
    assert isinstance(groups, dict)
    declared = {requirement_name(s) for s in groups["dev"]}
    unused = declared - imported_distributions("src", "tests", "benchmarks")
    assert sorted(unused - set(DEV_TOOLS)) == []
