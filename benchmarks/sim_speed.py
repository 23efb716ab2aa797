"""Env steps per second for each backend and task, against the raw physics loop.

For each backend and task the script replays one recorded expert episode's actions through
``env.step`` (no camera, then one 96x96 camera) and times the engine's own step function on the
*same* model in the same process (``mujoco.mj_step(model, data)``,
``pybullet.stepSimulation``). Each control step runs ``PHYSICS_HZ / control_hz`` physics steps,
so the fair comparison is per physics step: the env's overhead is
``env time per physics step / raw time per physics step - 1`` (goal: at most 25% without a
camera). The overhead covers the servo, action checks, observation, reward and success test.

    python benchmarks/sim_speed.py --steps 200
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from robot_il.envs import TASKS, make_env, make_expert  # noqa: E402
from robot_il.envs.env import BACKENDS  # noqa: E402


def expert_actions(task: str, backend: str, steps: int) -> list[np.ndarray]:
    """The actions of one expert episode (seed 0), repeated or cut to ``steps``."""
    env = make_env(task, backend, terminate_on_success=False, max_episode_steps=steps)
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs)
    actions = []
    for _ in range(steps):
        action = expert.act(obs)
        actions.append(action)
        obs, *_ = env.step(action)
    env.close()
    return actions


def time_env(task: str, backend: str, actions: list[np.ndarray], cameras: tuple[str, ...]):
    """Seconds for ``len(actions)`` env steps, and the env (reset, ready for the raw loop)."""
    env = make_env(
        task, backend, cameras=cameras, terminate_on_success=False, max_episode_steps=10**9
    )
    env.reset(seed=0)
    for action in actions[:5]:  # warm up (first render, caches)
        env.step(action)
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return time.perf_counter() - start, env


def time_raw(env, physics_steps: int) -> float:
    """Seconds for ``physics_steps`` bare engine steps on the env's own model."""
    backend = env.unwrapped.backend
    if env.unwrapped.backend_name == "mujoco":
        import mujoco

        model, data = backend.model, backend.data
        start = time.perf_counter()
        for _ in range(physics_steps):
            mujoco.mj_step(model, data)
        return time.perf_counter() - start
    import pybullet

    client = backend.client_id
    start = time.perf_counter()
    for _ in range(physics_steps):
        pybullet.stepSimulation(physicsClientId=client)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="control steps per measurement")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()
    print(
        f"{'backend':<9} {'task':<18} {'env st/s':>9} {'cam st/s':>9} {'phys/st':>7}"
        f" {'raw phys/s':>10} {'env phys/s':>10} {'overhead':>9}"
    )
    for backend in args.backends:
        for task in args.tasks:
            actions = expert_actions(task, backend, args.steps)
            env_seconds, env = time_env(task, backend, actions, ())
            substeps = env.unwrapped.substeps
            physics_steps = len(actions) * substeps
            env.reset(seed=0)
            raw_seconds = time_raw(env, physics_steps)
            env.close()
            camera_seconds, camera_env = time_env(task, backend, actions, ("front",))
            camera_env.close()
            overhead = env_seconds / raw_seconds - 1.0
            print(
                f"{backend:<9} {task:<18} {len(actions) / env_seconds:>9.0f}"
                f" {len(actions) / camera_seconds:>9.1f} {substeps:>7d}"
                f" {physics_steps / raw_seconds:>10.0f} {physics_steps / env_seconds:>10.0f}"
                f" {overhead:>+9.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
