"""A seeded stream of commands and situations for the safety filter, replayed tick by tick.

It drives every branch of :class:`robot_il.safety.SafetyFilter` (smooth tracking, jumps
beyond the joint limits, NaN/inf commands and measurements, stale observations, late
commands, no command, repeated and backwards time, long gaps, e-stop and device faults with
their safe restarts, a two-arm veto, a tool point leaving the workspace box and a start
outside it) and records what it let through: each tick's command (rad) and its events' kinds.
``tests/safety/data/filter_reference.npz`` holds the record of the filter as it was before its
per-tick cost was cut (commit 7790ad8), rewritten when holds other than an e-stop became
controlled stops and the arm began to brake for the workspace box's wall (every tick that
differed was in or after such a hold or braking), and again when that braking found the wall
along the tool point's path and every braking took the exact discrete stopping speed (the
first tick that differed braked for a target, by 1e-12 to 2e-6 rad, or for the wall);
``test_filter_reference.py`` requires the same from today's filter.
``python tests/safety/filter_replay.py`` rewrites it (only on purpose: a change of what the
filter decides).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from robot_il.envs.ur5e.description import JOINT_VEL_LIMITS

from robot_il.safety import SafetyFilter, SafetyLimits

REFERENCE = Path(__file__).parent / "data" / "filter_reference.npz"
PERIOD = 0.002
"""s: the policy node's 500 Hz."""
HOME = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
MODES = ("track", "jump", "nonfinite", "stale", "late", "none", "time", "estop", "fault",
         "measured", "veto", "reach", "restart")  # fmt: skip
SEGMENT = 60
"""Ticks per mode before the next one is drawn."""


def limit_sets() -> dict[str, SafetyLimits]:
    """The policy node's 500 Hz limits (default box), and a tight box that the arm leaves
    often, with a short ramp and no period bound."""
    node = SafetyLimits.ur5e(
        acceleration=np.full(6, 10.0),
        max_step=max(0.05, float(np.max(JOINT_VEL_LIMITS)) * PERIOD),
        max_observation_age=0.1,
        max_command_age=0.5,
        ramp_duration=1.0,
    )
    tight = SafetyLimits.ur5e(
        max_step=0.05,
        workspace_lower=[-0.5, -0.6, 0.15],
        workspace_upper=[0.6, 0.5, 0.7],
        max_observation_age=0.01,
        max_command_age=0.05,
        ramp_duration=0.2,
    )
    return {"node": node, "tight": tight}


def replay(
    make_filter, limits: SafetyLimits, seed: int, ticks: int, period: float | None
) -> tuple[np.ndarray, list[str]]:
    """Commands (ticks, 6) rad (NaN where there was nothing to send) and each tick's event
    kinds (comma-joined, in order) for filter ``make_filter(limits, period)`` (``period``: its
    bound on elapsed time, or None) called every :data:`PERIOD` s on seed ``seed``."""
    rng = np.random.default_rng(seed)
    safety = make_filter(limits, period)
    lower, upper = limits.position_lower, limits.position_upper
    t, measured, target = 5.0, HOME.copy(), HOME.copy()
    commands, kinds = np.full((ticks, 6), np.nan), []
    mode, far = "track", HOME
    for i in range(ticks):
        if i % SEGMENT == 0:
            mode = MODES[rng.integers(len(MODES))]
            if mode == "estop":
                safety.estop()
            if mode == "fault":
                safety.set_fault("gripper link lost")
            if mode == "reach":  # a far target that swings the tool out of the box
                far = HOME + rng.uniform(-2.5, 2.5, 6)
            if mode == "restart":  # a safe start from wherever the arm is (maybe outside)
                safety.set_fault("gripper link lost")
                safety.set_fault(None)
                measured = target = np.clip(HOME + rng.uniform(-1.5, 1.5, 6), lower, upper)
        if mode == "estop" and i % SEGMENT == SEGMENT // 2:
            safety.reset_estop()
        if mode == "fault" and i % SEGMENT == SEGMENT // 2:
            safety.set_fault(None)
        t += PERIOD if mode != "time" else float(rng.choice([0.0, -0.001, 0.002, 0.011, 0.05]))
        target = np.clip(target + rng.normal(0.0, 0.004, 6), lower, upper)
        q_cmd: np.ndarray | None = target.copy()
        if mode in ("jump", "time"):
            q_cmd = rng.uniform(lower - 0.5, upper + 0.5)
        elif mode == "reach":
            q_cmd = far.copy()
        elif mode == "nonfinite" and rng.random() < 0.4:
            q_cmd[rng.integers(6)] = rng.choice([np.nan, np.inf, -np.inf])
        elif mode == "none":
            q_cmd = None
        if mode != "stale":  # stale: the observations stop coming
            safety.watchdog(t - float(rng.uniform(0.0, 0.004)), t)
        stamp = t - (0.6 if mode == "late" and rng.random() < 0.6 else 0.001)
        q_measured = measured.copy()
        if mode == "measured" and rng.random() < 0.3:
            q_measured[rng.integers(6)] = np.nan
        safe = safety.filter(q_cmd, q_measured, t, command_stamp=stamp)
        kinds.append(",".join(str(kind.value) for kind in safe.interventions))
        command = safe.command
        if command is None:  # a start waiting for finite measurements: nothing to send
            continue
        if mode == "veto" and rng.random() < 0.3:
            command = safety.veto(t)
        commands[i] = command
        measured = command + rng.normal(0.0, 1e-4, 6)
    return commands, kinds


def node_filter(limits: SafetyLimits, period: float | None) -> SafetyFilter:
    """The filter as the policy node builds it (the UR5e's closed-form tool point, no
    logging)."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    return SafetyFilter(limits, tool_point=tcp_point, period=period, log_events=False)


CASES = (
    ("node", 0, 2000, PERIOD),
    ("node", 3, 2000, PERIOD),
    ("tight", 1, 2000, None),
    ("tight", 2, 2000, PERIOD),
)
"""(limit set, seed, ticks, period bound) of each recorded replay."""


def record_all(make_filter=node_filter) -> dict[str, np.ndarray]:
    """Every case's commands and kinds, keyed ``<set>_<seed>_commands`` / ``_kinds``."""
    sets, out = limit_sets(), {}
    for name, seed, ticks, period in CASES:
        commands, kinds = replay(make_filter, sets[name], seed, ticks, period)
        out[f"{name}_{seed}_commands"] = commands
        out[f"{name}_{seed}_kinds"] = np.array(kinds)
    return out


if __name__ == "__main__":
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **record_all())
    print(f"wrote {REFERENCE}")
