"""Correcting a deployed policy over ROS (human-gated DAgger): ``deploy_sim.launch.yaml
takeover:=true`` runs the policy, the teleop node reading a real keyboard on a pseudo terminal,
and the recorder in corrections mode. Moving the device takes the arm over, the Right arrow
hands it back; the takeover is a corrections episode that fine-tuning accepts."""

from __future__ import annotations

import os
import pty
import subprocess
import time

import numpy as np
import pytest
from deploy_helpers import BIN, Client, log_tail, stop, wait_for
from make_reach_checkpoint import FIXTURE

pytestmark = pytest.mark.ros

RIGHT = b"\x1b[C"


def launch_with_keyboard(argv: list[str], env: dict[str, str], log) -> tuple[subprocess.Popen, int]:
    """``argv`` (a ``robot-il launch``) started with a keyboard: a pseudo terminal as its
    standard input, which the teleop node reads; returns the process (output in ``log``) and
    the terminal's master end (what the operator types)."""
    master, slave = pty.openpty()
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=env, stdin=slave, stdout=out, stderr=subprocess.STDOUT)
    os.close(slave)
    return launch, master


def record_takeovers(client: Client) -> list[bool]:
    """``teleop/takeover`` as ``client`` receives it (latched: its value at the subscription
    first), in order."""
    from std_msgs.msg import Bool

    from robot_il.ros.selector_node import LATCHED

    takeovers: list[bool] = []
    client.node.create_subscription(
        Bool, "teleop/takeover", lambda m: takeovers.append(m.data), LATCHED
    )
    return takeovers


def test_a_takeover_stops_the_policy_is_recorded_and_hands_back(
    ros_context, ros_env, tmp_path
) -> None:
    from robot_il.envs.ur5e.kinematics import tcp_point
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from robot_il.dataset import Dataset
    from robot_il.deploy.worker import CheckpointInfo
    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint

    path = tmp_path / "corrections.zarr"
    log = tmp_path / "launch.log"
    argv = [str(BIN / "robot-il"), "launch", "deploy_sim.launch.yaml"]
    argv += [f"checkpoint:={FIXTURE}", "takeover:=true", f"corrections:={path}"]
    argv += ["control_rate:=100.0"]
    launch, master = launch_with_keyboard(argv, ros_env, log)
    procs, logs = (launch,), (log,)
    client = Client(ros_context)
    try:
        commands = client.record(Float64MultiArray, "forward_position_controller/commands")
        joint_states = client.record(JointState, "joint_states", depth=10)
        takeovers = record_takeovers(client)

        def rate(since: float) -> float:
            """Commands per second published since ``since`` (s, system clock), by their
            publication times: on a loaded machine the client received a backlog of the
            policy's commands after it had seen the takeover."""
            recent = [c for c in commands if c.sent >= since]
            return len(recent) / max(time.time() - since, 1e-3)

        # The policy drives at 100 Hz; the teleop node sends nothing while it does.
        wait_for(lambda: len(commands) > 200, 120, "the policy's commands", procs, logs)
        assert takeovers == [False], takeovers

        def press(keys: bytes, times: int) -> None:
            for _ in range(times):
                os.write(master, keys)
                time.sleep(0.1)

        press(b"w", 1)  # +x: moving the device takes the arm over
        wait_for(lambda: takeovers[-1:] == [True], 20, "the takeover", procs, logs)
        held_from = time.time()  # after the policy stopped: teleop announces it once answered
        start_x = tcp_point(joint_states[-1][1].position[:6])[0]
        press(b"w", 15)  # 5 mm a press
        # Only the operator commands now: 20 Hz, not the policy's 100 Hz.
        assert rate(held_from) < 40, rate(held_from)
        wait_for(
            lambda: tcp_point(joint_states[-1][1].position[:6])[0] - start_x > 0.04,
            20,
            "the arm to follow the operator",
            procs,
            logs,
        )
        time.sleep(0.5)
        press(RIGHT, 1)  # hand back: the correction is committed, the policy drives again
        wait_for(lambda: takeovers[-1:] == [False], 20, "the hand-back", procs, logs)
        back_at = time.time()
        # The teleop node sends nothing once it has handed back: these are the policy's (a
        # count, not a rate: a loaded machine runs the policy node slower than 100 Hz).
        wait_for(lambda: sum(c.sent >= back_at for c in commands) >= 50, 30,
                 "the policy driving again", procs, logs)  # fmt: skip
        wait_for(lambda: path.exists() and Dataset.open(path).num_episodes == 1, 20,
                 "the committed correction", procs, logs)  # fmt: skip
    finally:
        client.close()
        code = stop(launch)
        os.close(master)
    assert code in (0, 130), log_tail(log)

    dataset = Dataset.open(path)
    assert dataset.attrs["kind"] == "corrections" and dataset.attrs["action_mode"] == "joint"
    correction = dataset.episode(0)
    # The operator's commands: the tool moved about 15 x 5 mm along +x under them.
    first, last = (tcp_point(correction["action"][i, :6]) for i in (0, -1))
    assert last[0] - first[0] > 0.04 and abs(last[1] - first[1]) < 0.02, (first, last)
    # The first action is the arm's measured pose (the policy's last command is not the
    # operator's), within what the arm moves in one 50 ms period.
    np.testing.assert_allclose(correction["action"][0, :6], correction["joint_pos"][0], atol=0.05)
    # Fine-tuning takes them as corrections recorded for this checkpoint (it refuses others).
    tuned = finetune_checkpoint(
        FIXTURE, path, tmp_path / "tuned", settings=FinetuneSettings(steps=5)
    )
    assert CheckpointInfo.read(tuned).spec == CheckpointInfo.read(FIXTURE).spec
    assert "operator has the arm" in log.read_text(), log_tail(log)


