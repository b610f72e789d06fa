#!/usr/bin/env bash
# Installs the peer implementations (PyTorch, JAX, SciPy) at pinned versions into a virtual
# environment, by default scripts/peers/.venv (ignored by git). PyTorch comes from PyPI; its
# CUDA libraries are not needed for the CPU benchmarks and are left out where the wheel allows.
#
#   scripts/peers/setup.sh [VENV_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$here/requirements.txt"
"$venv/bin/python" "$here/peers.py" --self-check
echo "peers installed in $venv"
