"""Every error realtrade raises on purpose, in one hierarchy.

Each message says what was wrong and what to do about it. Secrets never enter a message.
"""

from __future__ import annotations


class RealtradeError(Exception):
    """Base class of all realtrade errors."""


class PluginError(RealtradeError):
    """An exchange plugin is missing, broken or invalid."""


class ExchangeNotFoundError(PluginError, LookupError):
    """No installed plugin provides the requested exchange."""

    def __init__(self, name: str, installed: list[str], message: str | None = None) -> None:
        self.name = name
        self.installed = installed
        have = ", ".join(installed) if installed else "none"
        # The finder (realtrade_core.plugins) writes the full message: which distribution to
        # install, or the name meant, only where one exists.
        super().__init__(
            message
            or f"no exchange named {name!r} is installed (installed: {have}). "
            f"Run `realtrade exchanges` to see what is available."
        )


class ExchangeDisabledError(PluginError):
    """The exchange is installed but switched off by REALTRADE_LOAD_EXCHANGES/DISABLE_EXCHANGES."""


class PluginLoadError(PluginError):
    """A plugin failed to import or its hook raised; the original error is chained."""


class PluginValidationError(PluginError):
    """A plugin registered something that breaks the plugin contract."""


class DuplicateExchangeError(PluginValidationError):
    """Two distributions register the same exchange name."""


class ConfigurationError(RealtradeError, ValueError):
    """A setting, symbol, timeframe or argument is invalid."""


class ExchangeError(RealtradeError):
    """The exchange answered with an error or could not be reached; the ccxt error is chained."""


class EmulatorError(RealtradeError):
    """The emulator could not start, or was used in a way its state does not allow."""


class WebSocketContractError(RealtradeError, TypeError):
    """A BaseWebSocket subclass lacks a required member (raised when it is instantiated)."""
