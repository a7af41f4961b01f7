"""Measuring agents: the arena and Elo, mistake rates against a solver, the
benchmark sweep (``mbrl bench``) and its report (``mbrl report``)."""
