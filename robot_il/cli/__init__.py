"""The ``robot-il`` command: one verb per concern, each in its own module.

A verb's module is imported only when that verb runs, so ``robot-il data info`` does not pay
for importing torch or rclpy. Each verb module exposes ``configure(parser)``, which adds its
arguments and sets ``run`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib import import_module

from robot_il.errors import DISK_FULL, RobotILError
from robot_il.stop_signals import Terminated, sigterm_as_interrupt, write_stacks_on_request

VERBS: dict[str, tuple[str, str]] = {
    "demo": ("robot_il.cli.demo", "run the main job end to end on a simulated UR5e"),
    "train": (
        "robot_il.cli.train",
        "train a policy (BC, Diffusion, OPT-AIL, IQ-Learn, DAC, DMP, DMP + RL)",
    ),
    "eval": ("robot_il.cli.eval", "evaluate a policy checkpoint in simulation (success, video)"),
    "info": ("robot_il.cli.info", "show what a checkpoint is and where it came from"),
    "sim": ("robot_il.cli.sim", "roll out tasks and scripted experts in MuJoCo or PyBullet"),
    "launch": ("robot_il.cli.launch", "run a ROS 2 YAML launch file (key:=value arguments)"),
    "data": ("robot_il.cli.data", "inspect, validate and convert zarr datasets"),
    "select": ("robot_il.cli.select", "choose among trained policies from human feedback"),
    "record": (
        "robot_il.cli.record",
        "record demonstrations from a scripted expert or teleoperation",
    ),
}


UNKNOWN_ARGUMENTS_PARSER = "_unknown_arguments_parser"
"""Namespace attribute: the innermost subcommand parser that was left arguments it does not
know (set only then), so that :func:`main` refuses them with that parser's usage."""


class _CommandParsers(argparse._SubParsersAction):
    """Subcommands (``robot-il data export-video``) that name themselves when left arguments
    they do not know: argparse hands such arguments up to the top-level parser, whose error
    showed ``usage: robot-il [-h] VERB ...``, nothing of the subcommand's arguments."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        unknown = getattr(namespace, argparse._UNRECOGNIZED_ARGS_ATTR, None)
        if unknown and not hasattr(namespace, UNKNOWN_ARGUMENTS_PARSER):  # the innermost's
            setattr(namespace, UNKNOWN_ARGUMENTS_PARSER, self.choices[values[0]])


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose subcommands (and theirs: ``add_parser`` makes parsers of
    this class) are :class:`_CommandParsers`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _CommandParsers)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The top-level parser, with full arguments only for the verb named in ``argv``."""
    parser = _Parser(
        prog="robot-il", description="Imitation learning and safe deployment for UR5e arms."
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module, summary) in VERBS.items():
        verb_parser = verbs.add_parser(verb, help=summary, description=summary)
        if argv and argv[0] == verb:
            import_module(module).configure(verb_parser)
    return parser


def _stopped(interrupt: KeyboardInterrupt) -> int:
    """Say that a person stopped the command (Ctrl-C, or SIGTERM as :class:`Terminated`) and
    return its exit code: 128 + the signal, as a shell reports a process the signal ended."""
    if isinstance(interrupt, Terminated):
        print("robot-il: stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("robot-il: interrupted", file=sys.stderr)
    return 128 + signal.SIGINT


def _interrupt_behind(error: ImportError) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) an import failed of, if one did: a native extension's init
    turns one that lands in it into "ImportError: initialization failed", the interrupt at
    the end of its chain of causes (MuJoCo's pybind11 modules, one importing another: two such
    errors deep)."""
    link: BaseException | None = error
    seen: set[int] = set()  # a chain set by hand may loop
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robot-il`` console script.

    As the console script (``argv`` None), a command writes its threads' stacks on SIGUSR1
    and on a native crash, as a robot_il node does
    (:func:`~robot_il.stop_signals.write_stacks_on_request`); a caller's ``main(argv)``
    leaves those handlers alone. Every verb takes SIGTERM as Ctrl-C while it runs
    (:func:`~robot_il.stop_signals.sigterm_as_interrupt`): a recording says what it kept, a
    training where a rerun goes on, ``eval --ros`` stops its nodes (``kill`` left them running),
    and exit code 143; ``launch`` sets its own handlers, and restores these.
    """
    if argv is None:
        write_stacks_on_request()
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(argv)  # imports the verb's module: a Ctrl-C may land in it
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            refuser = getattr(args, UNKNOWN_ARGUMENTS_PARSER, parser)
            refuser.error(f"unrecognized arguments: {' '.join(unknown)}")
        with sigterm_as_interrupt():
            return int(args.run(args) or 0)
    except RobotILError as error:
        print(f"robot-il: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        return _stopped(interrupt)
    except ImportError as error:
        interrupt = _interrupt_behind(error)
        if interrupt is None:
            raise
        return _stopped(interrupt)
    except BrokenPipeError:
        # The reader of the output went away (`robot-il data info D | head`): stop without a
        # traceback, and send what is still buffered nowhere, so that the interpreter's own
        # flush at exit does not fail on the closed pipe again (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # after BrokenPipeError, an OSError too
        if error.errno not in DISK_FULL:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"robot-il: error: no space left on the disk{where}; free some and run the "
              "command again", file=sys.stderr)  # fmt: skip
        return 2
