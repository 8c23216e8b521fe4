"""Plugin discovery and the one typed facade over the pluggy hooks.

Listing reads package metadata only: no plugin, ccxt or backtrader is imported to answer
``realtrade exchanges``. A plugin module is imported when its exchange is asked for by name, and
each plugin's failure is caught on its own, reported with its name, distribution and version,
and never breaks listing or other plugins. The status rules of a listing live in
:mod:`realtrade_core.discovery`, which also answers ``realtrade exchanges`` from a cached scan
in a process that has no host yet.

Environment switches:

- ``REALTRADE_LOAD_EXCHANGES=binance,bybit`` — only these exchanges may load (others: disabled).
- ``REALTRADE_DISABLE_EXCHANGES=bybit`` — these exchanges may not load.
- ``REALTRADE_TRACE_HOOKS=1`` — log every hook call and result at DEBUG on ``realtrade_core.hooks``.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .discovery import (
    ENV_DISABLE,
    ENV_LOAD,
    EXCHANGE_GROUP,
    disabled_reason,
    duplicate_message,
    exchange_rows,
    from_entry_points,
)
from .errors import (
    DuplicateExchangeError,
    ExchangeDisabledError,
    ExchangeNotFoundError,
    PluginLoadError,
    PluginValidationError,
)
from .host import get_plugin_host as _current_host
from .host import reset_plugin_host as _reset_host
from .host import set_host_factory
from .spec import (
    STATUS_ERROR,
    STATUS_INSTALLED,
    STATUS_LOADED,
    ExchangeInfo,
    ExchangeSpec,
    OrderRequest,
    StoreEvent,
    Veto,
)

if TYPE_CHECKING:
    import logging
    from importlib.metadata import EntryPoint

    import pluggy

# pluggy and importlib.metadata are imported when first needed, not with the package: listing
# exchanges needs neither pluggy nor (with a cached scan) the metadata machinery, and both are
# a large part of a cold start (see bench/bench_start.py).

PLUGIN_GROUP = "realtrade.plugins"
ENV_TRACE = "REALTRADE_TRACE_HOOKS"


def _logger(name: str = __name__) -> logging.Logger:
    """A logger, with logging imported on first use: only failures and tracing log here."""
    import logging

    return logging.getLogger(name)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An entry point in ``realtrade.exchanges`` with the distribution that provides it."""

    name: str
    distribution: str
    version: str
    module: str
    entry_point: EntryPoint | None

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


