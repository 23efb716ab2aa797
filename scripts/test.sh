#!/usr/bin/env bash
# Installs robot_il (scripts/install.sh) and runs the default test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the learning runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec .venv/bin/python -m pytest "$@"
