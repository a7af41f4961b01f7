"""``mbrl convert``: files of the old, pickled form to files that hold data only.

Before :mod:`mbrl.training.datafile`, agent files and checkpoints were ``torch.save``
pickles, and training checkpoints pickled their environments. Converting one unpickles
it once (``torch.load(..., weights_only=False)``), which runs whatever code the file
holds: convert only files you trust. A pickled environment becomes its plain state
(:func:`mbrl.training.envstate.env_state`); the rest of the payload is data already.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import torch
import tyro

from mbrl.training.datafile import is_old_format, write_data
from mbrl.training.envstate import env_state
from mbrl.training.runs import AGENT_FILE, LATEST

__all__ = ["ConvertCommand", "convert", "convert_payload"]

_RUN_FILES = {"latest.pt": LATEST, "agent.pt": AGENT_FILE}
"""A run folder's old checkpoint names and their new ones."""


@dataclass(frozen=True, kw_only=True)
class ConvertCommand:
    """Convert old, pickled agent files and run folders to data-only files (trusted only)."""

    paths: Annotated[tuple[str, ...], tyro.conf.Positional]
    """Old files (``agent.pt``) or run folders (their ``checkpoints/*.pt``); each file is
    written beside the old one as ``<name>.safetensors`` (in a run folder, the names
    the runs now use); the old file stays."""


def _unpickled_envs(value: bytes) -> Any:
    envs = pickle.loads(value)
    if isinstance(envs, gym.Env):
        return env_state(envs)
    if isinstance(envs, list) and all(isinstance(env, gym.Env) for env in envs):
        return [env_state(env) for env in envs]
    raise ValueError(f"a pickled {type(envs).__name__} that is not an environment")


def convert_payload(payload: Any) -> Any:
    """``payload`` with every pickled environment (the bytes of ``pickle.dumps(env)`` or of
    a list of envs) replaced by its plain state; other values as they are."""
    if isinstance(payload, (bytes, bytearray)):
        return _unpickled_envs(bytes(payload))
    if isinstance(payload, dict):
        return {key: convert_payload(value) for key, value in payload.items()}
    if isinstance(payload, list):
        return [convert_payload(value) for value in payload]
    if isinstance(payload, tuple):
        return tuple(convert_payload(value) for value in payload)
    return payload


def _convert_file(old: Path, new: Path) -> Path:
    if not is_old_format(old):
        raise ValueError(f"{old} is not a file of the old, pickled form (nothing to convert)")
    payload = torch.load(old, map_location="cpu", weights_only=False)  # trusted by the caller
    if not isinstance(payload, dict) or not str(payload.get("format", "")).startswith("mbrl."):
        raise ValueError(f"{old} is not an mbrl agent file or checkpoint")
    return write_data(convert_payload(payload), new)


def convert(path: str | Path) -> list[Path]:
    """Convert an old file, or the old checkpoints of a run folder; returns the new files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file or run folder at {path}")
    if not path.is_dir():
        return [_convert_file(path, path.with_suffix(".safetensors"))]
    folder = path / "checkpoints"
    pairs = [(folder / old, folder / new) for old, new in _RUN_FILES.items()]
    found = [(old, new) for old, new in pairs if old.exists()]
    if not found:
        raise FileNotFoundError(f"{path} has no checkpoints/latest.pt or agent.pt to convert")
    return [_convert_file(old, new) for old, new in found]


def run_convert(cmd: ConvertCommand, console: Any) -> None:
    """The command: convert each path, saying what it wrote."""
    console.print(
        "converting unpickles each file once, running any code it holds: trusted files only"
    )
    for path in cmd.paths:
        for new in convert(path):
            console.print(f"wrote {new}")
