"""Numba kernels of the batched MCTS over one tree record: the walk, expansion and backup.

The kernels take the tree whole, as a :class:`TreeRecord` (a numba structref
holding the arrays of :class:`mbrl.planners.mcts.Tree`, ``[B, N]`` per node,
``[B, N, A]`` per edge), and the search constants as a :class:`Rules` record;
the small helpers read one row ``b`` of it (``edge_value(tree, b, node,
action)``). Values are for the player to move at a node. (A named tuple
would do as the record, but numba's ``prange`` loops drop writes made
through the arrays of a tuple, and it costs three times as much to pass.)

The selection rule is chosen once, at the root of the search
(``Rules.interior_rule``: PUCT or Gumbel's deterministic rule), and
:func:`choose_action` dispatches to it; the root adds rules of its own
(an edge forced by sequential halving, the best proven edge of a solved
root, and the PUCT root's forced playouts). Each batch kernel is a
:class:`~mbrl.planners.threads.BatchKernel`: one row function looped serially below
``min_parallel_batch`` rows and with ``prange`` above it.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from numba.core import types
from numba.experimental import structref

from .threads import batch_kernel

UNVISITED = -1
NEG_INF = -np.inf
PUCT_RULE = 0
"""``Q(s,a) + c_puct P(s,a) sqrt(N(s)) / (1 + N(s,a))`` (AlphaZero)."""
GUMBEL_RULE = 1
"""``argmax pi'(a) - N(a) / (1 + sum N)``, ``pi' = softmax(logits + sigma(q))`` (Gumbel)."""

TREE_FIELDS = (
    "visits",  # [B, N] int32
    "value_sum",  # [B, N] float32, for the player to move at the node
    "raw_value",  # [B, N] float32, the evaluator's value at expansion
    "to_play",  # [B, N] int64
    "terminal",  # [B, N] bool
    "solved",  # [B, N] bool
    "solved_value",  # [B, N] float32
    "parent",  # [B, N] int32
    "parent_action",  # [B, N] int32
    "children",  # [B, N, A] int32, UNVISITED = not expanded
    "child_reward",  # [B, N, A] float32, reward of the mover at the node
    "terminal_edge",  # [B, N, A] bool, the edge ends the game (known when the node is made)
    "logits",  # [B, N, A] float32, -inf where illegal
    "prior",  # [B, N, A] float32, softmax of logits
    "num_nodes",  # [B] int32
)
RULES_FIELDS = (
    "interior_rule",
    "c_puct",
    "c_visit",
    "c_scale",
    "win_value",
    "fpu_reduction",  # PUCT: < 0 for unknown Q = 0, else first-play urgency
    "forced_playouts",  # PUCT: k of the root's forced playouts (0: none)
)
MIN_PARALLEL_BATCH = 32
"""Rows from which the batch kernels may run in parallel: where the ``prange`` builds beat
the serial ones inside searches on an idle 2-core machine (``benchmarks/kernel_threads.py``)."""


@structref.register
class TreeRecordType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class TreeRecord(structref.StructRefProxy):
    """The tree arrays as one numba record (the arrays are shared, not copied)."""


structref.define_proxy(TreeRecord, TreeRecordType, list(TREE_FIELDS))


@structref.register
class RulesType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Rules(structref.StructRefProxy):
    """Search constants: ``interior_rule`` (PUCT_RULE / GUMBEL_RULE), ``c_puct``,
    ``c_visit``, ``c_scale``, ``win_value`` (the edge value that proves a win),
    ``fpu_reduction`` (negative: off) and ``forced_playouts`` (k; 0: off)."""


structref.define_proxy(Rules, RulesType, list(RULES_FIELDS))


def make_rules(
    interior_rule: int,
    c_puct: float,
    c_visit: float,
    c_scale: float,
    win_value,
    fpu_reduction: float = -1.0,
    forced_playouts: float = 0.0,
):
    return Rules(
        int(interior_rule),
        float(c_puct),
        float(c_visit),
        float(c_scale),
        win_value,
        float(fpu_reduction),
        float(forced_playouts),
    )


# ----------------------------------------------------------- row helpers
@numba.njit(inline="always")
def is_known(tree, b, n, a):
    """Whether edge (n, a) has a value: expanded, or known to end the game."""
    return tree.children[b, n, a] >= 0 or tree.terminal_edge[b, n, a]


@numba.njit(inline="always")
def edge_value(tree, b, n, a):
    """(value of edge (n, a) for the player at n, proven?); the edge must be known
    (:func:`is_known`): an unexpanded edge that ends the game is worth its reward, exactly."""
    c = tree.children[b, n, a]
    if c < 0:
        return tree.child_reward[b, n, a], True
    sign = 1.0 if tree.to_play[b, c] == tree.to_play[b, n] else -1.0
    if tree.solved[b, c]:
        return tree.child_reward[b, n, a] + sign * tree.solved_value[b, c], True
    return tree.child_reward[b, n, a] + sign * tree.value_sum[b, c] / tree.visits[b, c], False


@numba.njit(inline="always")
def edge_visits(tree, b, n, a):
    c = tree.children[b, n, a]
    return tree.visits[b, c] if c >= 0 else 0


@numba.njit(inline="always")
def is_legal(tree, b, n, a):
    return tree.logits[b, n, a] != NEG_INF


@numba.njit(inline="always")
def completed_sigma_q(tree, rules, b, n, out):
    """Gumbel's sigma(completed, rescaled q) of node n's edges into ``out[A]``; -inf if illegal.

    Unvisited edges get v_mix, the prior-weighted mix of the raw value and the
    visited edges' values (an unvisited edge known to end the game: its reward); all
    are min-max rescaled and scaled by ``(c_visit + max N) * c_scale``.
    """
    A = tree.children.shape[2]
    sum_visits, max_visits, weighted_q, weight = 0.0, 0.0, 0.0, 0.0
    for a in range(A):
        if tree.children[b, n, a] >= 0:
            q = edge_value(tree, b, n, a)[0]
            visits = edge_visits(tree, b, n, a)
            out[a] = q
            sum_visits += visits
            max_visits = max(max_visits, visits)
            weighted_q += tree.prior[b, n, a] * q
            weight += tree.prior[b, n, a]
    v_mix = tree.raw_value[b, n]
    if weight > 0:
        v_mix = (tree.raw_value[b, n] + sum_visits * weighted_q / weight) / (1.0 + sum_visits)
    lo, hi = np.inf, -np.inf
    for a in range(A):
        if not is_legal(tree, b, n, a):
            continue
        if tree.children[b, n, a] < 0:
            out[a] = tree.child_reward[b, n, a] if tree.terminal_edge[b, n, a] else v_mix
        lo = min(lo, out[a])
        hi = max(hi, out[a])
    scale = (rules.c_visit + max_visits) * rules.c_scale / max(hi - lo, 1e-8)
    for a in range(A):
        out[a] = (out[a] - lo) * scale if is_legal(tree, b, n, a) else NEG_INF


# ------------------------------------------------------ selection rules
@numba.njit(inline="always")
def first_play_value(tree, rules, b, n):
    """The value PUCT gives node n's unknown edges: 0, or with first-play urgency the
    node's mean value less ``fpu_reduction * sqrt(prior mass of its visited edges)``."""
    if rules.fpu_reduction < 0:
        return 0.0
    visited_prior = 0.0
    for a in range(tree.children.shape[2]):
        if tree.children[b, n, a] >= 0:
            visited_prior += tree.prior[b, n, a]
    mean = tree.value_sum[b, n] / tree.visits[b, n]
    return mean - rules.fpu_reduction * math.sqrt(visited_prior)


