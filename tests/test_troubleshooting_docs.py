"""docs/troubleshooting.md and the error messages in the code cannot drift apart.

Every ``raise`` of a realtrade error (a ``RealtradeError`` subclass, the command line's usage
errors, a strategy file that fails to import, and the ValueErrors of the public rules and candle
file readers) is found in the source by its syntax tree, and its message must contain the key
phrase of an entry of the page; every entry's key phrase must still be a piece of a message in
the source. An entry's key phrase is the longest literal run of its message pattern: the pattern
is written in backticks in the first column of a table, with ``…`` where the message has a value.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import realtrade_core

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "troubleshooting.md"
HOLE = "{…}"

# Outside the RealtradeError family: these reach users of the command line and the public API.
ALSO_USER_FACING = {"UsageError", "BadParameter", "StrategyFileError"}
# Plain ValueErrors that are the message a user reads: market rules given to a backtest, and a
# candle file the emulator cannot replay (its ValueError becomes a ConfigurationError).
VALUE_ERROR_MODULES = {
    "realtrade_core/rules.py",
    "realtrade_core/backtest.py",
    "realtrade_core/perpetual.py",
    "realtrade_core/emulator/replay.py",
}
REPLAY_ROW_ERROR = "_RowError"

# Sites whose message is computed elsewhere (a helper, a chained error, a word chosen at run
# time): the key phrase of the entry that covers it. Keyed by (file, function, error class); it
# only applies to a raise whose own text has no literal run as long as MIN_PHRASE, so a new
# message written in such a function still needs its own entry.
COMPUTED = {
    ("realtrade_core/arguments.py", "check_symbol", "ConfigurationError"): "write spot symbols as BASE/QUOTE",
    ("realtrade_core/arguments.py", "check_feed_arguments", "ConfigurationError"): "write spot symbols as BASE/QUOTE",
    ("realtrade_core/plugins.py", "load_exchange", "ExchangeNotFoundError"): "is installed (installed",
    ("realtrade_core/plugins.py", "load_exchange", "DuplicateExchangeError"): "is registered by more than one",
    ("realtrade_core/emulator/server.py", "_build_markets", "ConfigurationError"): "the header lacks",
    ("realtrade_core/emulator/replay.py", "load_candles_csv", "ValueError"): "is neither epoch milliseconds",
    ("realtrade_core/arguments.py", "number_setting", "ConfigurationError"): "must be a number",
    ("realtrade_core/store.py", "market", "ConfigurationError"): "write the contract in ccxt's form",
    ("realtrade_core/store.py", "getdata", "ConfigurationError"): "write the contract in ccxt's form",
    ("realtrade_core/config.py", "_number", "ConfigurationError"): "must be a number",
}
# Messages that are the exchange's or ccxt's own words with the exchange's name before them:
# their entries describe the message in <angle brackets> instead of quoting realtrade's text.
PASSED_ON = {
    ("realtrade_core/store.py", "_raise_as_realtrade", "ExchangeError"):
        "<exchange> <venue>: <ccxt error>: <the exchange's message>",
    ("realtrade_core/store.py", "_raise_as_realtrade", "ConfigurationError"):
        "<exchange>: <ccxt's message about the symbol>",
}  # fmt: skip
MIN_PHRASE = 10


def source_files() -> list[Path]:
    files = sorted((ROOT / "realtrade_core").rglob("*.py"))
    for plugin in sorted((ROOT / "plugins").glob("realtrade_*")):
        files += sorted(p for p in (plugin / plugin.name).rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts and "build" not in f.relative_to(ROOT).parts]


def render(node: ast.AST | None) -> str | None:
    """The message's literal text with HOLE for each value; None when it is computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = render(node.left), render(node.right)
        return None if left is None and right is None else (left or HOLE) + (right or HOLE)
    if isinstance(node, ast.BoolOp):  # `message or f"..."`: the literal alternative
        parts = [render(v) for v in node.values]
        return HOLE.join(p for p in parts if p) or None
    return None


def error_classes(trees: dict[str, ast.Module]) -> set[str]:
    """RealtradeError and every class that derives from it anywhere in the source."""
    bases: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
                bases.setdefault(node.name, set()).update(names)
    found = {"RealtradeError"}
    while True:
        more = {name for name, parents in bases.items() if parents & found} - found
        if not more:
            return found
        found |= more


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    function: str
    error: str
    message: str | None

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.function}) {self.error}: {self.message!r}"


