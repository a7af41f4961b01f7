"""One file per algorithm: its config, its update and its collection lines.

Nothing outside this folder imports it except the command line and the
registry (:mod:`mbrl.registry`), which name algorithms lazily.
"""
