"""MCTS simulations per second and self-play throughput against OpenSpiel, one run.

Four measurements, same process, same start position (the empty board):

1. **Random rollouts.** OpenSpiel's Python ``mcts.MCTSBot`` with
   ``RandomRolloutEvaluator(1)`` (uct_c 2, MCTS-Solver on: the classic bot of
   ``mbrl.games.players.OpenSpielMCTSPlayer``), timed on ``mcts_search`` from
   one position, against our batched ``search`` (PUCT, no root noise) with
   ``mbrl.planners.evaluators.RandomRolloutEvaluator`` over B copies of the position.
   Simulations/s = B * num_simulations / time (OpenSpiel: the root's
   ``explore_count`` / time).
2. **Network evaluator.** Ours: ``NetworkEvaluator`` with the game's
   ``PolicyValueNet`` (``NET_SIZES``), B = 1 and B = 256. OpenSpiel:
   ``MCTSBot`` set up as OpenSpiel's AlphaZero self-play does (PUCT
   ``SearchNode.puct_value``, uct_c 2, Dirichlet noise, ``solve=False``) with
   an AlphaZero evaluator. The installed open_spiel (2.0.x) implements
   ``alpha_zero.evaluator.AlphaZeroEvaluator`` and its models in JAX/Flax,
   which are not installed here, so ``TorchAlphaZeroEvaluator`` below is a
   line-for-line copy of that evaluator with the model call replaced by the
   SAME torch network (one state per call, batch of 1): observation tensor +
   legal mask, masked softmax, OpenSpiel's own ``LRUCache`` keyed on
   observation + mask bytes. OpenSpiel's MCTS calls ``evaluate`` on a leaf's
   first visit and ``prior`` on its second, so the cache is what keeps it at
   one forward per new node; the default keeps OpenSpiel's default size
   (2**16) and clears it before every timed search, so it only serves those
   same-search repeats and transpositions. ``--openspiel-cache-size 0``
   disables it (about two forwards per node).
3. **Self-play games per hour.** Ours: ``AlphaZero.play_moves`` with
   ``AlphaZeroConfig(game="connect_four", num_parallel_games=256,
   num_simulations=32)`` (Gumbel root, the training default). OpenSpiel: the
   networked ``MCTSBot`` playing both sides with the same simulations per move,
   full games, one at a time. Both are reported as plies/s and as games/hour
   ESTIMATED as plies/s * 3600 / ``--game-length`` (36 plies by default, for
   both sides alike); the measured OpenSpiel game length is printed too.
4. **Where our self-play time goes.** During the timed ``play_moves`` every
   layer is wrapped with a ``time.perf_counter`` timer (exclusive times:
   ``net.forward``; the numba tree kernels; the game's rules; the
   evaluator's, the search's and the self-play loop's own Python), and the
   share outside the network forward, (total - forward) / total, is printed
   with the breakdown. The wrappers cost about a microsecond per call against
   milliseconds per batched call; no library code is changed.
5. **Beside a busy core** (``--busy``). Every sims/s figure of parts 1-2 is
   also measured while a busy-loop process holds one core (pinned there; the
   benchmark is not pinned), idle and busy windows alternating, and the
   slowdown (idle sims/s over busy sims/s) is printed per row; OpenSpiel's
   single-threaded bot is the control (about 1x when nothing else runs).
   Then one random-rollout search per game and batch size is profiled idle
   and busy, and the microseconds per call of each numba kernel (the tree
   kernels and the game's) are compared.

    python benchmarks/mcts.py                                   # about a minute
    python benchmarks/mcts.py --busy                            # about two minutes
    python benchmarks/mcts.py --seconds 10 --selfplay-moves 8  # longer, steadier
"""

from __future__ import annotations

import collections
import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np
import pyspiel
import torch
import tyro
from _busy import BusyCore
from open_spiel.python.algorithms import mcts as spiel_mcts
from open_spiel.python.utils import lru_cache

import mbrl.planners._kernels as tree_kernels
import mbrl.planners.mcts as our_mcts
from mbrl import games
from mbrl.algorithms.alphazero import NET_SIZES, AlphaZero, AlphaZeroConfig, NetworkEvaluator
from mbrl.planners.evaluators import RandomRolloutEvaluator
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.planners.threads import BatchKernel
from mbrl.training.nets import PolicyValueNet


