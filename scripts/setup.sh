#!/usr/bin/env bash
# Create .venv with everything mbrl needs (CPU PyTorch first, then the package
# in editable mode with the solver extra and the dev tools). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "mbrl needs Python >= 3.11"'

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build of PyTorch, installed on its own so that the range in
# pyproject.toml is already satisfied (a bare 'torch' would pull a CUDA build).
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[solver,dev,ray]"
echo "mbrl installed in .venv ($(.venv/bin/python --version))"
