"""``robot-il launch FILE key:=value ...``: run a ROS 2 YAML launch file here.

``FILE`` is a path, or the name of one of robot_il's launch files (``deploy_sim.launch.yaml``
finds ``<robot_il share>/launch/deploy_sim.launch.yaml``), as ``ros2 launch robot_il FILE``
would. DDS stays on loopback unless ``--no-loopback`` (deploying on a robot network).
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from robot_il.errors import LaunchError


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the launch file, its ``key:=value`` arguments and the runner's options."""
    from robot_il.cli.flags import DOMAIN_ID

    parser.add_argument("file", help="launch file path, or a robot_il launch file name")
    parser.add_argument("arguments", nargs="*", metavar="key:=value", help="launch arguments")
    parser.add_argument(
        "-s",
        "--show-args",
        action="store_true",
        help="list the arguments the file and its includes take, and exit",
    )
    parser.add_argument(
        "--domain-id",
        type=DOMAIN_ID,
        default=None,
        help="ROS_DOMAIN_ID for every process (0..101)",
    )
    parser.add_argument(
        "--no-loopback",
        action="store_true",
        help="do not confine DDS to 127.0.0.1 (for a real robot network)",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="where output: log goes")
    parser.set_defaults(run=run)


def resolve_launch_file(name: str) -> Path:
    """``name`` as a path if it exists, else robot_il's launch file of that name: given as its
    name or as its path in the repository (``launch/deploy_sim.launch.yaml``, which the README
    names, from another folder than the repository's). A miss names robot_il's closest."""
    path = Path(name)
    if path.exists():
        return path
    from robot_il.launch.substitution import package_share

    share = package_share("robot_il", path) / "launch"
    in_repository = path.parent == Path("launch")
    installed = share / (path.name if in_repository else name)
    if installed.is_file():
        return installed
    names = sorted(file.name for file in share.glob("*.launch.yaml"))
    close = difflib.get_close_matches(path.name, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise LaunchError(f"launch file {name} not found, nor among robot_il's ({hint}"
                      f"robot-il launch NAME takes one of {', '.join(names)})")  # fmt: skip


def parse_arguments(items: list[str]) -> dict[str, str]:
    """``["key:=value", ...]`` as a dict; anything else is a :class:`LaunchError`."""
    arguments = {}
    for item in items:
        key, separator, value = item.partition(":=")
        if not separator or not key:
            raise LaunchError(f"launch argument {item!r} is not key:=value")
        arguments[key] = value
    return arguments


def run(args: argparse.Namespace) -> int:
    from robot_il.launch import LaunchRunner, declared_arguments, load_launch

    path = resolve_launch_file(args.file)
    if args.show_args:
        for argument in declared_arguments(path):
            default = "required" if argument.default is None else f"default {argument.default!r}"
            origin = "" if argument.source == path else f" (from {argument.source.name})"
            print(f"{argument.name}: {argument.description} [{default}]{origin}")
        return 0
    plan = load_launch(path, parse_arguments(args.arguments))
    runner = LaunchRunner(
        plan, loopback=not args.no_loopback, domain_id=args.domain_id, log_dir=args.log_dir
    )
    return runner.run()