@dataclass(frozen=True, kw_only=True)
class Config:
    games: tuple[str, ...] = ("connect_four", "tic_tac_toe")
    """Games for parts 1-2 (part 3-4 self-play is connect four only)."""
    rollout_simulations: int = 400
    """Simulations per search with random rollouts on connect four."""
    tic_tac_toe_rollout_simulations: int = 100
    """The same on tic-tac-toe (few enough that the root is not solved)."""
    net_simulations: int = 32
    """Simulations per search with the network evaluator (and per self-play move)."""
    batches: tuple[int, ...] = (1, 256)
    """Our search batch sizes B (parallel positions)."""
    seconds: float = 3.0
    """Minimum time per sims/s measurement (after warm-up); at least one search."""
    selfplay_moves: int = 6
    """Timed moves of our 256 parallel self-play games (after one warm-up move)."""
    selfplay_games: int = 256
    """Our parallel self-play games."""
    openspiel_selfplay_games: int = 8
    """Full OpenSpiel self-play games timed."""
    game_length: float = 36.0
    """Plies per connect-four game used to turn plies/s into games/hour (both sides)."""
    openspiel_cache_size: int = 2**16
    """LRU cache of the OpenSpiel-style evaluator (OpenSpiel's default; 0: none)."""
    threads: int = 2
    """torch intra-op threads."""
    busy: bool = False
    """Also measure parts 1-2 and each numba kernel beside a busy-loop process on one core."""
    skip_selfplay: bool = False
    """Leave out parts 3-4 (self-play and its time breakdown)."""
    seed: int = 0


# ----------------------------------------------------------------- helpers
def timed(fn, seconds: float, windows: int = 3) -> float:
    """Units per second: ``fn()`` returns the units it did.

    After a warm-up call, runs ``windows`` windows of at least ``seconds / windows``
    each and returns the best window's rate: the 2 cores are shared with other
    jobs, and a burst of theirs should not count against either side.
    """
    fn()  # warm up (numba compilation, torch kernels, caches)
    best = 0.0
    for _ in range(windows):
        done, start = 0, time.perf_counter()
        while True:
            done += fn()
            if (elapsed := time.perf_counter() - start) >= seconds / windows:
                break
        best = max(best, done / elapsed)
    return best


def timed_idle_busy(fn, seconds: float, windows: int = 3) -> tuple[float, float]:
    """``(idle, busy)`` units per second: as :func:`timed`, idle and busy windows alternating
    (busy: a busy-loop process holds one core, see ``_busy.BusyCore``)."""
    fn()
    best = {False: 0.0, True: 0.0}
    for _ in range(windows):
        for busy in (False, True):
            with BusyCore() if busy else _Idle():
                done, start = 0, time.perf_counter()
                while True:
                    done += fn()
                    if (elapsed := time.perf_counter() - start) >= seconds / windows:
                        break
            best[busy] = max(best[busy], done / elapsed)
    return best[False], best[True]


class _Idle:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def rate(fn, config: Config) -> tuple[float, float | None]:
    """``(idle, busy or None)`` units per second of ``fn`` (busy only with ``--busy``)."""
    if config.busy:
        return timed_idle_busy(fn, 2 * config.seconds)
    return timed(fn, config.seconds), None


def make_net(game) -> PolicyValueNet:
    blocks, channels = NET_SIZES[game.spec.name]
    net = PolicyValueNet(game.spec.obs_shape, game.spec.num_actions, blocks, channels)
    return net.eval()


