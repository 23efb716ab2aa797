"""``robot-il sim``: list the simulated tasks, roll out scripted experts and film them, and
replay a recording's actions.

``robot-il sim rollout --task push --backend pybullet --expert --episodes 5 --video push.mp4``
prints one line per episode (success, steps) and writes every episode, one after the other,
into one mp4 a person can watch. ``robot-il sim replay --dataset push.zarr`` executes each
recorded episode's actions from its seed and says whether the simulator still reproduces it
(:mod:`robot_il.record.replay`); exit status 1 when an episode ends otherwise than recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robot_il.errors import ConfigError

HOLD_SECONDS = 0.75
"""How long (s) the video holds each episode's last frame."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` and ``rollout`` sub-commands."""
    from robot_il.cli.flags import SEED

    commands = parser.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="tasks, backends and cameras")
    listing.set_defaults(run=run_list)

    rollout = commands.add_parser("rollout", help="run episodes of a task, optionally film them")
    rollout.add_argument("--task", required=True, help="task name (see `robot-il sim list`)")
    rollout.add_argument("--backend", default="mujoco", help="mujoco or pybullet")
    rollout.add_argument(
        "--expert", action="store_true", help="act with the task's scripted expert"
    )
    rollout.add_argument("--episodes", type=int, default=1, help="number of episodes")
    rollout.add_argument("--seed", type=SEED, default=0, help="seed of the first episode")
    rollout.add_argument("--control-hz", type=float, default=20.0, help="policy rate (Hz)")
    add_video_flags(rollout)
    rollout.set_defaults(run=run_rollout)

    replay = commands.add_parser(
        "replay", help="execute a recording's actions from its seeds: does it still reproduce?"
    )
    replay.add_argument("--dataset", required=True, help="zarr dataset recorded in simulation")
    replay.add_argument(
        "--episodes",
        type=int,
        nargs="+",
        default=None,
        help="episode indices (negative counts from the end; default: all)",
    )
    replay.add_argument(
        "--backend", default=None, help="mujoco or pybullet (default: the recording's)"
    )
    add_video_flags(replay)
    replay.set_defaults(run=run_replay)


def add_video_flags(parser: argparse.ArgumentParser) -> None:
    """``--video``, ``--camera`` and ``--video-size``: film the episodes into one mp4."""
    from robot_il.cli.flags import COUNT

    parser.add_argument("--video", default=None, help="write the episodes to this .mp4")
    parser.add_argument(
        "--camera",
        default="front",
        help="camera to film: front, top, side or a wrist camera (see `robot-il sim list`)",
    )
    parser.add_argument(
        "--video-size",
        type=COUNT,
        nargs=2,
        default=(240, 320),
        metavar=("H", "W"),
        help="video frame height and width (px)",
    )


def run_list(args: argparse.Namespace) -> int:
    """Print the tasks with their arms, observation keys and cameras (each task's own: a
    wrist camera per arm), the backends, and the DeepMind Control tasks ``make_env`` offers."""
    from robot_il.envs import DMC_TASKS
    from robot_il.envs.backends import BACKENDS
    from robot_il.envs.tasks import TASKS

    for name, task in TASKS.items():
        arms = ", ".join(mount.name or "single" for mount in task.mounts())
        keys = ", ".join(task.task_keys)
        cameras = ", ".join(task().camera_specs())
        print(f"{name:<18} arms: {arms:<12} task keys: {keys}\n{'':<18} cameras: {cameras}")
    print(f"backends: {', '.join(BACKENDS)}")
    print(
        f"DeepMind Control tasks (make_env only, no scripted expert; backend mujoco): "
        f"{', '.join(DMC_TASKS)}"
    )
    return 0


def check_video_flags(args: argparse.Namespace) -> None:
    """Refuse a ``--video`` path or ``--video-size`` that cannot be written, before any env."""
    from robot_il.cli.flags import refuse_unwritable

    if args.video is None:
        return
    if not args.video.endswith(".mp4"):
        raise ConfigError(f"--video must name an .mp4 file, got {args.video!r}")
    folder = os.path.dirname(os.path.abspath(args.video))
    if not os.path.exists(folder):
        raise ConfigError(f"--video {args.video}: folder {folder} does not exist")
    if os.path.isdir(args.video):
        raise ConfigError(f"--video {args.video} is a folder; name an .mp4 file")
    refuse_unwritable(args.video, "the video", file=True)
    if any(size % 2 for size in args.video_size):
        height, width = args.video_size
        raise ConfigError(f"--video-size {height} {width}: H.264 video needs even sizes")


@contextlib.contextmanager
def film(path: str | None, fps: float) -> Iterator[Any]:
    """An H.264 mp4 writer at ``fps`` frames per second for the video ``path`` (None: no
    video), written under a staged name (``NAME.partial.mp4``) and put in place of ``path``
    only when the block ends: an interrupted rollout or replay leaves the previous video
    whole instead of a film of the episodes it finished."""
    if path is None:
        yield None
        return
    import imageio.v2 as imageio

    target = Path(path)
    staged = target.with_name(f"{target.stem}.partial{target.suffix}")
    # blocks of 2 (H.264's least): imageio's default 16 scales a 1080-row film to 1088
    writer = imageio.get_writer(staged, fps=fps, codec="libx264", quality=7, macro_block_size=2)
    try:
        yield writer
    except BaseException:
        writer.close()
        staged.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(staged, target)


