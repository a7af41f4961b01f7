"""Run folders and checkpoints shared by every training algorithm.

``runs/<algo>-<world>-<time>/`` holds ``config.json``, ``progress.csv``,
TensorBoard events and ``checkpoints/`` (``latest.safetensors``, written atomically;
files hold data only, see :mod:`mbrl.training.datafile`).
"""

from __future__ import annotations

import dataclasses
import json
import time
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from mbrl.training.datafile import OldFormatError, read_data, write_data

__all__ = [
    "AGENT_FILE",
    "LATEST",
    "atomic_save",
    "config_from_json",
    "config_to_json",
    "load_checkpoint",
    "new_run_dir",
]

LATEST = "latest.safetensors"
"""A run's whole training state, in ``<run>/checkpoints/`` (rewritten as it trains)."""
AGENT_FILE = "agent.safetensors"
"""The agent alone beside it (networks and config), where a run writes one."""


def new_run_dir(root: str | Path, algo: str, world: str) -> Path:
    """A fresh ``root/<algo>-<world>-<time>`` path (not created yet)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in world.replace(":", "-"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{algo}-{safe}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{algo}-{safe}-{stamp}-{suffix}"
    return path


def config_to_json(config: Any) -> dict:
    """A frozen config dataclass as JSON-ready data (Enums by value, tuples as lists)."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        out[field.name] = value.value if isinstance(value, Enum) else value
    return json.loads(json.dumps(out))


def config_from_json(config_cls: type, data: dict) -> Any:
    """The inverse of :func:`config_to_json`: lists back to tuples, Enum values back to
    members. Fields missing from ``data`` keep their defaults (checkpoints of older
    versions load); fields the class does not have are an error."""
    names = {field.name for field in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{config_cls.__qualname__} has no fields {unknown}")
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(value, list) and "tuple" in str(hint):
            value = tuple(value)
        for kind in typing.get_args(hint) or (hint,):
            if isinstance(kind, type) and issubclass(kind, Enum) and value is not None:
                value = kind(value)
        kwargs[name] = value
    return config_cls(**kwargs)


def atomic_save(payload: dict, path: str | Path) -> Path:
    """Write a checkpoint or agent file atomically, as data only (:mod:`.datafile`)."""
    return write_data(payload, path)


def load_checkpoint(path: str | Path, expected_format: str, prefix: bool = False) -> dict:
    """Load a checkpoint written by :func:`atomic_save`; clear errors when missing or
    foreign (a pickled file of the old form: :class:`~mbrl.training.datafile.OldFormatError`,
    unread).

    With ``prefix``, ``expected_format`` is a family (``mbrl.sac``) and any version of it
    (``mbrl.sac/1``, ``mbrl.sac/2``) is accepted."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = read_data(path)
    except (OldFormatError, ValueError):
        raise
    except Exception as error:
        raise ValueError(f"checkpoint {path} is corrupt or unreadable: {error}") from error
    found = payload.get("format")
    ok = found == expected_format or (
        prefix and isinstance(found, str) and found.startswith(expected_format + "/")
    )
    if not ok:
        raise ValueError(f"{path} is not a {expected_format} checkpoint (found {found})")
    return payload
