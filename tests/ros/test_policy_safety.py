"""The policy node's safety layer, end to end: sim_robot and policy in their own processes.

The policies are real checkpoints whose network outputs a fixed action (a 1 rad jump, a
target beyond a joint limit, NaN), switched in through ``policy/switch`` between episodes.
Everything is checked on what reaches ``forward_position_controller/commands``.
"""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
from deploy_helpers import Client, constant_checkpoint, node_process, wait_for

from robot_il.safety.filter import _TRACKING_LAG as TRACKING_LAG  # s an arm may trail

pytestmark = pytest.mark.ros

COMMAND_TOPIC = "forward_position_controller/commands"
RATE = 500.0
SEED = 0
VELOCITY = np.pi  # UR5e joint speed limit, rad/s
MAX_STEP = VELOCITY * 2 / RATE + 1e-6  # the filter never counts more than two periods
ELBOW_LIMIT = np.pi
JUMP = -8.0
"""rad: the jump policy's target, from the start pose, for the shoulder pan (2.85 rad at the
start; -8 stays within its +-2 pi). The e-stop must latch while the arm still moves, and on a
loaded machine the recorded stream and the e-stop's delivery both lag: at the node's ramp,
speed and braking limits a 1 rad jump arrived 0.41 s after it passed the 0.4 rad the test
then waited for (the e-stop came late now and then); this one arrives 3.0 s after it passes
0.05 rad, where the e-stop now goes out (the test passes with 2.5 s of delay put before the
press; the 1 rad one failed with 0.6 s)."""


