"""Shared pieces of the deploy-node tests: node processes, a spinning client, checkpoints."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# The nodes' processes, started and stopped as robot_il.ros.ros_eval does for deployments.
from robot_il.ros.node_main import SpinThread
from robot_il.ros.ros_eval import node_process, stop_process  # noqa: F401
from robot_il.ros.subscription_reader import SubscriptionReader

BIN = Path(sys.executable).parent

UR_JOINTS = [  # written out, not imported: the UR driver's names are the contract
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
]
"""Joint names a UR driver client expects, base to tool."""
COMMANDS = "forward_position_controller/commands"
"""The UR driver's joint position command topic (combined layout)."""


class Received(tuple):
    """One recorded message, ``(t, msg)``: ``t`` the monotonic time (s) the client received
    it; ``sent`` the DDS source timestamp of its publication (s, the system clock, as
    ``time.time()``; every process of a test shares it).

    Within one topic messages arrive in the order they were published, but across topics
    (and publishers) a loaded machine delivers a backlog of one after a newer message of
    another: order across topics by ``sent``, never by ``t``."""

    sent: float

    def __new__(cls, t: float, msg: object, sent: float) -> Received:
        item = super().__new__(cls, (t, msg))
        item.sent = sent
        return item


class Client:
    """An rclpy node spun on a background thread (services, publishers), recording what it
    subscribes to.

    Each recorded topic is taken by a ``SubscriptionReader`` of its own, not by the executor:
    recording ``sim_robot``'s 500 Hz joint states for 10 s, the executor took 0.41-0.45 of a
    core from the test's process, a reader 0.17-0.21 (session 52); every ROS test shares the
    machine's two cores with its node processes."""

    def __init__(self, context, name: str = "test_client") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._readers: list[SubscriptionReader] = []
        self._spin = SpinThread(self.executor)

    def record(
        self, msg_type, topic: str, depth: int = 1000, *, transient_local: bool = False
    ) -> list[Received]:
        """Subscribe to ``topic``; the list receives each message as a :class:`Received`
        (monotonic receipt time, msg; with its publication time ``sent``).
        ``transient_local``: also what a transient-local publisher sent before the two
        matched (a node's first safety events, published before discovery completed)."""
        from rclpy.qos import DurabilityPolicy, QoSProfile

        durability = "TRANSIENT_LOCAL" if transient_local else "SYSTEM_DEFAULT"  # (a depth's)
        qos = QoSProfile(depth=depth, durability=DurabilityPolicy[durability])
        received: list[Received] = []

        def store(msg, info: dict) -> None:  # two parameters: rclpy passes the message info
            with self.lock:
                received.append(Received(time.monotonic(), msg, info["source_timestamp"] * 1e-9))

        reader = SubscriptionReader(self.node, f"{self.node.get_name()}-{topic}")
        reader.subscribe(msg_type, topic, store, qos)
        reader.start()
        self._readers.append(reader)
        return received

    def record_log(self) -> list[Received]:
        """Record the log lines every node of the domain publishes on ``/rosout``
        (rcl_interfaces/Log: ``msg``, the logger's ``name``, ``level``), each as a
        :class:`Received`.

        A test that waits for a line an in-process node logs reads it here, not from
        ``capfd``: ``capfd.readouterr()`` empties its file while the node's threads write to
        it, and a line written between its read and its truncation is lost (measured: 3 in 100
        polled waits under load missed a refusal the node had logged)."""
        from rcl_interfaces.msg import Log

        return self.record(Log, "/rosout")

    def publisher(self, msg_type, topic: str, processes=(), logs=(), depth: int = 10):
        """A publisher on ``topic`` once a subscriber has connected to it (a message sent
        before discovery connects is lost; to a lock-step simulator, a lost step).

        A message published once it returns reaches that subscriber, also where the
        subscriber's side has not matched this publisher yet (reliable QoS resends it, within
        about 0.2 s): none of 1,800 one-shot messages was lost on loopback under load, in one
        process and across processes, to a subscriber started before or after this publisher.
        A test waiting for a one-shot message's effect that times out lost something else."""
        publisher = self.node.create_publisher(msg_type, topic, depth)
        connected = publisher.get_subscription_count
        wait_for(lambda: connected() > 0, 30, f"a subscriber on {topic}", processes, logs)
        return publisher

    def call(self, srv_type, name: str, timeout: float = 20.0, request=None):
        """Call a service (with ``request``, by default an empty one) and wait for its
        response."""
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        future = client.call_async(request if request is not None else srv_type.Request())
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, f"service {name} did not answer"
            time.sleep(0.01)
        return future.result()

    def close(self) -> None:
        try:
            for reader in self._readers:
                reader.close()
            self._spin.stop(timeout=10 * DEADLINE_SCALE)
        finally:
            self.node.destroy_node()


DEADLINE_SCALE = float(os.environ.get("ROBOT_IL_TEST_DEADLINE_SCALE", "4"))