class TorchAlphaZeroEvaluator(spiel_mcts.Evaluator):
    """OpenSpiel's ``alpha_zero.evaluator.AlphaZeroEvaluator`` with a torch model.

    Same code path as OpenSpiel 2.0's evaluator (which imports JAX): one state at
    a time, ``observation_tensor`` + ``legal_actions_mask``, an ``LRUCache`` keyed
    on their bytes, ``model.inference`` = forward + masked softmax.
    """

    def __init__(self, net: PolicyValueNet, obs_shape, cache_size: int):
        self.net, self.obs_shape = net, obs_shape
        self.cache_size = cache_size
        self._cache = lru_cache.LRUCache(max(cache_size, 1))
        self.forwards = 0

    def clear_cache(self) -> None:
        self._cache.clear()

    @torch.no_grad()
    def _model_inference(self, obs: np.ndarray, mask: np.ndarray):
        self.forwards += 1
        x = torch.from_numpy(obs.astype(np.float32)).reshape(1, *self.obs_shape)
        logits, value = self.net(x)
        logits = logits[0].masked_fill(~torch.from_numpy(mask.astype(bool)), -torch.inf)
        return float(value[0]), torch.softmax(logits, 0).numpy()

    def _inference(self, state):
        obs = np.asarray(state.observation_tensor())
        mask = np.asarray(state.legal_actions_mask())
        if self.cache_size == 0:
            return self._model_inference(obs, mask)
        cache_key = obs.tobytes() + mask.tobytes()
        return self._cache.make(cache_key, lambda: self._model_inference(obs, mask))

    def evaluate(self, state):
        value, _ = self._inference(state)
        return np.array([value, -value])

    def prior(self, state):
        _, policy = self._inference(state)
        return [(action, policy[action]) for action in state.legal_actions()]


def openspiel_rollout_bot(spiel_game, simulations: int, seed: int) -> spiel_mcts.MCTSBot:
    random_state = np.random.RandomState(seed)
    return spiel_mcts.MCTSBot(
        spiel_game,
        uct_c=2.0,
        max_simulations=simulations,
        evaluator=spiel_mcts.RandomRolloutEvaluator(1, random_state),
        solve=True,
        random_state=random_state,
    )


def openspiel_az_bot(spiel_game, evaluator, simulations: int, seed: int) -> spiel_mcts.MCTSBot:
    """As ``open_spiel.python.algorithms.alpha_zero.alpha_zero._init_bot`` (self-play)."""
    return spiel_mcts.MCTSBot(
        spiel_game,
        2.0,  # Config.uct_c in OpenSpiel's examples
        simulations,
        evaluator,
        solve=False,
        random_state=np.random.RandomState(seed),
        dirichlet_noise=(0.25, 1.0),  # (policy_epsilon, policy_alpha)
        child_selection_fn=spiel_mcts.SearchNode.puct_value,
        dont_return_chance_node=True,
    )


def openspiel_search(bot, state, evaluator=None):
    def run() -> int:
        if evaluator is not None:
            evaluator.clear_cache()
        root = bot.mcts_search(state)
        if root.outcome is not None:
            print("  warning: OpenSpiel solved the root early; lower the simulations")
        return root.explore_count

    return run


def our_search(game, evaluator, batch: int, config: MCTSConfig, rng):
    root = game.initial_state(batch)

    def run() -> int:
        result = search(game, evaluator, root, config, rng)
        if result.tree.solved[:, 0].any():
            print("  warning: our search solved the root early; lower the simulations")
        return batch * config.num_simulations

    return run


# ------------------------------------------------- part 4: exclusive timers
class Profile:
    """Exclusive wall time per label for nested wrapped calls."""

    def __init__(self):
        self.exclusive = collections.defaultdict(float)
        self.calls = collections.Counter()
        self._stack: list[float] = []
        self._undo: list[tuple[object, str, object, bool]] = []

    def wrap(self, label: str, fn):
        def timed_call(*args, **kwargs):
            start = time.perf_counter()
            self._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                children = self._stack.pop()
                self.exclusive[label] += elapsed - children
                self.calls[label] += 1
                if self._stack:
                    self._stack[-1] += elapsed

        return timed_call

    def patch(self, owner, name: str, label: str) -> None:
        had = name in vars(owner)
        self._undo.append((owner, name, vars(owner).get(name), had))
        setattr(owner, name, self.wrap(label, getattr(owner, name)))

    def patch_kernel(self, owner, name: str, label: str) -> None:
        """Time a :class:`BatchKernel` attribute: both builds wrapped, its choice kept."""
        kernel = getattr(owner, name)
        self._undo.append((owner, name, kernel, name in vars(owner)))
        wrapped = BatchKernel(
            self.wrap(label, kernel.serial),
            self.wrap(label, kernel.parallel),
            kernel.min_parallel_batch,
            kernel.batch_arg,
        )
        setattr(owner, name, wrapped)

    def patch_game_kernels(self, game) -> None:
        """Time each numba kernel of a native game (its ``kernels`` record replaced)."""
        kernels = game.kernels
        self._undo.append((game, "kernels", kernels, True))
        fields = {f.name: getattr(kernels, f.name) for f in dataclasses.fields(kernels)}
        timed_kernels = {}
        for name, kernel in fields.items():
            timed_kernels[name] = BatchKernel(
                self.wrap(f"game {name}", kernel.serial),
                self.wrap(f"game {name}", kernel.parallel),
                kernel.min_parallel_batch,
                kernel.batch_arg,
            )
        game.kernels = dataclasses.replace(kernels, **timed_kernels)

    def restore(self) -> None:
        for owner, name, old, had in reversed(self._undo):
            if had:
                setattr(owner, name, old)
            else:
                delattr(owner, name)
        self._undo.clear()


