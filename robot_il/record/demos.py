"""Recording demonstrations from a simulated env: a scripted expert, or a person teleoperating.

Both go through the :class:`~robot_il.record.recorder.Recorder` into one dataset whose single
stream, ``env``, runs at the env's control rate. Each step stores the observation the action was
chosen from, the action, ``timestamp`` and ``tick``; each episode stores ``success``, ``seed``
and the recorder's timing counts.

- **Expert**: the env is stepped as fast as it goes (a *pushed* stream; ``timestamp`` is
  simulated time). Only successful episodes are kept unless ``keep_failures``: a failed scripted
  demonstration teaches the policy to fail. ``action_noise`` injects noise DART-style (Laskey
  et al., 2017): the env executes the expert's action plus Gaussian noise on every arm's
  motion numbers while the dataset records the clean action, so the demonstrations also show
  how the expert recovers from the small errors a learned policy will make.
- **Teleop**: the env is stepped in real time by the recorder's sampling thread at the control
  rate, with the device's command as the ``eef_delta`` action; late or dropped control periods
  are counted like any sensor's. The operator ends episodes with the episode keys; an episode
  the env ends (success, time limit) is kept as if the operator pressed *next*.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from robot_il.errors import RecordingError
from robot_il.record.control import EpisodeEvent
from robot_il.record.recorder import EpisodeReport, Recorder, StreamSpec
from robot_il.record.teleop.base import TeleopDevice

ENV_STREAM = "env"
"""The stream name of env recordings."""

ARM_ACTION_SIZE = 7
"""Action numbers per arm: six for motion, then the gripper (see ``RobotEnv``)."""


@dataclass
class SessionSummary:
    """Counts over one recording session."""

    kept: int = 0
    attempts: int = 0
    successes: int = 0
    discarded: int = 0
    late: int = 0
    dropped: int = 0
    quit: bool = False
    unreachable: int = 0
    """Failed expert attempts whose expert met a waypoint out of the arm's reach."""

    def line(self) -> str:
        return (
            f"kept {self.kept} episode(s) of {self.attempts} attempt(s) "
            f"({self.successes} successful, {self.discarded} discarded"
            + (f", {self.unreachable} with a waypoint out of reach" if self.unreachable else "")
            + f"); late frames {self.late}, dropped frames {self.dropped}"
        )

    def add(self, report: EpisodeReport) -> None:
        self.attempts += 1
        self.late += report.late
        self.dropped += report.dropped
        if report.committed:
            self.kept += 1
        else:
            self.discarded += 1


def env_frame(obs: Mapping[str, Any], action: np.ndarray) -> dict[str, np.ndarray]:
    """One recorded step: the observation the action was chosen from, and the action."""
    frame = {key: np.asarray(value) for key, value in obs.items()}
    frame["action"] = np.asarray(action, dtype=np.float32)
    return frame


def execution_noise(
    seed: int, action_noise: float, action_shape: tuple[int, ...]
) -> Callable[[np.ndarray], np.ndarray]:
    """What the env executes for a recorded action in the expert episode of ``seed``: the
    action plus DART's Gaussian noise of standard deviation ``action_noise`` (m, rad) on every
    arm's motion numbers, never the gripper's, drawn from a generator seeded with ``seed``
    (so a replay of the episode executes the same actions); the action itself when
    ``action_noise`` is 0."""
    if action_noise <= 0:
        return lambda action: action
    noise = np.random.default_rng(seed)
    motion = np.ones(action_shape, dtype=bool)
    motion[ARM_ACTION_SIZE - 1 :: ARM_ACTION_SIZE] = False  # each arm's gripper number

    def perturb(action: np.ndarray) -> np.ndarray:
        perturbation = noise.normal(0.0, action_noise, action.shape) * motion
        return (action + perturbation).astype(action.dtype)

    return perturb


