"""Env steps per second for each backend and task, against the raw physics loop.

For each backend and task the script replays one recorded expert episode's actions through
``env.step`` (no camera, then one 96x96 camera) and times the engine's own step function on the
*same* model in the same process (``mujoco.mj_step(model, data)``,
``pybullet.stepSimulation``), fed the engine inputs the env gave it (actuator controls, motor
commands) so the raw loop computes the same motion and contacts. Each control step runs
``PHYSICS_HZ / control_hz`` physics steps, so the fair comparison is per physics step: the
env's overhead is ``env time per physics step / raw time per physics step - 1`` (goal: at most
25% without a camera). The overhead covers the servo's trajectory generator, action checks,
observation, reward and success test.

Both are timed in process CPU time (``time.process_time``; the engines step on one thread), so
other programs sharing the cores distort the ratio less than wall-clock time would; the camera
column is wall-clock time, since renderers may use other threads. Each control step is timed
on its own, and a figure is the sum over steps of each step's fastest time in ``--rounds``
interleaved repeats of the same (deterministic) episode: on a loaded machine a context switch
then spoils one step of one round instead of a whole round.

    python benchmarks/sim_speed.py --steps 200
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from robot_il.envs import TASKS, make_env, make_expert  # noqa: E402
from robot_il.envs.backends import BACKENDS  # noqa: E402


def expert_actions(task: str, backend: str, steps: int) -> tuple[list, list]:
    """The actions of ``steps`` expert steps (seed 0) and the engine inputs the env set for
    each (MuJoCo: actuator controls; PyBullet: motor set points, their velocities and speed
    caps), so the raw loop can replay the same motion."""
    env = make_env(task, backend, terminate_on_success=False, max_episode_steps=steps)
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs)
    actions, controls = [], []
    for _ in range(steps):
        action = expert.act(obs)
        actions.append(action)
        obs, *_ = env.step(action)
        sim = env.unwrapped.backend
        if backend == "mujoco":
            controls.append(sim.data.ctrl.copy())
        else:
            motors = (sim.motor_setpoints, sim.motor_velocities, sim.motor_speed_caps)
            controls.append(tuple(m.copy() for m in motors))
    env.close()
    return actions, controls


def time_env(env, actions: list[np.ndarray], clock=time.process_time) -> np.ndarray:
    """Seconds of each of ``len(actions)`` env steps from the seed-0 initial state."""
    env.reset(seed=0)
    seconds = np.empty(len(actions))
    last = clock()
    for k, action in enumerate(actions):
        env.step(action)
        now = clock()
        seconds[k], last = now - last, now
    return seconds


def time_raw(env, controls: list) -> np.ndarray:
    """Seconds of each of ``len(controls)`` control periods of bare engine steps on the env's
    own model, replaying the recorded engine inputs so the engine computes the same motion and
    contacts as under the env (a moving PyBullet world costs 2-3x more per step than a still
    one). Each period MuJoCo copies the actuator controls, PyBullet tells its motors their
    set points, velocities and speed caps and moves the set points along each substep
    (``command_motors`` and ``run_motors``, as the backend's ``step`` does); the
    trajectory generator, action checks, observation and reward are the env's overhead.
    """
    env.reset(seed=0)
    backend = env.unwrapped.backend
    substeps = env.unwrapped.substeps
    seconds = np.empty(len(controls))
    clock = time.process_time
    if env.unwrapped.backend_name == "mujoco":
        import mujoco

        model, data = backend.model, backend.data
        last = clock()
        for k, ctrl in enumerate(controls):
            data.ctrl[:] = ctrl
            for _ in range(substeps):
                mujoco.mj_step(model, data)
            now = clock()
            seconds[k], last = now - last, now
        return seconds
    last = clock()
    for k, (setpoints, velocities, speed_caps) in enumerate(controls):
        backend.command_motors(setpoints, velocities, speed_caps)
        backend.run_motors(substeps)
        now = clock()
        seconds[k], last = now - last, now
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="control steps per measurement")
    parser.add_argument("--camera-steps", type=int, default=40, help="steps with a camera")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved repeats; fastest of each step kept"
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()
    print(
        f"{'backend':<9} {'task':<18} {'env st/s':>9} {'cam st/s':>9} {'phys/st':>7}"
        f" {'raw phys/s':>10} {'env phys/s':>10} {'overhead':>9}"
    )
    for backend in args.backends:
        for task in args.tasks:
            actions, controls = expert_actions(task, backend, args.steps)
            options = {"terminate_on_success": False, "max_episode_steps": 10**9}
            env = make_env(task, backend, **options)
            time_env(env, actions[:10])  # warm up caches
            env_steps, raw_steps = np.inf, np.inf  # per control step, fastest of the rounds
            for _ in range(args.rounds):
                env_steps = np.minimum(env_steps, time_env(env, actions))
                raw_steps = np.minimum(raw_steps, time_raw(env, controls))
            env_seconds, raw_seconds = float(env_steps.sum()), float(raw_steps.sum())
            substeps = env.unwrapped.substeps
            env.close()
            camera_env = make_env(task, backend, cameras=("front",), **options)
            camera_actions = actions[: args.camera_steps]
            time_env(camera_env, camera_actions[:2])
            camera_seconds = time_env(camera_env, camera_actions, clock=time.perf_counter).sum()
            camera_env.close()
            physics_steps = len(actions) * substeps
            overhead = env_seconds / raw_seconds - 1.0
            print(
                f"{backend:<9} {task:<18} {len(actions) / env_seconds:>9.0f}"
                f" {len(camera_actions) / camera_seconds:>9.1f} {substeps:>7d}"
                f" {physics_steps / raw_seconds:>10.0f} {physics_steps / env_seconds:>10.0f}"
                f" {overhead:>+9.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
