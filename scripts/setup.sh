#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the backend, the neural engine's CPU packages, Blender's bpy module
# and the test tools, then installs this repository into it in editable mode. Safe to run again:
# pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" - <<'PYEOF' || { echo "AvatarTex needs Python 3.11 (Blender's bpy 5.0 wheel and mediapipe 0.10.14 are built for it)." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PYEOF
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: an unpinned torch (or a package asking for a newer one) pulls gigabytes of
# CUDA wheels on a machine that has no GPU.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -r requirements-dev.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "AvatarTex environment ready in .venv"
