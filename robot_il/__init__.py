"""robot_il: imitation learning and safe ROS 2 deployment for UR5e arms.

Subpackages: ``dataset`` (zarr demonstrations), ``record`` (recorders, teleoperation),
``train`` (shared training loop), ``envs`` (UR5e in MuJoCo and PyBullet), ``policies``
(BC, Diffusion Policy), ``safety``, ``ros`` (rclpy nodes), ``launch`` (YAML launch runner),
``select`` (human-feedback model selection), ``cli`` (the ``robot-il`` command).
"""

__version__ = "0.1.0"