TREE_KERNELS = ("select", "expand_and_backup", "halving_root_action", "gumbel_root_scores")
CATEGORIES = {
    "network forward": ["net.forward"],
    "tree kernels (numba)": [*(f"tree {name}" for name in TREE_KERNELS), "_result"],
    "game rules (step/legal/observe/to_play/...)": [
        "game.step",
        "game.legal_actions",
        "game.observe",
        "game.to_play",
        "game.returns",
        "game.initial_state",
    ],
    "evaluator glue (to/cpu/float)": ["NetworkEvaluator.evaluate"],
    "search glue (tree alloc, gather/scatter states, masks)": [
        "search",
        "_expand_root",
        "_evaluate_children",
        "Tree.allocate",
        "_masked_logits",
    ],
}


def instrument(profile: Profile, agent: AlphaZero) -> None:
    """Wrap every layer of self-play at class/module level (whichever object plays)."""
    profile.patch(PolicyValueNet, "forward", "net.forward")
    profile.patch(NetworkEvaluator, "evaluate", "NetworkEvaluator.evaluate")
    game_class = type(agent.game)
    for name in ["step", "legal_actions", "observe", "to_play", "returns", "initial_state"]:
        profile.patch(game_class, name, f"game.{name}")
    for name in TREE_KERNELS:
        profile.patch_kernel(tree_kernels, name, f"tree {name}")
    for name in ["_result", "_expand_root", "_evaluate_children", "_masked_logits"]:
        if hasattr(our_mcts, name):
            profile.patch(our_mcts, name, name)
    profile.patch(our_mcts.Tree, "allocate", "Tree.allocate")
    # ``search`` as imported by whichever module runs self-play (alphazero, selfplay, ...)
    original = our_mcts.search
    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("mbrl"):
            if vars(module).get("search") is original and module is not our_mcts:
                profile.patch(module, "search", "search")


# ------------------------------------------------------------------ parts
def rollout_rows(name: str, config: Config):
    game = games.make(name)
    spiel_game = pyspiel.load_game(name)
    sims = (
        config.tic_tac_toe_rollout_simulations
        if name == "tic_tac_toe"
        else config.rollout_simulations
    )
    bot = openspiel_rollout_bot(spiel_game, sims, config.seed)
    peer = rate(openspiel_search(bot, spiel_game.new_initial_state()), config)
    rng = np.random.default_rng(config.seed)
    evaluator = RandomRolloutEvaluator(game, 1, rng)
    mcts = rollout_config(name, config)
    rows = []
    for batch in config.batches:
        ours = rate(our_search(game, evaluator, batch, mcts, rng), config)
        rows.append(("random rollout", name, sims, batch, ours, peer))
        print(f"{name} rollouts B={batch}: ours {ours[0]:,.0f} sims/s, openspiel {peer[0]:,.0f}")
    return rows


def rollout_config(name: str, config: Config) -> MCTSConfig:
    sims = (
        config.tic_tac_toe_rollout_simulations
        if name == "tic_tac_toe"
        else config.rollout_simulations
    )
    return MCTSConfig(num_simulations=sims, root_policy=RootPolicy.PUCT, dirichlet_fraction=0.0)


