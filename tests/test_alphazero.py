import dataclasses
import types

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero, AlphaZeroConfig
from mbrl.evaluation.arena import play_match
from mbrl.games import minimax
from mbrl.games.players import make_player
from mbrl.model import UnknownNameError
from mbrl.planners.mcts import RootPolicy

TINY = dict(
    game="tic_tac_toe",
    num_parallel_games=8,
    moves_per_iteration=5,
    num_simulations=8,
    batch_size=16,
    train_steps_per_iteration=2,
    num_blocks=1,
    channels=8,
    replay_size=500,
    eval_games=4,
    eval_simulations=4,
    eval_opponents=("random",),
)


def split_games(obs: np.ndarray) -> list[np.ndarray]:
    """Indices of each game's positions in replay order (a game starts on an empty board)."""
    starts = np.flatnonzero(obs[:, :2].sum(axis=(1, 2, 3)) == 0)
    return [np.arange(a, b) for a, b in zip(starts, [*starts[1:], len(obs)])]


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_value_targets_have_the_right_sign(tmp_path, policy):
    config = AlphaZeroConfig(**TINY, root_policy=policy, run_dir=str(tmp_path))
    agent = AlphaZero(config.game, config)
    agent.play_moves(9)  # tic-tac-toe games last at most 9 moves: all finish
    n = agent.replay.size
    obs, value = agent.replay.obs[:n], agent.replay.value[:n]
    game_rows = split_games(obs)
    assert len(game_rows) == 8
    for rows in game_rows:
        z = value[rows]
        # Players alternate, so targets alternate in sign; the last mover never loses.
        np.testing.assert_array_equal(z[:-1], -z[1:])
        assert z[-1] >= 0
        # Rebuild the last position: a won game's final mover had a win in one.
        last = obs[rows[-1]]
        mover = int(last[2, 0, 0])
        mine, theirs = last[0].reshape(-1), last[1].reshape(-1)
        bits = [sum(1 << i for i in range(9) if plane[i]) for plane in (mine, theirs)]
        x_bits, o_bits = (bits[0], bits[1]) if mover == 0 else (bits[1], bits[0])
        row = np.array([x_bits, o_bits, mover, 0, 0])
        if z[-1] == 1:
            assert max(minimax.move_scores(row).values()) > 0
    # The policy targets are distributions over legal moves.
    policy_targets = agent.replay.policy[:n]
    np.testing.assert_allclose(policy_targets.sum(1), 1, atol=1e-5)
    occupied = (obs[:, 0] + obs[:, 1]).reshape(n, 9) > 0
    assert (policy_targets[occupied] == 0).all()


