"""The architecture rules, checked on the source: imports point one way.

``crypto/``, ``audit/`` and ``schemas/`` never import ``service`` or the web
and database stacks; ``crypto/`` and ``audit/`` never import pydantic either
(the offline path runs on PyNaCl, pyca/cryptography and the standard library).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB_AND_DB = {"fastapi", "starlette", "sqlalchemy", "alembic", "httpx", "uvicorn", "structlog"}
FORBIDDEN = {
    "crypto": WEB_AND_DB | {"pydantic", "pydantic_settings", "evidence_intake.service",
                            "evidence_intake.audit", "evidence_intake.schemas"},
    "audit": WEB_AND_DB | {"pydantic", "pydantic_settings", "evidence_intake.service"},
    "schemas": WEB_AND_DB | {"evidence_intake.service"},
}


def _absolute_imports(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    parts = package.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def _python_files(folder: str) -> list[tuple[Path, str]]:
    out = []
    for path in sorted((REPO / folder).rglob("*.py")):
        rel = path.relative_to(REPO / folder).with_suffix("")
        pkg_parts = ["evidence_intake", folder, *rel.parts[:-1]]
        if rel.name == "__init__":
            out.append((path, ".".join(pkg_parts)))
        else:
            out.append((path, ".".join(pkg_parts)))
    return out


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_layers(folder: str) -> None:
    files = _python_files(folder)
    assert files, f"no Python files found under {folder}/"
    bad = []
    for path, package in files:
        for name in _absolute_imports(path, package):
            for banned in FORBIDDEN[folder]:
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """A sub-package missing from pyproject would be absent from the built wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    mapping = config["tool"]["setuptools"]["package-dir"]
    expected = set()
    for import_name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "node_modules" in rel.parts:
                continue
            expected.add(".".join([import_name, *rel.parts]))
    assert expected - listed == set(), f"add to pyproject packages: {sorted(expected - listed)}"