def test_corrections_are_never_appended_to_demonstrations(ros_context, tmp_path) -> None:
    """A corrections recorder pointed at a demonstrations dataset (or the reverse) is refused
    before it records: a fine-tuning would otherwise train on the demonstrations as
    corrections, a training on corrections as demonstrations."""
    from rclpy.parameter import Parameter

    from robot_il.errors import ConfigError
    from robot_il.ros.recorder_node import RecorderNode

    def recorder(path, corrections: bool) -> RecorderNode:
        parameters = [
            Parameter("path", value=str(path)),
            Parameter("corrections", value=corrections),
            Parameter("autostart", value=False),
            Parameter("fsync", value=False),
        ]
        return RecorderNode(context=ros_context, parameter_overrides=parameters)

    for held, appended in ((False, True), (True, False)):
        path = tmp_path / f"held_corrections_{held}.zarr"
        recorder(path, held).shutdown()
        with pytest.raises(ConfigError, match="holds kind"):
            recorder(path, appended)
    with pytest.raises(ConfigError, match="autostart"):
        RecorderNode(
            context=ros_context,
            parameter_overrides=[
                Parameter("path", value=str(tmp_path / "c.zarr")),
                Parameter("corrections", value=True),
                Parameter("autostart", value=True),
            ],
        )


@pytest.mark.usefixtures("trained_checkpoints")
def test_a_takeover_in_a_selection_intervenes_waits_and_is_fine_tuned_on(
    ros_context, ros_env, tmp_path
) -> None:
    """``deploy_select_sim.launch.yaml takeover:=true``: the person takes over with the
    keyboard; the episode under way counts as intervened, no episode starts until the hand-back
    (the simulator keeps the scene the correction is made in), and a later episode's close
    fine-tunes on the correction."""
    import json

    from make_select_candidates import BEST, UNDERTRAINED
    from make_select_candidates import FIXTURE as CANDIDATES
    from std_msgs.msg import String
    from std_srvs.srv import SetBool

    from robot_il.dataset import Dataset
    from robot_il.ros.selector_node import LATCHED
    from robot_il.select import Selector

    corrections, tuned, state = tmp_path / "c.zarr", tmp_path / "tuned", tmp_path / "sel.json"
    log = tmp_path / "launch.log"
    argv = [str(BIN / "robot-il"), "launch", "deploy_select_sim.launch.yaml"]
    argv += [f"candidates_dir:={CANDIDATES}", f"candidates:={BEST},{UNDERTRAINED}"]
    argv += [f"default_candidate:={BEST}", "episodes:=6", f"state_path:={state}"]
    argv += ["takeover:=true", f"finetune_corrections:={corrections}", f"finetune_out:={tuned}"]
    argv += ["finetune_steps:=5", "rule:=uniform"]
    launch, master = launch_with_keyboard(argv, ros_env, log)
    procs, logs = (launch,), (log,)
    client = Client(ros_context)
    try:
        takeovers = record_takeovers(client)
        pending: list = []
        client.node.create_subscription(
            String,
            "selector/statistics",
            lambda m: pending.append((json.loads(m.data).get("pending") or {}).get("episode")),
            LATCHED,
        )
        # The arm can be taken over once the policy node serves policy/takeover.
        takeover = client.node.create_client(SetBool, "policy/takeover")
        wait_for(takeover.service_is_ready, 120, "the policy node", procs, logs)
        for _ in range(40):  # +x until the takeover is announced
            os.write(master, b"w")
            time.sleep(0.1)
            if takeovers[-1:] == [True]:
                break
        wait_for(lambda: takeovers[-1:] == [True], 10, "the takeover", procs, logs)
        time.sleep(2.0)  # the operator corrects; meanwhile no episode may start
        held_log = log.read_text()
        opened = pending[-1]
        for _ in range(10):
            os.write(master, b"d")
            time.sleep(0.1)
        assert pending[-1] == opened, pending  # nothing judged while the person held the arm
        os.write(master, RIGHT)  # hand back: the selection goes on
        code = launch.wait(timeout=240)
    finally:
        client.close()
        stop(launch)
        os.close(master)
    output = log.read_text()
    assert code == 0, log_tail(log, 4000)
    # The takeover came during an episode (intervened) or between two (the next one waited).
    assert "took the arm over" in held_log or "waits until the person hands" in held_log, held_log
    assert Dataset.open(corrections).num_episodes == 1
    assert Dataset.open(corrections).attrs["kind"] == "corrections"
    selector = Selector.load(state)
    assert selector.statistics()["episodes"] == 6
    assert "fine-tuned" in output and any(tuned.iterdir()), log_tail(log, 4000)


