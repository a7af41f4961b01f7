"""Batched Monte-Carlo tree search over any discrete-action :class:`~mbrl.model.Model`.

The tree is a set of preallocated arrays over B independent searches and
N = num_simulations + 1 nodes (mctx-style; A more with ``proof_plies``); selection
and backup are numba kernels that loop over rows, so a simulation costs one
``model.step`` and one ``evaluator.evaluate`` for all B games, whatever B is::

    for simulation in range(num_simulations):
        node, action = select(tree)                  # numba: descend to an unexpanded edge
        step = model.step(tree.states[node], action) # one batched model call
        evaluation = evaluator.evaluate(step.state)  # one batched network call
        expand_and_backup(tree, node, action, step, evaluation)   # numba

Two root policies (:class:`RootPolicy`):

- ``PUCT``: AlphaZero (Silver et al. 2018). PUCT everywhere,
  ``Q(s,a) + c_puct P(s,a) sqrt(N(s)) / (1 + N(s,a))`` with unvisited Q = 0,
  Dirichlet noise on the root prior; the policy target is the root visit
  distribution.
- ``GUMBEL``: Gumbel AlphaZero (Danihelka et al. 2022). At the root, Gumbel
  top-k sampling of m actions and sequential halving over the simulation
  budget; inside the tree, the deterministic rule
  ``argmax pi'(a) - N(a) / (1 + sum N)`` with ``pi' = softmax(logits + sigma(q))``;
  the policy target is ``softmax(logits + sigma(completed q))``, which is an
  improvement of the prior even with very few simulations.

Values are from the point of view of the player to move at a node; an edge's
value is ``reward + value(child)`` when the child has the same player to move
and ``reward - value(child)`` when it changes (two-player zero-sum games).

Solved values: a terminal child has an exact value (its reward). A node is
solved when one of its edges has a proven value of at least ``win_value``
(a forced win) or when every legal edge is proven; solved nodes back up their
exact value and are never searched as if open (selection at a solved node
takes its best proven edge). With ``find_terminal_moves`` (the default) every new
node steps all its legal moves once, so the moves that end the game are proven
edges from the start, visited or not: a win in one is taken and proven as soon as
its node exists, and a reply that wins at once shows the move before it as lost,
whatever the prior says of that reply. With ``proof_plies`` the root goes further
before the simulations: a full-width exact search of that many plies
(:mod:`mbrl.planners.proof`) makes every root move it decides a solved child, so
a forced win a few plies deep is played and a move refuted within them is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache

import numpy as np
import torch
from torch import Tensor

from mbrl.model import Evaluator, Model, ShapeError

from . import _kernels as kernels
from ._kernels import GUMBEL_RULE, NEG_INF, PUCT_RULE, TREE_FIELDS, UNVISITED, TreeRecord
from .proof import prove_root_moves

__all__ = [
    "MCTSConfig",
    "RootPolicy",
    "SearchResult",
    "Tree",
    "forced_visits",
    "prune_forced_playouts",
    "search",
]


class RootPolicy(Enum):
    PUCT = "puct"
    """AlphaZero: PUCT with Dirichlet noise at the root, visit-count policy targets."""
    GUMBEL = "gumbel"
    """Gumbel AlphaZero: Gumbel top-k, sequential halving, completed-Q policy targets."""


@dataclass(frozen=True, kw_only=True)
class MCTSConfig:
    num_simulations: int = 64
    """Simulations per search (one model step + one evaluator call each); 16-800."""
    root_policy: RootPolicy = RootPolicy.PUCT
    """PUCT (AlphaZero) or GUMBEL (Gumbel AlphaZero, learns with few simulations)."""
    c_puct: float = 1.25
    """PUCT exploration constant (AlphaZero's c_init, 1-2.5)."""
    fpu_reduction: float | None = None
    """PUCT: first-play urgency. An unvisited edge is valued at the node's mean value minus
    ``fpu_reduction * sqrt(prior mass of the visited edges)`` (Leela Zero, KataGo: 0.2-0.25)
    instead of 0, so the search widens only where the visited moves disappoint."""
    forced_playouts: float = 0.0
    """PUCT: KataGo's forced playouts, k. Each visited root edge whose visits are below
    ``sqrt(k P(a) sum N)`` is taken first (k = 2 in KataGo; 0: off), and those playouts are
    pruned from the policy target afterwards, as far as PUCT says they were forced."""
    dirichlet_alpha: float = 0.3
    """Dirichlet noise concentration at the root (AlphaZero: 0.3 chess, 0.03 go; ~10/A)."""
    dirichlet_fraction: float = 0.25
    """Share of noise in the root prior under PUCT (0 for evaluation games)."""
    max_num_considered_actions: int = 16
    """Gumbel: actions sampled at the root (m; the paper uses 16)."""
    gumbel_scale: float = 1.0
    """Gumbel: scale of the Gumbel noise (1 for self-play, 0 for deterministic play)."""
    c_visit: float = 50.0
    """Gumbel: sigma(q) = (c_visit + max N) * c_scale * q (paper: 50)."""
    c_scale: float = 0.1
    """Gumbel: see c_visit (paper and mctx: 0.1)."""
    win_value: float | None = 1.0
    """Edge value that proves a node won (1 for win/draw/loss games; None: no short-cut)."""
    find_terminal_moves: bool = True
    """When a node is made, step each of its legal moves once (one batched model call for
    all new nodes) to find the moves that end the game: a win in one solves the node at
    once, and a move into a loss, a draw or a win is known exactly before it is visited,
    so no selection rule can miss it. False saves that step (a costly learned model)."""
    proof_plies: int = 0
    """Before the simulations, an exact full-width search of this many plies from each
    root (:func:`~mbrl.planners.proof.prove_root_moves`: model steps, no evaluator)
    proves the root moves decided within it: a win in three behind a move the prior
    dislikes is played, a move the opponent refutes within the depth is not. Costs up to
    ``A + ... + A^plies`` model steps per root (connect four at 4: 2,800); 0: off. For
    exact models only."""

    def __post_init__(self):
        checks = {
            "num_simulations": self.num_simulations >= 1,
            "c_puct": self.c_puct >= 0,
            "fpu_reduction": self.fpu_reduction is None or self.fpu_reduction >= 0,
            "forced_playouts": self.forced_playouts >= 0,
            "dirichlet_alpha": self.dirichlet_alpha > 0,
            "dirichlet_fraction": 0 <= self.dirichlet_fraction <= 1,
            "max_num_considered_actions": self.max_num_considered_actions >= 1,
            "gumbel_scale": self.gumbel_scale >= 0,
            "c_visit": self.c_visit >= 0,
            "c_scale": self.c_scale >= 0,
            "proof_plies": self.proof_plies >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"MCTSConfig.{name} is out of range: {getattr(self, name)!r}")
        if not isinstance(self.root_policy, RootPolicy):
            raise ValueError(
                f"MCTSConfig.root_policy must be a RootPolicy, got {self.root_policy!r}"
            )


@dataclass
class Tree:
    """Search trees for B rows, N nodes each, A actions (node 0 is the root)."""

    visits: np.ndarray  # [B, N] int32
    value_sum: np.ndarray  # [B, N] float32, for the player to move at the node
    raw_value: np.ndarray  # [B, N] float32, the evaluator's value at expansion
    to_play: np.ndarray  # [B, N] int64
    terminal: np.ndarray  # [B, N] bool
    solved: np.ndarray  # [B, N] bool
    solved_value: np.ndarray  # [B, N] float32
    parent: np.ndarray  # [B, N] int32
    parent_action: np.ndarray  # [B, N] int32
    children: np.ndarray  # [B, N, A] int32, UNVISITED = not expanded
    child_reward: np.ndarray  # [B, N, A] float32, reward of the mover at the node
    terminal_edge: np.ndarray  # [B, N, A] bool, the move ends the game (known at creation)
    logits: np.ndarray  # [B, N, A] float32, -inf where illegal
    prior: np.ndarray  # [B, N, A] float32, softmax of logits
    num_nodes: np.ndarray  # [B] int32
    states: Tensor  # [B, N, *state_shape]

    @classmethod
    def allocate(
        cls, batch_size: int, num_nodes: int, num_actions: int, root_state: Tensor
    ) -> Tree:
        B, N, A = batch_size, num_nodes, num_actions
        return cls(
            visits=np.zeros((B, N), np.int32),
            value_sum=np.zeros((B, N), np.float32),
            raw_value=np.zeros((B, N), np.float32),
            to_play=np.zeros((B, N), np.int64),
            terminal=np.zeros((B, N), np.bool_),
            solved=np.zeros((B, N), np.bool_),
            solved_value=np.zeros((B, N), np.float32),
            parent=np.full((B, N), -1, np.int32),
            parent_action=np.full((B, N), -1, np.int32),
            children=np.full((B, N, A), UNVISITED, np.int32),
            child_reward=np.zeros((B, N, A), np.float32),
            terminal_edge=np.zeros((B, N, A), np.bool_),
            logits=np.full((B, N, A), NEG_INF, np.float32),
            prior=np.zeros((B, N, A), np.float32),
            num_nodes=np.ones(B, np.int32),
            states=root_state.new_zeros((B, N, *root_state.shape[1:])),
        )

    @cached_property
    def record(self) -> TreeRecord:
        """The arrays above as one numba record for the kernels (same memory, not a copy)."""
        return TreeRecord(*(getattr(self, name) for name in TREE_FIELDS))

    def edge_visits(self, node: int = 0) -> np.ndarray:
        """``[B, A]`` visit counts of the edges below ``node`` (the root by default)."""
        idx = self.children[:, node]
        rows = np.arange(idx.shape[0])[:, None]
        return np.where(idx >= 0, self.visits[rows, np.maximum(idx, 0)], 0)

    def edge_values(self, node: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``([B, A] Q, [B, A] proven)``: the value of each edge below ``node`` for the
        player to move there (0 where unvisited), and whether that value is exact."""
        out = np.zeros(self.children.shape[::2], np.float32)
        proven = np.zeros(self.children.shape[::2], np.bool_)
        kernels.edge_values(self.record, node, out, proven)
        return out, proven


@dataclass(frozen=True)
class SearchResult:
    action: Tensor
    """[B] int64: the move to play (PUCT: most visited; Gumbel: sequential halving's winner;
    never a move proven lost while another is not; a solved root: its best proven move)."""
    policy: Tensor
    """[B, A] float32 policy target (PUCT: visit distribution; Gumbel: completed-Q policy)."""
    visit_counts: Tensor
    """[B, A] int64 root edge visits."""
    q_values: Tensor
    """[B, A] float32 root edge values for the player to move (0 where unvisited)."""
    root_value: Tensor
    """[B] float32 search value of the root for the player to move."""
    tree: Tree


# --------------------------------------------------------------- the search
@lru_cache(maxsize=64)
def considered_visits_table(max_num_considered: int, num_simulations: int) -> np.ndarray:
    """``[m + 1, num_simulations]``: sequential halving's visit level per simulation.

    Row m lists, for each simulation, the visit count an action must have to be
    chosen at the root when m actions are considered (as mctx's
    ``get_table_of_considered_visits``).
    """
    table = np.zeros((max_num_considered + 1, num_simulations), np.int32)
    for m in range(max_num_considered + 1):
        if m <= 1:
            table[m] = np.arange(num_simulations)
            continue
        log2max = math.ceil(math.log2(m))
        sequence: list[int] = []
        visits = [0] * m
        considered = m
        while len(sequence) < num_simulations:
            extra = max(1, int(num_simulations / (log2max * considered)))
            for _ in range(extra):
                sequence.extend(visits[:considered])
                for i in range(considered):
                    visits[i] += 1
            considered = max(2, considered // 2)
        table[m] = sequence[:num_simulations]
    return table


def _masked_logits(logits: Tensor, legal: Tensor) -> np.ndarray:
    out = logits.detach().float().cpu().numpy().astype(np.float32, copy=True)
    out[~legal.cpu().numpy()] = NEG_INF
    return out


def _numpy(x: Tensor, dtype) -> np.ndarray:
    """``x`` as a C-contiguous numpy array of ``dtype`` (a view where it already is one)."""
    try:
        array = x.numpy()  # a CPU tensor that needs no grad: no copy
    except (RuntimeError, TypeError):  # needs grad, lives on a device, or is bfloat16
        x = x.detach().cpu()
        array = (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.ascontiguousarray(array, dtype)


def _rules(config: MCTSConfig) -> kernels.Rules:
    """The search constants for the kernels; the interior selection rule is chosen here."""
    gumbel = config.root_policy is RootPolicy.GUMBEL
    return kernels.make_rules(
        interior_rule=GUMBEL_RULE if gumbel else PUCT_RULE,
        c_puct=config.c_puct,
        c_visit=config.c_visit,
        c_scale=config.c_scale,
        win_value=math.inf if config.win_value is None else float(config.win_value),
        fpu_reduction=-1.0 if config.fpu_reduction is None else config.fpu_reduction,
        forced_playouts=config.forced_playouts if config.root_policy is RootPolicy.PUCT else 0.0,
    )


def _gumbel_root(tree: Tree, rules, gumbel: np.ndarray):
    """``(score [B, A], sigma_q [B, A])`` of the root edges, see ``gumbel_root_scores``."""
    B, A = gumbel.shape
    score = np.empty((B, A), np.float32)
    sigma_q = np.empty((B, A), np.float32)
    kernels.gumbel_root_scores(tree.record, rules, gumbel, score, sigma_q)
    return score, sigma_q


def _check_inputs(model: Model, root_state: Tensor) -> None:
    if not model.spec.is_discrete:
        raise ValueError(f"MCTS needs discrete actions; {model.spec.name} is continuous")
    if root_state.ndim < 1 or tuple(root_state.shape[1:]) != model.spec.state_shape:
        raise ShapeError(
            f"root_state must be [B, *{model.spec.state_shape}], got {list(root_state.shape)}"
        )


def search(
    model: Model,
    evaluator: Evaluator,
    root_state: Tensor,
    config: MCTSConfig,
    rng: np.random.Generator,
) -> SearchResult:
    """Run ``config.num_simulations`` simulations from each of the B root states.

    Args:
        model: any discrete-action model (exact game or learned).
        evaluator: gives ``logits [B, A]`` and ``value [B]`` (player to move) of states.
        root_state: ``[B, *state_shape]`` non-terminal states.
        config: search settings.
        rng: source of the root noise (Dirichlet or Gumbel).
    """
    _check_inputs(model, root_state)
    B, A = root_state.shape[0], model.spec.num_actions
    N = config.num_simulations + 1 + (A if config.proof_plies else 0)  # + proven children
    tree = Tree.allocate(B, N, A, root_state)
    rules = _rules(config)
    legal = _expand_root(model, evaluator, root_state, tree, config, rng)
    proof = None
    if config.proof_plies:
        proof = prove_root_moves(model, root_state, config.proof_plies, config.win_value)
        ends, rewards = proof.ends & legal, proof.reward
    elif config.find_terminal_moves:
        ends, rewards = _terminal_moves(model, root_state, legal)
    if proof is not None or config.find_terminal_moves:
        kernels.set_root_terminal_edges.for_batch(B)(tree.record, rules, ends, rewards)
    if proof is not None:  # the other proven moves: solved children of the root
        kernels.set_root_proven_children.for_batch(B)(
            tree.record, rules, proof.proven, proof.reward, proof.child_to_play, proof.child_value
        )
    gumbel = np.zeros((B, A), np.float32)
    if config.root_policy is RootPolicy.GUMBEL:
        gumbel = (rng.gumbel(size=(B, A)) * config.gumbel_scale).astype(np.float32)
        halving = _SequentialHalving(tree, rules, gumbel, legal, config)
    # The batch size decides serial or parallel kernels once for the whole search.
    select = kernels.select.for_batch(B)
    expand_and_backup = kernels.expand_and_backup.for_batch(B)
    states = _States(tree.states)
    node, action, leaf = (np.zeros(B, np.int64) for _ in range(3))
    root_action = np.full(B, -1, np.int64)
    for simulation in range(config.num_simulations):
        if config.root_policy is RootPolicy.GUMBEL:  # sequential halving picks the root edge
            root_action = halving.root_action(simulation)
        # 1. select: descend to an unexpanded edge (or a terminal / solved node)
        num_expanding = select(tree.record, rules, root_action, node, action)
        # 2. one batched model step and one evaluator call for the new children
        expansion, new_states = _evaluate_children(
            model, evaluator, states, node, action, num_expanding, config.find_terminal_moves
        )
        # 3. expand and back up
        expand_and_backup(tree.record, rules, node, action, expansion, leaf)
        if new_states is not None:
            states.store(None if num_expanding == B else action >= 0, leaf, new_states)
    return _result(tree, rules, gumbel, config)


class _SequentialHalving:
    """Gumbel's root: each simulation's root edge, from the table of considered visits."""

    def __init__(self, tree: Tree, rules, gumbel: np.ndarray, legal: np.ndarray, config):
        self.tree, self.rules, self.gumbel = tree, rules, gumbel
        self.num_considered = np.minimum(legal.sum(axis=1), config.max_num_considered_actions)
        self.table = considered_visits_table(
            config.max_num_considered_actions, config.num_simulations
        )
        self.kernel = kernels.halving_root_action.for_batch(gumbel.shape[0])
        self.out = np.empty(gumbel.shape[0], np.int64)
        self.scratch = np.empty(gumbel.shape, np.float32)

    def root_action(self, simulation: int) -> np.ndarray:
        """``[B]``: the best-scoring root edge among those at this simulation's visit level."""
        level = self.table[self.num_considered, simulation]
        self.kernel(self.tree.record, self.rules, self.gumbel, level, self.scratch, self.out)
        return self.out


class _States:
    """The tree's states ``[B, N, *S]``, read and written through numpy on the CPU."""

    def __init__(self, states: Tensor):
        self.tensor = states
        self.rows = np.arange(states.shape[0])
        self.array = None
        if states.is_cpu and states.dtype != torch.bfloat16:
            self.array = states.numpy()

    def gather(self, rows: np.ndarray, nodes: np.ndarray) -> Tensor:
        """``states[rows, nodes]``, a new tensor ``[len(rows), *S]``."""
        if self.array is not None:
            return torch.from_numpy(self.array[rows, nodes])
        return self.tensor[torch.from_numpy(rows), torch.from_numpy(nodes)]

    def store(self, grown: np.ndarray | None, nodes: np.ndarray, new_states: Tensor) -> None:
        """``states[b, nodes[b]] = new_states[b]`` for the rows b where ``grown`` (None: all)."""
        rows = self.rows if grown is None else self.rows[grown]
        new_states = new_states.detach()
        if self.array is not None and new_states.is_cpu and new_states.dtype == self.tensor.dtype:
            values = new_states.numpy()
            if grown is None:
                self.array[rows, nodes] = values
            else:
                self.array[rows, nodes[rows]] = values[grown]
        else:
            index = torch.from_numpy(rows)
            self.tensor[index, torch.from_numpy(nodes[rows])] = new_states[index].to(
                self.tensor.device
            )


def _expand_root(model, evaluator, root_state, tree, config, rng) -> np.ndarray:
    """Evaluate the roots into node 0 (Dirichlet noise on the prior under PUCT).

    Returns the legal mask ``[B, A]``.
    """
    B, A = tree.logits.shape[0], tree.logits.shape[2]
    legal = model.legal_actions(root_state)
    if not legal.any(dim=1).all():
        row = int(torch.nonzero(~legal.any(dim=1))[0])
        raise ValueError(
            f"root state of row {row} is terminal (no legal action): nothing to search"
        )
    evaluation = evaluator.evaluate(root_state)
    logits = _masked_logits(evaluation.logits, legal)
    legal = legal.numpy()
    prior = np.exp(logits - logits.max(axis=1, keepdims=True))
    prior /= prior.sum(axis=1, keepdims=True)
    if config.root_policy is RootPolicy.PUCT and config.dirichlet_fraction > 0:
        noise = rng.dirichlet(np.full(A, config.dirichlet_alpha), size=B).astype(np.float32)
        noise = noise * legal
        noise /= np.maximum(noise.sum(axis=1, keepdims=True), 1e-12)
        prior = (1 - config.dirichlet_fraction) * prior + config.dirichlet_fraction * noise
    tree.logits[:, 0] = logits
    tree.prior[:, 0] = prior
    tree.raw_value[:, 0] = evaluation.value.detach().float().cpu().numpy()
    tree.value_sum[:, 0] = tree.raw_value[:, 0]
    tree.visits[:, 0] = 1
    tree.to_play[:, 0] = model.to_play(root_state).numpy()
    tree.states[:, 0] = root_state
    return legal


def _terminal_moves(model, states: Tensor, legal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ends [K, A] bool, reward [K, A] float32)``: which legal moves of each state end
    the game, and the mover's reward for them; one model step over every legal pair."""
    ends = np.zeros(legal.shape, np.bool_)
    rewards = np.zeros(legal.shape, np.float32)
    rows, actions = np.nonzero(legal)
    if rows.size:
        index = torch.from_numpy(rows)
        step = model.step(states[index], torch.from_numpy(actions.astype(np.int64)))
        ends[rows, actions] = _numpy(step.terminal, np.bool_)
        rewards[rows, actions] = _numpy(step.reward, np.float32)
    return ends, rewards


def _evaluate_children(
    model, evaluator, states: _States, node, action, num_expanding, find_terminal_moves
):
    """One batched model step and one evaluator call for the edges being expanded (and,
    with ``find_terminal_moves``, one step over the new children's legal moves).

    Returns ``(expansion, new_states)``: the arrays ``expand_and_backup`` reads
    (reward, terminal, to_play, logits, legal mask, value, the moves that end the game
    and their rewards) and the states
    ``[B, *S]``, or a placeholder and None when no row expands. Rows that
    expand nothing (their walk ended at a terminal or solved node) borrow
    another row's edge so the batch stays whole; their results are unused.
    """
    B, action_in = node.shape[0], action
    if num_expanding == 0:
        return _no_expansion(B, model.spec.num_actions), None
    if num_expanding == B:
        parents = states.gather(states.rows, node)
    else:
        expand = action >= 0
        donor = int(np.flatnonzero(expand)[0])
        source_row = np.where(expand, states.rows, donor)
        parents = states.gather(source_row, node[source_row])
        action = np.where(expand, action, action[donor])
    step = model.step(parents, torch.from_numpy(action.astype(np.int64)))
    evaluation = evaluator.evaluate(step.state)
    legal = _numpy(model.legal_actions(step.state), np.bool_)
    terminal = _numpy(step.terminal, np.bool_)
    if find_terminal_moves:
        growing = ~terminal if num_expanding == B else (action_in >= 0) & ~terminal
        ends, rewards = _terminal_moves(model, step.state, legal & growing[:, None])
    else:
        ends, rewards = np.zeros(legal.shape, np.bool_), np.zeros(legal.shape, np.float32)
    expansion = (
        _numpy(step.reward, np.float32),
        terminal,
        _numpy(model.to_play(step.state), np.int64),
        _numpy(evaluation.logits, np.float32),
        legal,
        _numpy(evaluation.value, np.float32),
        ends,
        rewards,
    )
    return expansion, step.state


def _no_expansion(B: int, A: int):
    """Placeholder expansion arrays (read by no row) of the kernel's types."""
    return (
        np.zeros(B, np.float32),
        np.zeros(B, np.bool_),
        np.zeros(B, np.int64),
        np.zeros((B, A), np.float32),
        np.zeros((B, A), np.bool_),
        np.zeros(B, np.float32),
        np.zeros((B, A), np.bool_),
        np.zeros((B, A), np.float32),
    )


def forced_visits(prior: np.ndarray, total_visits: np.ndarray, k: float) -> np.ndarray:
    """KataGo's forced playouts ``sqrt(k P(a) sum N)`` of root edges ``[..., A]``."""
    return np.sqrt(k * prior * np.asarray(total_visits)[..., None])


def prune_forced_playouts(
    visits: np.ndarray, q: np.ndarray, prior: np.ndarray, best: np.ndarray, c_puct: float, k: float
) -> np.ndarray:
    """The root's visits ``[B, A]`` less the playouts that were only forced (KataGo).

    The best edge keeps its visits. Each other edge gives up to its forced playouts
    while its PUCT score ``q + c_puct P sqrt(N) / (1 + n)`` (N the root's visits,
    1 + the sum of the edges') stays below the best edge's; an edge left with one
    visit is dropped. ``q [B, A]`` are the edges' values, ``best [B]`` the best edges.
    """
    rows = np.arange(visits.shape[0])
    n = visits.astype(np.float64)
    sqrt_n = np.sqrt(1.0 + n.sum(axis=1, keepdims=True))
    explore = c_puct * prior * sqrt_n
    best_score = (q + explore / (1.0 + n))[rows, best][:, None]
    # PUCT(n') < best_score  <=>  n' > explore / (best_score - q) - 1
    gap = best_score - q
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(gap > 0, np.floor(explore / gap - 1.0) + 1.0, n)
    forced = forced_visits(prior, n.sum(axis=1), k)
    pruned = np.clip(np.maximum(np.ceil(n - forced), floor), 0.0, n)
    pruned[pruned <= 1] = 0.0
    pruned[rows, best] = n[rows, best]
    return pruned


def _result(tree: Tree, rules, gumbel: np.ndarray, config: MCTSConfig) -> SearchResult:
    visits = tree.edge_visits(0)
    q_values, proven = tree.edge_values(0)
    legal = tree.logits[:, 0] != NEG_INF
    # A move proven lost is not played while another is not (its visits may still lead:
    # the prior can keep sending simulations down a refuted edge).
    win_value = math.inf if config.win_value is None else config.win_value
    lost = legal & proven & (q_values <= -win_value)
    keep = legal & ~(lost & ~(lost == legal).all(axis=1, keepdims=True))
    kept_visits = np.where(keep, visits, -1)
    if config.root_policy is RootPolicy.GUMBEL:
        score, sigma_q = _gumbel_root(tree, rules, gumbel)
        z = np.where(legal, tree.logits[:, 0] + sigma_q, NEG_INF)
        policy = np.exp(z - z.max(axis=1, keepdims=True))
        score[kept_visits != kept_visits.max(axis=1, keepdims=True)] = NEG_INF
        action = score.argmax(axis=1)
    else:
        action = kept_visits.argmax(axis=1)
        policy = visits.astype(np.float32)
        if config.forced_playouts > 0:
            policy = prune_forced_playouts(
                visits, q_values, tree.prior[:, 0], action, config.c_puct, config.forced_playouts
            ).astype(np.float32)
    policy = (policy / policy.sum(axis=1, keepdims=True)).astype(np.float32)
    # A solved root plays its best proven edge (on a tie, one that ends the game now).
    proven_q = np.where(legal & proven, q_values, NEG_INF)
    best = proven_q == proven_q.max(axis=1, keepdims=True)
    now = best & tree.terminal_edge[:, 0]
    best_proven = np.where(now.any(axis=1), now.argmax(axis=1), best.argmax(axis=1))
    action = np.where(tree.solved[:, 0], best_proven, action).astype(np.int64)
    root_value = np.where(
        tree.solved[:, 0], tree.solved_value[:, 0], tree.value_sum[:, 0] / tree.visits[:, 0]
    )
    return SearchResult(
        action=torch.from_numpy(action),
        policy=torch.from_numpy(policy),
        visit_counts=torch.from_numpy(visits.astype(np.int64)),
        q_values=torch.from_numpy(q_values),
        root_value=torch.from_numpy(root_value.astype(np.float32)),
        tree=tree,
    )