@numba.njit(inline="always")
def forced_root_action(tree, rules, b):
    """With forced playouts: the visited, unsolved root edge furthest below its
    ``sqrt(k P(a) sum N)`` visits (the lowest on a tie), or -1 if none is."""
    total = tree.visits[b, 0] - 1.0
    best_a, best = -1, 0.0
    for a in range(tree.children.shape[2]):
        c = tree.children[b, 0, a]
        if c < 0 or tree.solved[b, c]:
            continue
        deficit = math.sqrt(rules.forced_playouts * tree.prior[b, 0, a] * total) - tree.visits[b, c]
        if deficit > best:
            best, best_a = deficit, a
    return best_a


@numba.njit(inline="always")
def puct_action(tree, rules, b, n):
    """argmax ``Q + c_puct P sqrt(N(n)) / (1 + N(n, a))`` (unknown Q: first_play_value)."""
    sqrt_n = math.sqrt(tree.visits[b, n])
    unknown_q = first_play_value(tree, rules, b, n)
    best_a, best = -1, NEG_INF
    for a in range(tree.children.shape[2]):
        if not is_legal(tree, b, n, a):
            continue
        q = edge_value(tree, b, n, a)[0] if is_known(tree, b, n, a) else unknown_q
        score = q + rules.c_puct * tree.prior[b, n, a] * sqrt_n / (1 + edge_visits(tree, b, n, a))
        if score > best:
            best, best_a = score, a
    return best_a