def test_corrections_the_checkpoint_could_not_be_fine_tuned_on_are_refused_at_start(
    ros_context, tmp_path
) -> None:
    """The corrections recorder checks them against the deployed checkpoint before the person
    corrects anything (fine-tuning refused them only afterwards): an eef_delta checkpoint
    (takeovers record joint targets), another rate than the checkpoint's, and (by spec) a
    task-frame checkpoint or a camera it observes that is not recorded; each says the fix.
    Nothing is written."""
    from make_eef_reach_checkpoint import FIXTURE as EEF_FIXTURE
    from rclpy.parameter import Parameter
    from robot_il.policies import read_checkpoint

    from robot_il.errors import DatasetError
    from robot_il.ros.recorder_node import RecorderNode
    from robot_il.select.corrections import check_corrections_fit

    path = tmp_path / "corrections.zarr"

    def recorder(checkpoint, record_hz: float = 20.0) -> RecorderNode:
        parameters = [
            Parameter("path", value=str(path)),
            Parameter("corrections", value=True),
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("record_hz", value=record_hz),
            Parameter("fsync", value=False),
        ]
        return RecorderNode(context=ros_context, parameter_overrides=parameters)

    with pytest.raises(DatasetError, match="action_mode 'joint' != expected 'eef_delta'.*joint"):
        recorder(EEF_FIXTURE)
    with pytest.raises(DatasetError, match=r"control_hz 10.0 != expected 20.0.*record_hz:=20$"):
        recorder(FIXTURE, record_hz=10.0)
    assert not path.exists()
    recorder(FIXTURE).shutdown()  # what it records fits: it starts

    recorded = dict(read_checkpoint(FIXTURE)[1]["spec"])
    framed = {**recorded, "frame": "push"}
    with pytest.raises(DatasetError, match="frame 'world' != expected 'push'.*task frame"):
        check_corrections_fit(recorded, framed, "here")
    camera = {**recorded, "observation": {**recorded["observation"], "rgb_front": [64, 64, 3]}}
    with pytest.raises(DatasetError, match="camera:=front"):
        check_corrections_fit(recorded, camera, "here")


def test_deploy_sim_takeover_refuses_an_eef_delta_checkpoint_at_start(ros_env, tmp_path) -> None:
    """``deploy_sim.launch.yaml`` passes the deployed checkpoint to the corrections recorder,
    so an eef_delta checkpoint with takeover:=true ends the launch in one line at start."""
    from make_eef_reach_checkpoint import FIXTURE as EEF_FIXTURE

    path, log = tmp_path / "corrections.zarr", tmp_path / "launch.log"
    argv = [str(BIN / "robot-il"), "launch", "deploy_sim.launch.yaml"]
    argv += [f"checkpoint:={EEF_FIXTURE}", "takeover:=true", f"corrections:={path}"]
    launch, master = launch_with_keyboard(argv, ros_env, log)
    try:
        code = launch.wait(timeout=60)
    finally:
        stop(launch)
        os.close(master)
    output = log.read_text()
    assert code != 0, log_tail(log)
    assert "[recorder] error: recorder: the deployed checkpoint" in output, log_tail(log)
    assert "[recorder] Traceback" not in output, log_tail(log)
    assert not path.exists()


