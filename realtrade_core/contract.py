"""Required/optional members of the base classes, checked when a plugin registers.

A base class marks a method or attribute as required by listing its name in ``_required``; a
subclass that leaves it unset (None) or inherits the base's placeholder is reported by
``missing_members()``, so a broken plugin fails at registration with the member's name instead
of deep inside a live session.
"""

from __future__ import annotations

from typing import ClassVar


class Contract:
    """Mixin giving a base class its ``missing_members()`` check."""

    _required: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def missing_members(cls) -> list[str]:
        missing = []
        for name in cls._required:
            value = getattr(cls, name, None)
            if value is None or getattr(value, "__realtrade_placeholder__", False):
                missing.append(name)
        return missing


def placeholder(func):
    """Mark a base-class method as a required placeholder a plugin must override."""
    func.__realtrade_placeholder__ = True
    return func