def _commands(records, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
    """The commands published (``sent``, system clock) between ``since`` and ``until``: by
    publication, not receipt, as a loaded machine delivers a backlog of commands after newer
    messages of other topics (the e-stop's event)."""
    return np.array([r[1].data for r in records if since <= r.sent <= until])


def _after_the_hold(records, since: float, what: str, procs, logs) -> np.ndarray:
    """The 200 or more commands published from a time within the first 50 ticks of one
    command (0.1 s at 500 Hz) among those published since ``since``: each must still be that
    command. The hold is waited for, not timed: on a loaded machine late control ticks brake
    less per second, and a controlled stop from the speed limit (pi / 10 rad/s^2 = 0.31 s)
    once held later than twice that after the staleness began (at load 6)."""

    def holding() -> bool:
        last = _commands(records, since=since)[-50:]
        return len(last) == 50 and bool(np.abs(last - last[-1]).max() < 1e-9)

    wait_for(holding, 10, what, procs, logs)
    held_from = time.time() - 0.05
    wait_for(lambda: len(_commands(records, since=held_from)) >= 200, 10,
             f"{what}: commands after it", procs, logs)  # fmt: skip
    return _commands(records, since=held_from)


def test_unsafe_policies_never_reach_the_command_topic(ros_context, ros_env, tmp_path) -> None:
    from robot_il.envs import make_env
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64MultiArray, String
    from std_srvs.srv import Trigger

    env = make_env("reach")
    q0 = env.reset(seed=SEED)[0]["joint_pos"].astype(np.float64)
    env.close()
    jump = constant_checkpoint(tmp_path / "jump", np.append(q0 + [JUMP, 0, 0, 0, 0, 0], 0.0))
    nan = constant_checkpoint(tmp_path / "nan", np.append(q0 + [np.nan, 0, 0, 0, 0, 0], 0.0))
    beyond = q0.copy()
    beyond[2] = 3.6  # elbow limit is pi
    limit = constant_checkpoint(tmp_path / "limit", np.append(beyond, 0.0))

    sim_log, policy_log = tmp_path / "sim.log", tmp_path / "policy.log"
    logs = (sim_log, policy_log)
    sim_params = {"task": "reach", "seed": SEED}
    policy_params = {"checkpoint": str(jump), "control_rate": RATE}
    with (
        node_process("sim_robot", sim_params, ros_env, sim_log) as sim,
        node_process("policy", policy_params, ros_env, policy_log) as policy,
    ):
        procs = (sim, policy)
        client = Client(ros_context)
        try:
            commands = client.record(
                Float64MultiArray, "forward_position_controller/commands", 100_000
            )
            states = client.record(JointState, "joint_states", 100)
            events = client.record(String, "safety/events", 1000)
            # Once the node's subscriptions are matched: a message sent before is lost.
            estop = client.publisher(Bool, "safety/estop", procs, logs)
            switch = client.publisher(String, "policy/switch", procs, logs)

            def kinds(since: float) -> set[str]:
                return {json.loads(r[1].data)["kind"] for r in events if r.sent >= since}

            # 1. An 8 rad jump: the arm ramps from its pose at the speed limit, never jumps.
            def moved(amount: float) -> bool:  # rad towards the jump's target, as recorded
                return bool(commands) and (commands[-1][1].data[0] - q0[0]) / np.sign(JUMP) > amount

            wait_for(lambda: moved(0.05), 60, "motion towards the jump target", procs, logs)
            motion = _commands(commands)
            assert np.all(np.isfinite(motion))
            # The first command starts from the measured pose. The node may command before
            # this client's subscriptions matched: the first command it saw is then held
            # against the joint state published nearest to it (500 Hz; the ramp leads the
            # arm by a few periods' motion at most).
            first_sent = min(r.sent for r in commands)
            nearest = min(states, key=lambda r: abs(r.sent - first_sent))
            assert np.abs(motion[0] - np.array(nearest[1].position[:6])).max() < 0.02
            assert np.abs(np.diff(motion, axis=0)).max() <= MAX_STEP
            # Its start's event goes out with the first command, so it too may precede the
            # match (lost on the volatile topic: once at load 7); the node's log has it. The
            # topic's safe_start is checked at the restart below, sent after the match.
            wait_for(lambda: "] safe_start: anchored" in policy_log.read_text(), 10,
                     "the safe start's event", procs, logs)  # fmt: skip

            # 2. E-stop during motion: commands freeze at once and stay frozen.
            pressed = time.time()  # the clock of the messages' publication times
            estop.publish(Bool(data=True))
            wait_for(lambda: "estop" in kinds(pressed), 5, "the e-stop's event", procs, logs)
            # The node's event names the control tick (node clock = system clock) whose
            # command was the first it held; that command and every later one must be frozen.
            # By publication time: DDS delivery under load is not the node's reaction time.
            latched = min(
                json.loads(r[1].data)["t"]
                for r in events
                if r.sent >= pressed and json.loads(r[1].data)["kind"] == "estop"
            )

            def held_for_a_while() -> bool:  # the stream goes on, 0.1 s at 500 Hz at least
                return len(_commands(commands, since=latched)) > 50

            wait_for(held_for_a_while, 5, "commands after the e-stop", procs, logs)
            last_two = _commands(commands, until=latched - 1e-6)[-2:]  # the ticks before it
            assert np.abs(np.diff(last_two, axis=0)).max() > 1e-9, (
                "the arm had stopped before the e-stop latched: nothing was shown frozen "
                f"(latched {latched - pressed:.3f} s after the press, at "
                f"{last_two[-1][0] - q0[0]:+.3f} rad of the {JUMP:+g} rad jump)"
            )
            after = _commands(commands, since=pressed)
            after_latch = _commands(commands, since=latched)
            frozen = np.all(np.abs(after_latch - after_latch[-1]) < 1e-12, axis=1)
            moving_after = int(np.flatnonzero(~frozen).max() + 1) if not frozen.all() else 0
            assert moving_after == 0, f"{moving_after} commands still moved after the e-stop"
            assert np.abs(np.diff(after, axis=0)).max() <= MAX_STEP
            held = after[-1]

            def arm_at_held_pose() -> bool:  # the simulated arm settles (its own pace)
                return np.abs(np.asarray(states[-1][1].position[:6]) - held).max() < 0.01

            wait_for(arm_at_held_pose, 5, "the arm at the held pose", procs, logs)
            assert np.abs(_commands(commands, since=latched) - held).max() < 1e-12  # still held

            # Released: a safe start from the measured pose, then the motion resumes.
            released = time.time()
            assert client.call(Trigger, "safety/reset_estop").success
            held_at = (held[0] - q0[0]) / np.sign(JUMP)  # rad of the jump done (load decides)
            wait_for(lambda: moved(held_at + 0.3), 20, "motion after the e-stop reset", procs, logs)
            resumed = _commands(commands, since=released)
            assert np.abs(np.diff(resumed, axis=0)).max() <= MAX_STEP
            wait_for(lambda: "safe_start" in kinds(released), 5, "the restart's event", procs, logs)

            # A reset with nothing latched, the arm moving: the node passes the measured
            # velocity, so the restart ramps from the command the arm follows instead of
            # jumping back to the measured pose, which trails it. Only an arm that trails
            # the command by more than its tracking lag (0.25 s of its motion: a simulator
            # starved at load 6), or a command older than that lag (a node starved), is
            # not followed, and the restart is then from where the arm is.
            reset_moving = time.time()
            assert client.call(Trigger, "safety/reset_estop").success
            wait_for(lambda: len(_commands(commands, since=reset_moving)) > 100, 5,
                     "commands after the restart", procs, logs)  # fmt: skip
            around = [r for r in commands if r.sent >= reset_moving - 0.05]
            back = np.flatnonzero(np.diff([r[1].data[0] for r in around]) * np.sign(JUMP) < -1e-12)
            if back.size:
                before, restart = around[back[0]], around[back[0] + 1]
                measured = max((r for r in states if r.sent <= restart.sent),
                               key=lambda r: r.sent)  # fmt: skip
                lead = np.abs(np.array(before[1].data) - np.array(measured[1].position[:6]))
                lag = np.abs(np.array(measured[1].velocity[:6])) * TRACKING_LAG + 1e-3
                node_starved = restart.sent - before.sent > TRACKING_LAG
                assert node_starved or (lead > lag).any(), (
                    f"the command went back though the arm followed it: lead {lead.max():.3f} "
                    f"rad, within {TRACKING_LAG} s of its motion, {restart.sent - before.sent:.3f}"
                    f" s between the commands, the state {restart.sent - measured.sent:.3f} s old"
                )

            # 3. NaN actions (next episode, switched in, the arm moving): the arm comes to rest
            # at the acceleration limit (a controlled stop) and holds there.
            switch.publish(String(data=str(nan)))
            wait_for(lambda: "loaded" in policy_log.read_text(), 30, "switch", procs, logs)
            started = time.time()  # before the reset: its first NaN tick may beat the reply
            assert client.call(Trigger, "policy/reset").success
            wait_for(lambda: "nonfinite_command" in kinds(started), 10,
                     "a nonfinite_command event from the NaN policy", procs, logs)  # fmt: skip
            during = _after_the_hold(commands, started, "the arm at rest while the policy "
                                     "gives NaN", procs, logs)  # fmt: skip
            assert np.all(np.isfinite(during))
            assert np.abs(during - during[0]).max() < 1e-9

            # 4. A target beyond the elbow's limit: clipped, never commanded past pi.
            switched = time.time()
            switch.publish(String(data=str(limit)))
            wait_for(lambda: policy_log.read_text().count("loaded") >= 2, 30, "switch", procs, logs)
            assert client.call(Trigger, "policy/reset").success
            started = time.time()

            def elbow_moved() -> bool:
                during = _commands(commands, since=started)
                return len(during) > 0 and during[-1, 2] > q0[2] + 0.2

            # How fast the ramp gets there depends on the machine's load: wait for the motion
            # towards the (clipped) target and for the filter's report of the limit.
            wait_for(elbow_moved, 30, "motion towards the elbow limit", procs, logs)
            wait_for(lambda: "position_limit" in kinds(switched), 30, "position limit", procs, logs)
            during = _commands(commands, since=started)
            assert np.all(np.isfinite(during))
            assert during[:, 2].max() <= ELBOW_LIMIT

            # 5. Stale observations (the robot's state stops): the command stops at the
            # acceleration limit and holds.
            sim.send_signal(signal.SIGSTOP)
            try:
                stopped = time.time()
                stale = _after_the_hold(commands, stopped, "the command to hold while the state "
                                        "is stale", procs, logs)  # fmt: skip
                # An event marks a hold's onset only. Under load the simulator stalls past
                # max_observation_age now and then (stale_observation up to twice a second in the
                # node's log at load 12); a stall just before the stop lasts through it, its
                # event sent before `stopped`. It began after the simulator's last joint state.
                last_state = max(r.sent for r in states)
                wait_for(lambda: "stale_observation" in kinds(last_state), 10, "stale event",
                         procs, logs)  # fmt: skip
                assert np.abs(stale - stale[-1]).max() < 1e-9
            finally:
                sim.send_signal(signal.SIGCONT)

            # Over the whole run nothing non-finite or beyond a limit was commanded.
            everything = _commands(commands)
            assert np.all(np.isfinite(everything))
            assert np.abs(everything).max() <= 2 * np.pi and everything[:, 2].max() <= np.pi
        finally:
            client.close()


def test_an_estop_publisher_that_cannot_reach_the_node_is_logged(ros_context, ros_env, tmp_path):
    """The policy node's other subscriptions go without rclpy's QoS event handlers (they cost
    the executor every wake-up), but an e-stop that cannot arrive (a best-effort publisher, as
    a joystick node's sensor-data QoS) is reported in the node's own log."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from robot_il.envs import make_env
    from std_msgs.msg import Bool

    env = make_env("reach")
    q0 = env.reset(seed=SEED)[0]["joint_pos"].astype(np.float64)
    env.close()
    hold = constant_checkpoint(tmp_path / "hold", np.append(q0, 0.0))
    log = tmp_path / "policy.log"
    with node_process("policy", {"checkpoint": str(hold)}, ros_env, log) as policy:
        client = Client(ros_context)
        try:
            best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
            client.node.create_publisher(Bool, "safety/estop", best_effort)
            wait_for(lambda: "offering incompatible QoS" in log.read_text(), 30,
                     "the best-effort e-stop in the node's log", (policy,), (log,))  # fmt: skip
            assert "safety/estop" in log.read_text()
        finally:
            client.close()
