"""API credentials that never show themselves in logs, reprs or exception messages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.api_key and self.secret)

    def __repr__(self) -> str:
        return f"Credentials(api_key={redact(self.api_key)}, secret={'***' if self.secret else None})"

    __str__ = __repr__


def redact(value: str | None) -> str | None:
    """Show only enough of a key to tell two apart: ``'abcd…'``."""
    if not value:
        return None
    return f"{value[:4]}…" if len(value) > 8 else "***"
