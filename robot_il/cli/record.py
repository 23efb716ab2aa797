"""``robot-il record``: record demonstrations into a zarr dataset, from the task's scripted
expert or from a person with a teleop device.

    robot-il record --task pick_place --backend mujoco --expert --episodes 50 \\
        --out data/pick_place.zarr [--cameras front,wrist] [--keep-failures]
    robot-il record --task reach --teleop keyboard --episodes 5 --out data/reach_teleop.zarr

An existing dataset is never replaced without ``--force``; ``--append`` adds episodes to it
(after checking it was recorded for the same task, backend, rate, action mode and observation
keys), by default from the seed after the dataset's largest, so that no scene is recorded
twice. Interrupting (Ctrl-C) loses only the episode under way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from robot_il.errors import RecordingError, RobotILError
from robot_il.stop_signals import stops_deferred

SOURCE_KEYS = ("task", "backend", "control_hz", "action_mode")
"""Env settings an appended dataset must share with the session appending to it (all but
``control_hz``, which the dataset writer sets itself, are stored as root attrs by us)."""


DEFAULT_IMAGE_SIZE = (96, 96)
"""Camera frame height, width (pixels) without ``--image-size``: what the image recipes use."""

#: Default length limit of a teleoperated episode (s): a person needs far longer than the
#: scripted expert (whose step limit is the task's, e.g. 4 s on reach), so the limit is only a
#: backstop; the person's keys end an episode, or success does.
TELEOP_LIMIT_S = 300.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``record`` verb's arguments."""
    from robot_il.cli.flags import COUNT, SEED
    from robot_il.record.teleop import TELEOP_DEVICES

    # no choices: make_env names the tasks (the registered ones too) and the nearest to a typo
    parser.add_argument(
        "--task", required=True, help="task to demonstrate (see `robot-il sim list`)"
    )
    parser.add_argument(
        "--backend", default="mujoco", choices=("mujoco", "pybullet"), help="physics engine"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--expert", action="store_true", help="record the scripted expert")
    source.add_argument(
        "--teleop", choices=TELEOP_DEVICES, help="record a person driving this device"
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes to keep (default 10)")
    parser.add_argument("--out", type=Path, required=True, help="dataset path (a .zarr dir)")
    parser.add_argument(
        "--cameras",
        type=_names,
        default=(),
        help="comma-separated cameras to record as rgb_<name>, e.g. front,wrist (default none)",
    )
    parser.add_argument(
        "--image-size", type=_size, default=None, help="camera image H,W (default 96,96)"
    )
    parser.add_argument(
        "--image-codec",
        choices=("jpegxl", "jpeg2k", "blosc"),
        default=None,
        help="how camera frames are stored: jpegxl (default) or jpeg2k, lossy and many frames "
        "per file; blosc, lossless, one file per frame (--append: the dataset's)",
    )
    parser.add_argument(
        "--image-quality",
        type=int,
        default=None,
        help="1-100: JPEG XL quality (default 90, 100 = lossless) or JPEG 2000 PSNR in dB "
        "(default 45)",
    )
    parser.add_argument("--control-hz", type=float, default=20.0, help="control rate (Hz)")
    parser.add_argument(
        "--max-steps",
        type=COUNT,
        default=None,
        help="episode step limit (default: the task's for --expert; for --teleop "
        f"{TELEOP_LIMIT_S:.0f} s, so that the person ends the episode, or success does)",
    )
    parser.add_argument(
        "--seed",
        type=SEED,
        default=None,
        help="seed of the first episode (default 0; with --append, one past the dataset's largest)",
    )
    parser.add_argument(
        "--action-mode",
        choices=("joint", "eef_delta"),
        default=None,
        help="actions to store: joint targets or end-effector deltas "
        "(default: joint for --expert; teleop always records eef_delta)",
    )
    parser.add_argument(
        "--hold-after-success",
        action="store_true",
        help="keep episodes running to --max-steps after success, so the data also shows "
        "how to settle on the goal (default: end an episode at success)",
    )
    writes = parser.add_mutually_exclusive_group()
    writes.add_argument("--force", action="store_true", help="replace an existing dataset")
    writes.add_argument("--append", action="store_true", help="add to an existing dataset")
    parser.add_argument(
        "--keep-failures",
        action="store_true",
        help="keep expert episodes that did not succeed (default: successful ones only)",
    )
    parser.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        help="expert only: execute each action plus Gaussian noise of this standard deviation "
        "(m, rad; not the gripper) and record the clean action, so the data shows recoveries "
        "(DART; default 0)",
    )
    parser.add_argument(
        "--max-attempts",
        type=COUNT,
        default=None,
        help="give up after this many expert attempts (default 2 * episodes + 10)",
    )
    parser.add_argument(
        "--view",
        action="store_true",
        help="show cameras, joints and actions live in Rerun's web viewer on 127.0.0.1 "
        "(needs rerun-sdk)",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip flushing to disk at each commit (safe against crashes, not power loss)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Record; exit code 0 when all requested episodes were kept, 1 when fewer were."""
    if args.episodes < 1:
        raise RecordingError(f"--episodes must be >= 1, got {args.episodes}")
    _check_image_flags(args)
    from robot_il.dataset import ImageStorage

    ImageStorage(args.image_codec or "jpegxl", args.image_quality)  # a bad quality fails here
    _check_out(args.out, force=args.force, append=args.append)

    from robot_il.envs import make_env, make_expert
    from robot_il.record.demos import (
        EnvTeleopSource,
        env_stream,
        record_expert,
        record_teleop,
    )
    from robot_il.record.recorder import Recorder
    from robot_il.record.teleop import make_teleop_device

    if args.action_noise < 0 or (args.action_noise > 0 and not args.expert):
        raise RecordingError("--action-noise takes a standard deviation >= 0, with --expert")
    if args.teleop is not None and args.action_mode == "joint":
        raise RecordingError("--teleop records end-effector deltas; drop --action-mode joint")
    action_mode = args.action_mode or ("joint" if args.expert else "eef_delta")
    env = device = view = writer = None
    before = _episodes_in(args.out) if args.append else 0
    try:  # from the env on: its build takes the longest of a start, and a Ctrl-C lands there
        env = make_env(
            args.task,
            args.backend,
            control_hz=args.control_hz,
            action_mode=action_mode,
            cameras=args.cameras,
            image_size=args.image_size or DEFAULT_IMAGE_SIZE,
            max_episode_steps=_episode_limit(args),
            terminate_on_success=not args.hold_after_success,
        )
        if args.view:
            from robot_il.record.live_view import LiveView

            view = LiveView(f"robot_il record {args.task}")
            print(f"live view: {view.url}", flush=True)
        on_step = None if view is None else view.log_step
        if args.teleop is not None:  # open the device before creating any dataset
            if args.teleop == "ros":
                from robot_il.ros.dds import apply_loopback_env

                apply_loopback_env()
            device = make_teleop_device(args.teleop, control_hz=args.control_hz)
        spec = env.unwrapped.spec_dict()
        source_name = "expert" if args.expert else f"teleop:{args.teleop}"
        attrs = {
            **{key: spec[key] for key in SOURCE_KEYS if key != "control_hz"},
            "source": source_name,
            "env_spec": spec,
        }
        seed = _check_append(args, attrs, spec["observation"]) if args.append else args.seed or 0
        env.reset(seed=seed)  # a task whose observation is not its declaration: before any write
        with stops_deferred():  # a stop as the store was put in place left it, empty, behind
            writer = _open_writer(args, spec.get("robot", "ur5e"), attrs)
        episode_meta = {"task": args.task, "source": source_name,
                        "hold_after_success": bool(args.hold_after_success)}  # fmt: skip
        if args.expert:  # the DART noise each episode was recorded under
            episode_meta["action_noise"] = float(args.action_noise)
        if args.append:
            _note_other_settings(args.out, episode_meta)
        if device is None:
            expert = make_expert(env)
            with Recorder([env_stream(args.control_hz)], {"env": writer}) as recorder:
                summary = record_expert(
                    env,
                    expert,
                    recorder,
                    episodes=args.episodes,
                    seed=seed,
                    keep_failures=args.keep_failures,
                    max_attempts=args.max_attempts,
                    episode_meta=episode_meta,
                    action_noise=args.action_noise,
                    on_step=on_step,
                )
        else:
            source = EnvTeleopSource(env, device, on_step=on_step)
            stream = env_stream(args.control_hz, source)
            # Stepping and rendering the env is heavy work, not a light sensor read: it must
            # not run at real-time priority, where it could starve the rest of the machine.
            with Recorder([stream], {"env": writer}, realtime=False) as recorder:
                summary = record_teleop(
                    source,
                    recorder,
                    episodes=args.episodes,
                    seed=seed,
                    episode_meta=episode_meta,
                )
    except (KeyboardInterrupt, Exception) as error:  # say what is safe (a task's bug too)
        # None: no dataset of this session to speak of. An appended one is spoken of even
        # before its writer opened (the env's build) if a person stopped the session: they
        # must hear that its episodes are whole (bad input says its one line alone).
        opened = writer is not None or (args.append and isinstance(error, KeyboardInterrupt))
        with stops_deferred():  # a second Ctrl-C cut this line off; it waits for it now
            after = _episodes_in(args.out) if opened else None
            if after == 0 and not args.append:  # created now and empty: a rerun needs no --force
                shutil.rmtree(args.out, ignore_errors=True)
                print(f"{args.out}: no episode recorded; the empty dataset it began is removed",
                      file=sys.stderr)  # fmt: skip
            elif after is not None:
                print(f"{args.out}: {after - (before or 0)} episode(s) of this session kept, "
                      f"{after} in the dataset", file=sys.stderr)  # fmt: skip
        raise
    finally:
        if device is not None:
            device.close()
        if view is not None:
            view.close()
        if env is not None:
            env.close()
    print(f"{args.out}: {summary.line()}")
    if summary.kept < args.episodes and not summary.quit:
        print(
            f"robot-il: warning: kept {summary.kept} of {args.episodes} requested episodes "
            f"after {summary.attempts} attempts (see --max-attempts, --keep-failures)"
        )
        return 1
    return 0


def _check_image_flags(args: argparse.Namespace) -> None:
    """Refuse, before any work, image settings that would store nothing: frame flags without
    ``--cameras`` (the dataset would have no camera, found only when training an image policy
    on it) and a quality for the lossless ``blosc``."""
    given = [flag for flag, value in (("--image-size", args.image_size),
             ("--image-codec", args.image_codec), ("--image-quality", args.image_quality))
             if value is not None]  # fmt: skip
    if given and not args.cameras:
        raise RecordingError(f"{', '.join(given)} set how camera frames are recorded, and no "
                             "camera is: add --cameras, e.g. --cameras front")  # fmt: skip
    if args.image_codec == "blosc" and args.image_quality is not None:
        raise RecordingError("--image-quality is for the lossy codecs (jpegxl, jpeg2k); blosc "
                             "stores frames losslessly: drop it")  # fmt: skip


def _episodes_in(out: Path) -> int | None:
    """The committed episodes of the dataset at ``out``, or None where none can be read."""
    from robot_il.dataset import Dataset

    try:
        return Dataset.open(out).num_episodes
    except (RobotILError, OSError):
        return None


def _check_out(out: Path, *, force: bool, append: bool) -> None:
    """Refuse, before any work, to touch an existing dataset unless asked to, and to record
    where no dataset can be written."""
    if out.exists() and not (force or append):
        raise RecordingError(
            f"{out}: already exists; pass --force to replace it or --append to add episodes"
        )
    if append and not out.exists():
        raise RecordingError(f"{out}: --append needs an existing dataset, and there is none")
    # The dataset is written into out (append) or built beside it and renamed into place:
    # the nearest folder that exists must take new files (a read-only mount, another user's
    # folder or a file on the path failed with an OSError traceback once an env was built).
    from robot_il.dataset.durability import check_writable

    check_writable(out if append else out.absolute().parent, out)


def _check_append(
    args: argparse.Namespace, attrs: dict[str, Any], observation: dict[str, Any]
) -> int:
    """Refuse, before recording, a session whose steps the dataset at ``--out`` cannot take
    (another env setting, observation key, image shape or image storage); return the seed of
    the first episode: ``--seed``, else one past the dataset's largest, so that appending
    without ``--seed`` records new scenes instead of the first ones again."""
    from robot_il.dataset import Dataset, ImageStorage
    from robot_il.record.sink import RESERVED_KEYS

    dataset = Dataset.open(args.out)
    cannot = f"{args.out}: cannot append:"
    if dataset.attrs.get("frame"):  # its steps are turned into a frame; a session's are not
        raise RecordingError(f"{cannot} it is a copy in the {dataset.attrs['frame']!r} task "
                             "frame; append to the world recording it came from, then convert "
                             "it again (robot-il data frame)")  # fmt: skip
    session = {**attrs, "control_hz": float(args.control_hz)}
    for key in SOURCE_KEYS:
        if dataset.attrs.get(key) != session[key]:
            raise RecordingError(
                f"{cannot} dataset has {key}={dataset.attrs.get(key)!r}, "
                f"this session records {key}={session[key]!r}"
            )
    stored = {k: s.shape for k, s in dataset.specs.items() if k not in ("action", *RESERVED_KEYS)}
    # A dataset's keys are fixed by the first frame written to it: one that never had a frame
    # (a session that kept nothing, or was interrupted at once) takes this session's keys.
    recorded = {key: tuple(value["shape"]) for key, value in observation.items()} if stored else {}
    for key in sorted(stored.keys() | recorded.keys()):
        if key not in stored:
            problem = f"this session records {key}, which the dataset does not have"
        elif key not in recorded:
            problem = f"the dataset has {key}, which this session does not record"
        elif stored[key] != recorded[key]:
            problem = f"{key} is {stored[key]} in the dataset, {recorded[key]} in this session"
        else:
            continue
        raise RecordingError(f"{cannot} {problem} (see --cameras, --image-size)")
    storage = ImageStorage.from_attrs(dataset.attrs)
    if dataset.image_keys and (
        args.image_codec not in (None, storage.codec)
        or args.image_quality not in (None, storage.effective_quality)
    ):
        raise RecordingError(
            f"{cannot} the dataset stores frames as {storage.describe()}; drop --image-codec "
            "and --image-quality (appended frames are stored as the dataset's are)"
        )
    if args.seed is not None:
        return int(args.seed)
    seeds = [dataset.meta(e)["seed"] for e in range(dataset.num_episodes)]
    return max(seeds, default=-1) + 1 if "seed" in dataset.meta_names else 0


def _note_other_settings(out: Path, episode_meta: dict[str, Any]) -> None:
    """Say so when this session records under other settings (DART noise, hold after
    success) than the dataset's last episode: a mix is allowed, and each episode's are kept."""
    from robot_il.dataset import Dataset

    dataset = Dataset.open(out)
    if not dataset.num_episodes:
        return
    last = dataset.meta(dataset.num_episodes - 1)
    other = [f"{name} {last[name]!r} -> {value!r}" for name, value in episode_meta.items()
             if name in ("action_noise", "hold_after_success") and name in last
             and last[name] != value]  # fmt: skip
    if other:
        print(f"robot-il: note: appending under other settings than the dataset's last "
              f"episode ({', '.join(other)}); each episode keeps its own in its meta")  # fmt: skip


def _open_writer(args: argparse.Namespace, robot: str, attrs: dict[str, Any]) -> Any:
    from robot_il.dataset import DatasetWriter, ImageStorage

    fsync = not args.no_fsync
    try:
        if args.append:
            return DatasetWriter.open(args.out, fsync=fsync)
        return DatasetWriter.create(
            args.out,
            robot=robot,
            control_hz=args.control_hz,
            attrs=attrs,
            overwrite=args.force,
            fsync=fsync,
            image_storage=ImageStorage(args.image_codec or "jpegxl", args.image_quality),
        )
    except OSError as error:  # what _check_out cannot foresee: a full disk, a lost mount
        raise RecordingError(f"{args.out}: cannot write the dataset: {error.strerror}") from error


def _episode_limit(args: argparse.Namespace) -> int | None:
    """``--max-steps``; by default the task's limit for the expert, a generous one for people."""
    if args.max_steps is not None or args.teleop is None:
        return args.max_steps
    return int(round(TELEOP_LIMIT_S * args.control_hz))


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"image size must be H,W (e.g. 96,96), got {text!r}"
        ) from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"image size must be at least 1,1, got {text!r}")
    return height, width