def network_rows(name: str, config: Config):
    game = games.make(name)
    spiel_game = pyspiel.load_game(name)
    sims = config.net_simulations
    net = make_net(game)
    spiel_eval = TorchAlphaZeroEvaluator(net, game.spec.obs_shape, config.openspiel_cache_size)
    bot = openspiel_az_bot(spiel_game, spiel_eval, sims, config.seed)
    start = spiel_game.new_initial_state()
    spiel_eval.forwards = 0
    peer_sims = [0]

    def peer_run() -> int:
        done = openspiel_search(bot, start, spiel_eval)()
        peer_sims[0] += done
        return done

    peer = rate(peer_run, config)
    per_sim = spiel_eval.forwards / peer_sims[0]
    rng = np.random.default_rng(config.seed)
    evaluator = NetworkEvaluator(game, net)
    # PUCT with root noise, as OpenSpiel's AlphaZero bot (self-play below uses our default)
    mcts = AlphaZeroConfig(game=name, num_simulations=sims, root_policy=RootPolicy.PUCT).mcts(game)
    rows = []
    for batch in config.batches:
        ours = rate(our_search(game, evaluator, batch, mcts, rng), config)
        rows.append(("network", name, sims, batch, ours, peer))
        print(
            f"{name} network B={batch}: ours {ours[0]:,.0f} sims/s, openspiel {peer[0]:,.0f} "
            f"({per_sim:.2f} forwards/simulation)"
        )
    return rows


def kernel_rows(name: str, batch: int, config: Config):
    """Per numba kernel of a random-rollout search: microseconds per call, idle and busy."""
    game = games.make(name)
    rng = np.random.default_rng(config.seed)
    run = our_search(
        game, RandomRolloutEvaluator(game, 1, rng), batch, rollout_config(name, config), rng
    )
    run()  # warm up
    best: dict[bool, dict[str, float]] = {False: {}, True: {}}
    for _ in range(3):
        for busy in (False, True):
            profile = Profile()
            for kernel in TREE_KERNELS:
                profile.patch_kernel(tree_kernels, kernel, f"tree {kernel}")
            profile.patch_game_kernels(game)
            try:
                with BusyCore() if busy else _Idle():
                    start = time.perf_counter()
                    while time.perf_counter() - start < config.seconds / 3:
                        run()
            finally:
                profile.restore()
            for label, seconds in profile.exclusive.items():
                per_call = seconds / profile.calls[label] * 1e6
                best[busy][label] = min(best[busy].get(label, np.inf), per_call)
    return [
        (label, name, batch, best[False][label], best[True][label])
        for label in sorted(best[False])
        if label in best[True]
    ]


def openspiel_selfplay(config: Config):
    """Plies/s and mean game length of the networked MCTSBot playing itself."""
    name = "connect_four"
    game = games.make(name)
    spiel_game = pyspiel.load_game(name)
    net = make_net(game)
    evaluator = TorchAlphaZeroEvaluator(net, game.spec.obs_shape, config.openspiel_cache_size)
    bot = openspiel_az_bot(spiel_game, evaluator, config.net_simulations, config.seed)
    rng = np.random.RandomState(config.seed)
    openspiel_search(bot, spiel_game.new_initial_state(), evaluator)()  # warm up
    evaluator.clear_cache()
    plies, start = 0, time.perf_counter()
    for _ in range(config.openspiel_selfplay_games):
        state = spiel_game.new_initial_state()
        while not state.is_terminal():  # as alpha_zero._play_game, temperature 1 then 0
            root = bot.mcts_search(state)
            policy = np.zeros(spiel_game.num_distinct_actions())
            for child in root.children:
                policy[child.action] = child.explore_count
            if state.move_number() >= 10:  # temperature_drop
                action = root.best_child().action
            else:
                action = rng.choice(len(policy), p=policy / policy.sum())
            state.apply_action(action)
            plies += 1
    elapsed = time.perf_counter() - start
    return plies / elapsed, plies / config.openspiel_selfplay_games


def our_selfplay(config: Config):
    """Plies/s of ``AlphaZero.play_moves`` and the exclusive-time profile of the timed moves."""
    az_config = AlphaZeroConfig(
        game="connect_four",
        num_parallel_games=config.selfplay_games,
        num_simulations=config.net_simulations,
        seed=config.seed,
    )
    agent = AlphaZero(az_config.game, az_config)
    agent.play_moves(1)  # warm up
    profile = Profile()
    instrument(profile, agent)
    try:
        start = time.perf_counter()
        agent.play_moves(config.selfplay_moves)
        total = time.perf_counter() - start
    finally:
        profile.restore()
    plies = config.selfplay_games * config.selfplay_moves
    return plies / total, total, profile