def run_rollout(args: argparse.Namespace) -> int:
    """Roll out ``--episodes`` episodes from seeds ``--seed``, ``--seed + 1``, ..."""
    if not args.expert:
        raise ConfigError("sim rollout acts only with --expert (the task's scripted expert)")
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    check_video_flags(args)
    from robot_il.envs.dmc import is_dmc_task

    if is_dmc_task(args.task):
        raise ConfigError(f"{args.task}: sim rollout runs scripted experts, and it has none")
    os.environ.setdefault("MUJOCO_GL", "egl")

    from tqdm import tqdm

    from robot_il.envs import make_env, make_expert
    from robot_il.train.stats import success_line

    filming = args.video is not None
    env = make_env(
        args.task,
        args.backend,
        control_hz=args.control_hz,
        render_mode="rgb_array" if filming else None,
        render_camera=args.camera,
        render_size=tuple(args.video_size),
    )
    expert = make_expert(env)
    successes, finished = 0, 0
    try:
        with film(args.video, args.control_hz) as writer:
            bar = tqdm(range(args.episodes), desc=f"{args.task}/{args.backend}", unit="episode")
            for episode in bar:
                seed = args.seed + episode
                start = time.perf_counter()
                obs, info = env.reset(seed=seed)
                expert.reset(obs)
                if writer is not None:
                    writer.append_data(env.render())
                steps, done, frame = 0, False, None
                while not done:
                    obs, _, terminated, truncated, info = env.step(expert.act(obs))
                    steps += 1
                    done = terminated or truncated
                    if writer is not None:
                        frame = env.render()
                        writer.append_data(frame)
                for _ in range(int(HOLD_SECONDS * env.control_hz) if frame is not None else 0):
                    writer.append_data(frame)  # let the viewer see how the episode ended
                successes += bool(info["is_success"])
                outcome = "success" if info["is_success"] else "FAILURE"
                took = time.perf_counter() - start
                note = "" if info["is_success"] else expert.unreachable_note()
                bar.write(
                    f"episode {episode} seed {seed}: {outcome} after {steps} steps "
                    f"({steps / env.control_hz:.2f} s simulated, {took:.1f} s)"
                    + (f": {note}" if note else "")
                )
                bar.set_postfix(success=f"{successes}/{episode + 1}")
                finished += 1
    except KeyboardInterrupt:
        if finished:
            print(f"interrupted after {finished} of {args.episodes} episodes: "
                  f"{success_line(successes, finished)}"
                  f"{'; the video not written' if filming else ''}")  # fmt: skip
        raise
    finally:
        env.close()
    print(success_line(successes, args.episodes))
    if filming:
        print(f"video: {args.video}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Replay ``--episodes`` of ``--dataset`` (all by default), one line each, then a summary."""
    check_video_flags(args)
    os.environ.setdefault("MUJOCO_GL", "egl")
    from tqdm import tqdm

    from robot_il.dataset import Dataset
    from robot_il.envs import make_env
    from robot_il.record.replay import episode_seed, replay_episode

    dataset = Dataset.open(args.dataset)
    spec = dataset.attrs.get("env_spec")
    if not spec or not spec.get("task"):
        raise ConfigError(f"{args.dataset}: no env_spec in its attrs: not recorded in simulation")
    count = dataset.num_episodes
    if count == 0:
        raise ConfigError(f"{args.dataset}: no episodes to replay")
    episodes = list(range(count)) if args.episodes is None else args.episodes
    for episode in episodes:
        if not -count <= episode < count:
            raise ConfigError(f"--episodes {episode}: {args.dataset} has {count} episodes "
                              f"(0..{count - 1}, or -{count}..-1 from the end)")  # fmt: skip
    episodes = [episode % count for episode in episodes]
    for episode in episodes:
        episode_seed(dataset, episode)  # refuse before any env is built
    longest = int(max(dataset.episode_lengths[episodes]))
    filming = args.video is not None
    env = make_env(
        spec["task"],
        args.backend or spec.get("backend") or "mujoco",
        control_hz=spec["control_hz"],
        action_mode=spec.get("action_mode") or "joint",
        max_episode_steps=longest,
        frame=spec.get("frame"),
        terminate_on_success=False,
        render_mode="rgb_array" if filming else None,
        render_camera=args.camera,
        render_size=tuple(args.video_size),
    )
    results = []
    try:
        with film(args.video, spec["control_hz"]) as writer:
            for episode in tqdm(episodes, desc="replay", unit="episode", disable=None):
                result = replay_episode(
                    env, dataset, episode, on_frame=None if writer is None else writer.append_data
                )
                results.append(result)
                recorded = {None: "not recorded", True: "success", False: "failure"}
                tqdm.write(
                    f"episode {episode} seed {result.seed}: {result.steps} actions, recorded "
                    f"{recorded[result.recorded_success]}, replayed "
                    f"{'success' if result.replayed_success else 'failure'}"
                    f"{'' if result.reproduced else ' (DIFFERS)'}; largest gap "
                    f"{result.divergence:.2g} ({result.divergence_key}, step "
                    f"{result.divergence_step})"
                )
    finally:
        env.close()
    worst = max(results, key=lambda result: result.divergence)
    differ = [result.episode for result in results if not result.reproduced]
    backend, recorded_on = env.unwrapped.backend_name, spec.get("backend")
    elsewhere = f" (recorded on {recorded_on})" if recorded_on and recorded_on != backend else ""
    print(
        f"replayed {len(results)} episode(s) on {backend}{elsewhere}: "
        f"{len(results) - len(differ)} ended as recorded"
        + (f", {len(differ)} did not (episodes {', '.join(map(str, differ))})" if differ else "")
        + f"; largest gap {worst.divergence:.2g} ({worst.divergence_key}, episode "
        f"{worst.episode} step {worst.divergence_step})"
    )
    if filming:
        print(f"video: {args.video}")
    return 1 if differ else 0
