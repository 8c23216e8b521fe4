"""Which exchange plugins are installed, and the status each is listed with.

Listing answers from package metadata: the entry points of the ``realtrade.exchanges`` group
with the distribution that provides each. Scanning every installed distribution for them
(``importlib.metadata``) is most of what ``realtrade exchanges`` would cost, so :func:`installed`
keeps the scan's answer in a cache file and scans again only when what it read may have changed.

The cache file, ``$XDG_CACHE_HOME/realtrade/`` (``~/.cache/realtrade/``, or
``$REALTRADE_CACHE_DIR``), holds package names, versions and entry points, nothing else. It is
keyed on the interpreter (executable, prefix, version) and on every ``sys.path`` entry: its
modification time and, for a directory, the names of the ``*.dist-info`` / ``*.egg-info``
folders in it with the time and size of each one's ``entry_points.txt``. Installing, removing or
upgrading a distribution (editable or not) creates or removes such a folder, so it changes the
key even where the file system's clock is coarse. A cache file that cannot be read, is not what
this module writes, or cannot be written is a miss: the scan answers, never an error. What is
read from the cache is only listed; loading a plugin always goes through the real entry point.

Only ``os`` and ``sys`` are imported with this module (``json`` when the cache is read,
``importlib.metadata`` on a miss): it is what a cold ``realtrade exchanges`` imports.

The status rules (duplicate name, switched off by the environment, failed or loaded in this
process) live here too, for the cached listing and :class:`~realtrade_core.plugins.PluginHost`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

EXCHANGE_GROUP = "realtrade.exchanges"
ENV_LOAD = "REALTRADE_LOAD_EXCHANGES"
ENV_DISABLE = "REALTRADE_DISABLE_EXCHANGES"
ENV_CACHE_DIR = "REALTRADE_CACHE_DIR"

# Statuses reported by `realtrade exchanges`.
STATUS_INSTALLED = "installed"  # found in package metadata, not imported yet
STATUS_LOADED = "loaded"  # imported and validated in this process
STATUS_DISABLED = "disabled"  # switched off by REALTRADE_LOAD_EXCHANGES / REALTRADE_DISABLE_EXCHANGES
STATUS_ERROR = "error"  # failed to import, invalid registration, or duplicate name

_CACHE_FORMAT = 1
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


class Found(NamedTuple):
    """An entry point of a plugin group and the distribution that provides it."""

    name: str  # the entry point's name, lower-cased
    distribution: str
    version: str
    module: str  # the entry point's value: "module" or "module:attribute"

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


class Listed(NamedTuple):
    """One row of the exchanges listing (:class:`~realtrade_core.spec.ExchangeInfo`'s fields)."""

    name: str
    distribution: str
    version: str
    module: str
    status: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return info_dict(self)


class _Installed(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def distribution(self) -> str: ...

    @property
    def version(self) -> str: ...


class Provider(_Installed, Protocol):
    """What the status rules read of an installed exchange (a :class:`Found` or the host's own)."""

    @property
    def module(self) -> str: ...


P = TypeVar("P", bound=Provider)


class Row(_Installed, Protocol):
    """A listing row, as ``--json`` prints it."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...


def info_dict(row: Row) -> dict[str, Any]:
    """A listing row as ``realtrade exchanges --json`` prints it (``error`` only when there is one)."""
    out: dict[str, Any] = {
        "name": row.name,
        "distribution": row.distribution,
        "version": row.version,
        "status": row.status,
    }
    if row.error:
        out["error"] = row.error
    return out


# --- the status rules ---------------------------------------------------------------------------


def names_from_env(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def disabled_reason(name: str, environ: Mapping[str, str]) -> str | None:
    """Why ``REALTRADE_LOAD_EXCHANGES`` / ``REALTRADE_DISABLE_EXCHANGES`` switch ``name`` off, or None."""
    only = names_from_env(environ.get(ENV_LOAD))
    blocked = names_from_env(environ.get(ENV_DISABLE)) or set()
    if name in blocked:
        return f"disabled by {ENV_DISABLE}"
    if only is not None and name not in only:
        return f"not in {ENV_LOAD}"
    return None


def duplicate_message(name: str, providers: Sequence[Provider]) -> str:
    labels = " and ".join(f"{p.distribution} {p.version}" for p in providers)
    return f"exchange name {name!r} is registered by more than one distribution: {labels}; uninstall one of them"


def by_name(found: Iterable[P]) -> dict[str, list[P]]:
    """Installed entries grouped by exchange name, in the order found."""
    grouped: dict[str, list[P]] = {}
    for item in found:
        grouped.setdefault(item.name, []).append(item)
    return grouped


def exchange_rows(
    candidates: Mapping[str, Sequence[Provider]],
    environ: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    loaded: Collection[str] = (),
) -> list[Listed]:
    """Every installed exchange with its status, sorted by name: an error when two distributions
    register the name, else disabled when the environment says so, else an error when it failed
    to load in this process (``errors``: name -> message), else loaded or installed."""
    errors = errors or {}
    rows: list[Listed] = []
    for name, providers in sorted(candidates.items()):
        for p in providers:
            status, error = STATUS_INSTALLED, None
            if len(providers) > 1:
                status, error = STATUS_ERROR, duplicate_message(name, providers)
            elif (reason := disabled_reason(name, environ)) is not None:
                status, error = STATUS_DISABLED, reason
            elif name in errors:
                status, error = STATUS_ERROR, errors[name]
            elif name in loaded:
                status = STATUS_LOADED
            rows.append(Listed(name, p.distribution, p.version, p.module, status, error))
    return rows


def list_exchanges(environ: Mapping[str, str] | None = None) -> list[Listed]:
    """The exchanges listing of a process that has loaded none, from the cached scan."""
    environ = os.environ if environ is None else environ
    return exchange_rows(by_name(installed(EXCHANGE_GROUP, environ)), environ)


# --- the scan ---------------------------------------------------------------------------------


def from_entry_points(eps: Iterable[EntryPoint]) -> list[tuple[Found, EntryPoint]]:
    """Each entry point with its distribution, once: the same distribution seen twice on
    ``sys.path`` is one (a name two distributions register stays twice: that is an error)."""
    out: list[tuple[Found, EntryPoint]] = []
    seen: set[tuple[str, str, str]] = set()
    for ep in eps:
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        key = (ep.name, dist_name, ep.value)
        if key in seen:
            continue
        seen.add(key)
        out.append((Found(ep.name.lower(), dist_name, version, ep.value), ep))
    return out


def scan(group: str) -> list[Found]:
    """The entry points of ``group`` in every installed distribution (no cache)."""
    from importlib.metadata import entry_points

    return [found for found, _ in from_entry_points(entry_points(group=group))]


def installed(group: str = EXCHANGE_GROUP, environ: Mapping[str, str] | None = None) -> list[Found]:
    """:func:`scan`'s answer, from the cache file when nothing it depends on has changed."""
    environ = os.environ if environ is None else environ
    key = cache_key(group)
    path = cache_file(key, environ)
    if path is None:
        return scan(group)
    cached = _read(path, key)
    if cached is not None:
        return cached
    found = scan(group)  # after the key: a change made during the scan misses next time
    _write(path, key, found)
    return found


# --- the cache ----------------------------------------------------------------------------------


def cache_dir(environ: Mapping[str, str]) -> str | None:
    """``$REALTRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME/realtrade``, else ``~/.cache/realtrade``;
    None when there is no home to put it in."""
    override = environ.get(ENV_CACHE_DIR)
    if override:
        return override
    base = environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        home = environ.get("HOME") or os.path.expanduser("~")
        if home == "~":
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "realtrade")


def cache_key(group: str) -> list[Any] | None:
    """What the scan of ``group`` depends on, as JSON-ready lists; None when the scan must not be
    cached (a finder other than the path finder can provide distributions)."""
    import importlib.machinery

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return None
    return [
        _CACHE_FORMAT,
        group,
        sys.executable,
        sys.prefix,
        sys.version,
        [_path_state(entry) for entry in sys.path if isinstance(entry, str)],
    ]


def _path_state(entry: str) -> list[Any]:
    """A ``sys.path`` entry's part of the key: its absolute path, its modification time and, for a
    directory, each metadata folder's name with its ``entry_points.txt`` time and size."""
    path = os.path.abspath(entry)  # "" is the current directory
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    state: list[Any] = [path, st.st_mtime_ns, st.st_size]
    try:
        with os.scandir(path) as it:
            names = sorted(e.name for e in it if e.name.lower().endswith(_METADATA_SUFFIXES))
    except OSError:  # a zip file, or unreadable
        return state
    if path.lower().endswith(".egg"):
        names.append("EGG-INFO")
    for name in names:
        try:
            ep = os.stat(os.path.join(path, name, "entry_points.txt"))
        except OSError:
            state.append([name, None])
        else:
            state.append([name, ep.st_mtime_ns, ep.st_size])
    return state


def cache_file(key: list[Any] | None, environ: Mapping[str, str]) -> str | None:
    """The cache file for ``key``: one per interpreter and ``sys.path`` (their checksum names it)."""
    if key is None:
        return None
    folder = cache_dir(environ)
    if folder is None:
        return None
    import binascii

    where = "\0".join([key[1], key[2], key[3], *(state[0] for state in key[5])])
    return os.path.join(folder, f"entry-points-{binascii.crc32(where.encode('utf-8', 'replace')):08x}.json")


def _read(path: str, key: list[Any]) -> list[Found] | None:
    import json

    try:
        with open(path, "rb") as file:
            data = json.loads(file.read())
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        entries = data["entries"]
        if not all(len(entry) == len(Found._fields) and all(isinstance(v, str) for v in entry) for entry in entries):
            return None
        return [Found(*entry) for entry in entries]
    except Exception:  # unreadable, not JSON, not ours: scan again
        return None


def _write(path: str, key: list[Any], found: list[Found]) -> None:
    """Replace the cache file in one step (a reader sees the old file or the new one); any
    failure leaves the cache as it was."""
    import json

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        text = json.dumps({"key": key, "entries": [list(f) for f in found]}, separators=(",", ":"))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except Exception:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