@numba.njit(inline="always")
def gumbel_action(tree, rules, b, n, scratch):
    """argmax ``pi'(a) - N(a) / (1 + sum N)`` with ``pi' = softmax(logits + sigma(q))``."""
    A = tree.children.shape[2]
    completed_sigma_q(tree, rules, b, n, scratch)
    top = NEG_INF
    for a in range(A):
        if scratch[a] != NEG_INF:
            scratch[a] += tree.logits[b, n, a]
            top = max(top, scratch[a])
    total = 0.0
    for a in range(A):
        if scratch[a] != NEG_INF:
            scratch[a] = np.exp(scratch[a] - top)
            total += scratch[a]
    parent_visits = tree.visits[b, n]  # = 1 + sum of edge visits
    best_a, best = -1, NEG_INF
    for a in range(A):
        if is_legal(tree, b, n, a):
            score = scratch[a] / total - edge_visits(tree, b, n, a) / parent_visits
            if score > best:
                best, best_a = score, a
    return best_a


@numba.njit(inline="always")
def best_proven_action(tree, b, n):
    """The legal known edge with the highest proven value (a solved root's move); on a
    tie, a move that ends the game (a win now rather than later), then the lowest."""
    best_a, best, best_ends = -1, NEG_INF, False
    for a in range(tree.children.shape[2]):
        if is_legal(tree, b, n, a) and is_known(tree, b, n, a):
            q, proven = edge_value(tree, b, n, a)
            ends = tree.terminal_edge[b, n, a]
            if proven and (q > best or (q == best and ends and not best_ends)):
                best, best_a, best_ends = q, a, ends
    return best_a


@numba.njit(inline="always")
def choose_action(tree, rules, b, n, forced, scratch):
    """The edge to follow at node n: the root's forced edge (``forced >= 0``), a solved
    root's best proven edge, else the interior rule chosen at the root of the search."""
    if n == 0 and forced >= 0:
        return forced
    if tree.solved[b, n]:
        return best_proven_action(tree, b, n)
    if rules.interior_rule == GUMBEL_RULE:
        return gumbel_action(tree, rules, b, n, scratch)
    if n == 0 and rules.forced_playouts > 0:
        a = forced_root_action(tree, rules, b)
        if a >= 0:
            return a
    return puct_action(tree, rules, b, n)


@numba.njit(inline="always")
def descend(tree, rules, b, forced, scratch):
    """(node, action): row b's walk from the root to an unexpanded edge, or
    (node, -1) at a terminal or solved node below the root."""
    n = 0
    while True:
        if tree.terminal[b, n] or (tree.solved[b, n] and n != 0):
            return n, -1
        a = choose_action(tree, rules, b, n, forced, scratch)
        c = tree.children[b, n, a]
        if c < 0:
            return n, a
        n = c


# ---------------------------------------------------- expansion, backup
@numba.njit(inline="always")
def set_prior(tree, b, n, logits, legal):
    """Store node n's logits ``[A]``, -inf where not ``legal``, and their softmax."""
    A = tree.children.shape[2]
    top = NEG_INF
    for a in range(A):
        tree.logits[b, n, a] = logits[a] if legal[a] else NEG_INF
        top = max(top, tree.logits[b, n, a])
    total = 0.0
    for a in range(A):
        logit = tree.logits[b, n, a]
        p = np.exp(logit - top) if logit != NEG_INF else 0.0
        tree.prior[b, n, a] = p
        total += p
    for a in range(A):
        tree.prior[b, n, a] /= total


@numba.njit(inline="always")
def add_child(tree, b, n, a, reward):
    """Append a node to row b as the child of edge (n, a), whose mover gets ``reward``."""
    c = tree.num_nodes[b]
    tree.num_nodes[b] += 1
    tree.children[b, n, a] = c
    tree.child_reward[b, n, a] = reward
    tree.parent[b, c] = n
    tree.parent_action[b, c] = a
    return c


