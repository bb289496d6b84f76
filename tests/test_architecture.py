"""Dependencies point one way (DEVELOPERS.md): stages know only the leaves, `pipeline` alone
combines them with `store`, and `schedule`, `cli` and `web` sit on top."""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "digest"

LEAVES = {"models", "errors"}
#: Small shared helpers any stage may use: they import nothing but the leaves.
HELPERS = {"urls", "sanitize", "tokens", "netguard"}
STAGES = {"fetch", "parse", "topics", "dedup", "summarize", "render", "send", "opml", "report"}
#: What each part of the package may import from the others (besides itself).
ALLOWED: dict[str, set[str]] = {
    **dict.fromkeys(LEAVES, LEAVES),
    **dict.fromkeys(HELPERS, LEAVES | HELPERS),
    **dict.fromkeys(STAGES, LEAVES | HELPERS),
    "config": LEAVES | {"urls"},
    "store": LEAVES | {"tokens"},
    "metrics": LEAVES | {"store"},
    "healthd": LEAVES | {"metrics"},
    "logs": LEAVES,
    "memory": LEAVES,
    "signals": LEAVES,
    "pipeline": LEAVES | HELPERS | STAGES | {"config", "store"},
}
#: On top: they may use anything below them; nothing in ALLOWED may import them.
TOP = {"schedule", "cli", "web", "__main__"}


@cache
def imports_by_part() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        part = path.relative_to(SRC).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("digest."):
                    other = name.split(".")[1]
                    if other != part:
                        found[part].add(other)
    return found


def parts() -> list[str]:
    return sorted(
        p.name.removesuffix(".py")
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    )


@pytest.mark.parametrize("part", parts())
def test_each_part_of_the_package_imports_only_what_lies_below_it(part: str) -> None:
    used = imports_by_part().get(part, set())
    if part in TOP:
        assert not used & {"__main__"}
        return
    assert part in ALLOWED, f"{part}: new module: say in ALLOWED what it may import"
    assert used <= ALLOWED[part], f"{part} imports {sorted(used - ALLOWED[part])}"
