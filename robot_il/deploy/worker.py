"""Policy inference in a child process, so that it never holds the control loop's interpreter.

A 500 Hz control loop in Python shares the interpreter lock with every other thread of its
process. Inference (a diffusion model runs dozens of small torch calls and scheduler steps
per chunk) holds that lock in bursts, and on a loaded machine a thread holding it can be
descheduled for milliseconds, stalling the control loop behind it. In a child process the
policy has its own interpreter: the deploy node's process keeps only light, timely threads
and can run them at real-time priority.

The child always runs in the normal (CFS) scheduling class, whatever its parent's: it
computes for tens to hundreds of milliseconds at a stretch, and a real-time process that
does so uses up the kernel's real-time budget (``/proc/sys/kernel/sched_rt_runtime_us``,
950 ms of every second per core) on a small machine, after which the kernel stops *every*
real-time thread of that core, the control loop among them, for the rest of the second
(measured on 2 cores, Diffusion chunks at 500 Hz: gaps of 25-28 periods, about 50 ms, with
the child at SCHED_FIFO; 2.1 periods with the same child in CFS). ``nice`` < 0 gives it a
larger share of the cores than other normal processes (needs CAP_SYS_NICE).

The parent reads the checkpoint's ``config.json`` for what it needs (spec, observation keys,
horizons) and sends observation histories over a pipe, each with the number of the episode it
belongs to and, for real-time chunking, the actions already committed for the chunk's first
steps (``Policy.predict_actions``); the child answers with actions. Whether the policy
conditions its chunks on committed actions (``inpaints_committed``) comes with its ready
message. A new episode number resets the policy first
(``reset()``: a DMP controller starts again from the observed pose, a chunked policy forgets
its history and queue), so every policy type starts each episode afresh; given an episode's
seed, it also seeds torch's generator, from which a sampling policy (Diffusion's noise) then
draws that episode's samples, as ``robot-il eval`` seeds episode ``i`` with its env seed.

Children are forked from a server process that imported torch once (``forkserver``, started
with the first worker), not spawned afresh: a switch to another checkpoint
(``policy/switch``, once per episode in ``robot-il select sim``) then loads it in about 0.4 s
instead of 2-3 s of importing torch again (2-core machine, load 3-6). The server imports
nothing else and starts no thread, so forking it is safe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.errors import CheckpointError, ConfigError
from robot_il.stop_signals import leave_stops_to_the_parent, stop_signals_blocked

PRELOAD = ["torch", "robot_il.policies", "robot_il.ros.node_main"]
"""What the server the workers fork from imports once: the heavy part of what a child
imports (torch, about 2 s here). A child still imports numpy, this module and, under a
console script, the script's own modules (rclpy, the policy node: about 0.2 s), and a policy
type's module beyond ``robot_il.policies``; preloading the script would put rclpy's threads
into the server, which must have none to fork safely."""


class InferenceProcessGone(CheckpointError):
    """The inference child ended (killed by the OOM killer, crashed): no prediction comes
    again from this worker."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a deploy node needs to know of a checkpoint without loading its weights."""

    directory: Path
    policy_type: str
    spec: dict[str, Any]
    obs_keys: list[str]
    n_obs_steps: int
    n_action_steps: int
    provenance: dict[str, Any] | None = None
    """Where the checkpoint came from (``robot_il.provenance``); None if saved before."""
    controller: str = ""
    """What runs the arms, for a DMP checkpoint (:func:`robot_il.policies.dmp.policy.
    describe_config`: its coupling, learned coordinator and shield, which its spec does not
    tell); empty for other policies."""

    @property
    def control_hz(self) -> float:
        """The rate the policy was trained to act at (Hz)."""
        return float(self.spec["control_hz"])

    @classmethod
    def read(cls, directory: str | Path) -> CheckpointInfo:
        """Read a checkpoint directory (or a training run's, holding ``policy/``)."""
        from robot_il.policies import read_checkpoint
        from robot_il.policies.dmp.policy import describe_config

        directory, saved = read_checkpoint(directory)
        spec = saved["spec"]
        if spec.get("frame"):  # the node reads world observations: WorldFramePolicy turns them
            from robot_il.envs.task_frame import world_spec

            spec = world_spec(spec)
        config = saved["config"]
        return cls(
            directory=directory,
            policy_type=str(saved["policy_type"]),
            spec=spec,
            obs_keys=sorted(spec["observation"]),
            n_obs_steps=int(config.get("n_obs_steps", 1)),
            n_action_steps=int(config.get("n_action_steps", 1)),
            provenance=saved.get("provenance"),
            controller=describe_config(config) if saved["policy_type"] == "dmp" else "",
        )


