#!/usr/bin/env bash
# Installs robot_il (scripts/install.sh) and runs the default test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the learning runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The feedback web page is tested in a real headless browser: Debian's Chromium and its driver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "chromium/chromedriver missing and not root: browser tests will be skipped" >&2
    fi
fi
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two workers (pytest-xdist), a test file's tests on one of them: most tests wait on node
# processes, DDS and rollouts, so two at a time use both cores. Each ROS test has its own DDS
# domain. ROBOT_IL_TEST_WORKERS=0 runs them one by one.
# A test stuck past its timeout where pytest-timeout cannot stop it has its worker ended by
# tests/hang_backstop.py, which leaves the stacks in .pytest-hangs/ (printed below). No
# replacement worker: with --dist loadfile pytest-xdist then waits for ever (its #1323).
rm -rf .pytest-hangs
status=0
.venv/bin/python -m pytest -n "${ROBOT_IL_TEST_WORKERS:-2}" --dist loadfile \
    --max-worker-restart=0 "$@" || status=$?
for report in .pytest-hangs/*.txt; do
    [ -e "$report" ] && { echo "== $report"; cat "$report"; }
done
exit "$status"
