"""``realtrade new-exchange``: write a third-party exchange plugin as its own distribution.

The templates (``template/``, shipped as package data) give the uniform plugin layout:
``pyproject.toml`` with the ``realtrade.exchanges`` entry point; the package with ``plugin.py``,
``common.py``, ``store.py``, ``execution.py`` and ``websocket.py``, each saying what to fill in;
and tests that prove discovery and run the conformance suite. With the unwritten parts declared
off in its capabilities, the generated project installs and its tests pass as they are.
"""

from __future__ import annotations

import re
import string
from importlib.resources import files
from pathlib import Path

import click

from .. import __version__
from ..errors import ConfigurationError

__all__ = ["command", "scaffold"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def scaffold(name: str, directory: str | Path = ".") -> Path:
    """Write the plugin distribution for exchange ``name`` into ``directory/realtrade-<name>``
    and return that folder. Refuses a name that cannot be an entry point and package name, and
    a folder that exists already (nothing is overwritten)."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"exchange name {name!r} cannot name a plugin: use lower-case letters, digits and "
            f"underscores, starting with a letter (the name users type, e.g. 'kraken')"
        )
    dist = f"realtrade-{name.replace('_', '-')}"
    package = f"realtrade_{name}"
    target = Path(directory) / dist
    if target.exists():
        raise ConfigurationError(f"{target} exists already; choose another --dir or remove it first")
    words = {
        "name": name,
        "dist": dist,
        "package": package,
        "Class": "".join(part.capitalize() for part in name.split("_")),
        "Title": " ".join(part.capitalize() for part in name.split("_")),
        "core_version": ".".join(__version__.split(".")[:2]),
    }
    root = files(__name__) / "template"
    for source, relative in _templates(root):
        out = target / relative.replace("package/", f"{package}/", 1).removesuffix(".tmpl")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(string.Template(source.read_text(encoding="utf-8")).substitute(words), encoding="utf-8")
    return target


def _templates(root, prefix: str = ""):  # type: ignore[no-untyped-def]  # importlib.resources Traversables
    for item in sorted(root.iterdir(), key=lambda i: i.name):
        if item.is_dir():
            yield from _templates(item, f"{prefix}{item.name}/")
        elif item.name.endswith(".tmpl"):
            yield item, prefix + item.name


@click.command("new-exchange")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write realtrade-NAME/ into.",
)
def command(name: str, directory: str) -> None:
    """Scaffold a third-party exchange plugin distribution.

    realtrade new-exchange kraken --dir ~/src

    Writes realtrade-NAME/ (nothing is overwritten): pyproject.toml with the realtrade.exchanges
    entry point, the package in realtrade's plugin layout (each module says what to fill in),
    and tests that prove discovery and run the conformance suite. The guide is docs/plugins.md.
    """
    target = scaffold(name, directory)
    click.echo(f"wrote {target}")
    click.echo(f"next: pip install -e {target}[test] && python -m pytest {target}")
    click.echo("then fill in what each module says, and read docs/plugins.md of realtrade")
