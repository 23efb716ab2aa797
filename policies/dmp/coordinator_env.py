"""``bimanual_cross`` scenes as an RL problem for the two-arm coordinator (kinematic, capsules).

One step is one coordinator decision (``DECISION_PERIOD`` s, 10 Hz): the action sets both arms'
phase-rate targets and via-point offsets (``coordinator.decode_action``), then the DMP layer
runs ``DECISION_PERIOD / dt`` ticks. Reward per step:

    r = - TIME_COST                                  while either arm is not at its goal
        - NEAR_COST clip((NEAR_MARGIN - d_min) / NEAR_MARGIN, 0, 1)
        - OFFSET_COST mean(a_offset^2)
        + ARRIVAL_BONUS                              both arrived (terminates)
        - COLLISION_COST                             capsules overlapped (terminates)

with d_min the smallest capsule separation (m) in the step; the time limit ``cs.TIME_LIMIT``
truncates (a deadlock). Scenes are ``cross_scenes.sample_scene(seed)``; training draws seeds
from ``TRAIN_SEED_BASE`` on, far from the benchmark's 0..499 and CMA-ES's 100000..100099.

``CoordinatorBatch`` runs B scenes in one vectorised controller and restarts slots whose
episode ended; ``CoordinatorEnv`` is the gymnasium env of one scene; ``CoordinatorVecEnv``
is the stable-baselines3 ``VecEnv`` of B scenes that PPO trains on.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.policies.dmp.coordinator import (
    ACTION_SIZE,
    DECISION_PERIOD,
    OBSERVATION_SIZE,
    CoordinatedController,
    coordinated_controller,
)
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.scene_kinds import sample_scenes, scene_primitives

from robot_il.errors import ConfigError

TIME_COST = 0.1
NEAR_COST = 1.0
NEAR_MARGIN = 0.03
"""m: separations below this are penalised (the benchmark's goal keeps p5 >= 2 cm)."""
OFFSET_COST = 0.02
ARRIVAL_BONUS = 1.0
COLLISION_COST = 10.0
TRAIN_SEED_BASE = 1_000_000
TRAIN_DT = 0.02
"""DMP tick (s) while training (50 Hz; the benchmark evaluates at 100 Hz)."""


def observation_space() -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (OBSERVATION_SIZE,), np.float32)


def action_space() -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (ACTION_SIZE,), np.float32)


