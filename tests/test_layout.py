"""The layout's rules, checked on the source: the core, the store and the Slack adapter
know providers only through their interface, and the core knows nothing of Slack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).parent.parent / "bot"


def imports(package: str) -> dict[str, set[str]]:
    """Every module of `bot/<package>` and the `bot…` modules it imports."""
    found = {}
    for path in sorted((BOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(BOT.parent))] = {n for n in names if n.startswith("bot")}
    return found


def provider_modules(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("bot.providers") and n not in ("bot.providers.base",)}


@pytest.mark.parametrize("package", ["core", "store", "slack", "web", "input"])
def test_only_the_provider_interface_is_known_outside_the_providers(package: str) -> None:
    leaks = {module: provider_modules(names) for module, names in imports(package).items()}
    assert {m: n for m, n in leaks.items() if n} == {}


@pytest.mark.parametrize("package", ["core", "store", "input", "providers"])
def test_slack_and_the_web_stay_in_their_adapters(package: str) -> None:
    leaks = {
        module: {n for n in names if n.startswith(("bot.slack", "bot.web", "slack_bolt"))}
        for module, names in imports(package).items()
    }
    assert {m: n for m, n in leaks.items() if n} == {}


def test_the_store_knows_no_service() -> None:
    for module, names in imports("store").items():
        assert {n for n in names if n.startswith("bot.core")} <= {
            "bot.core.models",
            "bot.core.jobs",
            "bot.core.ratelimit",
        }, module