def test_a_takeover_in_lock_step_runs_the_simulation_at_the_operators_pace(
    ros_context, ros_env, tmp_path
) -> None:
    """``deploy_sim.launch.yaml lock_step:=true takeover:=true``: the simulator steps 2 ms per
    command, and the teleop node commands at 20 Hz. It sends its command again on every
    ``/clock`` until a period of simulated time has passed, so simulated time keeps up with
    the operator's (it ran at a 25th of it: the arm crawled under the operator's keys)."""
    from robot_il.envs.ur5e.kinematics import tcp_point
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from robot_il.ros.ur_topics import stamp_seconds

    path, log = tmp_path / "corrections.zarr", tmp_path / "launch.log"
    argv = [str(BIN / "robot-il"), "launch", "deploy_sim.launch.yaml", f"checkpoint:={FIXTURE}"]
    argv += ["takeover:=true", f"corrections:={path}", "lock_step:=true"]
    launch, master = launch_with_keyboard(argv, ros_env, log)
    procs, logs = (launch,), (log,)
    client = Client(ros_context)
    try:
        commands = client.record(Float64MultiArray, "forward_position_controller/commands")
        joint_states = client.record(JointState, "joint_states", depth=10)
        clock = client.record(Clock, "/clock", depth=100)
        takeovers = record_takeovers(client)
        wait_for(lambda: len(commands) > 200, 120, "the policy's commands", procs, logs)
        os.write(master, b"w")  # moving the device takes the arm over
        wait_for(lambda: takeovers[-1:] == [True], 20, "the takeover", procs, logs)
        start_x = tcp_point(joint_states[-1][1].position[:6])[0]
        wall, simulated = time.monotonic(), stamp_seconds(clock[-1][1].clock)
        for _ in range(15):  # 5 mm a press, 1.5 s
            os.write(master, b"w")
            time.sleep(0.1)
        time.sleep(1.5)
        wall, simulated = (
            time.monotonic() - wall,
            stamp_seconds(clock[-1][1].clock) - simulated,
        )
        # Real time on a quiet machine; a 25th of it before (0.04), more than a 10th on a
        # loaded one, each simulated step a DDS round trip.
        assert simulated > 0.1 * wall, (simulated, wall)
        wait_for(
            lambda: tcp_point(joint_states[-1][1].position[:6])[0] - start_x > 0.04,
            10,
            "the arm to follow the operator",
            procs,
            logs,
        )
    finally:
        client.close()
        code = stop(launch)
        os.close(master)
    assert code in (0, 130), log_tail(log)


def test_a_correction_keeps_the_gripper_command_in_force_until_the_operator_works_it(
    ros_context, tmp_path
) -> None:
    """The teleop node leaves the gripper as the policy left it until the operator works the
    device's gripper; the correction's gripper action is that command in force (closed on the
    cube: 1), not the measured opening (0.417 around a pick_place cube), which fine-tuning
    would teach the policy to command, loosening its grasp."""
    from std_msgs.msg import Bool, Float64
    from test_recorder_node import Simulator, recorded_steps, recorder

    from robot_il.dataset import Dataset
    from robot_il.ros.selector_node import LATCHED

    path = tmp_path / "corrections.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    simulator._gripper = [0.417]  # closed on a cube: the fingers stop part-way
    try:
        with recorder(ros_context, path, corrections=True, autostart=False) as node:
            gripper = client.publisher(Float64, "gripper/command")
            gripper.publish(Float64(data=1.0))  # the policy's last gripper command: close
            wait_for(lambda: node._grippers[0] == 1.0, 10, "the policy's gripper command")
            takeover = client.node.create_publisher(Bool, "teleop/takeover", LATCHED)
            takeover.publish(Bool(data=True))
            wait_for(lambda: recorded_steps(node) >= 5, 10, "the correction's steps")
            takeover.publish(Bool(data=False))  # the hand-back commits it
            wait_for(lambda: node.writer.num_episodes == 1, 10, "the committed correction")
    finally:
        simulator.close()
        client.close()
    correction = Dataset.open(path).episode(0)
    np.testing.assert_allclose(correction["gripper"][:, 0], 0.417, atol=1e-6)
    np.testing.assert_array_equal(correction["action"][:, 6], 1.0)