def _serve(connection: Any, directory: str, torch_threads: int, nice: int) -> None:
    """The child: load the policy, then answer ``(episode, seed, history, committed)``
    requests until
    ``None`` arrives, resetting the policy whenever the episode number changes (and seeding
    torch with ``seed`` unless it is None).

    Ctrl-C reaches the whole process group; the child ignores it and ends when its parent
    closes the pipe, so a stopped launch shuts down without a child's traceback."""
    leave_stops_to_the_parent()  # the fork server's mask blocked them both
    # A real-time parent's class is inherited: leave it for the normal class (see above).
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError):  # a negative nice needs CAP_SYS_NICE: else stay at 0
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        import torch

        from robot_il.policies import load_policy
        from robot_il.ros.node_main import freeze_startup_objects

        torch.set_num_threads(max(1, torch_threads))
        policy = acting = load_policy(directory)
        if policy.spec.get("frame"):
            from robot_il.envs.task_frame import WorldFramePolicy

            acting = WorldFramePolicy(policy)  # stateless: the policy inside holds the episode
        _warm_up(policy)
        # As the deploy node's own start-up: no full garbage collection (100-300 ms with
        # torch imported) stalls a prediction; a DMP policy's control ticks run in here.
        freeze_startup_objects()
        connection.send(("ready", bool(getattr(acting, "inpaints_committed", False))))
    except Exception as error:  # noqa: BLE001 (reported to the parent as one line)
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    episode = None
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the parent is gone
            return
        if request is None:
            return
        try:
            if request[0] != episode:
                policy.reset()
                episode = request[0]
                if request[1] is not None:
                    torch.manual_seed(request[1])
            history, committed = request[2], request[3]
            if committed is None:  # a DMP policy takes no committed actions
                actions = acting.predict_actions(history)
            else:
                actions = acting.predict_actions(history, committed)
            connection.send(("actions", actions))
        except Exception as error:  # noqa: BLE001
            connection.send(("error", f"{type(error).__name__}: {error}"))


def _warm_up(policy: Any) -> None:
    """One prediction on zeros of the policy's observation shapes, then a reset: a fresh
    process's first prediction sets torch up (allocations, kernel choice): 290-323 ms against
    16-19 for the warmed-up worker's (the untrained 10-step Diffusion on this machine's CPU,
    ``benchmarks/worker_first_chunk.py``). Without it the first chunk of a deployment, and of
    every policy ``policy/switch`` loads, came that late, and the deploy node's planner, taking
    it for its latency, asked for chunks early for seconds after. A DMP policy runs no
    network."""
    from robot_il.policies.base import Policy

    if not isinstance(policy, Policy):
        return
    policy.predict_actions(zero_history(policy.spec["observation"], policy.config.n_obs_steps))
    policy.reset()


def zero_history(observation: dict[str, list[int]], steps: int) -> dict[str, np.ndarray]:
    """``steps`` observations of zeros of each key of a spec's ``observation`` (key: shape):
    camera images uint8, the rest float32, as a deploy node's history holds them."""
    from robot_il.policies.spec import is_image_key

    return {
        key: np.zeros((steps, *shape), np.uint8 if is_image_key(key) else np.float32)
        for key, shape in observation.items()
    }


