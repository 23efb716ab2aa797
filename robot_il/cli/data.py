"""``robot-il data``: inspect, validate and convert zarr datasets.

Verbs: ``info``, ``validate``, ``split``, ``merge``, ``drop-episode``, ``export-video``,
``export`` (diffusion_policy's zarr layout or LeRobot v3), ``import`` (LeRobot v3), ``frame``
(a copy in a task frame, :mod:`robot_il.envs.task_frame`), ``view`` (a browser page to scrub
through episodes). Nothing
that exists is overwritten without ``--force``, and every rewrite goes through a new directory
swapped into place (see :mod:`robot_il.dataset.tools`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_il.errors import DatasetError


def configure(parser: argparse.ArgumentParser) -> None:
    from robot_il.cli.flags import SEED, integer

    verbs = parser.add_subparsers(dest="data_verb", metavar="ACTION", required=True)

    info = verbs.add_parser("info", help="format, keys, episodes and sizes of a dataset")
    info.add_argument("path", help="dataset path or fsspec URL")
    info.set_defaults(run=run_info)

    validate = verbs.add_parser("validate", help="check everything; one line per problem")
    validate.add_argument("path", help="dataset path or fsspec URL")
    validate.set_defaults(run=run_validate)

    split = verbs.add_parser("split", help="train/validation episode ids, by whole episodes")
    split.add_argument("path")
    split.add_argument("--val-fraction", type=float, default=0.1)
    split.add_argument("--seed", type=SEED, default=0)
    split.add_argument("--out", type=Path, help="write the split as JSON here (else stdout)")
    split.add_argument("--force", action="store_true", help="overwrite --out")
    split.set_defaults(run=run_split)

    merge = verbs.add_parser("merge", help="concatenate datasets with the same keys and robot")
    merge.add_argument("out", type=Path, help="new dataset")
    merge.add_argument("inputs", nargs="+", help="datasets to merge, in order")
    merge.add_argument("--force", action="store_true", help="replace OUT if it exists")
    merge.set_defaults(run=run_merge)

    drop = verbs.add_parser("drop-episode", help="remove episodes (rewrites, then swaps)")
    drop.add_argument("path", type=Path)
    drop.add_argument("episodes", type=int, nargs="+")
    drop.add_argument("--out", type=Path, help="write the result here instead of in place")
    drop.add_argument("--force", action="store_true", help="allow rewriting PATH or --out")
    drop.set_defaults(run=run_drop)

    video = verbs.add_parser("export-video", help="an episode's camera frames as an mp4")
    video.add_argument("path")
    video.add_argument("episode", type=int)
    video.add_argument("out", type=Path, help="video file (.mp4, .mkv or .mov)")
    video.add_argument("--keys", nargs="+", help="image keys, side by side (default: all)")
    video.add_argument("--fps", type=float, help="default: the dataset's control rate")
    video.add_argument("--force", action="store_true", help="overwrite OUT")
    video.set_defaults(run=run_export_video)

    export = verbs.add_parser(
        "export", help="copy into diffusion_policy's ReplayBuffer layout (zarr; images "
        "re-encoded losslessly with Blosc) or LeRobot's v3 layout (parquet + mp4)"
    )  # fmt: skip
    export.add_argument("path")
    export.add_argument("out", type=Path)
    export.add_argument("--format", choices=("zarr", "lerobot"), default="zarr")
    export.add_argument("--zarr-format", type=int, choices=(2, 3), default=2)
    export.add_argument("--force", action="store_true", help="replace OUT if it exists")
    export.set_defaults(run=run_export)

    frame = verbs.add_parser(
        "frame", help="a copy with observations and eef_delta actions in a task frame (train "
        "on it; its checkpoints evaluate in that frame and deploy on world topics)"
    )  # fmt: skip
    frame.add_argument("path", help="world-frame eef_delta dataset")
    frame.add_argument("out", help="new dataset (a local path)")
    frame.add_argument("--frame", default="push", help="task frame: push (under the object, x "
                       "toward the target) or fixed (the world's axes, continuous attitudes); "
                       "default: push")  # fmt: skip
    frame.add_argument("--force", action="store_true", help="replace OUT if it exists")
    frame.set_defaults(run=run_frame)

    view = verbs.add_parser("view", help="scrub through episodes in a browser (127.0.0.1)")
    view.add_argument("path", help="dataset path or fsspec URL")
    view.add_argument(
        "--port", type=integer(0, 65535), default=0, help="HTTP port (default: any free one)"
    )
    view.set_defaults(run=run_view)

    importer = verbs.add_parser("import", help="a LeRobot v3 dataset as a robot_il dataset")
    importer.add_argument("path", type=Path, help="LeRobot dataset folder (meta/info.json)")
    importer.add_argument("out", type=Path, help="new robot_il dataset")
    importer.add_argument("--format", choices=("lerobot",), default="lerobot")
    importer.add_argument("--force", action="store_true", help="replace OUT if it exists")
    importer.set_defaults(run=run_import)


def run_info(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset
    from robot_il.dataset.format import ImageStorage
    from robot_il.dataset.store import bytes_on_disk, local_path

    dataset = Dataset.open(args.path)
    lengths = dataset.episode_lengths
    print(f"dataset      {args.path}")
    version = dataset.attrs.get("format_version", "none (foreign ReplayBuffer)")
    print(f"format       {dataset.attrs.get('format', '?')} version {version}")
    print(f"robot        {dataset.robot} at {dataset.control_hz} Hz")
    # what the recording demonstrates and what its actions are: the flags a training on it and
    # a merge with it depend on (the action key's units only point at action_mode)
    recorded = [dataset.attrs[name] for name in ("backend", "source") if dataset.attrs.get(name)]
    if dataset.attrs.get("task"):
        print(
            f"task         {dataset.attrs['task']}"
            + (f" ({', '.join(recorded)})" if recorded else "")
        )
    if dataset.attrs.get("action_mode"):
        print(f"actions      {dataset.attrs['action_mode']}")
    if dataset.attrs.get("frame"):  # its policies evaluate in that frame (robot_il.envs.task_frame)
        print(f"task frame   {dataset.attrs['frame']} (observations and actions)")
    print(f"episodes     {dataset.num_episodes}, steps {dataset.num_steps}")
    if len(lengths):
        print(f"lengths      min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()}")
    raw = 0
    path = local_path(args.path)
    storage = ImageStorage.from_attrs(dataset.attrs)
    if dataset.image_keys:
        print(f"images       {storage.describe()}")
    print("keys")
    for key, spec in dataset.specs.items():
        raw += spec.step_bytes * dataset.num_steps
        kind = "image" if spec.is_image else "lowdim"
        line = f"  {key:<24} {spec.dtype:<8} {spec.shape!s:<14} {kind:<6} {spec.units}"
        if spec.is_image and path is not None and dataset.num_steps:
            per_frame = bytes_on_disk(path / "data" / key) / dataset.num_steps
            line += f"  {per_frame / 1e3:.1f} kB/frame ({spec.step_bytes / per_frame:.1f}x)"
        print(line)
    if dataset.meta_names:
        print(f"meta         {', '.join(dataset.meta_names)}")
    if path is not None:
        disk = bytes_on_disk(path)
        ratio = raw / disk if disk else float("nan")
        print(f"size         {disk / 1e6:.2f} MB on disk, {raw / 1e6:.2f} MB raw ({ratio:.1f}x)")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from robot_il.dataset.validate import validate

    report = validate(args.path)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}")
    if report.problems:
        print(f"invalid: {len(report.problems)} problem(s) in {args.path}")
        return 1
    print(f"ok: {report.num_episodes} episodes, {report.num_steps} steps")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset, split_episodes

    dataset = Dataset.open(args.path)
    train, val = split_episodes(dataset.num_episodes, args.val_fraction, args.seed)
    text = json.dumps({"seed": args.seed, "train": train, "val": val}) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    _check_file_out(args.out, force=args.force)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(train)} train, {len(val)} validation episodes")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset
    from robot_il.dataset.store import local_path
    from robot_il.dataset.tools import copy_episodes

    seen: dict[str, str] = {}
    for path in args.inputs:  # a second copy of each episode would weigh it twice in training
        local = local_path(path)
        where = str(local.resolve()) if local is not None else path
        if where in seen:
            raise DatasetError(f"{path}: given twice (as {seen[where]}); merging it again would "
                               "duplicate every one of its episodes")  # fmt: skip
        seen[where] = path
    datasets = [Dataset.open(path) for path in args.inputs]
    count = copy_episodes(
        [(d, range(d.num_episodes)) for d in datasets], args.out, force=args.force
    )
    print(f"wrote {args.out}: {count} episodes from {len(datasets)} datasets")
    return 0


def run_frame(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset
    from robot_il.envs.task_frame import frame_dataset

    out = frame_dataset(args.path, args.out, args.frame, overwrite=args.force)
    kept = Dataset.open(out)
    print(f"wrote {out}: {kept.num_episodes} episodes in the {args.frame} frame")
    left_out = [key for key in Dataset.open(args.path).keys if key not in kept.keys]
    if left_out:  # a policy trained on the copy cannot observe these
        print(f"left out (no frame policy observes them): {', '.join(left_out)}")
    return 0


def run_drop(args: argparse.Namespace) -> int:
    from robot_il.dataset.tools import drop_episodes

    remaining = drop_episodes(args.path, args.episodes, args.out, force=args.force)
    print(f"wrote {args.out or args.path}: {remaining} episodes remain")
    return 0


def run_export_video(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        import imageio.v3 as iio
    except ImportError:
        raise DatasetError(
            "export-video needs imageio[ffmpeg] (pip install 'robot_il[sim]')"
        ) from None

    from robot_il.dataset import Dataset

    dataset = Dataset.open(args.path)
    keys = args.keys or dataset.image_keys
    if not keys:
        raise DatasetError(f"{args.path}: no image keys to export")
    missing = [k for k in keys if k not in dataset.image_keys]
    if missing:
        raise DatasetError(
            f"{args.path}: {missing[0]!r} is not an image key ({dataset.image_keys})"
        )
    if args.out.suffix.lower() not in VIDEO_SUFFIXES:
        raise DatasetError(
            f"{args.out}: a video needs one of the suffixes {', '.join(VIDEO_SUFFIXES)}"
        )
    _check_file_out(args.out, force=args.force)
    episode = dataset.episode(args.episode, keys)
    frames = np.concatenate([episode[k] for k in keys], axis=2)  # side by side
    fps = args.fps or dataset.control_hz or 10.0
    args.out.parent.mkdir(parents=True, exist_ok=True)  # as record and export do
    iio.imwrite(args.out, frames, fps=fps, codec="libx264", macro_block_size=1)
    print(f"wrote {args.out}: {frames.shape[0]} frames at {fps:g} fps ({', '.join(keys)})")
    return 0


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
"""Containers that take the H.264 stream export-video writes (imageio picks the container
from the suffix, and fails on a name without one)."""


def _check_file_out(out: Path, *, force: bool) -> None:
    """Refuse, before any work, an output file that exists (without ``--force``), that is a
    folder, or whose folder cannot be made or written."""
    from robot_il.dataset.durability import check_writable_parent

    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; name a file to write")
    if out.exists() and not force:
        raise DatasetError(f"{out}: already exists; pass --force to overwrite it")
    check_writable_parent(out)


def run_export(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset
    from robot_il.dataset.tools import export_replay_buffer

    dataset = Dataset.open(args.path)
    if args.format == "lerobot":
        from robot_il.dataset.lerobot import export_lerobot

        export_lerobot(dataset, args.out, force=args.force)
        print(f"wrote {args.out}: LeRobot v3.0, {dataset.num_episodes} episodes")
        return 0
    export_replay_buffer(dataset, args.out, zarr_format=args.zarr_format, force=args.force)
    print(f"wrote {args.out}: zarr format {args.zarr_format}, {dataset.num_episodes} episodes")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from robot_il.dataset.lerobot import import_lerobot

    count = import_lerobot(args.path, args.out, force=args.force)
    print(f"wrote {args.out}: {count} episodes from LeRobot dataset {args.path}")
    return 0


def run_view(args: argparse.Namespace) -> int:
    from robot_il.dataset import Dataset
    from robot_il.dataset.viewer import DatasetViewer

    viewer = DatasetViewer(Dataset.open(args.path), port=args.port)
    print(f"dataset viewer: {viewer.url}  (Ctrl-C to stop)", flush=True)
    try:
        viewer.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
    return 0
