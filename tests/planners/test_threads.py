import dataclasses
import math

import numba
import numpy as np
import pytest
import torch

import mbrl.planners._kernels as tree_kernels
from mbrl import games
from mbrl.planners import threads
from mbrl.planners.evaluators import RandomRolloutEvaluator
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.planners.threads import PROBE_SHARE, BatchKernel, set_num_threads

TREE_KERNELS = ("select", "expand_and_backup", "halving_root_action", "gumbel_root_scores")


def mid_game(game, batch, seed):
    rng = np.random.default_rng(seed)
    state = game.initial_state(batch)
    for _ in range(6):
        legal = game.legal_actions(state).numpy()
        live = legal.any(1)
        actions = (rng.random(legal.shape) * np.where(live[:, None], legal, True)).argmax(1)
        rows = torch.from_numpy(np.flatnonzero(live))
        state[rows] = game.step(state[rows], torch.from_numpy(actions)[rows]).state
    return state.numpy()


@pytest.mark.parametrize("name", ["tic_tac_toe", "connect_four", "othello"])
def test_serial_and_parallel_game_kernels_agree(name):
    game = games.make(name)
    B, A = 300, game.spec.num_actions
    states = mid_game(game, B, seed=0)
    kernels = game.kernels
    outputs = {}
    for build in ("serial", "parallel"):
        mask = np.zeros((B, A), np.bool_)
        getattr(kernels.legal, build)(states, mask)
        actions = np.where(mask.any(1), mask.argmax(1), 0).astype(np.int64)
        out, rewards, errors = np.zeros_like(states), np.zeros(B, np.float32), np.zeros(B, np.int8)
        num_errors = getattr(kernels.step, build)(states, actions, out, rewards, errors)
        obs = np.zeros((B, *game.spec.obs_shape), np.float32)
        getattr(kernels.observe, build)(states, obs)
        cells = np.zeros((B, *game.spec.board_shape), np.int8)
        getattr(kernels.board, build)(states, cells)
        outcome = np.zeros(B, np.float32)
        seeds = np.arange(B, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        getattr(kernels.playout, build)(states, seeds, outcome)
        outputs[build] = (mask, out, rewards, errors, num_errors, obs, cells, outcome)
    for serial, parallel in zip(outputs["serial"], outputs["parallel"], strict=True):
        np.testing.assert_array_equal(serial, parallel)
    assert outputs["serial"][4] == int(outputs["serial"][3].sum())


def test_step_counts_illegal_rows():
    game = games.make("connect_four")
    states = game.initial_state(4).numpy()
    actions = np.array([0, 7, -1, 3], np.int64)
    out, rewards, errors = np.zeros_like(states), np.zeros(4, np.float32), np.zeros(4, np.int8)
    for build in (game.kernels.step.serial, game.kernels.step.parallel):
        errors[:] = 0
        assert build(states, actions, out, rewards, errors) == 2
        assert errors.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_search_same_with_parallel_tree_kernels(policy, monkeypatch):
    game = games.make("connect_four")
    roots = torch.from_numpy(mid_game(game, 8, seed=1))
    roots = roots[~game.is_terminal(roots)]
    config = MCTSConfig(num_simulations=40, root_policy=policy)
    results = []
    for min_parallel_batch in (1 << 30, 1):
        for name in TREE_KERNELS:
            kernel = getattr(tree_kernels, name)
            forced = dataclasses.replace(
                kernel, min_parallel_batch=min_parallel_batch, _cost=[math.inf, 0.0], _calls=[2, 2]
            )
            forced._next_probe = math.inf  # never probe: above the threshold always parallel
            monkeypatch.setattr(tree_kernels, name, forced)
        evaluator = RandomRolloutEvaluator(game, 1, np.random.default_rng(3))
        results.append(search(game, evaluator, roots, config, np.random.default_rng(4)))
    serial, parallel = results
    assert torch.equal(serial.visit_counts, parallel.visit_counts)
    assert torch.equal(serial.policy, parallel.policy)
    assert torch.equal(serial.root_value, parallel.root_value)
    assert np.array_equal(serial.tree.children, parallel.tree.children)


class FakeClock:
    """``time.perf_counter`` for the chooser: the fake builds advance it by their cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_batch_kernel_runs_the_faster_thread_count_and_probes_the_other(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(threads, "_clock", clock)
    cost = {"serial": 1.0, "one": 1.0, "all": 0.25}  # seconds per row
    log: list[str] = []

    def serial(rows):
        log.append("serial")
        clock.now += cost["serial"] * rows.shape[0]

    def parallel(rows):
        build = "one" if numba.get_num_threads() == 1 else "all"
        log.append(build)
        clock.now += cost[build] * rows.shape[0]

    kernel = BatchKernel(serial, parallel, 16)
    kernel(np.zeros(4))  # below the threshold: the serial build, untimed
    assert log == ["serial"] and kernel._calls == [0, 0]
    rows = np.zeros(100)
    for _ in range(4):  # two calls of each thread count: the first of each may compile
        kernel(rows)
    assert log[1:] == ["one", "one", "all", "all"]
    log.clear()
    for _ in range(5):
        kernel(rows)
    assert log == ["one"] + ["all"] * 4  # a probe at once, then the faster count
    # The next probe waits elapsed / PROBE_SHARE after the last (100 rows x 1.0 s).
    assert kernel._next_probe == pytest.approx(clock.now - 4 * 25.0 + 100.0 / PROBE_SHARE)
    # A core is taken: all threads turn slow and one thread takes over.
    cost["all"] = 20.0
    log.clear()
    for _ in range(3):
        kernel(rows)
    assert log == ["all", "one", "one"]
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored


def test_set_num_threads_bounds_numba_threads():
    before = numba.get_num_threads()
    try:
        assert set_num_threads(1) == 1
        assert numba.get_num_threads() == 1
        assert set_num_threads(10_000) == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_threads"):
            set_num_threads(bad)