def test_fast_searches_are_played_but_not_trained_on(tmp_path):
    """Playout-cap randomisation: the replay holds only the full searches' positions, and
    the simulations counted are the full and the fast searches'."""
    config = AlphaZeroConfig(
        **{**TINY, "num_parallel_games": 64},
        fast_simulations=2,
        full_search_prob=0.5,
        root_policy=RootPolicy.PUCT,
        run_dir=str(tmp_path),
    )
    worker = AlphaZero(config.game, config).workers.worker
    finished = worker.play(9)  # every game lasts 5-9 plies: each first game ends, no second
    assert len(finished.game_lengths) == 64
    plies = sum(finished.game_lengths)
    full = len(finished.value)
    assert 0.35 * plies < full < 0.65 * plies
    # 8 simulations for a full search, 2 for a fast one; 9 x 64 searched plies in all.
    assert 2 * 9 * 64 < finished.num_simulations < 8 * 9 * 64
    assert set(np.unique(finished.value)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(finished.policy.sum(axis=1), 1, atol=1e-5)


def test_openings_are_not_training_positions(tmp_path):
    config = AlphaZeroConfig(**TINY, opening_plies=3, run_dir=str(tmp_path))
    agent = AlphaZero(config.game, config)
    openings = agent.workers.worker.selfplay.opening_left.copy()
    finished = agent.workers.worker.play(9)
    # 8 games, each with at least 5 plies, so every first game ends and no second one can.
    assert len(finished.game_lengths) == 8
    assert len(finished.value) == sum(finished.game_lengths) - openings.sum()
    empty = (finished.obs[:, :2].sum(axis=(1, 2, 3)) == 0).sum()
    assert empty == (openings == 0).sum()  # a game with openings has no empty-board example


@pytest.mark.parametrize(
    "extra", [{}, {"opening_plies": 2, "fast_simulations": 3, "full_search_prob": 0.5}]
)
def test_resume_after_kill_continues_exactly(tmp_path, extra):
    config = AlphaZeroConfig(**TINY, **extra, run_dir=str(tmp_path / "a"))
    straight = AlphaZero(config.game, config)
    for _ in range(3):
        straight.iteration()

    killed = AlphaZero(config.game, config, run_dir=tmp_path / "b")
    for _ in range(2):
        killed.iteration()
    killed.counters["iteration"] = 2
    killed.checkpoint()
    saved_counters = dict(killed.counters)
    saved_replay = killed.replay.obs[: killed.replay.size].copy()
    del killed  # the process dies here

    resumed = AlphaZero.resume(tmp_path / "b")
    assert resumed.counters == saved_counters
    np.testing.assert_array_equal(resumed.replay.obs[: resumed.replay.size], saved_replay)
    resumed.iteration()
    assert resumed.counters["steps"] == straight.counters["steps"]
    assert resumed.counters["games"] == straight.counters["games"]
    np.testing.assert_array_equal(resumed.replay.value, straight.replay.value)
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_learn_writes_a_run_folder_and_resumes(tmp_path):
    config = AlphaZeroConfig(**TINY, num_iterations=2, eval_every=1, run_dir=str(tmp_path))
    agent = AlphaZero(config.game, config)
    result = agent.learn()
    assert "eval/win_rate_vs_random" in result
    run = agent.run_dir
    assert (run / "config.json").exists() and (run / "checkpoints" / "latest.safetensors").exists()
    assert len((run / "progress.csv").read_text().strip().splitlines()) == 3  # header + 2 rows
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    resumed = AlphaZero.resume(run)
    assert resumed.counters["iteration"] == 2
    player = AlphaZero.load(run).player(games.make("tic_tac_toe"))
    assert player.act(games.make("tic_tac_toe").initial_state(2), [[], []]).shape == (2,)


def test_bad_configs_and_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="num_simulations"):
        AlphaZeroConfig(num_simulations=0)
    with pytest.raises(UnknownNameError, match="unknown game"):
        AlphaZeroConfig(game="chequers")
    agent = AlphaZero("tic_tac_toe", AlphaZeroConfig(**TINY, run_dir=str(tmp_path)))
    agent.checkpoint()
    with pytest.raises(ValueError, match="is for tic_tac_toe, not connect_four"):
        AlphaZero.load(agent.run_dir).player(games.make("connect_four"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        AlphaZero.load(corrupt)
    with pytest.raises(FileNotFoundError):
        AlphaZero.resume(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="shipped agents"):
        AlphaZero.load(tmp_path / "no_such_agent.pt")


def test_the_root_proof_is_for_play_only(tmp_path):
    """The player searches after the root proof (by default the deepest in budget, 3
    plies on tic-tac-toe); self-play, its fast searches and the training evaluations do
    not; a learned model gets none by default."""
    config = AlphaZeroConfig(**TINY, fast_simulations=2, run_dir=str(tmp_path))
    agent = AlphaZero(config.game, config)
    game = agent.game
    player = agent.player()
    assert player.config.proof_plies == 3 and player.name == "agent@4,proof=3"
    assert agent.player(proof_plies=0).config.proof_plies == 0
    assert agent.player(proof_plies=0).name == "agent@4"
    assert agent.player(num_simulations=8, proof_plies=1).name == "agent@8,proof=1"
    settings = config.selfplay(game)
    assert settings.mcts.proof_plies == 0 and settings.fast_mcts.proof_plies == 0
    assert config.mcts(game, evaluation=True).proof_plies == 0
    fixed = dataclasses.replace(config, eval_proof_plies=2)
    assert fixed.mcts(game, evaluation=True, proof=True).proof_plies == 2
    learned = types.SimpleNamespace(spec=game.spec)  # not a GameModel: its terminals guess
    assert config.mcts(learned, evaluation=True, proof=True).proof_plies == 0
    with pytest.raises(ValueError, match="eval_proof_plies"):
        AlphaZeroConfig(**TINY, eval_proof_plies=-1)
    with pytest.raises(ValueError, match="proof_plies"):
        agent.player(proof_plies=-1)


def test_predict_plays_the_players_moves(tmp_path):
    """``predict`` (deterministic) searches as the player does, root proof included:
    the same moves on open tic-tac-toe positions, where the proof changes some of the
    untrained network's moves."""
    agent = AlphaZero("tic_tac_toe", AlphaZeroConfig(**TINY, run_dir=str(tmp_path)))
    game, rng = agent.game, np.random.default_rng(0)
    state = game.initial_state(64)
    for _ in range(3):  # three random plies: x, o, x; o to move, six empty cells
        legal = game.legal_actions(state).numpy()
        action = [rng.choice(np.flatnonzero(row)) for row in legal]
        state = game.step(state, torch.as_tensor(action)).state
    played = agent.predict(state)
    histories = [[]] * len(state)
    np.testing.assert_array_equal(played, agent.player().act(state, histories).numpy())
    without = agent.player(proof_plies=0).act(state, histories).numpy()
    assert (played != without).any()


@pytest.mark.slow
def test_tic_tac_toe_agent_never_loses_to_random(tmp_path):
    config = AlphaZeroConfig(
        game="tic_tac_toe", num_iterations=40, eval_every=40, eval_games=10, run_dir=str(tmp_path)
    )
    agent = AlphaZero(config.game, config)
    agent.learn()
    game = games.make("tic_tac_toe")
    player = AlphaZero.load(agent.run_dir).player(game, proof_plies=0)  # what it learned
    result = play_match(game, player, make_player("random", game, seed=3), 100)
    assert result.losses == 0 and result.wins >= 80


def test_shipped_connect_four_agent_loads_and_beats_random():
    from mbrl.algorithms.alphazero import shipped_agents

    assert "connect_four" in shipped_agents()
    game = games.make("connect_four")
    agent = AlphaZero.load("connect_four").player(game, num_simulations=16)
    result = play_match(game, agent, make_player("random", game, seed=0), 4)
    assert result.wins == 4
