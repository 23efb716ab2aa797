"""Running a trained policy against a live robot, free of ROS: action chunks on a timeline
and one inference call over an observation history. The ROS node (``robot_il.ros.policy_node``)
and the latency benchmark build on these."""

from robot_il.deploy.inference import predict_actions
from robot_il.deploy.timeline import ActionTimeline, ChunkPlanner

__all__ = ["ActionTimeline", "ChunkPlanner", "predict_actions"]
