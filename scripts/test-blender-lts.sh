#!/usr/bin/env bash
# The add-on's tests again inside Blender 4.5 LTS (the extension supports Blender 4.2 and newer).
# Needs scripts/setup.sh first. Only bpy 4.5 goes into .venv-bpy45: everything else, and the backend
# interpreter the tests start, come from .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "Run scripts/setup.sh first." >&2; exit 1; }
if [ ! -x .venv-bpy45/bin/python ]; then
  "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv .venv-bpy45
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv-bpy45/bin/python -m pip install -q --no-deps "bpy==4.5.*"
purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
# A .pth appends .venv's packages after this venv's own, so this venv's bpy 4.5 shadows .venv's 5.0.
purelib .venv/bin/python > "$(purelib .venv-bpy45/bin/python)/avatartex-dev.pth"
AVATARTEX_TEST_BACKEND_PYTHON="$PWD/.venv/bin/python" .venv-bpy45/bin/python -m pytest tests/blender -q -rs \
  -p no:cacheprovider "$@"
