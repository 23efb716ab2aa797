"""``robot-il select sim`` among camera candidates (image BC or Diffusion, ``rgb_<camera>``)
and state ones beside them: the simulator renders the camera the candidates observe at their
frame size, in lock-step, and the policy node serves it to each candidate it switches to. The
launch file never gave the policy node a camera: a camera candidate was refused ('observes
rgb_front, which this node has no camera for'), and the selection ended before its first
episode. Candidates the one simulated camera cannot serve together are refused before
anything launches."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from deploy_helpers import BIN, constant_checkpoint, log_tail, stop

from robot_il.cli import main
from robot_il.select import Selector

SIZE = (24, 32)
"""The camera candidates' frame size, H x W px: a size no node defaults to."""


@pytest.fixture(scope="module")
def q0() -> np.ndarray:
    """The reach arm's start joints (6, rad) of the first judged scene, with a gripper of 0:
    a candidate that commands it holds the arm still."""
    from robot_il.envs import make_env

    env = make_env("reach")
    start = env.reset(seed=10_000)[0]["joint_pos"].astype(np.float64)
    env.close()
    return np.append(start, 0.0)


@pytest.mark.ros
def test_a_selection_among_camera_and_state_candidates_judges_each(tmp_path, ros_env, q0):
    """A state candidate deployed first (the policy node starts without a camera checkpoint)
    and two camera ones: each is deployed and rated, its frames rendered at its size."""
    state = constant_checkpoint(tmp_path / "state", q0)
    still = constant_checkpoint(tmp_path / "still", q0, camera="front", image_size=SIZE)
    moving = q0 + [0.3, 0, 0, 0, 0, 0, 0]
    moving = constant_checkpoint(tmp_path / "moving", moving, camera="front", image_size=SIZE)
    names = [str(state), str(still), str(moving)]
    out = tmp_path / "out"
    argv = [
        str(BIN / "robot-il"), "select", "sim", "--out", str(out), "--candidates",
        ",".join(names), "--default-candidate", str(state), "--episodes", "3",
    ]  # fmt: skip
    log = tmp_path / "select.log"
    with open(log, "w") as printed:
        process = subprocess.Popen(argv, env=ros_env, stdout=printed, stderr=subprocess.STDOUT)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        stop(process)  # Ctrl-C: the launch stops its nodes
        pytest.fail(f"the selection did not finish in 120 s\n{log_tail(log, 4000)}")
    output = log.read_text()
    assert code == 0, output[-4000:]
    assert "camera:=front image_size:=[24, 32]" in output  # the launch the CLI ran
    assert "lock-step on /clock, camera front 24x32 px" in output  # what sim_robot renders
    # each camera candidate's episode ran in lock-step on its frames: a policy without them
    # holds the simulator, and the node warns that the lock-step broke
    assert "no observation of t=" not in output, output[-4000:]
    selector = Selector.load(out / "selection.json")
    arms = [record.arm for record in selector.log]
    assert arms[0] == 0 and sorted(arms) == [0, 1, 2], arms  # the default first, then each
    for name in names[1:]:
        assert f"policy/switch: loaded {name}" in output, output[-4000:]
    for name in names:  # judged on the real rollout
        assert f"({name}): not solved in 4 s, rated" in output, output[-4000:]
    assert f"winner after 3 episodes: {selector.statistics()['best']}" in output


@pytest.mark.parametrize(
    ("other", "error"),
    [
        (
            {"camera": "front", "image_size": (64, 64)},
            "--candidates: observe different cameras or frame sizes (still rgb_front 24x32, "
            "other rgb_front 64x64); the simulator renders one camera at one size for them all",
        ),
        (
            {"camera": "wrist", "image_size": SIZE},
            "--candidates: observe different cameras or frame sizes (still rgb_front 24x32, "
            "other rgb_wrist 24x32)",
        ),
    ],
)
def test_candidates_of_different_cameras_or_sizes_are_refused_before_the_launch(
    tmp_path, capsys, q0, other, error
):
    """The simulator renders one camera at one size: the policy node would refuse the
    candidates that size does not fit on every switch, a failed episode each."""
    still = constant_checkpoint(tmp_path / "still", q0, camera="front", image_size=SIZE)
    other = constant_checkpoint(tmp_path / "other", q0, **other)
    out = tmp_path / "out"
    argv = ["select", "sim", "--out", str(out), "--candidates", f"{still},{other}"]
    assert main([*argv, "--episodes", "2"]) == 2
    printed = capsys.readouterr()
    assert error in printed.err, printed.err
    assert "robot-il launch" not in printed.out
    assert not out.exists()


def test_a_candidate_of_two_cameras_and_a_page_of_another_are_refused(tmp_path, capsys, q0):
    """sim_robot renders one colour camera: a candidate observing two, or a feedback page
    asking for another than the candidates', could not be served."""
    still = constant_checkpoint(tmp_path / "still", q0, camera="front", image_size=SIZE)
    two = constant_checkpoint(tmp_path / "two", q0, camera="front", image_size=SIZE)
    config = json.loads((two / "config.json").read_text())
    config["spec"]["observation"]["rgb_wrist"] = [*SIZE, 3]
    (two / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    argv = ["select", "sim", "--out", str(out), "--episodes", "2", "--candidates"]
    assert main([*argv, f"{still},{two}"]) == 2
    err = capsys.readouterr().err
    assert "--candidates: two observes rgb_front, rgb_wrist; the simulator renders one " in err
    state = constant_checkpoint(tmp_path / "state", q0)
    assert main([*argv, f"{state},{still}", "--web", "--camera", "side"]) == 2
    err = capsys.readouterr().err
    assert "--camera side: the candidates observe front, the one camera the simulator " in err
    assert not out.exists()
