"""The CLI's command table and version stay in step with what is registered."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from evidence_intake import __version__
from evidence_intake.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


def _registered(modules: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for module in modules:
        parser = cli_main.build_parser((module,))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name in action.choices:
                    assert name not in found, f"{name} registered by {found.get(name)} and {module}"
                    found[name] = module
    return found


def test_command_table_matches_the_modules() -> None:
    assert _registered(cli_main._COMMAND_MODULES) == cli_main.COMMAND_MODULE


def test_version_matches_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert __version__ == config["project"]["version"]


def test_an_unknown_command_still_lists_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli_main.main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    for name in ("seal", "audit", "bundle", "serve"):
        assert name in err
