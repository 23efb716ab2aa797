"""How a cell's arms appear on ROS: joint-name prefixes and controller topics, as parameters.

A two-arm UR cell is set up in one of three ways, and every multi-arm node (``sim_robot``,
``policy``, ``recorder``, ``teleop``) speaks each of them, chosen by ``controller_layout``:

- ``combined`` (robot_il's default): one ``joint_states`` message with every arm's joints,
  one ``forward_position_controller/commands`` with 6 targets per arm (mount order) and one
  ``scaled_joint_trajectory_controller/joint_trajectory`` naming every arm's joints;
- ``per_arm``: Universal Robots' dual-arm tutorial (one controller manager): a joint state
  broadcaster per arm publishes only that arm's joints on ``joint_states``, and each arm has
  its own ``<tf_prefix>forward_position_controller/commands`` (6 targets) and
  ``<tf_prefix>scaled_joint_trajectory_controller/joint_trajectory``;
- ``namespaced``: one driver per arm, each under a namespace of ``arm_namespaces``:
  ``<ns>/joint_states``, ``<ns>/forward_position_controller/commands`` and
  ``<ns>/scaled_joint_trajectory_controller/joint_trajectory``.

``tf_prefixes`` (entry i for the env's arm i in mount order; default ``left_``/``right_``,
or none for one arm) prefix the joint names in every layout (in ``namespaced``, as each
driver's ``tf_prefix`` gives them). The controllers' names are parameters too
(``forward_controller``, ``trajectory_controller``: ROS 2 Lyrical drops
``scaled_joint_trajectory_controller``). Grippers follow robot_il's convention per arm:
``<tf_prefix>gripper/command`` and ``<tf_prefix>gripper_joint`` (under the arm's namespace in
``namespaced``). Dataset and policy keys keep the env's ``left_``/``right_`` whatever the
prefixes are.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node

from robot_il.envs.ur5e.description import JOINT_NAMES
from robot_il.errors import ConfigError
from robot_il.ros.ur_topics import GRIPPER_JOINT, JOINT_STATES_TOPIC, tf_prefix

CONTROLLER_LAYOUTS = ("combined", "per_arm", "namespaced")
FORWARD_CONTROLLER = "forward_position_controller"
TRAJECTORY_CONTROLLER = "scaled_joint_trajectory_controller"


@dataclass(frozen=True)
class CommandTopic:
    """One joint command topic and the arms (indices in mount order) its values are for."""

    name: str
    arms: tuple[int, ...]


@dataclass(frozen=True)
class ArmLayout:
    """The ROS names of the arms of one cell; see the module docstring."""

    tf_prefixes: tuple[str, ...]
    controller_layout: str = "combined"
    arm_namespaces: tuple[str, ...] = ()
    forward_controller: str = FORWARD_CONTROLLER
    trajectory_controller: str = TRAJECTORY_CONTROLLER

    def __post_init__(self) -> None:
        if self.controller_layout not in CONTROLLER_LAYOUTS:
            raise ConfigError(
                f"controller_layout {self.controller_layout!r} is not one of "
                f"{', '.join(CONTROLLER_LAYOUTS)}"
            )
        if len(set(self.tf_prefixes)) != len(self.tf_prefixes) and (
            self.controller_layout != "namespaced"
        ):
            raise ConfigError(
                f"tf_prefixes {list(self.tf_prefixes)} must differ between arms that share "
                f"topics ({self.controller_layout} layout)"
            )
        if self.controller_layout == "namespaced":
            namespaces = self.arm_namespaces
            if len(namespaces) != len(self.tf_prefixes) or len(set(namespaces)) != len(namespaces):
                raise ConfigError(
                    f"arm_namespaces {list(namespaces)} must name one distinct namespace per arm "
                    f"({len(self.tf_prefixes)} arms)"
                )
        if not self.forward_controller or not self.trajectory_controller:
            raise ConfigError("forward_controller and trajectory_controller must not be empty")

    @classmethod
    def declare(cls, node: Node, arms: list[str]) -> ArmLayout:
        """Declare the layout's parameters on ``node`` for the env arms ``arms`` (mount order)
        and read them; ConfigError names the parameter that does not fit."""
        default_prefixes = [tf_prefix(arm) for arm in arms]
        prefixes = list(node.declare_parameter("tf_prefixes", default_prefixes).value)
        layout = node.declare_parameter("controller_layout", "combined").value
        namespaces = list(node.declare_parameter("arm_namespaces", [""]).value)
        forward = node.declare_parameter("forward_controller", FORWARD_CONTROLLER).value
        trajectory = node.declare_parameter("trajectory_controller", TRAJECTORY_CONTROLLER).value
        if len(prefixes) != len(arms):
            raise ConfigError(
                f"{node.get_name()}: tf_prefixes {prefixes} has {len(prefixes)} entries for "
                f"{len(arms)} arm(s)"
            )
        try:
            return cls(
                tuple(prefixes),
                layout,
                tuple(namespaces) if layout == "namespaced" else (),
                forward,
                trajectory,
            )
        except ConfigError as error:
            raise ConfigError(f"{node.get_name()}: {error}") from None

    @property
    def num_arms(self) -> int:
        return len(self.tf_prefixes)

    def joint_names(self, arm: int) -> list[str]:
        """The six UR joint names of arm ``arm`` (index in mount order)."""
        return [self.tf_prefixes[arm] + name for name in JOINT_NAMES]

    def gripper_joint(self, arm: int) -> str:
        return self.tf_prefixes[arm] + GRIPPER_JOINT

    def _in_namespace(self, arm: int, name: str) -> str:
        if self.controller_layout == "namespaced":
            return f"{self.arm_namespaces[arm].strip('/')}/{name}"
        return name

    def joint_state_topics(self) -> list[tuple[str, tuple[int, ...]]]:
        """``joint_states`` topics and the arms whose joints each one carries."""
        if self.controller_layout == "namespaced":
            return [(self._in_namespace(a, JOINT_STATES_TOPIC), (a,)) for a in range(self.num_arms)]
        if self.controller_layout == "per_arm":
            return [(JOINT_STATES_TOPIC, (a,)) for a in range(self.num_arms)]
        return [(JOINT_STATES_TOPIC, tuple(range(self.num_arms)))]

    def _controller_topics(self, controller: str, suffix: str) -> list[CommandTopic]:
        if self.controller_layout == "combined":
            return [CommandTopic(f"{controller}/{suffix}", tuple(range(self.num_arms)))]
        if self.controller_layout == "per_arm":
            return [
                CommandTopic(f"{prefix}{controller}/{suffix}", (a,))
                for a, prefix in enumerate(self.tf_prefixes)
            ]
        return [
            CommandTopic(self._in_namespace(a, f"{controller}/{suffix}"), (a,))
            for a in range(self.num_arms)
        ]

    def command_topics(self) -> list[CommandTopic]:
        """std_msgs/Float64MultiArray position command topics (6 targets per listed arm)."""
        return self._controller_topics(self.forward_controller, "commands")

    def trajectory_topics(self) -> list[CommandTopic]:
        """trajectory_msgs/JointTrajectory topics (naming the listed arms' joints)."""
        return self._controller_topics(self.trajectory_controller, "joint_trajectory")

    def broadcaster_topic(self, arm: int, broadcaster: str, topic: str) -> str:
        """A per-arm broadcaster's topic, as the UR driver names it in this layout: e.g.
        ``alice_speed_scaling_state_broadcaster/speed_scaling`` (per_arm, and combined with
        prefixes) or ``alice/speed_scaling_state_broadcaster/speed_scaling`` (namespaced)."""
        if self.controller_layout == "namespaced":
            return self._in_namespace(arm, f"{broadcaster}/{topic}")
        return f"{self.tf_prefixes[arm]}{broadcaster}/{topic}"

    def gripper_topic(self, arm: int) -> str:
        """The gripper command topic of arm ``arm`` (std_msgs/Float64, closure 0..1)."""
        return self._in_namespace(arm, f"{self.tf_prefixes[arm]}gripper/command")

    def describe(self) -> str:
        """One line for a node's start-up log."""
        prefixes = ", ".join(repr(p) for p in self.tf_prefixes)
        where = f" in {list(self.arm_namespaces)}" if self.arm_namespaces else ""
        return f"{self.controller_layout} layout, tf_prefixes [{prefixes}]{where}"
