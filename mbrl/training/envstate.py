"""An environment's episode in progress as plain data, and back, with no pickle.

:func:`env_state` walks the wrapper chain from the outermost wrapper down to
``env.unwrapped`` and records, per layer, its class and the entries of ``vars(layer)``
that are state: plain values, numpy scalars and arrays, tuples, lists, dicts and deques
of those, ``np.random.Generator`` states, the generators of gymnasium spaces,
gymnasium's ``RunningMeanStd`` and MuJoCo's ``MjData``. Known static attributes are
skipped by an explicit list (``SKIPPED_NAMES``, ``SKIPPED_TYPES``); any other object
raises :class:`EnvStateError`, so an environment that cannot be saved as plain data
says so instead of losing state silently.

:func:`restore_env_state` puts such a state onto a freshly made environment of the same
id and wrappers: it checks the id and the chain of classes, decodes everything, and only
then writes, so a refused state leaves the environment untouched.

The state holds only dict/list/str/int/float/bool/None and numpy arrays (dicts have str
keys). Tagged dicts (key ``"type"``) encode everything else; every dict of the
environment is itself tagged, so keys of any plain type round-trip.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import types
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.wrappers.utils import RunningMeanStd

__all__ = ["SKIPPED_NAMES", "SKIPPED_TYPES", "EnvStateError", "env_state", "restore_env_state"]

FORMAT = 1
_TAG = "type"

# Attributes that are not episode state, by name: the wrapped env pointer, specs and
# metadata, constructor arguments (they may hold callables and spaces), rendering
# objects and switches, and the MuJoCo model file (static, and a machine path).
SKIPPED_NAMES = frozenset(
    {
        "env",
        "spec",
        "_cached_spec",
        "metadata",
        "_metadata",
        "_saved_kwargs",
        "_ezpickle_args",
        "_ezpickle_kwargs",
        "render_mode",
        "mujoco_renderer",
        "viewer",
        "screen",
        "clock",
        "isopen",
        "fullpath",
    }
)

# Static types, skipped wherever they appear as a layer's attribute: code (functions,
# methods, partials, ufuncs, classes, modules) and registration specs. ``mujoco.MjModel``
# is skipped too (see ``_skipped``); stateful callable objects are not skipped.
SKIPPED_TYPES: tuple[type, ...] = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    functools.partial,
    np.ufunc,
    type,
    types.ModuleType,
    EnvSpec,
)

# Bit generators a state may name (looked up here, never by an arbitrary name).
_BIT_GENERATORS = {
    cls.__name__: cls
    for cls in (
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.MT19937,
        np.random.Philox,
        np.random.SFC64,
    )
}


class EnvStateError(ValueError):
    """An environment attribute that cannot be captured as plain data."""


@functools.cache
def _mujoco():
    """The mujoco module, or None where it is not installed (then no MjData can exist)."""
    try:
        import mujoco
    except ImportError:
        return None
    return mujoco


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrapper chain, outermost first, ending at ``env.unwrapped``."""
    if not isinstance(env, gym.Env):
        raise TypeError(
            f"expected a gymnasium.Env, got {_class_name(env)}; for a vector env save each "
            "sub-env (SyncVectorEnv.envs) on its own"
        )
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _skipped(name: str, value: Any) -> bool:
    mj = _mujoco()
    return (
        name in SKIPPED_NAMES
        or isinstance(value, SKIPPED_TYPES)
        or (mj is not None and isinstance(value, mj.MjModel))
    )


# ------------------------------------------------------------------------ capture
def env_state(env: gym.Env) -> dict:
    """Plain data (dict/list/str/int/float/bool/None, numpy arrays, and nothing else) that
    captures the episode in progress of `env` and every wrapper around it."""
    layers = []
    for layer in _layers(env):
        attrs = {}
        for name, value in vars(layer).items():
            if _skipped(name, value):
                continue
            where = f"{_class_name(layer)}.{name}"
            if _mujoco() is not None and isinstance(value, _mujoco().MjData):
                attrs[name] = _encode_mjdata(layer, value, where)
            elif isinstance(value, gym.spaces.Space):
                attrs[name] = _encode_space(value, where)
            else:
                attrs[name] = _encode(value, where)
        layers.append({"class": _class_name(layer), "attrs": attrs})
    spec = env.unwrapped.spec
    return {"format": FORMAT, "env_id": None if spec is None else spec.id, "layers": layers}


