"""Every third-party module the code imports is declared by the distribution that ships the code.

The imports are read from the syntax tree (lazy imports inside functions included), mapped to the
distribution that installs them, and looked up in the pyproject.toml of the core or the plugin:
its dependencies, or an optional extra for what is imported only when present (matplotlib for the
report's picture). A plugin may also use what the core brings, since it depends on the core.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
OWN = {"realtrade_core", "realtrade_binance", "realtrade_bybit", "realtrade_okx"}


def top_level_imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - OWN - set(sys.stdlib_module_names) - {"__future__"}


def declared(pyproject: Path, extras: bool) -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    if extras:
        requirements += [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return {normal(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions_of(module: str) -> set[str]:
    return {normal(d) for d in importlib.metadata.packages_distributions().get(module, [])}


CORE = declared(ROOT / "pyproject.toml", extras=False)
TOOLS = {"pytest", "pytest-xdist", "setuptools", "wheel", "hypothesis", "ruff"}
CORE_EXTRAS = declared(ROOT / "pyproject.toml", extras=True) - CORE - TOOLS


@pytest.mark.parametrize(
    ("package", "pyproject"),
    [
        (ROOT / "realtrade_core", ROOT / "pyproject.toml"),
        *[(p / p.name, p / "pyproject.toml") for p in sorted((ROOT / "plugins").glob("realtrade_*"))],
    ],
    ids=lambda value: value.name if isinstance(value, Path) and value.suffix != ".toml" else None,
)
def test_every_runtime_import_is_declared(package, pyproject):
    allowed = declared(pyproject, extras=True) | CORE  # a plugin gets what the core depends on
    if package.name != "realtrade_core":
        allowed -= {"realtrade-core"}
    missing = {}
    for module in sorted(top_level_imports(package)):
        if module in ("pytest", "hypothesis"):  # the conformance suite's pytest plugin: tests only
            continue
        # not installed here: a backport behind a version marker (tomli); its name is its distribution's
        dists = distributions_of(module) or {normal(module)}
        if not dists & allowed:
            missing[module] = sorted(dists)
    assert not missing, f"{pyproject.relative_to(ROOT)} does not declare what {package.name} imports: {missing}"


def test_optional_imports_are_extras_and_aiohttp_is_a_dependency():
    assert "aiohttp" in CORE  # the emulator's server: used directly, not only through ccxt
    assert CORE_EXTRAS == {"matplotlib"}  # the report's picture, imported only when installed
