"""Test-wide settings: headless MuJoCo rendering, set before any test imports mujoco."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