# -------------------------------------------------------------------- main
def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numba {numba.__version__} "
        f"({numba.get_num_threads()} threads), open_spiel {pyspiel.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []
    for name in config.games:
        rows += rollout_rows(name, config)
    for name in config.games:
        rows += network_rows(name, config)
    print_search_rows(rows, config)
    if config.busy:
        print_kernel_rows(config)
    if not config.skip_selfplay:
        selfplay(config)


def print_search_rows(rows, config: Config) -> None:
    busy_header = " ours slowdown busy | OpenSpiel slowdown busy |" if config.busy else ""
    print()
    print(
        "| evaluator | game | simulations | B | ours sims/s | OpenSpiel sims/s | ours / OpenSpiel |"
        + busy_header
    )
    print("|---|---|---|---|---|---|---|" + ("---|---|" if config.busy else ""))
    for kind, name, sims, batch, (ours, ours_busy), (peer, peer_busy) in rows:
        busy = f" {ours / ours_busy:.2f}x | {peer / peer_busy:.2f}x |" if config.busy else ""
        print(
            f"| {kind} | {name} | {sims} | {batch} | {ours:,.0f} | {peer:,.0f} "
            f"| {ours / peer:.1f}x |" + busy
        )


def print_kernel_rows(config: Config) -> None:
    print()
    print(
        "Numba kernels inside a random-rollout search, microseconds per call, idle and "
        "beside a busy core (busy / idle above 1 is a slowdown)."
    )
    print()
    print("| kernel | game | B | idle us/call | busy us/call | busy / idle |")
    print("|---|---|---|---|---|---|")
    for name in config.games:
        for batch in config.batches:
            for label, game, B, idle, busy in kernel_rows(name, batch, config):
                print(
                    f"| {label} | {game} | {B} | {idle:,.1f} | {busy:,.1f} | {busy / idle:.2f}x |"
                )


def selfplay(config: Config) -> None:
    peer_plies, peer_length = openspiel_selfplay(config)
    print(f"openspiel self-play: {peer_plies:.1f} plies/s, {peer_length:.1f} plies/game")
    our_plies, total, profile = our_selfplay(config)
    print(
        f"our self-play: {our_plies:.1f} plies/s; load average now {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    length = config.game_length
    print()
    print(
        f"| self-play, connect_four, {config.net_simulations} simulations/move "
        "| plies/s | games/hour (estimated) |"
    )
    print("|---|---|---|")
    print(
        f"| ours, `play_moves`, {config.selfplay_games} parallel games | {our_plies:,.1f} "
        f"| {our_plies * 3600 / length:,.0f} |"
    )
    print(
        f"| OpenSpiel `MCTSBot` + network, one game | {peer_plies:,.1f} "
        f"| {peer_plies * 3600 / length:,.0f} |"
    )
    print(f"| ours / OpenSpiel | {our_plies / peer_plies:.1f}x | {our_plies / peer_plies:.1f}x |")

    print()
    forward = profile.exclusive["net.forward"]
    print(
        f"| our self-play time ({config.selfplay_moves} moves x {config.selfplay_games} games, "
        f"{total:.1f} s) | seconds | share |"
    )
    print("|---|---|---|")
    accounted = 0.0
    for category, labels in CATEGORIES.items():
        seconds = sum(profile.exclusive[label] for label in labels)
        accounted += seconds
        print(f"| {category} | {seconds:.2f} | {seconds / total:.1%} |")
    rest = total - accounted
    print(f"| self-play loop glue (replay, outcomes, actions) | {rest:.2f} | {rest / total:.1%} |")
    print(
        f"| **outside the network forward** | {total - forward:.2f} | "
        f"**{(total - forward) / total:.1%}** |"
    )
    detail = ", ".join(
        f"{label} {profile.exclusive[label]:.2f}s/{profile.calls[label]}"
        for label in sorted(profile.exclusive, key=profile.exclusive.get, reverse=True)
    )
    print()
    print(f"per call site (exclusive seconds/calls): {detail}")


if __name__ == "__main__":
    main(tyro.cli(Config))
