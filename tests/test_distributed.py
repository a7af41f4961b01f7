import pytest

from mbrl.algorithms.alphazero import AlphaZero, AlphaZeroConfig, Backend

ray = pytest.importorskip("ray")

TINY = dict(
    game="tic_tac_toe",
    num_parallel_games=8,
    moves_per_iteration=9,
    num_simulations=4,
    batch_size=16,
    train_steps_per_iteration=1,
    num_blocks=1,
    channels=8,
    replay_size=500,
    eval_games=2,
    eval_simulations=2,
    eval_opponents=("random",),
)


def test_ray_actors_feed_the_learner_and_survive_a_death(tmp_path):
    config = AlphaZeroConfig(
        **TINY,
        backend=Backend.RAY,
        num_actors=2,
        num_iterations=3,
        eval_every=3,
        run_dir=str(tmp_path),
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        agent = AlphaZero(config.game, config)
        agent.iteration()
        # 8 games of tic-tac-toe, 9 moves each: every game ends within the iteration.
        assert agent.counters["games"] >= 8 and agent.replay.size >= 8 * 5
        games_before = agent.counters["games"]
        ray.kill(agent.workers.actors[0])  # an actor dies
        agent.iteration()
        assert agent.workers.restarts == 1
        assert agent.counters["games"] >= games_before + 8
        # Weights reach the actors: after a broadcast they hold the learner's parameters.
        weights = ray.get(agent.workers.actors[1].state_dict.remote())
        assert "selfplay" in weights
        agent.counters["iteration"] = 2
        agent.learn()  # the last iteration, evaluation and checkpoint through the same path
        assert (agent.run_dir / "checkpoints" / "latest.safetensors").exists()
    finally:
        ray.shutdown()
