"""Small config checks for the learned-model configs: each raises
``ValueError("<Config>.<field> must ..., got <value>")``, naming the field.

(The training machinery has its own validator; the rooms below it keep their own few
lines rather than import upwards.)
"""

from __future__ import annotations

from typing import Any


def fail(config: Any, field: str, requirement: str) -> None:
    """Raise the ValueError of a bad field: ``<Config>.<field> must <requirement>, got v``."""
    value = getattr(config, field)
    raise ValueError(f"{type(config).__qualname__}.{field} must {requirement}, got {value!r}")


def positive(config: Any, *fields: str) -> None:
    """Each of ``fields`` is > 0."""
    for field in fields:
        if not getattr(config, field) > 0:
            fail(config, field, "be > 0")


def at_least(config: Any, minimum: float, *fields: str) -> None:
    """Each of ``fields`` is >= ``minimum``."""
    for field in fields:
        if not getattr(config, field) >= minimum:
            fail(config, field, f"be >= {minimum}")


def open_interval(config: Any, field: str, low: float, high: float) -> None:
    """``low < field < high``."""
    if not low < getattr(config, field) < high:
        fail(config, field, f"be in ({low}, {high})")