def _encode(value: Any, where: str) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise EnvStateError(f"{where}: numpy array of dtype {value.dtype} holds Python objects")
        return value.copy()
    if isinstance(value, np.generic):
        if value.dtype.hasobject:
            raise EnvStateError(f"{where}: numpy scalar of dtype {value.dtype}")
        return {_TAG: "numpy_scalar", "value": np.array(value)}
    if type(value) is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is tuple:
        return {_TAG: "tuple", "items": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if type(value) is dict:
        return {
            _TAG: "dict",
            "items": [
                [_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ],
        }
    if type(value) is collections.deque:
        items = [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return {_TAG: "deque", "maxlen": value.maxlen, "items": items}
    if isinstance(value, np.random.Generator):
        return _encode_generator(value, where)
    if isinstance(value, gym.spaces.Space):
        raise EnvStateError(
            f"{where}: a space inside a container cannot be restored onto a fresh env"
        )
    if type(value) is RunningMeanStd:
        return {
            _TAG: "running_mean_std",
            "mean": _encode(value.mean, f"{where}.mean"),
            "var": _encode(value.var, f"{where}.var"),
            "count": _encode(value.count, f"{where}.count"),
        }
    kind = "callable object (it may hold state)" if callable(value) else "object"
    raise EnvStateError(
        f"{where}: cannot capture a {kind} of type {_class_name(value)} as plain data; "
        "this environment cannot be saved without pickle"
    )


def _encode_generator(rng: np.random.Generator, where: str) -> dict:
    name = type(rng.bit_generator).__name__
    if name not in _BIT_GENERATORS:
        raise EnvStateError(f"{where}: unsupported bit generator {name}")
    return {
        _TAG: "generator",
        "bit_generator": name,
        "state": _encode(rng.bit_generator.state, where),
    }


def _subspaces(space: gym.spaces.Space) -> list[gym.spaces.Space]:
    """The spaces a composite space samples from with their own generators."""
    if isinstance(space, (gym.spaces.Tuple, gym.spaces.OneOf)):
        return list(space.spaces)
    if isinstance(space, gym.spaces.Dict):
        return list(space.spaces.values())
    if isinstance(space, gym.spaces.Sequence):
        return [space.feature_space]
    if isinstance(space, gym.spaces.Graph):
        return [s for s in (space.node_space, space.edge_space) if s is not None]
    return []


def _encode_space(space: gym.spaces.Space, where: str) -> dict:
    """A space's sampling generator (if created) and its sub-spaces'; the rest is static."""
    rng = space._np_random  # the property would create one
    return {
        _TAG: "space",
        "class": _class_name(space),
        "rng": None if rng is None else _encode_generator(rng, where),
        "subspaces": [_encode_space(s, f"{where}/{i}") for i, s in enumerate(_subspaces(space))],
    }


def _encode_mjdata(layer: Any, data: Any, where: str) -> dict:
    """The integration state (``mj_getState``, mjSTATE_INTEGRATION: time, qpos, qvel, act,
    history, plugin, controls and applied forces, warm start) and every model-sized array
    of ``data``: environments read derived quantities (``xpos``, ``cfrc_ext``) left by the
    last step before they step again, which ``mj_forward`` would not reproduce bit for bit.
    Arrays sized by this step's contacts and constraints are left out: ``mj_step``
    recomputes them before use."""
    mj = _mujoco()
    model = getattr(layer, "model", None)
    if not isinstance(model, mj.MjModel):
        raise EnvStateError(
            f"{where}: MjData without an MjModel in attribute 'model' of the same layer"
        )
    flag = mj.mjtState.mjSTATE_INTEGRATION
    integration = np.empty(mj.mj_stateSize(model, flag), np.float64)
    mj.mj_getState(model, data, integration, flag)
    empty = mj.MjData(model)  # arena (contact/constraint) arrays are empty here
    fields = {}
    for name in dir(data):
        if name.startswith("_"):
            continue
        value, blank = getattr(data, name), getattr(empty, name)
        if isinstance(value, np.ndarray) and blank.size and blank.shape == value.shape:
            fields[name] = value.copy()
    return {_TAG: "mjdata", "flag": int(flag), "integration": integration, "fields": fields}


# ------------------------------------------------------------------------ restore
@dataclasses.dataclass(frozen=True)
class _Generator:
    bit_generator: str
    state: dict


@dataclasses.dataclass(frozen=True)
class _Space:
    cls: str
    rng: _Generator | None
    subspaces: tuple[_Space, ...]


@dataclasses.dataclass(frozen=True)
class _Stats:
    mean: Any
    var: Any
    count: Any


@dataclasses.dataclass(frozen=True)
class _MjData:
    integration: np.ndarray
    fields: dict


def restore_env_state(env: gym.Env, state: dict) -> None:
    """Put `state` (from env_state of an env made the same way) back onto `env` in place.
    Raises ValueError with a clear message when the wrapper chain differs (names the layer
    classes expected and found) or when the state holds something it cannot restore."""
    if not isinstance(state, dict) or state.get("format") != FORMAT or "layers" not in state:
        raise ValueError(f"not an environment state of format {FORMAT} (from env_state)")
    layers = _layers(env)
    spec = env.unwrapped.spec
    env_id = None if spec is None else spec.id
    if state.get("env_id") is not None and env_id is not None and state["env_id"] != env_id:
        raise ValueError(f"environment state of {state['env_id']!r} cannot restore onto {env_id!r}")
    entries = state["layers"]
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("class"), str) and isinstance(e.get("attrs"), dict)
        for e in entries
    ):
        raise ValueError("malformed environment state: each layer needs a class name and attrs")
    expected = [entry["class"] for entry in entries]
    found = [_class_name(layer) for layer in layers]
    if expected != found:
        raise ValueError(
            "wrapper chain differs from the saved one: expected "
            f"{' > '.join(expected)}, found {' > '.join(found)}"
        )
    # Decode and check everything first, so that a refused state changes nothing.
    plan = []
    for layer, entry in zip(layers, entries):
        for name, encoded in entry["attrs"].items():
            where = f"{_class_name(layer)}.{name}"
            try:
                value = _decode(encoded, where, top=True)
            except (KeyError, TypeError, IndexError, AttributeError) as error:
                raise ValueError(f"{where}: malformed entry in the state ({error!r})") from None
            _check(layer, name, value, where)
            plan.append((layer, name, value))
    for layer, name, value in plan:
        _apply(layer, name, value)


def _decode(value: Any, where: str, top: bool = False) -> Any:
    """Plain values as they were; a layer's own generator, space, statistics or MjData as
    markers that ``_apply`` writes into the fresh layer's objects (nested generators and
    statistics come back as new objects)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise ValueError(f"{where}: cannot restore a numpy array of Python objects")
        return value.copy()
    if type(value) is list:
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is not dict or _TAG not in value:
        raise ValueError(f"{where}: cannot restore a value of type {_class_name(value)}")
    kind = value[_TAG]
    if kind == "numpy_scalar":
        scalar = value["value"]
        if not isinstance(scalar, np.ndarray) or scalar.ndim != 0 or scalar.dtype.hasobject:
            raise ValueError(f"{where}: a numpy scalar must be stored as a 0-d array")
        return scalar[()]
    if kind == "tuple":
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(value["items"]))
    if kind == "dict":
        return {
            _decode(k, f"{where} key"): _decode(v, f"{where}[{k!r}]") for k, v in value["items"]
        }
    if kind == "deque":
        items = [_decode(v, f"{where}[{i}]") for i, v in enumerate(value["items"])]
        return collections.deque(items, maxlen=value["maxlen"])
    if kind == "generator":
        saved = _decode_generator(value, where)
        return saved if top else _generator(None, saved)
    if kind == "space" and top:
        return _decode_space(value, where)
    if kind == "running_mean_std":
        stats = _Stats(*(_decode(value[k], f"{where}.{k}") for k in ("mean", "var", "count")))
        return stats if top else _running_mean_std(RunningMeanStd(), stats)
    if kind == "mjdata" and top:
        return _decode_mjdata(value, where)
    raise ValueError(f"{where}: cannot restore a value tagged {kind!r}")


def _decode_generator(value: dict, where: str) -> _Generator:
    if value["bit_generator"] not in _BIT_GENERATORS:
        raise ValueError(f"{where}: unknown bit generator {value['bit_generator']!r}")
    state = _decode(value["state"], where)
    if not isinstance(state, dict) or state.get("bit_generator") != value["bit_generator"]:
        raise ValueError(f"{where}: generator state does not belong to {value['bit_generator']}")
    saved = _Generator(value["bit_generator"], state)
    try:  # on a throwaway generator, so that a bad state fails before anything is written
        _generator(None, saved)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{where}: invalid generator state ({error})") from None
    return saved


def _decode_space(value: dict, where: str) -> _Space:
    rng = None if value["rng"] is None else _decode_generator(value["rng"], where)
    subspaces = tuple(_decode_space(s, f"{where}/{i}") for i, s in enumerate(value["subspaces"]))
    return _Space(value["class"], rng, subspaces)


def _decode_mjdata(value: dict, where: str) -> _MjData:
    mj = _mujoco()
    if mj is None:
        raise ValueError(f"{where}: the state holds MuJoCo data and mujoco is not installed")
    if value["flag"] != int(mj.mjtState.mjSTATE_INTEGRATION):
        raise ValueError(f"{where}: MuJoCo state flag {value['flag']} differs from this mujoco's")
    fields = value["fields"]
    if not isinstance(value["integration"], np.ndarray) or not all(
        isinstance(v, np.ndarray) and not v.dtype.hasobject for v in fields.values()
    ):
        raise ValueError(f"{where}: MuJoCo data must be stored as numpy arrays")
    return _MjData(value["integration"].copy(), {k: v.copy() for k, v in fields.items()})


def _check(layer: Any, name: str, value: Any, where: str) -> None:
    """Refuse special values the fresh layer's attribute cannot take."""
    current = getattr(layer, name, None)
    if isinstance(value, _Space):
        if not isinstance(current, gym.spaces.Space):
            raise ValueError(f"{where}: saved a space, found {_class_name(current)}")
        _check_space(current, value, where)
    elif isinstance(value, _Stats) and type(current) is not RunningMeanStd:
        raise ValueError(f"{where}: saved a RunningMeanStd, found {_class_name(current)}")
    elif isinstance(value, _MjData):
        mj = _mujoco()
        model = getattr(layer, "model", None)
        if not isinstance(current, mj.MjData) or not isinstance(model, mj.MjModel):
            raise ValueError(f"{where}: saved MuJoCo data, found {_class_name(current)}")
        size = mj.mj_stateSize(model, mj.mjtState.mjSTATE_INTEGRATION)
        if value.integration.shape != (size,):
            raise ValueError(
                f"{where}: MuJoCo state of size {value.integration.size}, this model's is {size}"
            )
        for field, array in value.fields.items():
            target = getattr(current, field, None)
            if (
                not isinstance(target, np.ndarray)
                or target.shape != array.shape
                or target.dtype != array.dtype
            ):
                raise ValueError(
                    f"{where}.{field}: saved {array.dtype}{array.shape}, this model differs"
                )


def _check_space(space: gym.spaces.Space, saved: _Space, where: str) -> None:
    if _class_name(space) != saved.cls:
        raise ValueError(f"{where}: saved a {saved.cls}, found {_class_name(space)}")
    subspaces = _subspaces(space)
    if len(subspaces) != len(saved.subspaces):
        raise ValueError(
            f"{where}: saved {len(saved.subspaces)} sub-spaces, found {len(subspaces)}"
        )
    for i, (sub, sub_saved) in enumerate(zip(subspaces, saved.subspaces)):
        _check_space(sub, sub_saved, f"{where}/{i}")


def _generator(current: Any, saved: _Generator) -> np.random.Generator:
    """``current`` with the saved state where its bit generator is of the saved class, else
    a new generator (keeps generators shared between objects shared)."""
    if not (
        isinstance(current, np.random.Generator)
        and type(current.bit_generator).__name__ == saved.bit_generator
    ):
        current = np.random.Generator(_BIT_GENERATORS[saved.bit_generator]())
    current.bit_generator.state = saved.state
    return current


def _running_mean_std(stats: RunningMeanStd, saved: _Stats) -> RunningMeanStd:
    stats.mean, stats.var, stats.count = saved.mean, saved.var, saved.count
    return stats


def _apply_space(space: gym.spaces.Space, saved: _Space) -> None:
    space._np_random = None if saved.rng is None else _generator(space._np_random, saved.rng)
    for sub, sub_saved in zip(_subspaces(space), saved.subspaces):
        _apply_space(sub, sub_saved)


def _apply(layer: Any, name: str, value: Any) -> None:
    current = getattr(layer, name, None)
    if isinstance(value, _Generator):
        setattr(layer, name, _generator(current, value))
    elif isinstance(value, _Space):
        _apply_space(current, value)
    elif isinstance(value, _Stats):
        _running_mean_std(current, value)
    elif isinstance(value, _MjData):
        mj = _mujoco()
        for field, array in value.fields.items():
            getattr(current, field)[...] = array
        # The integration state last, so that it wins over any overlapping field.
        mj.mj_setState(layer.model, current, value.integration, mj.mjtState.mjSTATE_INTEGRATION)
    else:
        setattr(layer, name, value)