def test_a_takeover_is_refused_while_the_policy_node_s_estop_is_latched(ros_context) -> None:
    """An e-stop sent before the teleop node was discovered reaches the policy node only: the
    operator's device must not take the stopped arm over (its servo would move it) until the
    e-stop is released."""
    from deploy_helpers import spinning
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool, Trigger

    from robot_il.ros.policy_node import ESTOP_LATCHED, NOT_TAKEN_OVER, PolicyNode

    node = PolicyNode(
        context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(FIXTURE))]
    )
    client = Client(ros_context)
    try:
        with spinning(node, ros_context):
            # a hand-back of an arm nobody took over begins nothing, and says so
            idle = client.call(SetBool, "policy/takeover", request=SetBool.Request(data=False))
            assert idle.success and idle.message == NOT_TAKEN_OVER, idle.message
            estop = client.publisher(Bool, "safety/estop")
            estop.publish(Bool(data=True))
            wait_for(lambda: node._estop_latched, 10, "the e-stop to latch")
            refused = client.call(SetBool, "policy/takeover", request=SetBool.Request(data=True))
            assert not refused.success and refused.message == ESTOP_LATCHED
            assert client.call(Trigger, "policy/reset").success  # not taken over
            assert client.call(Trigger, "safety/reset_estop").success
            taken = client.call(SetBool, "policy/takeover", request=SetBool.Request(data=True))
            assert taken.success, taken.message
    finally:
        client.close()


def test_the_arm_is_not_handed_back_while_the_teleop_node_s_estop_is_latched(ros_context) -> None:
    """An e-stop that reached the teleop node but not the policy node (sent before the policy
    node was discovered) must not be bypassed by the hand-back: the next key restarted the
    policy, which drove the arm the operator had stopped. It hands back once the e-stop is
    released."""
    from deploy_helpers import spinning
    from geometry_msgs.msg import Twist
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger
    from test_teleop_node import teleop_node

    from robot_il.ros.policy_node import PolicyNode

    policy = PolicyNode(
        context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(FIXTURE))]
    )
    client = Client(ros_context)
    try:
        takeovers = record_takeovers(client)
        ticks = client.record(Twist, "teleop/twist")
        with (
            spinning(policy, ros_context),
            teleop_node(ros_context, {"takeover": True}) as (teleop, master),
        ):
            wait_for(teleop.policy_takeover.service_is_ready, 20, "the policy node's service")
            os.write(master, b"w")  # moving the device takes the arm over
            wait_for(lambda: takeovers[-1:] == [True], 20, "the takeover")
            teleop._on_estop(Bool(data=True))  # heard here only
            pressed = len(ticks)
            os.write(master, RIGHT)
            wait_for(lambda: len(ticks) > pressed + 5, 10, "the teleop node reading the key")
            assert policy._taken_over and takeovers[-1] is True, takeovers
            teleop._on_reset_estop(Trigger.Request(), Trigger.Response())
            os.write(master, RIGHT)
            wait_for(lambda: takeovers[-1:] == [False], 10, "the hand-back once released")
            wait_for(lambda: not policy._taken_over, 10, "the policy node's hand-back")
    finally:
        client.close()


def test_a_selection_s_corrections_record_the_camera_the_candidates_observe(
    ros_env, tmp_path
) -> None:
    """``deploy_select_sim.launch.yaml takeover:=true camera:=front`` (as ``robot-il select sim
    --takeover`` starts it for camera candidates): its corrections recorder recorded no
    camera, so every fine-tuning of a camera candidate refused the person's corrections. It
    records the candidates' camera at their frame size, and checks its corrections against
    the default candidate (a name in candidates_dir) at start, as deploy_sim's does."""
    from deploy_helpers import constant_checkpoint

    from robot_il.dataset import Dataset
    from robot_il.launch.description import load_launch
    from robot_il.launch.substitution import package_share

    candidate = constant_checkpoint(
        tmp_path / "camera", np.zeros(7), camera="front", image_size=(24, 32)
    )
    path, log = tmp_path / "corrections.zarr", tmp_path / "recorder.log"
    launch = package_share("robot_il", tmp_path) / "launch" / "deploy_select_sim.launch.yaml"
    arguments = {"candidates": "camera", "default_candidate": "camera"}  # names, as it runs
    arguments |= {"candidates_dir": str(candidate.parent)}
    arguments |= {"camera": "front", "image_size": "[24, 32]", "takeover": "true"}
    plan = load_launch(launch, {**arguments, "finetune_corrections": str(path)})
    (recorder,) = [spec for spec in plan.processes if spec.name == "recorder"]
    with open(log, "w") as out:
        process = subprocess.Popen(recorder.argv, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "recording reach at" in log.read_text(), 60, "the recorder's start",
                 (process,), (log,))  # fmt: skip
    finally:
        stop(process)
    observation = Dataset.open(path).attrs["spec"]["observation"]
    assert observation.get("rgb_front") == [24, 32, 3], observation