def record_expert(
    env: Any,
    expert: Any,
    recorder: Recorder,
    *,
    episodes: int,
    seed: int = 0,
    keep_failures: bool = False,
    max_attempts: int | None = None,
    episode_meta: Mapping[str, Any] | None = None,
    progress: bool = True,
    action_noise: float = 0.0,
    on_step: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> SessionSummary:
    """Record ``episodes`` kept expert episodes, trying seeds ``seed, seed + 1, ...``.

    ``recorder`` must have a pushed stream named :data:`ENV_STREAM`. Stops after
    ``max_attempts`` (default ``2 * episodes + 10``) so a broken expert cannot loop forever;
    the summary then has ``kept < episodes``. ``action_noise`` is the standard deviation (in
    action units: m, rad) of the noise executed but not recorded (see the module docstring);
    the gripper is never perturbed. ``on_step`` sees every recorded step (a live view).
    """
    max_attempts = 2 * episodes + 10 if max_attempts is None else max_attempts
    summary = SessionSummary()
    bar = tqdm(total=episodes, desc="expert episodes", unit="ep", disable=not progress)
    try:
        while summary.kept < episodes and summary.attempts < max_attempts:
            episode_seed = seed + summary.attempts
            obs, info = env.reset(seed=episode_seed)
            perturb = execution_noise(episode_seed, action_noise, env.action_space.shape)
            expert.reset(obs)
            recorder.start_episode()
            while True:
                action = expert.act(obs)
                frame = env_frame(obs, action)
                recorder.push(ENV_STREAM, frame)
                if on_step is not None:
                    on_step(frame)
                obs, _reward, terminated, truncated, info = env.step(perturb(action))
                if terminated or truncated:
                    break
            success = bool(info.get("is_success", False))
            summary.successes += success
            note = "" if success else getattr(expert, "unreachable_note", str)()
            if note and not summary.unreachable:  # once: every attempt would say the same
                tqdm.write(f"expert episode seed {episode_seed} failed: {note}")
            summary.unreachable += bool(note)
            meta = {**(episode_meta or {}), "success": success, "seed": episode_seed}
            report = recorder.stop_episode(commit=success or keep_failures, meta=meta)
            summary.add(report)
            bar.set_postfix(attempts=summary.attempts, successes=summary.successes, refresh=False)
            bar.update(int(report.committed))
    finally:
        bar.close()
    return summary


class EnvTeleopSource:
    """The sampled stream of a teleop recording: each read steps the env with the operator's
    command and returns (observation before the step, action).

    Episode events from the device are forwarded to :attr:`events` for the main thread; when
    the env ends the episode, :data:`EpisodeEvent.NEXT` is posted and reads return ``None``
    (which ends the stream's sampling for this episode).
    """

    def __init__(
        self,
        env: Any,
        device: TeleopDevice,
        on_step: Callable[[dict[str, np.ndarray]], None] | None = None,
    ) -> None:
        self.env = env
        self.device = device
        self.on_step = on_step
        """Sees every step read (a live view)."""
        self.events: queue.Queue[EpisodeEvent] = queue.Queue()
        self.success = False
        self.episodes_started = 0
        """How many times :meth:`reset` ran (episodes begun, re-records included)."""
        self.steps = 0
        """Env steps taken in the current episode."""
        self._obs: Mapping[str, Any] | None = None
        self._ended = False

    def reset(self, seed: int) -> None:
        """Reset the env (call only while the recorder is not sampling)."""
        self._obs, _info = self.env.reset(seed=seed)
        self._ended = False
        self.success = False
        self.steps = 0
        self.episodes_started += 1
        self.device.read()  # drop motion and events from before the episode (all of it)
        while not self.events.empty():
            self.events.get_nowait()

    def read(self) -> dict[str, np.ndarray] | None:
        command = self.device.read()
        for event in command.events:
            self.events.put(event)
        if self._ended or self._obs is None:
            return None
        action = command.action()
        frame = env_frame(self._obs, action)
        if self.on_step is not None:
            self.on_step(frame)
        self._obs, _reward, terminated, truncated, info = self.env.step(action)
        self.success = bool(info.get("is_success", False))
        self.steps += 1
        if terminated or truncated:
            self._ended = True
            self.events.put(EpisodeEvent.NEXT)
        return frame


def record_teleop(
    source: EnvTeleopSource,
    recorder: Recorder,
    *,
    episodes: int,
    seed: int = 0,
    episode_meta: Mapping[str, Any] | None = None,
    progress: bool = True,
    say: Callable[[str], None] = tqdm.write,
) -> SessionSummary:
    """Record up to ``episodes`` kept teleop episodes, driven by the operator's episode keys.

    ``recorder`` must sample :data:`ENV_STREAM` with ``source.read``. Re-record repeats the same
    seed; discard and next move to a new one; quit keeps the episode under way and stops.
    """
    summary = SessionSummary()
    say(source.device.controls)
    bar = tqdm(total=episodes, desc="teleop episodes", unit="ep", disable=not progress)
    episode_seed = seed
    try:
        while summary.kept < episodes:
            source.reset(episode_seed)
            recorder.start_episode()
            event = _wait_for_event(source, recorder)
            keep = event in (EpisodeEvent.NEXT, EpisodeEvent.QUIT)
            meta = {**(episode_meta or {}), "success": source.success, "seed": episode_seed}
            report = recorder.stop_episode(commit=keep, meta=meta)
            summary.add(report)
            summary.successes += source.success
            bar.update(int(report.committed))
            say(f"episode {summary.attempts - 1}: {event.value}; {report.summary()}")
            if event is EpisodeEvent.QUIT:
                summary.quit = True
                break
            if event is not EpisodeEvent.RERECORD:
                episode_seed += 1
    finally:
        bar.close()
    return summary


def _wait_for_event(source: EnvTeleopSource, recorder: Recorder) -> EpisodeEvent:
    """Block until the operator (or the env) ends the episode; a failed stream ends it too."""
    while True:
        try:
            return source.events.get(timeout=0.05)
        except queue.Empty:
            if recorder.failed_stream() is not None:
                return EpisodeEvent.DISCARD  # stop_episode then raises the stream's error


def env_stream(control_hz: float, source: EnvTeleopSource | None = None) -> StreamSpec:
    """The :data:`ENV_STREAM` spec: sampled by ``source`` in real time, or pushed if None."""
    if control_hz <= 0:
        raise RecordingError(f"control rate {control_hz} Hz must be > 0")
    return StreamSpec(ENV_STREAM, control_hz, read=None if source is None else source.read)
