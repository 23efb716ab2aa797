"""A roboticist's first day on a real UR cell, as the launch files read it: what each argument
reaches, and what is refused before any node starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_il.errors import LaunchError
from robot_il.launch.description import load_launch
from robot_il.launch.substitution import package_share

LAUNCH = package_share("robot_il", Path(__file__)) / "launch"


def _parameters(name: str, arguments: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each process of launch file ``name`` -> its ``-p name:=value`` parameters (and its
    namespace as ``__ns``)."""
    plan = load_launch(LAUNCH / name, arguments)
    found = {}
    for process in plan.processes:
        argv = list(process.argv)
        values = {}
        for flag, item in zip(argv, argv[1:], strict=False):
            if flag in ("-p", "-r") and ":=" in item:
                key, _, value = item.partition(":=")
                values[key] = value
        found[process.name] = values
    return found


def test_each_arm_of_a_two_arm_cell_drives_its_own_gripper() -> None:
    """``gripper_host:=H`` on the two-arm cell (listed by ``-s``, from the bridges' file)
    reached both bridges: both arms' gripper commands went to one gripper, and bob's
    opened alice's. Each arm now has its own host argument, and the shared one is refused."""
    given = {"checkpoint": "ckpt", "gripper": "robotiq"}
    cell = "deploy_two_arm_ur5e.launch.yaml"
    hosts = _parameters(cell, {**given, "bob_gripper_host": "10.0.0.6"})
    assert hosts["ur_rtde_bridge"]["__ns"] == "/alice"
    assert hosts["ur_rtde_bridge"]["gripper_host"] == "''"  # alice_ip's gripper
    assert hosts["ur_rtde_bridge-2"]["__ns"] == "/bob"
    assert hosts["ur_rtde_bridge-2"]["gripper_host"] == "10.0.0.6"
    with pytest.raises(LaunchError, match="'gripper_host' would be ignored"):
        load_launch(LAUNCH / cell, {**given, "gripper_host": "10.0.0.5"})


@pytest.mark.parametrize(
    ("name", "required", "addresses"),
    [
        ("ur5e_rtde.launch.yaml", {}, {"robot_ip": "ur_rtde_bridge"}),
        ("deploy_ur5e.launch.yaml", {"checkpoint": "ckpt"}, {"robot_ip": "ur_rtde_bridge"}),
        ("record_real_cell.launch.yaml", {"path": "cell.zarr"}, {"robot_ip": "ur_rtde_bridge"}),
        (
            "deploy_two_arm_ur5e.launch.yaml",
            {"checkpoint": "ckpt"},
            {"alice_ip": "ur_rtde_bridge", "bob_ip": "ur_rtde_bridge-2"},
        ),
    ],
)
def test_a_real_cell_has_no_default_robot_address(
    name: str, required: dict[str, str], addresses: dict[str, str]
) -> None:
    """Each real-cell file gave its bridges URSim's 192.168.56.101 (and .102) unless told
    otherwise: a launch that forgot ``robot_ip:=`` drove whatever answered there. The
    addresses are empty by default (the bridge refuses that in one line), and each one given
    reaches its own bridge."""
    default = _parameters(name, required)
    for bridge in addresses.values():
        assert default[bridge]["robot_ip"] == "''", bridge
    given = {argument: f"10.0.0.{i}" for i, argument in enumerate(addresses, 2)}
    nodes = _parameters(name, {**required, **given})
    for argument, bridge in addresses.items():
        assert nodes[bridge]["robot_ip"] == given[argument], bridge


@pytest.mark.parametrize(
    ("name", "required", "readers"),
    [
        ("deploy_ur5e.launch.yaml", {"checkpoint": "ckpt"}, ("policy",)),
        (
            "record_real_cell.launch.yaml",
            {"path": "cell.zarr", "view": "true"},
            ("recorder", "teleop", "live_view"),
        ),
    ],
)
def test_a_tf_prefix_reaches_the_bridge_and_every_node_that_reads_its_joints(
    name: str, required: dict[str, str], readers: tuple[str, ...]
) -> None:
    """``tf_prefix:=ur5e_`` (listed by ``-s``) reached the bridge alone: it published
    ``ur5e_shoulder_pan_joint``... while the policy node (or the recorder and teleop) waited,
    silently and for ever, for ``shoulder_pan_joint``. ``namespace:=`` did the same with the
    topics; a one-arm cell's nodes read them at the root, so it is refused."""
    nodes = _parameters(name, {**required, "tf_prefix": "ur5e_"})
    assert nodes["ur_rtde_bridge"]["tf_prefix"] == "ur5e_"
    for reader in readers:
        assert nodes[reader]["tf_prefixes"] == "['ur5e_']", reader
    default = _parameters(name, required)
    assert default["ur_rtde_bridge"]["tf_prefix"] == "''"
    assert all(default[reader]["tf_prefixes"] == "['']" for reader in readers)
    with pytest.raises(LaunchError, match="'namespace' would be ignored"):
        load_launch(LAUNCH / name, {**required, "namespace": "arm"})


def test_included_arguments_the_includer_leaves_open_still_reach_the_bridge() -> None:
    """The refusal above is for arguments every include sets: those an include leaves open
    (the servo's ``gain``) still pass from the command line, as ``ros2 launch`` passes them."""
    nodes = _parameters("deploy_ur5e.launch.yaml", {"checkpoint": "ckpt", "gain": "500.0"})
    assert nodes["ur_rtde_bridge"]["gain"] == "500.0"


@pytest.mark.ros
def test_a_policy_node_that_finds_no_joints_of_its_arm_says_where_it_reads_them(
    ros_context, ros_env, tmp_path
) -> None:
    """A UR driver started with another ``tf_prefix`` (here none) than the policy node's
    ``tf_prefixes``: the node waited silently for ever, nothing on the log said why the arm
    did not move. It now names the keys, the topic and the joint names it waits for; and it
    still sends no command."""
    from deploy_helpers import (
        COMMANDS,
        UR_JOINTS,
        Client,
        constant_checkpoint,
        node_process,
        wait_for,
    )
    from robot_il.envs.ur5e.description import HOME_JOINT_POS
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    checkpoint = constant_checkpoint(tmp_path / "policy", np.append(HOME_JOINT_POS, 0.0))
    params = {"checkpoint": checkpoint, "gripper": "''", "tf_prefixes": "['ur5e_']"}
    log = tmp_path / "policy.log"
    client = Client(ros_context)
    commands = client.record(Float64MultiArray, COMMANDS)
    try:
        with node_process("policy", params, ros_env, log) as policy:
            driver = client.publisher(JointState, "joint_states", (policy,), (log,))
            state = JointState(name=UR_JOINTS, position=HOME_JOINT_POS.tolist())

            def told() -> bool:
                state.header.stamp = client.node.get_clock().now().to_msg()
                driver.publish(state)  # the driver of another prefix, at 50 Hz
                return "waiting for observation keys ['joint_pos']" in log.read_text()

            wait_for(told, 30, "the policy node's reason to wait", (policy,), (log,))
    finally:
        client.close()
    assert "names ['ur5e_shoulder_pan_joint']" in log.read_text()
    assert "on ['joint_states']" in log.read_text()
    assert not commands