class CoordinatorBatch:
    """B scenes under one ``CoordinatedController``; see the module docstring.

    ``seeds`` (B,): the first scenes; ``params``: the DMP layer's coupling (repulsion, rate
    limit); ``dt``: the tick (s); ``shield_clearance``: m or None.
    """

    def __init__(
        self,
        seeds: np.ndarray,
        params: CouplingParams | None = None,
        dt: float = TRAIN_DT,
        shield_clearance: float | None = None,
        kind: str = "bimanual_cross",
    ) -> None:
        ticks = DECISION_PERIOD / dt
        if abs(ticks - round(ticks)) > 1e-9 or ticks < 1:
            raise ConfigError(f"coordinator: tick {dt} s must divide {DECISION_PERIOD} s")
        self.ticks = int(round(ticks))
        self.dt = dt
        self.kind = kind
        self.controller: CoordinatedController = coordinated_controller(
            sample_scenes(kind, seeds), scene_primitives(kind), params, shield_clearance
        )
        self.seeds = np.asarray(seeds).copy()
        self.decisions = np.zeros(len(seeds), dtype=np.int64)
        """Decisions since each slot's scene began."""

    def restart(self, index: np.ndarray, seeds: np.ndarray) -> None:
        """New scenes of ``seeds`` in slots ``index``."""
        self.controller.restart(index, sample_scenes(self.kind, seeds))
        self.seeds[index] = seeds
        self.decisions[index] = 0

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One decision for every slot: observation (B, obs), reward (B,), and per slot
        ``collided``, ``arrived``, ``timeout``, ``min_separation`` (m, this step),
        ``elapsed`` (s since the slot's scene began)."""
        action = np.asarray(action, dtype=np.float64)
        self.controller.apply(action)
        min_sep = np.full(len(self.seeds), np.inf)
        # Each tick measures the separation before it moves (for the coupling): those of
        # ticks 2..n and the one after the last tick are this step's states.
        for tick in range(self.ticks):
            self.controller.tick(self.dt)
            if tick:
                min_sep = np.minimum(min_sep, self.controller.tick_separation)
        min_sep = np.minimum(min_sep, self.controller.separation().distance)
        arrived = self.controller.arrived().all(axis=0)
        collided = min_sep < 0.0
        self.decisions += 1
        elapsed = self.decisions * DECISION_PERIOD
        timeout = elapsed >= cs.TIME_LIMIT - 1e-9
        offsets = action.reshape(-1, 2, 4)[..., 1:]
        reward = (
            -TIME_COST * ~arrived
            - NEAR_COST * np.clip((NEAR_MARGIN - min_sep) / NEAR_MARGIN, 0.0, 1.0)
            - OFFSET_COST * np.mean(offsets**2, axis=(1, 2))
            + ARRIVAL_BONUS * (arrived & ~collided)
            - COLLISION_COST * collided
        )
        info = {
            "collided": collided,
            "arrived": arrived & ~collided,
            "timeout": timeout & ~arrived & ~collided,
            "min_separation": min_sep,
            "elapsed": elapsed,
        }
        return self.controller.observe(), reward, info


class CoordinatorEnv(gym.Env):
    """One ``bimanual_cross`` scene per episode (gymnasium API): ``reset(seed=s)`` plays
    scene ``s`` (without a seed: the next training scene)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        params: CouplingParams | None = None,
        dt: float = TRAIN_DT,
        shield_clearance: float | None = None,
    ) -> None:
        self.observation_space = observation_space()
        self.action_space = action_space()
        self.batch = CoordinatorBatch(np.array([TRAIN_SEED_BASE]), params, dt, shield_clearance)
        self.next_seed = TRAIN_SEED_BASE

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is None:
            seed, self.next_seed = self.next_seed, self.next_seed + 1
        self.batch.restart(np.array([0]), np.array([seed]))
        return self.batch.controller.observe()[0], {"scene_seed": seed}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, info = self.batch.step(np.asarray(action)[None])
        info = {k: v[0].item() for k, v in info.items()}
        terminated = info["collided"] or info["arrived"]
        return obs[0], float(reward[0]), terminated, info["timeout"], info


def coordinator_vec_env(n_envs: int, first_seed: int = TRAIN_SEED_BASE, **kwargs: Any):
    """A stable-baselines3 ``VecEnv`` of ``n_envs`` scenes in one vectorised batch: every
    ended episode restarts its slot at once with the next training seed (SB3's auto-reset,
    with ``terminal_observation`` and ``TimeLimit.truncated`` in its info)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class CoordinatorVecEnv(VecEnv):
        render_mode = None  # kinematic capsules, nothing to render (SB3 warns if undefined)

        def __init__(self) -> None:
            super().__init__(n_envs, observation_space(), action_space())
            self.next_seed = first_seed + n_envs
            self.batch = CoordinatorBatch(np.arange(first_seed, first_seed + n_envs), **kwargs)
            self.actions = np.zeros((n_envs, ACTION_SIZE))

        def reset(self) -> np.ndarray:
            seeds = np.arange(self.next_seed, self.next_seed + self.num_envs)
            self.next_seed += self.num_envs
            self.batch.restart(np.arange(self.num_envs), seeds)
            return self.batch.controller.observe()

        def step_async(self, actions: np.ndarray) -> None:
            self.actions = actions

        def step_wait(self):
            obs, reward, info = self.batch.step(self.actions)
            done = info["collided"] | info["arrived"] | info["timeout"]
            infos = [
                {"TimeLimit.truncated": bool(info["timeout"][i])} for i in range(self.num_envs)
            ]
            ended = np.flatnonzero(done)
            if len(ended):
                for i in ended:
                    infos[i]["terminal_observation"] = obs[i].copy()
                    infos[i]["episode_outcome"] = (
                        "collision"
                        if info["collided"][i]
                        else "success"
                        if info["arrived"][i]
                        else "deadlock"
                    )
                seeds = np.arange(self.next_seed, self.next_seed + len(ended))
                self.next_seed += len(ended)
                self.batch.restart(ended, seeds)
                obs = self.batch.controller.observe()
            return obs, reward.astype(np.float32), done, infos

        def close(self) -> None:
            return None

        def get_attr(self, attr_name: str, indices=None) -> list[Any]:
            return [getattr(self, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
            setattr(self, attr_name, value)

        def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
            method = getattr(self, method_name)
            return [method(*args, **kwargs)] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class: type, indices=None) -> list[bool]:
            return [False] * len(self._get_indices(indices))

    return CoordinatorVecEnv()