@contextlib.contextmanager
def _normal_class() -> Iterator[None]:
    """The calling thread in the normal scheduling class for the block, then back in its own.

    The fork server the workers come from is started by the first worker's caller, or by a
    later one's after the server died, and inherits that thread's class: it then imports torch
    (1-2 s of CPU) before it forks anything. The deploy node's threads run real-time; a
    server in SCHED_FIFO importing torch would stall every real-time thread of its core,
    the control loop among them, as a real-time inference child would (module docstring)."""
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    except (OSError, AttributeError):  # no scheduling classes here
        policy = None
    if policy is None or policy == os.SCHED_OTHER:
        yield
        return
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)


class InferenceWorker:
    """A checkpoint loaded in a child process; :meth:`predict` blocks until it answers.

    One request at a time (the deploy node's inference thread is its only caller). The child
    runs in the normal scheduling class at niceness ``nice`` (-20..19; below 0 it gets a larger
    share of a loaded machine's cores, never a real-time class: see the module docstring).
    """

    def __init__(self, info: CheckpointInfo, torch_threads: int = 1, nice: int = 0) -> None:
        if not -20 <= nice <= 19:
            raise ConfigError(f"inference nice must be in -20..19, got {nice}")
        self.info = info
        # no fork of a threaded ROS process: of the single-threaded server
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # used when the server starts
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, str(info.directory), torch_threads, nice),
            name=f"policy-{info.policy_type}",
            daemon=True,
        )
        with _normal_class():  # a fork server started now imports torch in the caller's class
            # The resource tracker first: it starts itself with these signals blocked, then
            # unblocks them in the caller, which a fork server started after would not inherit.
            resource_tracker.ensure_running()
            # A fork server started now keeps the stop signals blocked and ends when the node
            # does (its pipe from the node closes). It spends a second or more of every start
            # importing torch (PRELOAD), before it ignores SIGINT itself; a stop of the group
            # then ended it there, and the node's start with it: the server's KeyboardInterrupt
            # traceback (SIGINT), the node's EOFError traceback and exit code 1 (SIGTERM).
            with stop_signals_blocked():
                forkserver.ensure_running()
            self._process.start()
        child.close()
        kind, detail = self._receive()
        if kind != "ready":
            self.close()
            raise CheckpointError(f"{info.directory}: cannot load the policy: {detail}")
        self.inpaints_committed: bool = detail
        """Whether the policy conditions its chunks on committed actions (:meth:`predict`)."""

    @property
    def pid(self) -> int | None:
        """Process id of the child running the policy."""
        return self._process.pid

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._connection.recv()
        except (EOFError, OSError):  # the child died, or close() ran meanwhile
            # Its exit status comes through the fork server, after the pipe closed.
            self._process.join(timeout=5.0)
            code = self._process.exitcode
            raise InferenceProcessGone(
                f"{self.info.directory}: the inference process exited (code {code})"
            ) from None

    def predict(
        self,
        history: dict[str, np.ndarray],
        episode: int = 0,
        seed: int | None = None,
        committed: np.ndarray | None = None,
    ) -> np.ndarray:
        """The ``n_action_steps`` actions for an observation history (see
        :meth:`robot_il.policies.base.Policy.predict_actions`, also for ``committed``: only a
        policy that ``inpaints_committed`` reads them) of episode number ``episode``:
        a number other than the previous request's resets the policy before it acts, and
        seeds the episode's samples with ``seed`` (None: they continue the child's stream)."""
        if not self.inpaints_committed:
            committed = None
        try:
            self._connection.send((episode, seed, history, committed))
        except OSError as error:
            raise InferenceProcessGone(
                f"{self.info.directory}: inference process gone: {error}"
            ) from None
        kind, value = self._receive()
        if kind != "actions":
            raise CheckpointError(f"{self.info.directory}: inference failed: {value}")
        return value

    def close(self) -> None:
        """Stop the child process (idempotent)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._connection.send(None)
            self._process.join(timeout=5.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._connection.close()
