"""The house rules, read from the code: who may import the algorithms, and the one surface
every registered agent has."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from mbrl import Agent, registry

ROOT = Path(__file__).resolve().parents[1]
#: The only modules that may name an algorithm module.
MAY_IMPORT_ALGORITHMS = {"mbrl/cli.py", "mbrl/registry.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (function
    bodies included), with ``from mbrl import x`` read as ``mbrl.x``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def library_files() -> list[Path]:
    folders = ["mbrl", "games", "planners", "models"]
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_the_import_scanner_sees_imports_inside_functions():
    # cli.py imports algorithms only inside functions (lazily); the scanner must see them,
    # or the rule below would pass without looking.
    assert any(
        name.startswith("mbrl.algorithms") for name in imported_modules(ROOT / "mbrl/cli.py")
    )


def test_only_the_cli_and_the_registry_import_algorithms():
    offenders = []
    for path in library_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("mbrl/algorithms/") or relative in MAY_IMPORT_ALGORITHMS:
            continue
        bad = sorted(name for name in imported_modules(path) if name.startswith("mbrl.algorithms"))
        offenders += [f"{relative} imports {name}" for name in bad]
    assert not offenders, offenders


def test_lower_rooms_do_not_import_upper_ones():
    # games/, planners/ and models/ sit below the training machinery and evaluation.
    upper = ("mbrl.training", "mbrl.evaluation", "mbrl.algorithms", "mbrl.cli")
    offenders = []
    for folder in ("games", "planners", "models"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad = [name for name in imported_modules(path) if name.startswith(upper)]
            offenders += [f"{path.relative_to(ROOT)} imports {name}" for name in bad]
    assert not offenders, offenders


# ------------------------------------------------------------------ the agent surface
AGENTS = registry.available_agents()


def test_every_algorithm_is_registered():
    # one file may hold the variants of an algorithm (mve.py: mve-ddpg, mve-td3, mve-sac)
    files = {p.stem for p in (ROOT / "mbrl/algorithms").glob("*.py") if p.stem != "__init__"}
    modules = {registry.AGENTS[name].split(":")[0].rsplit(".", 1)[1] for name in AGENTS}
    assert files == modules


@pytest.mark.parametrize("name", AGENTS)
def test_registered_agents_have_the_one_surface(name):
    cls = registry.agent_class(name)
    assert cls.algo == name
    for attribute in ("Config", "FORMAT", "world_field", "action_spaces", "budget_fields"):
        assert hasattr(cls, attribute), f"{name} has no {attribute}"
    assert cls.FORMAT.startswith(f"mbrl.{name}/")
    assert cls.world_field in ("env", "game")
    assert cls.action_spaces and cls.action_spaces <= {"discrete", "continuous"}
    assert cls.step_cost > 0
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    assert cls.world_field in fields and "seed" in fields and "run_dir" in fields
    assert set(cls.budget_fields) <= fields
    assert cls.Config.__dataclass_params__.frozen
    # one default seed
    seed = next(f for f in dataclasses.fields(cls.Config) if f.name == "seed")
    assert seed.default == 0
    # one constructor form: Agent(world, config, *, run_dir=None, console=None, ...)
    parameters = list(inspect.signature(cls.__init__).parameters.values())
    assert [p.name for p in parameters[1:3]] == [cls.world_field, "config"]
    keywords = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    assert {"run_dir", "console"} <= keywords
    # learn(total_steps=None), and the class-level file verbs
    learn = inspect.signature(cls.learn).parameters["total_steps"]
    assert learn.default is None
    for verb in ("load", "resume", "world_of"):
        assert inspect.ismethod(getattr(cls, verb)), f"{name}.{verb} is not a classmethod"
    assert isinstance(cls, type) and issubclass_of_protocol(cls)


def issubclass_of_protocol(cls: type) -> bool:
    """Every member the Protocol names exists on the class (instances add the data)."""
    members = [m for m in dir(Agent) if not m.startswith("_") and callable(getattr(Agent, m))]
    missing = [m for m in members if not hasattr(cls, m)]
    assert not missing, f"{cls.__name__} lacks {missing}"
    return True


@pytest.mark.parametrize(
    ("name", "world"),
    [
        ("ppo", "CartPole-v1"),
        ("dqn", "CartPole-v1"),
        ("sac", "Pendulum-v1"),
        ("ddpg", "Pendulum-v1"),
        ("alphazero", "tic_tac_toe"),
    ],
)
def test_an_instance_satisfies_the_protocol_and_counts_steps(tmp_path, name, world):
    cls = registry.agent_class(name)
    agent = cls(world, cls.Config(**{cls.world_field: world, "run_dir": str(tmp_path)}))
    assert isinstance(agent, Agent)
    assert agent.counters["steps"] == 0
    assert cls.world_of(agent.config) == world
    path = agent.save(tmp_path / "agent.pt")
    assert type(cls.load(path)) is cls