@contextlib.contextmanager
def spinning(node, context) -> Iterator[object]:
    """``node`` spun on its own thread by a two-thread executor, as ``run_node`` spins it; on
    exit the executor stops, its callbacks end, and the node shuts down (its ``shutdown()``)."""
    from rclpy.executors import MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spin = SpinThread(executor)
    try:
        yield node
    finally:
        try:
            spin.stop(timeout=10 * DEADLINE_SCALE)
        finally:
            node.shutdown()


IDLE_FRAMES = ("in _worker\n", "in select\n")
"""Top frames of a thread that waits for work (a thread pool's idle worker, an event loop)."""


def log_tail(log: Path, chars: int = 3000) -> str:
    """The last ``chars`` characters of a node's ``log``, without the idle threads of the
    stack dumps in it (SIGUSR1, :func:`stop`): a hung node's dozen idle workers pushed the one
    thread that held it out of a failure message."""
    kept: list[str] = []
    block: list[str] = []  # a thread's header and its frames, innermost first

    def close_block() -> None:
        if len(block) < 2 or not block[1].endswith(IDLE_FRAMES):
            kept.extend(block)
        block.clear()

    for line in log.read_text().splitlines(keepends=True):
        if block and line.startswith("  File "):
            block.append(line)
            continue
        close_block()
        (block if "(most recent call first):" in line else kept).append(line)
    close_block()
    return "".join(kept)[-chars:]


def stop(process: subprocess.Popen) -> int | None:
    """Ctrl-C a node and return its exit code; one still running after the scaled deadline
    (a loaded CI machine) leaves its threads' stacks in its log and is killed (-9)."""
    return stop_process(process, timeout=10 * DEADLINE_SCALE)


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    processes: tuple[subprocess.Popen, ...] = (),
    logs: tuple[Path, ...] = (),
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (with the nodes' logs) otherwise.

    ``timeout`` (s) is the deadline on an idle machine; it is scaled by :data:`DEADLINE_SCALE`,
    as a passing test never waits for it and a loaded CI machine is several times slower.
    """
    timeout *= DEADLINE_SCALE
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            output = "\n".join(f"--- {log.name}\n{log_tail(log)}" for log in logs)
            reason = "a node exited" if dead else f"timed out after {timeout} s"
            raise AssertionError(f"{what}: {reason}\n{output}")
        time.sleep(0.02)


def constant_checkpoint(
    directory: Path,
    action: np.ndarray,
    task: str = "reach",
    camera: str = "",
    image_size: tuple[int, int] = (32, 32),
    gripper: bool = False,
    action_mode: str = "joint",
    n_obs_steps: int = 1,
) -> Path:
    """A real BC checkpoint whose network outputs ``action`` (7 per arm of ``task``, in
    ``action_mode``: joint targets, or ``eef_delta`` TCP deltas) whatever
    it observes (each arm's joint positions, and with ``camera`` that camera's ``rgb_<camera>``
    frames of ``image_size`` (H, W) px through the small conv encoder, and with ``gripper`` each
    arm's gripper closure), observing the last ``n_obs_steps`` steps.

    Built through the policy's own ``save`` (zero last-layer weights, the normalized action as
    bias), so the deploy node loads and runs it exactly as a trained one. NaN entries give a
    policy that outputs NaN.
    """
    import torch
    from robot_il.policies.bc import BCPolicy
    from robot_il.policies.bc.policy import BCConfig

    from robot_il.dataset import Normalizer

    action = np.asarray(action, dtype=np.float32)
    finite = np.nan_to_num(action)
    keys = ("joint_pos",) if action.size == 7 else ("left_joint_pos", "right_joint_pos")
    grippers = tuple(key.replace("joint_pos", "gripper") for key in keys) if gripper else ()
    joints = np.stack([np.full(6, -np.pi), np.full(6, np.pi)]).astype(np.float32)
    normalizer = Normalizer.fit_arrays(
        {
            **{key: joints for key in keys},
            **{key: np.array([[0.0], [1.0]], np.float32) for key in grippers},
            "action": np.stack([finite - 2.0, finite + 2.0]).astype(np.float32),
        }
    )
    observation = {key: [6] for key in keys} | {key: [1] for key in grippers}
    if camera:
        observation[f"rgb_{camera}"] = [*image_size, 3]
    spec = {
        "robot": "ur5e",
        "task": task,
        "backend": "mujoco",
        "control_hz": 20.0,
        "action_mode": action_mode,
        "observation": observation,
        "action_dim": action.size,
    }
    config = BCConfig(
        obs_keys=tuple(observation),
        hidden_dims=(16,),
        image_encoder="conv",
        n_obs_steps=n_obs_steps,
        horizon=n_obs_steps,  # the action of the last observed step is the chunk's last
    )
    policy = BCPolicy(config, spec, normalizer)
    last = policy.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        bias = np.tile(normalizer.normalize("action", action), n_obs_steps)
        last.bias.copy_(torch.as_tensor(bias))
    return policy.save(directory)


def group_runs(group: int) -> bool:
    """Whether a process of process group ``group`` still runs. A zombie (ended, and not yet
    reaped by the process that inherited it, which in a container may be one that never reaps)
    does not count: ``killpg(group, 0)`` counted it."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # ended meanwhile
            continue
        if int(process_group) == group and state != "Z":
            return True
    return False
