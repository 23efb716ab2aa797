"""Errors that reach the user as one line: what went wrong and where."""

import errno

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""``OSError`` numbers of a full disk (or quota): the user's to fix, said in one line, where a
traceback (or an error's type name) would read as a bug."""


class RobotILError(Exception):
    """Base of every error robot_il reports to a user (bad input, bad data, bad config).

    The command-line entry point prints these as a single ``robot-il: error: ...`` line
    instead of a traceback; anything else is a bug and keeps its traceback.
    """


class DatasetError(RobotILError):
    """A dataset is missing, corrupt, or lacks a key a consumer needs."""


class ActionError(RobotILError, ValueError):
    """An action has the wrong shape, dtype, a NaN, or asks for something outside the limits."""


class CheckpointError(RobotILError):
    """A checkpoint is unreadable or was trained for another robot or observation spec."""


class LaunchError(RobotILError):
    """A launch file uses something this runner does not support, or an unknown argument."""


class SelectionError(RobotILError):
    """A candidate selector is misconfigured, or its state file is unreadable or does not match."""


class FeedbackError(SelectionError, ValueError):
    """A person's feedback is out of [0, 1], NaN, or names an unknown or already-rated episode."""


class RecordingError(RobotILError):
    """A recording cannot go on: a source or device is absent or failed, or a write failed."""


class ConfigError(RobotILError, ValueError):
    """A configuration value (task, backend, camera, rate, option) is unknown or out of range."""


class HardwareError(RobotILError):
    """A device (robot controller, gripper) cannot be reached, dropped its link or refused."""