def raise_sites() -> list[Site]:
    trees = {str(f.relative_to(ROOT)): ast.parse(f.read_text(), str(f)) for f in source_files()}
    in_scope = error_classes(trees) | ALSO_USER_FACING
    sites: list[Site] = []
    for path, tree in trees.items():
        wanted = set(in_scope)
        if path in VALUE_ERROR_MODULES:
            wanted |= {"ValueError", REPLAY_ROW_ERROR}
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for node in ast.walk(function):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                func = node.exc.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name not in wanted:
                    continue
                call = node.exc
                keywords = {k.arg: k.value for k in call.keywords}
                if "message" in keywords:
                    arg = keywords["message"]
                elif name == "ExchangeNotFoundError":  # (name, installed, message)
                    arg = call.args[2] if len(call.args) > 2 else None
                else:
                    arg = call.args[0] if call.args else None
                sites.append(Site(path, node.lineno, function.name, name, render(arg)))
    # a raise inside a nested function is seen from its outer function too: keep the innermost
    unique: dict[tuple[str, int], Site] = {}
    for site in sites:
        unique[(site.path, site.line)] = site
    return sorted(unique.values(), key=lambda s: (s.path, s.line))


def literal_corpus() -> str:
    """Every string literal of the source (f-string pieces separately), one per line."""
    pieces: list[str] = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                pieces.append(node.value)
    return "\n".join(pieces)


@dataclass(frozen=True)
class Entry:
    pattern: str
    phrase: str
    cells: tuple[str, ...]


def entries() -> list[Entry]:
    """The rows of the page's message tables (header ``| message | meaning | what to do |``):
    the first cell holds the message pattern in backticks."""
    found: list[Entry] = []
    in_table = False
    for line in PAGE.read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        if line.replace(" ", "") == "|message|meaning|whattodo|":
            in_table = True
        if not (in_table and line.startswith("| `")):
            continue
        cells = tuple(c.strip() for c in line.strip().strip("|").split(" | "))
        for pattern in re.findall(r"`([^`]+)`", cells[0]):
            if pattern.startswith("<"):  # a passed-on message, described
                found.append(Entry(pattern, pattern, cells))
                continue
            fragments = [f.strip(" .,:;?()'\"") for f in pattern.split("…")]
            found.append(Entry(pattern, max(fragments, key=len), cells))
    return found


def test_the_page_has_entries_with_meaning_and_remedy():
    rows = entries()
    assert len(rows) > 50
    for entry in rows:
        assert len(entry.cells) == 3 and all(entry.cells), f"{entry.pattern}: give the message, meaning, what to do"
        assert len(entry.phrase) >= MIN_PHRASE, f"{entry.pattern}: its longest literal {entry.phrase!r} is too short"


def test_every_entry_is_still_a_message_of_the_code():
    corpus = literal_corpus()
    described = set(PASSED_ON.values())
    stale = [e.pattern for e in entries() if e.phrase not in corpus and e.pattern not in described]
    assert not stale, f"docs/troubleshooting.md lists messages the code no longer has: {stale}"
    unknown = [e.pattern for e in entries() if e.pattern.startswith("<") and e.pattern not in described]
    assert not unknown, f"described messages no raise passes on: {unknown}"


def test_every_error_the_code_raises_has_an_entry():
    phrases = {entry.phrase for entry in entries()}
    for phrase in [*COMPUTED.values(), *PASSED_ON.values()]:
        assert any(phrase in p for p in phrases), f"{phrase!r} has no entry"
    missing = []
    for site in raise_sites():
        if site.message is not None and any(phrase in site.message for phrase in phrases):
            continue
        own_text = re.split(re.escape(HOLE), site.message or "")
        if (site.path, site.function, site.error) in COMPUTED.keys() | PASSED_ON.keys() and all(
            len(run.strip(" .,:;?()'\"")) < MIN_PHRASE for run in own_text
        ):
            continue
        missing.append(str(site))
    assert not missing, "add an entry to docs/troubleshooting.md for:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", [n for n in realtrade_core.__all__ if n.endswith("Error")])
def test_every_exported_error_class_is_named_on_the_page(name):
    assert re.search(rf"\b{name}\b", PAGE.read_text()), f"docs/troubleshooting.md never names {name}"


def test_the_scanner_finds_the_raises_it_should():
    # guards the test itself: a scanner that found nothing would pass everything above
    sites = raise_sites()
    assert len(sites) > 100
    assert any(s.error == "ExchangeNotFoundError" and s.message and "ccxt has no exchange" in s.message for s in sites)
    assert any(s.error == "UsageError" and s.path == "realtrade_core/run.py" for s in sites)
    assert any(s.error == REPLAY_ROW_ERROR for s in sites)
