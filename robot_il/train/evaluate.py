"""Evaluation rollouts: run a policy for N seeded episodes in simulation and count successes.

Episode ``i`` resets the env with seed ``seed + i``, so every policy evaluated with the same
seed meets the same initial states (what makes two policies' success rates comparable, and
what the permutation tests rely on). A policy that samples (Diffusion's initial noise, a
Gaussian head with ``sample_actions``) draws episode ``i``'s samples from torch generators
seeded with ``seed + i`` too, forked from the process's own: an evaluation gives the same
outcomes however often it is run and whatever ran before it in the process, episode ``i``
does not depend on how many episodes came before it, and an evaluation during training
leaves the training's random stream as it was (so evaluating more or less often does not
change what a run learns).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robot_il.errors import ConfigError
from robot_il.policies.spec import check_spec, is_image_key, spec_from_env
from robot_il.train.stats import success_line, wilson_interval

MAX_SEED = 2**64 - 1
"""The largest seed torch's generators take (:func:`torch_seeded`); the env's take any."""


def check_seeds(seed: int, episodes: int) -> None:
    """``ConfigError`` when the episodes' seeds, ``seed`` to ``seed + episodes - 1``, leave
    the range torch's generators take (``manual_seed`` failed on the first episode with an
    overflow traceback)."""
    last = seed + episodes - 1
    if seed < 0 or last > MAX_SEED:
        raise ConfigError(
            f"the evaluation's episode seeds run from {seed} to {last}; they must lie in "
            f"0..{MAX_SEED} (2**64 - 1, the largest torch's generators take)"
        )


@dataclass
class EvalResult:
    """Per-episode outcomes of one evaluation."""

    seeds: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    """Undiscounted sum of the env's rewards per episode."""
    success_test: bool = True
    """Whether the task judges success (:func:`has_success_test`); a DeepMind Control task's
    evaluation reports its mean return instead (:meth:`line`)."""

    @property
    def episodes(self) -> int:
        return len(self.successes)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of the success rate."""
        return wilson_interval(int(sum(self.successes)), self.episodes)

    def line(self) -> str:
        """The outcome in one line: the success rate with its 95% interval, or the mean
        return for a task without a success test."""
        if not self.success_test:
            return f"mean return {np.mean(self.returns):.1f} over {self.episodes} episodes"
        return success_line(sum(self.successes), self.episodes)


def has_success_test(task: str) -> bool:
    """Whether episodes of ``task`` are judged by a success test (``info["is_success"]``).
    A DeepMind Control task has none (its env never sets the flag, so every episode would
    read as a failure): its evaluations, in training and in ``robot-il eval``, report their
    return alone."""
    from robot_il.envs.dmc import is_dmc_task

    return not is_dmc_task(task)


def make_eval_env(
    spec: dict[str, Any],
    *,
    task: str | None = None,
    backend: str | None = None,
    max_episode_steps: int | None = None,
    render: bool = False,
    render_camera: str | None = None,
) -> Any:
    """An env matching a policy's ``spec`` (rate, action mode, cameras, image size).

    ``task``/``backend`` default to those of the training data; ``render_camera`` to the
    env's own (``front`` for UR5e tasks). Raises ``CheckpointError`` if the env cannot offer
    what the policy was trained on, before any rollout.
    """
    from robot_il.envs import make_env

    task = task or spec.get("task")
    if not task:
        raise ConfigError("evaluation needs a task: the dataset names none; pass --eval.task T, "
                          "or --eval.episodes 0 to train without evaluating")  # fmt: skip
    image_keys = [k for k in spec["observation"] if is_image_key(k)]
    cameras = tuple(k.removeprefix("rgb_") for k in image_keys)
    image_size = tuple(spec["observation"][image_keys[0]][:2]) if image_keys else (96, 96)
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"} if render else {}
    if render and render_camera is not None:  # None: the env's own (a DMC task has no choice)
        kwargs["render_camera"] = render_camera
    env = make_env(
        task,
        backend or spec.get("backend") or "mujoco",
        control_hz=spec["control_hz"],
        action_mode=spec.get("action_mode") or "joint",
        cameras=cameras,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        frame=spec.get("frame"),
        **kwargs,
    )
    try:
        check_spec(spec, spec_from_env(env), f"env {task}/{env.unwrapped.backend_name}")
    except Exception:
        env.close()
        raise
    return env


def evaluate(
    policy: Any,
    env: Any,
    *,
    episodes: int,
    seed: int,
    progress: bool = False,
    on_frame: Callable[[np.ndarray], None] | None = None,
    on_episode: Callable[[EvalResult], None] | None = None,
) -> EvalResult:
    """Roll ``policy`` out for ``episodes`` episodes.

    ``on_frame`` receives ``env.render()`` before every step and after the last one (the env
    must have been made with ``render=True``), e.g. to append to a video writer.
    ``on_episode`` receives the result so far (the same object, grown) after each episode: a
    long evaluation can say each outcome as it comes, and keep those of one interrupted.
    """
    check_seeds(seed, episodes)
    result = EvalResult(success_test=has_success_test(env.unwrapped.spec_dict()["task"]))
    for i in tqdm(range(episodes), desc="evaluate", unit="ep", disable=not progress, leave=False):
        obs, info = env.reset(seed=seed + i)
        policy.reset()
        success, steps, total = bool(info.get("is_success", False)), 0, 0.0
        with torch_seeded(seed + i):
            while True:
                if on_frame is not None:
                    on_frame(env.render())
                obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                steps += 1
                total += float(reward)
                success = success or bool(info.get("is_success", False))
                if terminated or truncated:
                    break
        if on_frame is not None:
            on_frame(env.render())
        result.seeds.append(seed + i)
        result.successes.append(success)
        result.lengths.append(steps)
        result.returns.append(total)
        if on_episode is not None:
            on_episode(result)
    return result


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Torch's CPU generator, and those of the GPUs this process has started, seeded with
    ``seed`` inside, and restored to their earlier states on leaving: draws made inside
    repeat, and leave a training's random stream untouched."""
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=gpus):
        torch.random.default_generator.manual_seed(seed)
        for gpu in gpus:
            torch.cuda.default_generators[gpu].manual_seed(seed)
        yield