class PluginHost:
    """The plugin manager of one process: discovery, loading, validation and every hook call.

    Nothing else in realtrade touches ``pm.hook``; each hook has one typed method here.
    ``eps`` and ``environ`` exist for tests.
    """

    def __init__(
        self,
        eps: Iterable[EntryPoint] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._eps = list(eps) if eps is not None else None
        self._environ = os.environ if environ is None else environ
        self._lock = threading.RLock()
        self._manager: pluggy.PluginManager | None = None
        self._specs: dict[str, ExchangeSpec] = {}
        self._errors: dict[str, PluginLoadError | PluginValidationError] = {}
        self._extensions_loaded = False

    @property
    def _pm(self) -> pluggy.PluginManager:
        """The pluggy manager, made on first use: listing exchanges never needs it."""
        manager = self._manager
        if manager is None:
            with self._lock:
                if self._manager is None:
                    import pluggy

                    from . import hookspecs

                    made = pluggy.PluginManager(hookspecs.PROJECT_NAME)
                    made.add_hookspecs(hookspecs)
                    if self._environ.get(ENV_TRACE, "").strip() not in ("", "0"):
                        self._enable_tracing(made)
                    self._manager = made
                manager = self._manager
        return manager

    # --- discovery (metadata only) --------------------------------------------------------

    def _entry_points(self, group: str) -> list[EntryPoint]:
        if self._eps is not None:
            return [ep for ep in self._eps if ep.group == group]
        from importlib.metadata import entry_points

        return list(entry_points(group=group))

    def _candidates(self) -> dict[str, list[_Candidate]]:
        found: dict[str, list[_Candidate]] = {}
        for f, ep in from_entry_points(self._entry_points(EXCHANGE_GROUP)):
            found.setdefault(f.name, []).append(_Candidate(f.name, f.distribution, f.version, f.module, ep))
        return found

    def _disabled_reason(self, name: str) -> str | None:
        return disabled_reason(name, self._environ)

    def list_exchanges(self) -> list[ExchangeInfo]:
        """Every installed exchange plugin, sorted by name, from package metadata only."""
        with self._lock:
            errors = {name: _describe(exc) for name, exc in self._errors.items()}
            rows = exchange_rows(self._candidates(), self._environ, errors, self._specs)
        return [ExchangeInfo(*row) for row in rows]

    def installed_names(self) -> list[str]:
        return sorted(self._candidates())

    def check_all(self) -> list[ExchangeInfo]:
        """Load every enabled exchange (importing plugins) and report the result of each."""
        for info in self.list_exchanges():
            if info.status == STATUS_INSTALLED:
                try:
                    self.load_exchange(info.name)
                except (PluginLoadError, PluginValidationError):
                    pass  # recorded in self._errors and shown by list_exchanges()
        return self.list_exchanges()

    # --- loading ----------------------------------------------------------------------------

    def load_exchange(self, name: str) -> ExchangeSpec:
        """Import the plugin providing ``name``, validate its registration, return its spec."""
        key = name.strip().lower()
        from .generic import generic_spec, is_generic

        if is_generic(key):
            return generic_spec(key)
        with self._lock:
            if key in self._specs:
                return self._specs[key]
            if key in self._errors:
                raise self._errors[key]
            cands = self._candidates()
            if key not in cands:
                raise ExchangeNotFoundError(name, sorted(cands), not_found_message(name, sorted(cands)))
            if len(cands[key]) > 1:
                raise DuplicateExchangeError(duplicate_message(key, cands[key]))
            if (reason := self._disabled_reason(key)) is not None:
                raise ExchangeDisabledError(
                    f"exchange {key!r} ({cands[key][0].label}) is installed but {reason}; "
                    f"change {ENV_LOAD} / {ENV_DISABLE} to use it"
                )
            cand = cands[key][0]
            try:
                spec = self._load_candidate(cand)
            except (PluginLoadError, PluginValidationError) as exc:
                self._errors[key] = exc
                raise
            self._specs[key] = spec
            return spec

    def _load_candidate(self, cand: _Candidate) -> ExchangeSpec:
        try:
            plugin = cand.entry_point.load() if cand.entry_point is not None else importlib.import_module(cand.module)
        except Exception as exc:
            raise PluginLoadError(
                f"exchange {cand.name!r} from {cand.label} failed to import {cand.module!r}: "
                f"{type(exc).__name__}: {exc}. Reinstall or upgrade {cand.distribution}, "
                f"or disable it with {ENV_DISABLE}={cand.name}"
            ) from exc
        plugin_name = f"{EXCHANGE_GROUP}:{cand.name}"
        try:
            self._register(plugin, plugin_name, cand.label)
            caller = self._pm.subset_hook_caller(
                "realtrade_exchange",
                remove_plugins=[p for p in self._pm.get_plugins() if p is not plugin],
            )
            try:
                results = caller()
            except Exception as exc:
                raise PluginLoadError(
                    f"exchange {cand.name!r} from {cand.label}: its realtrade_exchange hook raised "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if len(results) != 1 or not isinstance(results[0], ExchangeSpec):
                raise PluginValidationError(
                    f"exchange {cand.name!r} from {cand.label}: realtrade_exchange must return exactly "
                    f"one ExchangeSpec, got {results!r}"
                )
            spec = results[0]
            validate_spec(spec, expected_name=cand.name, origin=cand.label)
            return spec
        except Exception:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise

    def _register(self, plugin: object, plugin_name: str, origin: str) -> None:
        try:
            self._pm.register(plugin, name=plugin_name)
        except ValueError as exc:  # already registered under another name, or name taken
            raise PluginValidationError(f"{origin}: cannot register plugin {plugin_name!r}: {exc}") from exc
        import pluggy

        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(plugin)
            raise PluginValidationError(
                f"{origin}: {exc}. Hook implementations must be named after a hook in "
                f"realtrade_core.hookspecs (check the spelling)"
            ) from exc

    def load_extensions(self) -> list[ExchangeInfo]:
        """Register every ``realtrade.plugins`` entry point (risk, alerts, monitoring), once.

        A broken extension is logged with its distribution and skipped; the rest still load.
        Returns one row per extension with its status.
        """
        rows: list[ExchangeInfo] = []
        with self._lock:
            if self._extensions_loaded:
                return rows
            self._extensions_loaded = True
            for ep in self._entry_points(PLUGIN_GROUP):
                dist = getattr(ep, "dist", None)
                dist_name = dist.metadata["Name"] if dist is not None else "unknown"
                version = dist.version if dist is not None else "unknown"
                origin = f"{dist_name} {version}"
                try:
                    plugin = ep.load()
                    self._register(plugin, f"{PLUGIN_GROUP}:{ep.name}", origin)
                except Exception as exc:
                    _logger().error(
                        "plugin %r from %s failed to load: %s: %s", ep.name, origin, type(exc).__name__, exc
                    )
                    rows.append(ExchangeInfo(ep.name, dist_name, version, ep.value, STATUS_ERROR, str(exc)))
                else:
                    rows.append(ExchangeInfo(ep.name, dist_name, version, ep.value, STATUS_LOADED))
        return rows

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin object (a module or instance with hook implementations)."""
        with self._lock:
            self._register(plugin, name or f"local:{id(plugin)}", name or repr(plugin))

    def unregister(self, plugin: object) -> None:
        with self._lock:
            self._pm.unregister(plugin)

    # --- typed hook calls ---------------------------------------------------------------------

    def pre_trade(self, request: OrderRequest) -> list[Veto]:
        """All vetoes raised against ``request``; empty means the order may be sent."""
        return [v for v in self._pm.hook.realtrade_pre_trade(request=request) if v is not None]

    def order_event(self, exchange: str, event: object) -> None:
        self._call_observer("realtrade_order_event", exchange=exchange, event=event)

    def store_event(self, event: StoreEvent) -> None:
        self._call_observer("realtrade_store_event", event=event)

    def _call_observer(self, hook_name: str, **kwargs: object) -> None:
        # An alerting plugin that raises must not take the order path down with it.
        try:
            getattr(self._pm.hook, hook_name)(**kwargs)
        except Exception:
            _logger().exception("a %s hook implementation raised; continuing", hook_name)

    # --- tracing ------------------------------------------------------------------------------

    @staticmethod
    def _enable_tracing(pm: pluggy.PluginManager) -> None:
        hook_log = _logger("realtrade_core.hooks")

        def before(hook_name: str, impls: list, kwargs: dict) -> None:
            hook_log.debug("call %s(%s) -> %d implementation(s)", hook_name, ", ".join(kwargs), len(impls))

        def after(outcome: pluggy.Result, hook_name: str, impls: list, kwargs: dict) -> None:
            if outcome.exception is not None:
                hook_log.debug("%s raised %r", hook_name, outcome.exception)
            else:
                hook_log.debug("%s returned %r", hook_name, outcome.get_result())

        pm.add_hookcall_monitoring(before, after)


#: Exchange plugins published as distributions of their own: the only ones an error may tell a
#: user to ``pip install``. Any other name gets "did you mean", or the generic ccxt adapter.
KNOWN_DISTRIBUTIONS = {"binance": "realtrade-binance", "bybit": "realtrade-bybit", "okx": "realtrade-okx"}


def not_found_message(name: str, installed: list[str]) -> str:
    """What to say when no installed plugin provides ``name``: the distribution to install where
    one exists, the installed or published name closest to a misspelling, or the generic ccxt
    adapter for an exchange only ccxt covers."""
    key = name.strip().lower()
    have = ", ".join(installed) if installed else "none"
    parts = [f"no exchange named {name!r} is installed (installed: {have})."]
    if key in KNOWN_DISTRIBUTIONS:
        parts.append(f"Install its plugin with `pip install {KNOWN_DISTRIBUTIONS[key]}`.")
    else:
        import difflib

        close = difflib.get_close_matches(key, sorted({*installed, *KNOWN_DISTRIBUTIONS}), n=1, cutoff=0.6)
        if close:
            match = close[0]
            install = "" if match in installed else f" (`pip install {KNOWN_DISTRIBUTIONS[match]}`)"
            parts.append(f"Did you mean {match!r}{install}?")
        elif _ccxt_knows(key):
            parts.append(
                f"No realtrade plugin covers it, but ccxt does: use 'ccxt:{key}' "
                f"(the generic adapter: REST only, no emulator)."
            )
    parts.append("Run `realtrade exchanges` to see what is installed.")
    return " ".join(parts)


def _ccxt_knows(ccxt_id: str) -> bool:
    """Whether ccxt has an exchange ``ccxt_id`` (imports ccxt: only on this error path)."""
    try:
        import ccxt
    except ImportError:  # pragma: no cover - ccxt is a dependency
        return False
    return ccxt_id in ccxt.exchanges


def _describe(exc: BaseException) -> str:
    return str(exc)


# ExchangeSpec field -> (module, base class, required)
_BASES = {
    "store": ("realtrade_core.store", "Store", True),
    "broker": ("realtrade_core.broker", "Broker", True),
    "feed": ("realtrade_core.feed", "Data", True),
    "websocket": ("realtrade_core.websocket", "BaseWebSocket", False),
    "emulator": ("realtrade_core.emulator.dialect", "EmulatorDialect", False),
}


def validate_spec(spec: ExchangeSpec, *, expected_name: str, origin: str) -> None:
    """Check an ExchangeSpec against the core base classes; raise PluginValidationError."""
    problems: list[str] = []
    if spec.name != expected_name:
        problems.append(f"it registers name {spec.name!r} but is installed as {expected_name!r}")
    for field_name, (module_name, base_name, required) in _BASES.items():
        value = getattr(spec, field_name)
        if value is None and not required:
            continue
        # Imported here, not at module top: the base classes bring backtrader and
        # websocket-client, which listing exchanges must never import.
        base = getattr(importlib.import_module(module_name), base_name)
        if not (isinstance(value, type) and issubclass(value, base)):
            problems.append(f"{field_name}={_qualname(value)} is not a subclass of {module_name}.{base_name}")
            continue
        missing = getattr(value, "missing_members", lambda: [])()
        if missing:
            problems.append(f"{field_name}={_qualname(value)} lacks required member(s): {', '.join(missing)}")
        if field_name == "websocket":
            from .websocket.contract import store_contract_problems

            for problem in store_contract_problems(value, public_stream=spec.capabilities.public_stream):
                problems.append(f"websocket={_qualname(value)}: {problem} (see realtrade_core.websocket.contract)")
    from .execution import dialect_problems

    for problem in dialect_problems(spec.execution):
        problems.append(f"execution={_qualname(spec.execution)}: {problem} (see realtrade_core.execution)")
    if problems:
        raise PluginValidationError(f"exchange {expected_name!r} from {origin} is invalid: " + "; ".join(problems))


def _qualname(value: object) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


# The process-wide host is kept in realtrade_core.host, where the layers below this one reach it.
set_host_factory(PluginHost)


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host (created on first use)."""
    return cast(PluginHost, _current_host())


def reset_plugin_host(host: PluginHost | None = None) -> PluginHost | None:
    """Replace the process-wide host (tests); returns the previous one."""
    return cast("PluginHost | None", _reset_host(host))


def list_exchanges() -> list[ExchangeInfo]:
    """Installed exchanges with distribution, version and status, from metadata only."""
    return get_plugin_host().list_exchanges()


def load_exchange(name: str) -> ExchangeSpec:
    """Import and validate the plugin for exchange ``name``; returns its :class:`ExchangeSpec`.

    Raises :class:`ExchangeNotFoundError` listing the installed exchanges when none matches.
    """
    return get_plugin_host().load_exchange(name)
