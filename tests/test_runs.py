"""Run-folder helpers: configs to JSON and back."""

import json

import pytest

from mbrl.algorithms.alphazero import AlphaZeroConfig, Backend
from mbrl.algorithms.sac import SACConfig
from mbrl.planners.mcts import RootPolicy
from mbrl.training.runs import config_from_json, config_to_json


def test_configs_survive_json():
    config = AlphaZeroConfig(
        game="tic_tac_toe",
        root_policy=RootPolicy.PUCT,
        backend=Backend.RAY,
        eval_opponents=("random", "minimax"),
    )
    data = json.loads(json.dumps(config_to_json(config)))
    assert isinstance(data["eval_opponents"], list) and data["backend"] == "ray"
    assert config_from_json(AlphaZeroConfig, data) == config
    sac = SACConfig(env="Pendulum-v1", hidden_sizes=(64, 32))
    assert config_from_json(SACConfig, config_to_json(sac)) == sac


def test_missing_fields_take_defaults_and_unknown_fields_are_refused():
    data = config_to_json(SACConfig(env="Pendulum-v1", tau=0.01))
    del data["gamma"]
    assert config_from_json(SACConfig, data).gamma == SACConfig(env="Pendulum-v1").gamma
    with pytest.raises(ValueError, match="no fields \\['warp'\\]"):
        config_from_json(SACConfig, {**data, "warp": 9})
