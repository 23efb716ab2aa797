"""``robot-il eval``: roll a checkpoint out in simulation and report its success rate.

``robot-il eval --checkpoint runs/bc --episodes 50 [--backend pybullet] [--video]`` prints
each episode's outcome as it ends and the success rate with its 95% Wilson interval (Ctrl-C:
that of the episodes finished, written nowhere), and writes
``eval.json``, ``success.png`` and (with ``--video``) ``rollouts.mp4`` into ``--out``
(default: ``<checkpoint>/eval``, ``eval_pybullet`` for another backend, ``eval_ros`` over
ROS 2). A task without a success test (DeepMind Control's: ``has_success_test``, carried by
the evaluation's ``EvalResult.success_test``) is judged by its return alone, as training's
evaluations are: each episode's return and their mean, and no success rate, in the lines
and in ``eval.json``, and no ``success.png``. The results
are one evaluation's: each is written under a staged name (``rollouts.partial.mp4``) and
they replace the previous evaluation's together once all are written, so an evaluation
killed midway leaves the previous results as they were, and one without ``--video`` (or a
success plot) removes the previous one's. The env is checked against the checkpoint's spec
before the first rollout. ``--ros`` runs the same seeds through the deployment instead
(``sim_robot`` in lock-step, the policy node and its safety layer, over loopback DDS;
:mod:`robot_il.ros.ros_eval`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from robot_il.cli.flags import refuse_file_out, refuse_unwritable
from robot_il.errors import ConfigError

if TYPE_CHECKING:  # the module imports torch: only when an evaluation runs
    from robot_il.train.evaluate import EvalResult

SUMMARY, PLOT, VIDEO = "eval.json", "success.png", "rollouts.mp4"
"""What an evaluation writes into its ``--out``; ``eval.json`` says what the others show."""


def configure(parser: argparse.ArgumentParser) -> None:
    from robot_il.cli.flags import COUNT, DOMAIN_ID, SEED

    parser.add_argument("--checkpoint", required=True, help="checkpoint or training run dir")
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes")
    parser.add_argument("--seed", type=SEED, default=10_000, help="env seed of the first episode")
    parser.add_argument("--backend", default=None, help="mujoco or pybullet (default: data's)")
    parser.add_argument("--task", default=None, help="task (default: the checkpoint's)")
    parser.add_argument("--max-steps", type=COUNT, default=None, help="episode step limit")
    parser.add_argument(
        "--out",
        default=None,
        help="directory for results (default: CHECKPOINT/eval, eval_<backend> on another "
        "backend, eval_<task> on another task, eval_ros with --ros)",
    )
    parser.add_argument("--video", action="store_true", help=f"write {VIDEO}")
    parser.add_argument(
        "--camera",
        default=None,
        help="camera to film (default: front; a DeepMind Control task films its first)",
    )
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument(
        "--ros", action="store_true", help="evaluate over ROS 2 (sim_robot + policy node)"
    )
    parser.add_argument(
        "--domain-id", type=DOMAIN_ID, default=None, help="--ros: ROS_DOMAIN_ID (0..101)"
    )
    for flag, node in (("--policy-param", "policy"), ("--sim-param", "sim_robot")):
        parser.add_argument(
            flag,
            action="append",
            default=[],
            metavar="NAME:=VALUE",
            help=f"--ros: a {node} node parameter, e.g. gripper_clearance:=0.0",
        )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    if args.camera is not None and not args.video:  # else a typo'd name went unnoticed
        raise ConfigError(f"--camera {args.camera}: picks the camera --video films; add --video")
    if args.ros and (args.video or args.max_steps is not None):
        raise ConfigError("--ros evaluates the task's full episodes without video")
    from robot_il.policies import load_policy, read_checkpoint
    from robot_il.train.evaluate import check_seeds

    check_seeds(args.seed, args.episodes)
    directory, saved = read_checkpoint(args.checkpoint)
    if not (args.task or saved["spec"].get("task")):  # its data named none (a real cell's)
        raise ConfigError(f"{args.checkpoint}: its training data named no task; pass --task "
                          "(robot-il sim list shows them)")  # fmt: skip
    out = Path(args.out) if args.out else default_out(args, saved["spec"])
    refuse_file_out(out, "results")
    refuse_unwritable(out, "the results")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from tqdm import tqdm

    from robot_il.provenance import describe
    from robot_il.train.evaluate import EvalResult, evaluate, make_eval_env
    from robot_il.train.report import plot_success

    provenance = saved.get("provenance")
    policy = load_policy(args.checkpoint, device=args.device)
    print(f"checkpoint {args.checkpoint}: {describe(provenance)}")
    _note_training_runs(directory)
    env = make_eval_env(
        policy.spec,
        task=args.task,
        backend=args.backend,
        max_episode_steps=args.max_steps,
        render=args.video,
        render_camera=args.camera,
    )
    _note_other_renderer(policy.spec, env.unwrapped.backend_name)
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    if args.video:
        import imageio.v2 as imageio

        fps = float(policy.spec["control_hz"])
        writer = imageio.get_writer(staged(out, VIDEO), fps=fps, codec="libx264", quality=7)
    finished = EvalResult()  # the episodes done, said should the evaluation be interrupted

    def say_episode(so_far: EvalResult) -> None:
        nonlocal finished
        finished = so_far
        tqdm.write(episode_line(so_far, -1))

    result = None
    try:
        if args.ros:
            result = _evaluate_over_ros(args, env.unwrapped.backend_name, out)
            for episode in range(result.episodes):
                print(episode_line(result, episode))
        else:
            result = evaluate(
                policy,
                env,
                episodes=args.episodes,
                seed=args.seed,
                progress=True,
                on_frame=None if writer is None else writer.append_data,
                on_episode=say_episode,
            )
    except KeyboardInterrupt:
        if finished.episodes:
            print(f"interrupted after {finished.episodes} of {args.episodes} episodes: "
                  f"{finished.line()}; not written ({out} keeps the previous results)")  # fmt: skip
        raise
    finally:
        if writer is not None:
            writer.close()
            if result is None:  # part of a video, of no evaluation's results
                staged(out, VIDEO).unlink(missing_ok=True)
        env.close()
    task = env.unwrapped.spec_dict()["task"]
    where = f"{task}/{env.unwrapped.backend_name}" + (" over ROS 2" if args.ros else "")
    success_test = result.success_test
    # over ROS 2 the episode judge sees success, not the env's reward: no returns
    # (without a success test, line() is the mean return itself)
    returns = result.returns if success_test else []
    mean = [f"mean return {sum(returns) / len(returns):.1f}"] if returns else []
    print(f"{policy.policy_type} on {where}: {', '.join([result.line(), *mean])}")
    summary = {
        "checkpoint": str(args.checkpoint),
        "checkpoint_provenance": provenance,
        "policy_type": policy.policy_type,
        "env": where,
    }
    if success_test:
        summary.update(success_rate=result.success_rate, interval95=list(result.interval),
                       successes=result.successes)  # fmt: skip
    summary.update(seeds=result.seeds, lengths=result.lengths, returns=result.returns)
    staged(out, SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    if success_test:
        plot_success(result, staged(out, PLOT), f"{policy.policy_type} on {where}")
    publish(out, plot=success_test, video=args.video)
    print(f"results: {out}")
    return 0


def episode_line(result: EvalResult, episode: int) -> str:
    """Episode ``episode`` of ``result`` in one line: its seed, outcome (its return, for a
    task without a success test) and length."""
    if result.success_test:
        outcome = "success" if result.successes[episode] else "FAILURE"
    else:
        outcome = f"return {result.returns[episode]:.1f}"
    return f"seed {result.seeds[episode]}: {outcome} after {result.lengths[episode]} steps"


def _note_training_runs(directory: Path) -> None:
    """Say so when ``directory`` is the checkpoint of a training that still runs (its run
    lock held, ``trainer.lock_run``): this evaluates its latest save, not what it will end
    with, and the run replaces it at its next save."""
    from robot_il.train.trainer import running_training

    holder = running_training(directory.parent)
    if holder is not None:
        print(f"robot-il: note: a training still runs in {directory.parent} ({holder}): "
              "this evaluates its latest save (the step above), which the run will "
              "replace")  # fmt: skip


def _note_other_renderer(spec: dict, backend: str) -> None:
    """Say so when a camera checkpoint is evaluated on another backend than its data's: the
    frames come from another renderer (other lighting, textures and meshes), so its success
    measures transfer, not the recipe (a MuJoCo-trained pick_place checkpoint: 46/50 in
    MuJoCo, 34/50 in PyBullet)."""
    from robot_il.policies.spec import is_image_key

    cameras = [key for key in spec["observation"] if is_image_key(key)]
    trained = spec.get("backend")
    if cameras and trained and trained != backend:
        print(f"robot-il: note: {', '.join(cameras)} learned from {trained}'s frames; "
              f"{backend} renders them otherwise")  # fmt: skip


def staged(out: Path, name: str) -> Path:
    """Where this evaluation writes its result ``name`` until all are written:
    ``eval.partial.json`` for ``eval.json`` (the suffix kept: the writers take their format
    from it)."""
    path = out / name
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def publish(out: Path, plot: bool, video: bool) -> None:
    """Put this evaluation's staged results in place of the previous evaluation's in
    ``out``. ``eval.json`` goes first and comes back last, so it never stands beside another
    evaluation's plot or video; a result this evaluation did not write (the video without
    ``video``, the success plot of a task without a success test, ``plot`` false) goes, with
    a staged one that a killed evaluation left."""
    (out / SUMMARY).unlink(missing_ok=True)
    for name, written in ((PLOT, plot), (VIDEO, video)):
        if written:
            os.replace(staged(out, name), out / name)
        else:
            for stale in (out / name, staged(out, name)):
                stale.unlink(missing_ok=True)
    os.replace(staged(out, SUMMARY), out / SUMMARY)


def default_out(args: argparse.Namespace, spec: dict) -> Path:
    """``<checkpoint>/eval``, named after what differs from the checkpoint's own setting
    (``eval_pybullet``, ``eval_push``, ``eval_ros``): an evaluation elsewhere keeps the
    others' results."""
    name = "eval"
    if args.task and args.task != spec.get("task"):
        name += f"_{args.task.replace(':', '_')}"
    if args.backend and args.backend != spec.get("backend"):
        name += f"_{args.backend}"
    if args.ros:
        name += "_ros"
    return Path(args.checkpoint) / name


