"""Exact game models: native batched games (numba) and the OpenSpiel adapter.

>>> from mbrl import games
>>> games.available()[:3]
['connect_four', 'othello', 'tic_tac_toe']
>>> game = games.make("connect_four")
>>> state = game.initial_state(batch_size=4)      # [B, W] int64
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from mbrl.model import GameModel, UnknownNameError

__all__ = ["available", "make"]

_NATIVE: dict[str, str] = {
    "connect_four": "mbrl.games.connect_four",
    "othello": "mbrl.games.othello",
    "tic_tac_toe": "mbrl.games.tic_tac_toe",
}
_CACHE: dict[str, GameModel] = {}
OPENSPIEL_PREFIX = "openspiel:"


def available() -> list[str]:
    """Names accepted by :func:`make`: the native games, then a few OpenSpiel examples.

    Any sequential, deterministic, perfect-information OpenSpiel game works as
    ``"openspiel:<name>"`` (with parameters, e.g. ``"openspiel:hex(board_size=5)"``).
    """
    return sorted(_NATIVE) + [OPENSPIEL_PREFIX + g for g in _openspiel_examples()]


def _openspiel_examples() -> list[str]:
    return ["breakthrough", "connect_four", "hex", "othello", "tic_tac_toe"]


def make(name: str) -> GameModel:
    """The game model called ``name`` (see :func:`available`); models are cached per name."""
    if not isinstance(name, str):
        raise TypeError(f"game name must be a str, got {type(name).__name__}")
    if name in _CACHE:
        return _CACHE[name]
    factory: Callable[[], GameModel]
    if name in _NATIVE:
        factory = importlib.import_module(_NATIVE[name]).make
    elif name.startswith(OPENSPIEL_PREFIX):
        from .openspiel import make_openspiel

        def factory() -> GameModel:
            return make_openspiel(name[len(OPENSPIEL_PREFIX) :])
    else:
        raise UnknownNameError(
            f"unknown game {name!r}; available: {', '.join(sorted(_NATIVE))}, "
            f"or 'openspiel:<name>' for any sequential perfect-information OpenSpiel game",
            name=name,
            known=available(),
        )
    _CACHE[name] = model = factory()
    return model