@numba.njit(inline="always")
def set_node(tree, b, c, to_play, terminal, value):
    """Fill in new node c of row b; returns the value to back up from it.

    A terminal node is solved: its value is exactly 0 (the reward is on its edge).
    """
    tree.to_play[b, c] = to_play
    tree.terminal[b, c] = terminal
    if terminal:
        tree.solved[b, c] = True
        tree.solved_value[b, c] = 0.0
        value = 0.0
    tree.raw_value[b, c] = value
    return value


@numba.njit(inline="always")
def set_terminal_edges(tree, rules, b, n, edge_terminal, edge_reward):
    """Mark node n's moves that end the game (``edge_terminal [A]``, their rewards
    ``edge_reward [A]``); returns whether that solves n (a win in one, or every move
    ends the game)."""
    any_terminal = False
    for a in range(tree.children.shape[2]):
        if edge_terminal[a] and is_legal(tree, b, n, a):
            tree.terminal_edge[b, n, a] = True
            tree.child_reward[b, n, a] = edge_reward[a]
            any_terminal = True
    if any_terminal:
        update_solved(tree, rules, b, n)
    return tree.solved[b, n]


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def set_root_terminal_edges(tree, rules, edge_terminal, edge_reward):
    """:func:`set_terminal_edges` at every row's root."""
    for b in prange(edge_terminal.shape[0]):
        set_terminal_edges(tree, rules, b, 0, edge_terminal[b], edge_reward[b])


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def set_root_proven_children(tree, rules, proven, reward, to_play, value):
    """Each root move proven by the full-width search (``proven [B, A]``) and not already
    known to end the game becomes a solved child of the root, unvisited, with the mover's
    ``reward`` on its edge and the exact ``value`` of the position for its ``to_play``;
    then the root is solved if that proves it."""
    for b in prange(proven.shape[0]):
        any_proven = False
        for a in range(proven.shape[1]):
            if proven[b, a] and is_legal(tree, b, 0, a) and not is_known(tree, b, 0, a):
                c = add_child(tree, b, 0, a, reward[b, a])
                tree.to_play[b, c] = to_play[b, a]
                tree.solved[b, c] = True
                tree.solved_value[b, c] = value[b, a]
                any_proven = True
        if any_proven and not tree.solved[b, 0]:
            update_solved(tree, rules, b, 0)


@numba.njit(inline="always")
def update_solved(tree, rules, b, n):
    """Mark node n solved if an edge proves a win or all legal edges are proven."""
    best = NEG_INF
    all_proven = True
    for a in range(tree.children.shape[2]):
        if not is_legal(tree, b, n, a):
            continue
        if not is_known(tree, b, n, a):
            all_proven = False
            continue
        q, proven = edge_value(tree, b, n, a)
        if not proven:
            all_proven = False
        elif q >= rules.win_value:
            tree.solved[b, n] = True
            tree.solved_value[b, n] = q
            return
        else:
            best = max(best, q)
    if all_proven and best != NEG_INF:
        tree.solved[b, n] = True
        tree.solved_value[b, n] = best


@numba.njit(inline="always")
def backup(tree, rules, b, leaf, value):
    """Add ``value`` (for the player at ``leaf``) along the path to the root.

    Each step up adds the edge reward and flips the sign when the player
    changes; a parent that becomes solved backs up its exact value instead.
    """
    c = leaf
    tree.visits[b, c] += 1
    tree.value_sum[b, c] += value
    while tree.parent[b, c] >= 0:
        p = tree.parent[b, c]
        sign = 1.0 if tree.to_play[b, c] == tree.to_play[b, p] else -1.0
        value = tree.child_reward[b, p, tree.parent_action[b, c]] + sign * value
        if not tree.solved[b, p]:
            update_solved(tree, rules, b, p)
        if tree.solved[b, p]:
            value = tree.solved_value[b, p]
        tree.visits[b, p] += 1
        tree.value_sum[b, p] += value
        c = p


