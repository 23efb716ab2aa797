"""Runs ROS 2 YAML launch files without ``launch``/``launch_ros`` (which are not on PyPI).

``load_launch(file, {"key": "value"})`` reads a file into a :class:`LaunchPlan` (the supported
subset is documented in :mod:`robot_il.launch.description`); :class:`LaunchRunner` starts and
supervises its processes. The command line is ``robot-il launch FILE key:=value``.
"""

from robot_il.launch.description import (
    LaunchArgument,
    LaunchPlan,
    ProcessSpec,
    declared_arguments,
    load_launch,
)
from robot_il.launch.runner import LaunchRunner

__all__ = [
    "LaunchArgument",
    "LaunchPlan",
    "LaunchRunner",
    "ProcessSpec",
    "declared_arguments",
    "load_launch",
]