def test_a_correction_the_disk_does_not_take_is_said_and_the_next_is_recorded(
    ros_context, tmp_path
) -> None:
    """A hand-back whose commit fails on disk (full, a lost mount; here a file where a chunk
    folder must go) raised out of the takeover's callback: the recorder died, and with it
    (on_exit: shutdown) the deployment and every later correction. The correction is
    discarded and said, as an episode key's commit is, and the next takeover is recorded."""
    from std_msgs.msg import Bool
    from test_recorder_node import Simulator, recorded_steps, recorder

    from robot_il.dataset import Dataset
    from robot_il.ros.selector_node import LATCHED

    path = tmp_path / "corrections.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path, corrections=True, autostart=False) as node:
            takeover = client.node.create_publisher(Bool, "teleop/takeover", LATCHED)
            takeover.publish(Bool(data=True))
            wait_for(lambda: recorded_steps(node) >= 3, 10, "the first correction's steps")
            blocker = path / "data" / "joint_pos" / "c"  # a file where the chunk folder goes
            blocker.write_text("")
            takeover.publish(Bool(data=False))  # commits from the takeover's callback
            wait_for(lambda: node._episode is None, 10, "the hand-back")
            with node._lock:  # held by the commit: the blocker stays until it has failed
                assert node.writer.num_episodes == 0
            blocker.unlink()
            takeover.publish(Bool(data=True))
            wait_for(lambda: recorded_steps(node) >= 3, 10, "the next correction's steps")
            takeover.publish(Bool(data=False))
            wait_for(lambda: node.writer.num_episodes == 1, 10, "the next correction")
    finally:
        simulator.close()
        client.close()
    assert Dataset.open(path).num_episodes == 1


def test_the_first_gripper_toggle_after_a_takeover_opens_a_gripper_the_policy_closed(
    ros_context, tmp_path
) -> None:
    """The keyboard's space toggles the device's own gripper state, which started open: after
    taking over an arm whose policy had closed the gripper, the first press sent "close"
    (nothing happened) and only the second opened it. The device now carries on from the
    command in force."""
    from deploy_helpers import constant_checkpoint, spinning
    from rclpy.parameter import Parameter
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from std_msgs.msg import Float64
    from test_recorder_node import Simulator
    from test_teleop_node import teleop_node

    from robot_il.ros.policy_node import PolicyNode

    closing = constant_checkpoint(tmp_path / "closing", np.append(HOME_JOINT_POS, 1.0))
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        takeovers = record_takeovers(client)
        grippers = client.record(Float64, "gripper/command")
        teleop_parameters = {"takeover": True, "max_observation_age": 1.0}
        with teleop_node(ros_context, teleop_parameters) as (teleop, master):
            # the teleop node listens before the policy sends its one gripper command (only
            # changes are sent): close
            policy = PolicyNode(context=ros_context, parameter_overrides=[
                Parameter("checkpoint", value=str(closing))])  # fmt: skip
            with spinning(policy, ros_context):
                wait_for(lambda: teleop._gripper_in_force == 1.0, 30, "the policy's gripper")
                wait_for(teleop.policy_takeover.service_is_ready, 20, "the policy's service")
                os.write(master, b"w")  # moving the device takes the arm over
                wait_for(lambda: takeovers[-1:] == [True], 20, "the takeover")
                taken_at = len(grippers)
                os.write(master, b" ")  # one press
                wait_for(lambda: len(grippers) > taken_at, 10, "the operator's gripper command")
                sent = [g[1].data for g in grippers[taken_at:]]
                assert sent[0] == 0.0, sent
    finally:
        simulator.close()
        client.close()
