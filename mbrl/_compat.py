"""Old module names (before the layout by role) keep importing.

Run folders, sweeps and pickles written by earlier versions name modules such as
``mbrl.sac`` or ``mbrl.replay``; a finder maps each to its new place, so
``import mbrl.sac`` gives the module ``mbrl.algorithms.sac`` itself (one module
object, not a copy).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["MOVED"]

MOVED: dict[str, str] = {
    **{f"mbrl.{name}": f"mbrl.algorithms.{name}" for name in (
        "vpg", "a2c", "ppo", "trpo", "dqn", "ddpg", "td3", "sac", "alphazero"
    )},
    **{f"mbrl.{name}": f"mbrl.training.{name}" for name in (
        "runs", "logger", "rollout", "offpolicy", "replay", "returns", "envs", "selfplay",
        "distributed", "nets",
    )},
    **{f"mbrl.{name}": f"mbrl.evaluation.{name}" for name in (
        "arena", "mistakes", "bench", "report"
    )},
    "mbrl.evaluators": "mbrl.planners.evaluators",
}  # fmt: skip


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Loader(MOVED[fullname]))


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
