"""``deploy_select_sim.launch.yaml``: the selector finds the best of four candidate policies by
really rolling them out on the simulated UR5e, judged by the simulated person.

Every episode is a real rollout: the episode judge has the policy node load the candidate,
resets the simulation and the policy, and rates the episode from ``task/success`` (plus noise)
or intervenes (e-stop) on an unsafe safety event. Documented budgets (UCB1):

- slow (two minutes of four node processes; the default suite runs the same launch with two
  candidates in ``test_select_sim_camera.py``): the best trained candidate (100
  demonstrations, solved 7 of 7 episodes in trial runs) against an undertrained one (never
  solves), an unsafe one (2 demonstrations: drives the tool out of the workspace in about half
  of its episodes) and one commanding NaN (stopped at once): named best after 10 episodes
  (with these success rates, UCB1 and the same person simulated without ROS: 400 of 400
  seeds);
- slow: the four default candidates trained from scratch, with a medium one (30
  demonstrations) and a poor one (5) among them: named best after 40 episodes (simulated with
  success rates 0.95, 0.65, 0.3 and an unsafe one: 99% of seeds).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import BIN, constant_checkpoint, log_tail
from make_select_candidates import BEST, FIXTURE, UNDERTRAINED, UNSAFE

from robot_il.select import Selector

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def run_selection(
    candidates: list[str],
    default: str,
    episodes: int,
    candidates_dir: Path,
    env: dict[str, str],
    tmp_path: Path,
    timeout: float,
) -> tuple[Selector, str]:
    """Run the launch to its end; returns the selector's final state and the launch output."""
    state, log = tmp_path / "selection.json", tmp_path / "launch.log"
    argv = [
        str(BIN / "robot-il"), "launch", "deploy_select_sim.launch.yaml",
        f"candidates_dir:={candidates_dir}", f"candidates:={','.join(candidates)}",
        f"default_candidate:={default}", f"episodes:={episodes}", f"state_path:={state}",
        "seed:=1",
    ]  # fmt: skip
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        code = launch.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        launch.send_signal(signal.SIGINT)
        launch.wait(timeout=30)
        pytest.fail(f"selection did not finish in {timeout} s\n{log_tail(log, 4000)}")
    output = log.read_text()
    assert code == 0, output[-4000:]
    return Selector.load(state), output


def check_winner(selector: Selector, output: str, episodes: int) -> None:
    """The best candidate won (highest mean rating), as the launch printed."""
    statistics = selector.statistics()
    assert statistics["episodes"] == episodes
    assert statistics["best"] == BEST, statistics
    assert f"after {episodes} episodes: best candidate {BEST}" in output
    # The ratings came from real rollouts: the judge saw the best candidate solve the task.
    assert f"({BEST}): solved in" in output


@pytest.mark.slow
def test_selector_finds_the_best_of_four_candidates_in_simulation(ros_env, tmp_path) -> None:
    from robot_il.envs import make_env

    env = make_env("reach")
    q0 = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)
    env.close()
    nan = constant_checkpoint(tmp_path / "nan", np.append(q0 + [np.nan, 0, 0, 0, 0, 0], 0.0))
    candidates = [BEST, UNDERTRAINED, UNSAFE, str(nan)]
    started = time.monotonic()
    selector, output = run_selection(
        candidates, UNDERTRAINED, 10, FIXTURE, ros_env, tmp_path, timeout=420
    )
    print(f"10 episodes in {time.monotonic() - started:.0f} s")
    check_winner(selector, output, 10)
    # Every episode of the NaN policy was stopped at once (e-stop, intervention).
    nan_arm = candidates.index(str(nan))
    nan_records = [record for record in selector.log if record.arm == nan_arm]
    assert nan_records and all(record.intervened for record in nan_records)
    assert "nonfinite_command" in output and "e-stop, intervened" in output


@pytest.mark.slow
def test_selector_finds_the_best_of_four_freshly_trained_candidates(ros_env, tmp_path) -> None:
    from robot_il.select.candidates import DEFAULT_RECIPES, RECIPE_DEMOS, make_candidates
    from robot_il.train.demos import record_expert_demos

    dataset = record_expert_demos("reach", tmp_path / "demos", episodes=RECIPE_DEMOS)
    checkpoints = make_candidates(dataset, tmp_path / "candidates")
    names = [checkpoint.name for checkpoint in checkpoints]
    assert names == [recipe.name(RECIPE_DEMOS) for recipe in DEFAULT_RECIPES]
    assert names[0] == BEST
    started = time.monotonic()
    selector, output = run_selection(
        names, names[1], 40, tmp_path / "candidates", ros_env, tmp_path, timeout=900
    )
    print(f"40 episodes in {time.monotonic() - started:.0f} s")
    check_winner(selector, output, 40)
