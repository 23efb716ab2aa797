"""The UR5e arm with a parallel gripper: description (one source of truth), kinematics, and the
MuJoCo (MJCF) and PyBullet (URDF) model generators built from that description."""
