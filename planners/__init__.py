"""Planners over the model interface: MCTS (PUCT, Gumbel), CEM, MPPI, random shooting."""
