"""Files that hold data only: every agent file and training checkpoint of the project.

A file is one ``safetensors`` file (the format the field shares weights in): the
tensors and numpy arrays of a payload as named tensors, and the rest of the payload
(its nesting, config, counters, RNG states, numbers and strings) as one JSON document
in the file's metadata, where each tensor is a reference by name. Reading one parses a
JSON header and copies tensors; it never unpickles, so opening a file someone sent runs
none of their code. (``torch.load(..., weights_only=False)`` of the files before this
format unpickled arbitrary objects: a crafted file could run a command as it opened.)

The payload is plain data: dicts, lists, tuples, ``str``/``int``/``float``/``bool``/
``None``, numpy scalars, numpy arrays and tensors. Anything else (a pickled object, an
environment, a class instance) is refused when the file is written, naming where it
sits in the payload.

Files of the old form (a ``torch.save`` pickle) are refused with a message that names
the command converting them, ``mbrl convert <file or run folder>``: it unpickles the
old file once, so it is for files one trusts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

__all__ = ["OldFormatError", "is_old_format", "read_data", "write_data"]

_KEY = "mbrl"
"""The metadata entry holding the payload's JSON."""
_MARK = "__"
"""Dict keys starting with this are the encoding's own (``__tensor__``, ``__tuple__``...)."""
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")
"""A ``torch.save`` zip archive, or a bare pickle (protocol 2+ opcode)."""


class OldFormatError(ValueError):
    """A file of the old, pickled form: it is not read (see :func:`read_data`)."""


def _encode(value: Any, tensors: dict[str, Tensor], where: str) -> Any:
    if isinstance(value, np.generic):  # before float: np.float64 is a float
        return {"__scalar__": value.dtype.str, "value": value.item()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        name = str(len(tensors))
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where}: an object array cannot be stored as data")
        name = str(len(tensors))
        tensors[name] = torch.from_numpy(np.array(value, copy=True, order="C"))
        return {"__ndarray__": name}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        plain = all(isinstance(k, str) and not k.startswith(_MARK) for k in value)
        if plain:
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        return {
            "__items__": [
                [_encode(k, tensors, f"{where} key"), _encode(v, tensors, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    kind = "bytes (a pickle?)" if isinstance(value, (bytes, bytearray)) else type(value).__name__
    raise TypeError(f"{where}: {kind} cannot be stored as data (plain values, arrays, tensors)")


def _decode(value: Any, tensors: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors.get_tensor(value["__tensor__"])
    if "__ndarray__" in value:
        return tensors.get_tensor(value["__ndarray__"]).numpy()
    if "__scalar__" in value:
        return np.dtype(value["__scalar__"]).type(value["value"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__items__" in value:
        return {
            _hashable(_decode(k, tensors, where)): _decode(v, tensors, where)
            for k, v in value["__items__"]
        }
    if any(k.startswith(_MARK) for k in value):
        raise ValueError(f"{where}: unknown entry {sorted(value)} (a newer version's file?)")
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, Tensor, np.ndarray)):
        raise ValueError(f"a dict key of the file is not a plain value: {type(key).__name__}")
    return key


def write_data(payload: dict, path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (a temporary file, then a rename: a kill
    never leaves half a file). Raises TypeError naming what is not plain data."""
    path = Path(path)
    tensors: dict[str, Tensor] = {}
    document = json.dumps(_encode(payload, tensors, "payload"), allow_nan=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={_KEY: document})
    os.replace(tmp, path)
    return path


def is_old_format(path: str | Path) -> bool:
    """True for a file of the old, pickled form (read by nothing but ``mbrl convert``)."""
    with open(path, "rb") as file:
        start = file.read(9)
    if start[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        return False
    return any(start.startswith(magic) for magic in _PICKLE_STARTS)


def read_data(path: str | Path) -> dict:
    """The payload of :func:`write_data`'s file. Never unpickles: a pickled file (the old
    form, or a crafted one) raises :class:`OldFormatError` unread; anything else that
    is not such a file raises ValueError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if is_old_format(path):
        raise OldFormatError(
            f"{path} is a pickled file of the old form, which is not opened because "
            f"unpickling can run code; if you trust it, convert it once with "
            f"`mbrl convert {path}`"
        )
    try:
        with safe_open(str(path), framework="pt") as tensors:
            metadata = tensors.metadata() or {}
            if _KEY not in metadata:
                raise ValueError("no mbrl payload in its metadata")
            payload = _decode(json.loads(metadata[_KEY]), tensors, str(path))
    except OldFormatError:
        raise
    except Exception as error:
        raise ValueError(f"{path} is not an mbrl file or is corrupt: {error}") from error
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not an mbrl file: its payload is not a dict")
    return payload