# ---------------------------------------------------------- batch kernels
@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def select(tree, rules, root_action, out_node, out_action):
    """Descend every row to an edge to expand (or to a terminal/solved node).

    ``root_action[b] >= 0`` forces the first edge (Gumbel's sequential halving).
    ``out_action[b] = -1`` means the walk ended at node ``out_node[b]`` itself
    (a terminal or solved node): no expansion, just a backup from it.
    Returns the number of rows that expand an edge.
    """
    scratch = np.empty((root_action.shape[0], tree.children.shape[2]), np.float32)
    num_expanding = 0
    for b in prange(root_action.shape[0]):
        out_node[b], out_action[b] = descend(tree, rules, b, root_action[b], scratch[b])
        num_expanding += out_action[b] >= 0
    return num_expanding


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def expand_and_backup(tree, rules, node, action, expansion, out_leaf):
    """Add the child of (node, action) per row, then back its value up to the root.

    ``expansion`` = (reward [B], terminal [B], to_play [B], logits [B, A], legal [B, A],
    value [B], edge_terminal [B, A], edge_reward [B, A]) of the new children, the last
    two the moves of each child that end the game and their rewards
    (:func:`set_terminal_edges`); rows with ``action[b] = -1`` back up from ``node[b]``.
    """
    reward, terminal, to_play, logits, legal, value, edge_terminal, edge_reward = expansion
    for b in prange(node.shape[0]):
        n, a = node[b], action[b]
        if a >= 0:
            leaf = add_child(tree, b, n, a, reward[b])
            v = set_node(tree, b, leaf, to_play[b], terminal[b], value[b])
            if not terminal[b]:
                set_prior(tree, b, leaf, logits[b], legal[b])
                if set_terminal_edges(tree, rules, b, leaf, edge_terminal[b], edge_reward[b]):
                    v = tree.solved_value[b, leaf]
        else:
            leaf, v = n, tree.solved_value[b, n] if tree.solved[b, n] else 0.0
        out_leaf[b] = leaf
        backup(tree, rules, b, leaf, v)


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def gumbel_root_scores(tree, rules, gumbel, out_score, out_sigma_q):
    """Per row: ``out_sigma_q = sigma(completed q)`` at the root and ``out_score`` the
    Gumbel root score of each edge (see :func:`gumbel_root_score`)."""
    A = tree.children.shape[2]
    for b in prange(gumbel.shape[0]):
        completed_sigma_q(tree, rules, b, 0, out_sigma_q[b])
        top = max_root_logit(tree, b)
        for a in range(A):
            out_score[b, a] = gumbel_root_score(tree, b, gumbel[b], out_sigma_q[b], top, a)


@numba.njit(inline="always")
def max_root_logit(tree, b):
    top = NEG_INF
    for a in range(tree.children.shape[2]):
        top = max(top, tree.logits[b, 0, a])
    return top


@numba.njit(inline="always")
def gumbel_root_score(tree, b, gumbel, sigma_q, top, a):
    """``max(g + logits - top + sigma(q), -1e9)`` of root edge a, -inf if illegal, where
    ``top`` is the largest root logit, ``gumbel`` and ``sigma_q`` the row's ``[A]``."""
    if not is_legal(tree, b, 0, a):
        return NEG_INF
    return max(gumbel[a] + tree.logits[b, 0, a] - top + sigma_q[a], -1e9)


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH, batch_arg=2)
def halving_root_action(tree, rules, gumbel, level, scratch, out_action):
    """Sequential halving's root edge per row: the best Gumbel root score among the
    edges visited exactly ``level[b]`` times (the first such edge on a tie)."""
    A = tree.children.shape[2]
    for b in prange(gumbel.shape[0]):
        sigma_q = scratch[b]
        completed_sigma_q(tree, rules, b, 0, sigma_q)
        top = max_root_logit(tree, b)
        best_a, best = 0, np.float32(NEG_INF)
        for a in range(A):
            score = np.float32(gumbel_root_score(tree, b, gumbel[b], sigma_q, top, a))
            if edge_visits(tree, b, 0, a) != level[b]:
                score = np.float32(NEG_INF)
            if score > best:
                best, best_a = score, a
        out_action[b] = best_a


@numba.njit(cache=True)
def edge_values(tree, n, out, out_proven):
    """``out[b, a], out_proven[b, a] = edge_value(tree, b, n, a)`` where known."""
    for b in range(out.shape[0]):
        for a in range(out.shape[1]):
            if is_known(tree, b, n, a):
                out[b, a], out_proven[b, a] = edge_value(tree, b, n, a)
