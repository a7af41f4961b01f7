"""What algorithms are built from: the run (folder, config, logging, progress,
checkpoints, resume), on-policy rollouts, the off-policy collector and replay,
returns, environment helpers, networks, self-play and the Ray backend.

Never imports :mod:`mbrl.algorithms`.
"""
