"""``$(...)`` substitutions of ROS 2 launch files, the subset robot_il's runner supports.

- ``$(var NAME)``: a launch argument or ``let`` value in scope.
- ``$(env NAME)`` / ``$(env NAME DEFAULT)``: an environment variable (an error if unset and
  no default).
- ``$(find-pkg-share PKG)``: the package's share directory (see :func:`package_share`).
- ``$(exec-in-pkg EXEC PKG)``: the path of a package's executable, as ``ros2 run`` finds it
  (a colcon install puts robot_il's console scripts in ``lib/robot_il``, off ``PATH``; here,
  robot_il's are this Python's console scripts).
- ``$(dirname)``: the directory of the launch file being read.

Substitutions do not nest. Anything else is refused with a :class:`LaunchError` naming it.

A command line (an executable's ``cmd``, a node's ``args`` and ``ros_args``) is split as ROS 2
launch splits it (``ExecuteProcess._parse_cmdline``): only the literal text, by shell rules;
each substitution's value stays whole inside the argument it stands in, whatever spaces or
quotes it holds (:func:`split_command`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from robot_il.errors import LaunchError

_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


def package_share(package: str, where: Path) -> Path:
    """The share directory of ``package``: where its ``package.xml`` and ``launch/`` live.

    robot_il itself is found from this installation: the source tree (an editable install has
    ``package.xml`` beside the ``robot_il`` folder) or ``<prefix>/share/robot_il`` (a wheel or
    colcon install). Other packages come from ``AMENT_PREFIX_PATH`` as ROS 2 finds them.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates = [Path(prefix) / "share" / package for prefix in prefixes]
    if package == "robot_il":
        import robot_il

        candidates = [
            Path(robot_il.__file__).resolve().parent.parent,
            *candidates,
            Path(sys.prefix) / "share" / "robot_il",
        ]
    for candidate in candidates:
        if (candidate / "package.xml").is_file():
            return candidate
    raise LaunchError(f"{where}: package {package!r} not found (searched AMENT_PREFIX_PATH)")


def package_executable(package: str, executable: str, where: Path) -> Path:
    """The executable ``executable`` of ``package``: robot_il's console scripts beside this
    Python, others in ``<prefix>/lib/<package>`` of ``AMENT_PREFIX_PATH``."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    folders = [Path(prefix) / "lib" / package for prefix in prefixes]
    if package == "robot_il":
        folders.insert(0, Path(sys.executable).parent)
    for folder in folders:
        if os.access(folder / executable, os.X_OK):
            return folder / executable
    raise LaunchError(f"{where}: executable {executable!r} of package {package!r} not found")


def substitute(text: str, variables: Mapping[str, str], where: Path) -> str:
    """``text`` with every ``$(...)`` replaced; ``where`` is the launch file (for messages)."""
    result = _SUBSTITUTION.sub(lambda match: _value(match, variables, where), text)
    if "$(" in result:
        raise LaunchError(f"{where}: unsupported (nested?) substitution in {text!r}")
    return result


def split_command(text: str, variables: Mapping[str, str], where: Path) -> list[str]:
    """``text`` as command-line arguments, split as ROS 2 launch splits ``cmd``, ``args`` and
    ``ros_args``: the literal text by shell rules, each substitution's value kept whole and
    joined to the literal text it touches (``dataset:=$(var dataset)`` is one argument even
    when the path holds a space). Unbalanced quotes in the literal text are a ``LaunchError``.
    """
    arguments: list[str] = []
    current: str | None = None  # the argument being built; None between arguments
    start = 0
    for match in [*_SUBSTITUTION.finditer(text), None]:
        literal = text[start : len(text) if match is None else match.start()]
        if "$(" in literal:
            raise LaunchError(f"{where}: unsupported (nested?) substitution in {text!r}")
        try:
            words = shlex.split(literal)
        except ValueError as error:
            raise LaunchError(f"{where}: cannot split {text!r} into arguments: {error}") from None
        if literal[:1].isspace() and current is not None:
            arguments.append(current)
            current = None
        for index, word in enumerate(words):
            if index > 0:
                arguments.append(current)
                current = None
            current = (current or "") + word
        if literal[-1:].isspace() and current is not None:
            arguments.append(current)
            current = None
        if match is None:
            break
        current = (current or "") + _value(match, variables, where)
        start = match.end()
    if current is not None:
        arguments.append(current)
    return arguments


def _value(match: re.Match[str], variables: Mapping[str, str], where: Path) -> str:
    """The value of the substitution ``match``."""
    try:
        words = shlex.split(match.group(1))
    except ValueError as error:
        raise LaunchError(f"{where}: cannot read {match.group(0)!r}: {error}") from None
    if not words:
        raise LaunchError(f"{where}: empty substitution {match.group(0)!r}")
    kind, rest = words[0], words[1:]
    if kind == "var" and len(rest) == 1:
        if rest[0] not in variables:
            raise LaunchError(f"{where}: $(var {rest[0]}) names no launch argument")
        return variables[rest[0]]
    if kind == "env" and len(rest) in (1, 2):
        value = os.environ.get(rest[0], rest[1] if len(rest) == 2 else None)
        if value is None:
            raise LaunchError(f"{where}: environment variable {rest[0]} is not set")
        return value
    if kind == "find-pkg-share" and len(rest) == 1:
        return str(package_share(rest[0], where))
    if kind == "exec-in-pkg" and len(rest) == 2:
        return str(package_executable(rest[1], rest[0], where))
    if kind == "dirname" and not rest:
        return str(where.parent)
    raise LaunchError(f"{where}: unsupported substitution {match.group(0)!r}")
