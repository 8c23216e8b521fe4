"""The import structure: no circle, lower layers never import higher ones, every module imports alone.

The graph is read from the source with ``ast``: module-level imports and imports inside
functions (a lazy import still ties the two modules together), each relative import resolved.
``if TYPE_CHECKING:`` imports never run, so they do not count for circles; they still must not
reach a higher layer. See docs/architecture.md for what each layer is for.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "realtrade_core": ROOT / "realtrade_core",
    "realtrade_binance": ROOT / "plugins" / "realtrade_binance" / "realtrade_binance",
    "realtrade_bybit": ROOT / "plugins" / "realtrade_bybit" / "realtrade_bybit",
    "realtrade_okx": ROOT / "plugins" / "realtrade_okx" / "realtrade_okx",
}
PLUGINS = ("realtrade_binance", "realtrade_bybit", "realtrade_okx")

# The core's layers, lowest first. A module may import its own layer or a lower one. A name
# stands for the module and, when it is a package, everything in it.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "records, rules and small services (standard library, no backtrader, ccxt or sockets)",
        {
            "errors", "spec", "execution", "contract", "timeframes", "credentials", "retry", "validation", "events",
            "rules", "perpetual", "interlock", "hookspecs", "host", "journal", "runguard", "arguments", "discovery",
        },
    ),
    ("connections and the emulator", {"websocket", "emulator"}),
    ("trading on backtrader: store, feed, brokers", {"backtest", "store", "feed", "broker", "live"}),
    ("plugin registry", {"generic", "plugins"}),
    # "" is the package itself: the public API
    (
        "entry points",
        {"", "cli", "cligroup", "console", "demo", "testing", "config", "report", "run", "fetch", "check", "scaffold"},
    ),
]  # fmt: skip


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> list[tuple[str, str]]:
    """``(target module, "top" | "function" | "typing")`` for every import in ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, how: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = how
            if _type_checking_block(child):
                inner = "typing"
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and how == "top":
                inner = "function"
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    origin = ".".join(base + ([child.module] if child.module else []))
                else:
                    origin = child.module or ""
                for alias in child.names:
                    sub = f"{origin}.{alias.name}"
                    found.append((sub if sub in MODULES else origin, inner))
            visit(child, inner)

    visit(tree, "top")
    return found


def _graph() -> dict[str, dict[str, set[str]]]:
    """module -> imported realtrade module -> how it is imported. Only import statements count:
    the packages Python imports first on the way to a module are no edge, but a name taken from
    a package (``from .. import load_exchange``) is one."""
    graph: dict[str, dict[str, set[str]]] = {}
    for module, path in MODULES.items():
        edges: dict[str, set[str]] = {}
        for target, how in _imports(module, path):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if not target or target == module:
                continue
            edges.setdefault(target, set()).add(how)
        graph[module] = edges
    return graph


def _circles(graph: dict[str, dict[str, set[str]]], typing: bool = False) -> list[list[str]]:
    """Strongly connected groups of more than one module, over imports that run (and with
    ``typing``, ``if TYPE_CHECKING:`` imports too)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, hows in graph[node].items():
            if hows == {"typing"} and not typing:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def _layer(module: str) -> int | None:
    name = module.removeprefix("realtrade_core").removeprefix(".")
    for number, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member and name.startswith(member + ".")):
                return number
    return None


def test_no_module_imports_another_that_imports_it_back():
    graph = _graph()
    circles = _circles(graph)
    detail = [
        f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})"
        for group in circles
        for a in group
        for b in sorted(graph[a])
        if b in group
    ]
    assert circles == [], "import circles:\n" + "\n".join(detail)


def test_no_circle_even_through_imports_made_only_for_type_hints():
    """Type-hint imports never run, but a circle through them still ties two modules together
    (the live session annotates its broker with the Protocol live/owner.py declares, not with
    the broker module that starts it)."""
    assert _circles(_graph(), typing=True) == []


def test_every_core_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = _graph()
    core = sorted(m for m in graph if m.split(".")[0] == "realtrade_core")
    unplaced = [m for m in core if _layer(m) is None]
    assert unplaced == [], f"put these modules in a layer of LAYERS in {Path(__file__).name}: {unplaced}"
    upward = []
    for module in core:
        for target, hows in graph[module].items():
            if target.split(".")[0] != "realtrade_core":
                upward.append(f"{module} imports the plugin {target}")
            elif _layer(target) > _layer(module):  # type: ignore[operator]
                upward.append(
                    f"{module} ({LAYERS[_layer(module)][0]}) imports {target} "  # type: ignore[index]
                    f"({LAYERS[_layer(target)][0]}) [{', '.join(sorted(hows))}]"  # type: ignore[index]
                )
    assert upward == [], "imports that go up a layer:\n" + "\n".join(upward)


def test_plugins_import_the_core_and_themselves_only():
    graph = _graph()
    crossing = [
        f"{module} -> {target}"
        for module, edges in graph.items()
        if module.split(".")[0] in PLUGINS
        for target in edges
        if target.split(".")[0] not in ("realtrade_core", module.split(".")[0])
    ]
    assert crossing == [], "a plugin imports another plugin:\n" + "\n".join(crossing)


def test_the_graph_sees_lazy_and_relative_imports():
    """The checks above are only as good as the graph: it must see what a module imports."""
    graph = _graph()
    assert "realtrade_core.live" in graph["realtrade_core.broker"]  # inside a method
    assert graph["realtrade_core.broker"]["realtrade_core.live"] == {"function"}
    assert "realtrade_core.errors" in graph["realtrade_core.store"]  # "from .errors import ..."
    assert "realtrade_core.store" in graph["realtrade_binance.store"]
    assert _circles({"a": {"b": {"top"}}, "b": {"a": {"function"}}}) == [["a", "b"]]
    assert _circles({"a": {"b": {"top"}}, "b": {"a": {"typing"}}}) == []


def test_every_module_imports_on_its_own():
    """Each module imported first, in an interpreter where no realtrade module is loaded yet: an
    import circle that works only in one order fails here. One interpreter, with every realtrade
    module forgotten before each import (third-party libraries stay loaded: they cannot hide a
    circle of ours, and loading them 80 times would take minutes)."""
    script = """
import importlib, json, sys, traceback
names = json.loads(sys.argv[1])
ours = ("realtrade_core", "realtrade_binance", "realtrade_bybit", "realtrade_okx")
failed = {}
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ours]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""
    names = sorted(MODULES)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(names)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())
    assert len(names) > 60  # the whole core and both plugins were tried
