"""Running a trained policy against a live robot, free of ROS: action chunks on a timeline,
and inference in a child process. The ROS node (``robot_il.ros.policy_node``) and the latency
benchmark build on these."""

from robot_il.deploy.timeline import ActionBlend, ActionTimeline, ChunkPlanner

__all__ = ["ActionBlend", "ActionTimeline", "ChunkPlanner"]
