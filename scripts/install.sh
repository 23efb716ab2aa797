#!/usr/bin/env bash
# Creates .venv/ and installs robot_il with everything the main job and the tests use.
# torch goes first and pinned: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
# MuJoCo renders cameras and videos off-screen through EGL (MUJOCO_GL=egl): say so before
# minutes of installing rather than fail at the demo's first frame.
if [ -x /sbin/ldconfig ] && ! /sbin/ldconfig -p | grep 'libEGL.so.1 ' >/dev/null; then
  echo "install.sh: libEGL.so.1 not found: install Mesa's EGL (apt-get install libegl1 libegl-mesa0)" >&2
  exit 1
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all]'
# An editable install leaves robot_il's own modules uncompiled, and where PYTHONDONTWRITEBYTECODE
# is set (as on our CI machines) every process compiled them again: about 0.5 s of CPU for each
# node, CLI and test process that imports a hundred of them. Their .pyc files are written here;
# Python still recompiles, in memory, any module edited since.
.venv/bin/python -m compileall -q -j 0 robot_il envs policies tests benchmarks >/dev/null