def _evaluate_over_ros(args: argparse.Namespace, backend: str, out: Path):
    """The episodes over ROS 2 on a loopback DDS domain of their own: a free one claimed
    (:func:`robot_il.ros.dds.claim_free_domain`; another process's nodes on it would play in
    these episodes), or ``--domain-id``'s, refused while another robot_il process holds it."""
    from robot_il.ros.dds import apply_loopback_env, hold_domain, loopback_env
    from robot_il.ros.ros_eval import evaluate_over_ros

    domain, lock = hold_domain(args.domain_id, f"robot-il eval --ros of {args.checkpoint}")
    apply_loopback_env(domain)
    import rclpy

    context = rclpy.Context()
    rclpy.init(args=[], context=context, domain_id=domain)  # our flags are not ROS arguments
    try:
        return evaluate_over_ros(
            args.checkpoint,
            episodes=args.episodes,
            seed=args.seed,
            context=context,
            env={**os.environ, **loopback_env(domain)},
            log_dir=out / "ros_logs",
            task=args.task,
            backend=backend,
            policy_params=_node_params(args.policy_param, "--policy-param"),
            sim_params=_node_params(args.sim_param, "--sim-param"),
            progress=True,
        )
    finally:
        rclpy.shutdown(context=context)
        lock.close()


def _node_params(items: list[str], flag: str) -> dict[str, object]:
    """``NAME:=VALUE`` items as node parameters, passed on as ``-p NAME:=VALUE`` (the node
    reads VALUE as ``ros2 run`` does)."""
    params: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ConfigError(f"{flag} {item!r}: expected NAME:=VALUE")
        params[name] = value
    return params
