"""Reads a ROS 2 YAML launch file into the processes to run, refusing what it does not support.

Neither ``launch`` nor ``launch_ros`` is on PyPI, so robot_il runs its own launch files with
this reader and :mod:`robot_il.launch.runner`. The files stay valid ROS 2 YAML launch files
(``ros2 launch robot_il deploy_sim.launch.yaml`` works on a full ROS 2 install); this reader
supports the subset below and raises a one-line :class:`LaunchError` naming the file and the
thing for anything else.

The supported subset (every action also takes ``if:`` / ``unless:`` with true/false/1/0):

- ``arg``: ``name``, ``default``, ``description``. Without a default the argument is required.
- ``let``: ``name``, ``value``.
- ``node``: ``pkg``, ``exec``, ``name``, ``namespace``, ``param`` (a list of ``name``/``value``
  or ``from: FILE.yaml``), ``remap`` (``from``/``to``), ``args``, ``ros_args``, ``env``
  (``name``/``value``), ``output`` (``screen``, ``log`` or ``both``; ``screen`` by default,
  where ROS 2's default is ``log``), ``on_exit: shutdown``.
- ``executable``: ``cmd``, ``name``, ``cwd``, ``env``, ``output``, ``on_exit: shutdown``.
- ``include``: ``file`` (a YAML launch file; relative paths are relative to the including
  file), ``arg`` (``name``/``value``). The included file sees the includer's values.
- ``group``: a list of actions in their own scope (values and namespace pushed inside do not
  leak out), as ROS 2's YAML group is; ``push_ros_namespace`` (or ``push-ros-namespace``):
  ``namespace``, applied to the nodes after it in the same scope.
- Substitutions: see :mod:`robot_il.launch.substitution`.

``pkg: robot_il`` executables are robot_il's console scripts (run with this Python), others
come from ``AMENT_PREFIX_PATH`` (``<prefix>/lib/<pkg>/<exec>``) as ``ros2 run`` finds them.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from robot_il.errors import LaunchError
from robot_il.launch.substitution import package_executable, split_command, substitute

OUTPUTS = ("screen", "log", "both")
SWITCH_VALUES = {"true": "true", "false": "false", "1": "true", "0": "false"}
"""What a switch argument (one whose default is true or false) takes, any case, and the text
its nodes then get: a bool parameter ('1' is an integer to rcl, 'ture' a string, either of
which a node declaring a bool, ``use_sim_time`` say, fails on in a traceback)."""


@dataclass(frozen=True)
class LaunchArgument:
    """A declared launch argument: ``name``, ``default`` (None: required), ``description``."""

    name: str
    default: str | None
    description: str
    source: Path


@dataclass(frozen=True)
class ProcessSpec:
    """One process to start: ``argv``, extra ``env`` over the launcher's, ``cwd``, where its
    ``output`` goes, and whether its exit ends the whole launch (``on_exit: shutdown``)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    output: str
    shutdown_on_exit: bool
    source: Path


@dataclass
class LaunchPlan:
    """Everything a launch file (with its includes) asks for, arguments resolved."""

    processes: list[ProcessSpec] = field(default_factory=list)
    arguments: list[LaunchArgument] = field(default_factory=list)
    settable: set[str] = field(default_factory=set)
    """The arguments a command line can set: declared somewhere no include above sets them."""


@dataclass
class _Scope:
    variables: dict[str, str]
    namespace: str
    files: tuple[Path, ...] = ()
    """The launch files being read, outermost first: an include of one of them is a cycle."""
    set_by_includer: frozenset[str] = frozenset()
    """Argument names an include above this scope sets itself (the command line cannot)."""

    def child(self) -> _Scope:
        return _Scope(dict(self.variables), self.namespace, self.files, self.set_by_includer)


_ACTION_KEYS: dict[str, frozenset[str]] = {
    "arg": frozenset({"name", "default", "description"}),
    "let": frozenset({"name", "value"}),
    "node": frozenset(
        {"pkg", "exec", "name", "namespace", "param", "remap", "args", "ros_args", "env"}
        | {"output", "on_exit"}
    ),
    "executable": frozenset({"cmd", "name", "cwd", "env", "output", "on_exit"}),
    "include": frozenset({"file", "arg"}),
    "push_ros_namespace": frozenset({"namespace"}),
    "push-ros-namespace": frozenset({"namespace"}),
}
_CONDITIONS = frozenset({"if", "unless"})


def load_launch(path: str | Path, arguments: Mapping[str, str] | None = None) -> LaunchPlan:
    """The plan of launch file ``path`` with command-line ``arguments`` (``key:=value``).

    Raises :class:`LaunchError` for anything outside the supported subset, a missing required
    argument, an argument that no launch file in the tree declares, or one that only files
    whose includer sets it declare: it would be ignored (``gripper_host:=`` on a two-arm cell,
    whose includes each set their arm's, reached both bridges before each include set it).
    """
    path = Path(path)
    arguments = dict(arguments or {})
    plan = LaunchPlan()
    _read_file(path, _Scope(dict(arguments), "", (path.resolve(),)), plan)
    declared = {argument.name for argument in plan.arguments}
    for name in arguments:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise LaunchError(f"{path}: unknown launch argument {name!r} (declared: {known})")
        if name not in plan.settable:
            raise LaunchError(
                f"{path}: launch argument {name!r} would be ignored: every include that "
                "declares it sets it (-s lists the arguments this file takes)"
            )
    return plan


def declared_arguments(path: str | Path) -> list[LaunchArgument]:
    """The arguments a command line can give launch file ``path``: its ``arg`` actions (its
    groups included), then those of the files it includes that the include does not set
    itself (``ros2 launch`` passes command-line values down to includes, so ``gain:=`` reaches
    the bridge under ``deploy_ur5e``). Read without running anything: required arguments need
    no values, and an include whose file name needs one is left out."""
    found: list[LaunchArgument] = []
    _scan_arguments(Path(path), {}, set(), found, (Path(path).resolve(),))
    return found


def _scan_arguments(
    path: Path,
    variables: dict[str, str],
    set_by_includer: set[str],
    found: list[LaunchArgument],
    files: tuple[Path, ...],
) -> None:
    """Append to ``found`` the arguments of ``path`` not named in ``set_by_includer`` (set by
    an include above it) nor listed already; ``variables`` holds the values seen so far (the
    includes' values, else the defaults), to name included files; ``files``, those being read
    (an include of one is a cycle)."""

    def scan(actions: object) -> None:
        for action in actions if isinstance(actions, list) else []:
            if not isinstance(action, dict) or len(action) != 1:
                continue
            ((kind, body),) = action.items()
            if kind == "group":
                scan(body)
            elif kind == "arg" and isinstance(body, dict) and "name" in body:
                name, default = str(body["name"]), body.get("default")
                variables.setdefault(name, "" if default is None else str(default))
                if name in set_by_includer or any(known.name == name for known in found):
                    continue
                found.append(
                    LaunchArgument(
                        name,
                        None if default is None else str(default),
                        str(body.get("description", "")),
                        path,
                    )
                )
            elif kind == "include" and isinstance(body, dict) and "file" in body:
                try:
                    target = Path(substitute(_literal(body["file"], path), variables, path))
                except LaunchError:
                    continue
                target = target if target.is_absolute() else path.parent / target
                # as the launch runs it: what an include sets holds in its whole subtree
                inner, set_here = dict(variables), set()
                for item in body.get("arg") or []:
                    if isinstance(item, dict) and "name" in item:
                        set_here.add(str(item["name"]))
                        with contextlib.suppress(LaunchError):  # one needing a value: unknown
                            inner[str(item["name"])] = substitute(
                                _literal(item.get("value", ""), path), variables, path
                            )
                if target.is_file():
                    _refuse_cycle(target, files, path)
                    _scan_arguments(
                        target, inner, set_by_includer | set_here, found,
                        (*files, target.resolve()),
                    )  # fmt: skip

    scan(_load_document(path))


def _load_document(path: Path) -> object:
    """The ``launch`` list of a YAML launch file, checked to be one."""
    if not path.is_file():
        raise LaunchError(f"launch file {path} does not exist")
    if not path.name.endswith((".yaml", ".yml")):
        raise LaunchError(f"{path}: only YAML launch files are supported")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise LaunchError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or set(document) != {"launch"}:
        raise LaunchError(f"{path}: a launch file is one mapping with the key 'launch'")
    return document["launch"] or []


def _read_file(path: Path, scope: _Scope, plan: LaunchPlan) -> None:
    _run_actions(_load_document(path), scope, plan, path)


def _run_actions(actions: object, scope: _Scope, plan: LaunchPlan, path: Path) -> None:
    if not isinstance(actions, list):
        raise LaunchError(f"{path}: expected a list of actions, got {type(actions).__name__}")
    for action in actions:
        if not isinstance(action, dict) or len(action) != 1:
            raise LaunchError(f"{path}: each action is a one-key mapping, got {action!r}")
        ((kind, body),) = action.items()
        if kind == "group":
            _run_actions(body, scope.child(), plan, path)
            continue
        if kind not in _ACTION_KEYS:
            raise LaunchError(f"{path}: unsupported action {kind!r}")
        if not isinstance(body, dict):
            raise LaunchError(f"{path}: {kind} needs a mapping of attributes")
        unknown = set(body) - _ACTION_KEYS[kind] - _CONDITIONS
        if unknown:
            raise LaunchError(f"{path}: unsupported attribute {sorted(unknown)[0]!r} of {kind}")
        if not _condition_holds(body, scope, path):
            continue
        if kind == "arg":
            _declare_argument(body, scope, plan, path)
        elif kind == "let":
            name = _required(body, "name", "let", path)
            scope.variables[name] = _text(body.get("value", ""), scope, path)
        elif kind == "node":
            plan.processes.append(_node(body, scope, plan, path))
        elif kind == "executable":
            plan.processes.append(_executable(body, scope, plan, path))
        elif kind == "include":
            _include(body, scope, plan, path)
        else:
            namespace = _text(_required(body, "namespace", kind, path), scope, path)
            scope.namespace = _join_namespace(scope.namespace, namespace)


def _condition_holds(body: dict, scope: _Scope, path: Path) -> bool:
    holds = True
    for key, expected in (("if", True), ("unless", False)):
        if key in body:
            value = _text(body[key], scope, path).strip().lower()
            if value not in ("true", "false", "1", "0"):  # name what gave it: an argument
                raise LaunchError(f"{path}: {key}: {body[key]} is {value!r}, not true/false/1/0")
            holds = holds and (value in ("true", "1")) == expected
    return holds


def _required(body: dict, key: str, kind: str, path: Path) -> str:
    if key not in body or body[key] is None:
        raise LaunchError(f"{path}: {kind} needs {key!r}")
    return body[key]


def _literal(value: object, path: Path) -> str:
    """A YAML scalar as the text it stands for (``true``, not Python's ``True``)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise LaunchError(f"{path}: expected text, got {value!r}")
    return str(value)


def _text(value: object, scope: _Scope, path: Path) -> str:
    return substitute(_literal(value, path), scope.variables, path)


def _arguments(value: object, scope: _Scope, path: Path) -> list[str]:
    """A command line (``cmd``, ``args``, ``ros_args``) as arguments, split as ROS 2 does."""
    return split_command(_literal(value, path), scope.variables, path)


def _declare_argument(body: dict, scope: _Scope, plan: LaunchPlan, path: Path) -> None:
    name = _required(body, "name", "arg", path)
    default = body.get("default")
    if name not in scope.set_by_includer:
        plan.settable.add(name)
    plan.arguments.append(
        LaunchArgument(
            name, None if default is None else str(default), body.get("description", ""), path
        )
    )
    if name in scope.variables:
        if default is not None and name not in scope.set_by_includer:
            scope.variables[name] = _switch(name, scope.variables[name], default, path)
        return
    if default is None:
        declared = {argument.name for argument in plan.arguments}
        given = [variable for variable in scope.variables if variable not in declared]
        typo = difflib.get_close_matches(name, given, n=1)  # checkpont:= for checkpoint:=
        hint = f" ({typo[0]!r} was: a typo?)" if typo else ""
        raise LaunchError(f"{path}: required launch argument {name!r} was not given{hint}")
    scope.variables[name] = _text(default, scope, path)


def _switch(name: str, value: str, default: object, path: Path) -> str:
    """``value`` given to argument ``name``: for a switch (``default`` true or false) as the
    canonical ``true``/``false`` of :data:`SWITCH_VALUES`, anything else refused in one line
    before a node starts; any other argument's as it is."""
    if not isinstance(default, (str, bool)):
        return value
    if _literal(default, path).lower() not in ("true", "false"):  # 0 or 1: a number's default
        return value
    switch = SWITCH_VALUES.get(value.strip().lower())
    if switch is None:
        raise LaunchError(f"{path}: {name}:={value} is not true or false (default "
                          f"{_literal(default, path)})")  # fmt: skip
    return switch


def _include(body: dict, scope: _Scope, plan: LaunchPlan, path: Path) -> None:
    target = Path(_text(_required(body, "file", "include", path), scope, path))
    if not target.is_absolute():
        target = path.parent / target
    if not target.name.endswith((".yaml", ".yml")):
        raise LaunchError(f"{path}: include {target}: only YAML launch files are supported")
    if not target.is_file():
        raise LaunchError(f"{path}: included launch file {target} does not exist")
    _refuse_cycle(target, scope.files, path)
    child = scope.child()
    child.files = (*scope.files, target.resolve())
    for item in body.get("arg") or []:
        _check_keys(item, {"name", "value"}, "include arg", path)
        name = _required(item, "name", "include arg", path)
        child.variables[name] = _text(item.get("value", ""), scope, path)
        child.set_by_includer |= {name}
    _read_file(target, child, plan)


def _refuse_cycle(target: Path, files: tuple[Path, ...], path: Path) -> None:
    """A :class:`LaunchError` when ``target``, included by ``path``, is one of the ``files``
    being read (it would include itself without end)."""
    if target.resolve() in files:
        chain = " -> ".join(file.name for file in (*files, target.resolve()))
        raise LaunchError(f"{path}: include {target} makes a cycle ({chain})")


def _check_keys(item: object, allowed: set[str], what: str, path: Path) -> None:
    if not isinstance(item, dict):
        raise LaunchError(f"{path}: each {what} is a mapping, got {item!r}")
    unknown = set(item) - allowed
    if unknown:
        raise LaunchError(f"{path}: unsupported attribute {sorted(unknown)[0]!r} of {what}")


def _environment(body: dict, scope: _Scope, path: Path) -> dict[str, str]:
    env = {}
    for item in body.get("env") or []:
        _check_keys(item, {"name", "value"}, "env", path)
        env[_required(item, "name", "env", path)] = _text(item.get("value", ""), scope, path)
    return env


def _output(body: dict, scope: _Scope, path: Path) -> str:
    output = _text(body.get("output", "screen"), scope, path)
    if output not in OUTPUTS:
        raise LaunchError(f"{path}: output {output!r} is not one of {', '.join(OUTPUTS)}")
    return output


def _shutdown_on_exit(body: dict, scope: _Scope, path: Path) -> bool:
    if "on_exit" not in body:
        return False
    on_exit = _text(body["on_exit"], scope, path)
    if on_exit != "shutdown":
        raise LaunchError(f"{path}: on_exit {on_exit!r} is not supported (only 'shutdown')")
    return True


def _unique_name(name: str, plan: LaunchPlan) -> str:
    taken = {process.name for process in plan.processes}
    if name not in taken:
        return name
    index = 2
    while f"{name}-{index}" in taken:
        index += 1
    return f"{name}-{index}"


def _join_namespace(base: str, namespace: str) -> str:
    namespace = namespace.strip()
    if not namespace:
        return base
    joined = namespace if namespace.startswith("/") else f"{base.rstrip('/')}/{namespace}"
    return "/" + "/".join(part for part in joined.split("/") if part)


def _parameter_value(value: object, scope: _Scope, path: Path) -> str:
    """A parameter value as ``-p name:=VALUE`` text, which rcl reads as YAML (so "500" is an
    integer and "true" a bool, as ROS 2 launch infers types); an empty text is an empty
    string."""
    if isinstance(value, str):
        text = _text(value, scope, path)
        return text if text.strip() else "''"
    if isinstance(value, list):
        value = [_text(item, scope, path) if isinstance(item, str) else item for item in value]
    if isinstance(value, dict):
        raise LaunchError(f"{path}: nested parameter values are not supported: {value!r}")
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _node(body: dict, scope: _Scope, plan: LaunchPlan, path: Path) -> ProcessSpec:
    package = _text(_required(body, "pkg", "node", path), scope, path)
    executable = _text(_required(body, "exec", "node", path), scope, path)
    argv = _resolve_node_executable(package, executable, path)
    argv += _arguments(body.get("args", ""), scope, path)
    ros_args: list[str] = []
    name = _text(body["name"], scope, path) if "name" in body else None
    if name:
        ros_args += ["-r", f"__node:={name}"]
    namespace = _join_namespace(scope.namespace, _text(body.get("namespace", ""), scope, path))
    if namespace:
        ros_args += ["-r", f"__ns:={namespace}"]
    for item in body.get("param") or []:
        if isinstance(item, dict) and "from" in item:
            _check_keys(item, {"from"}, "param", path)
            params_file = Path(_text(item["from"], scope, path))
            if not params_file.is_file():
                raise LaunchError(f"{path}: parameter file {params_file} does not exist")
            ros_args += ["--params-file", str(params_file)]
            continue
        _check_keys(item, {"name", "value"}, "param", path)
        param_name = _text(_required(item, "name", "param", path), scope, path)
        value = _parameter_value(_required(item, "value", "param", path), scope, path)
        ros_args += ["-p", f"{param_name}:={value}"]
    for item in body.get("remap") or []:
        _check_keys(item, {"from", "to"}, "remap", path)
        source = _text(_required(item, "from", "remap", path), scope, path)
        target = _text(_required(item, "to", "remap", path), scope, path)
        ros_args += ["-r", f"{source}:={target}"]
    ros_args += _arguments(body.get("ros_args", ""), scope, path)
    if ros_args:
        argv += ["--ros-args", *ros_args]
    return ProcessSpec(
        name=_unique_name(name or executable, plan),
        argv=tuple(argv),
        env=_environment(body, scope, path),
        cwd=None,
        output=_output(body, scope, path),
        shutdown_on_exit=_shutdown_on_exit(body, scope, path),
        source=path,
    )


def _executable(body: dict, scope: _Scope, plan: LaunchPlan, path: Path) -> ProcessSpec:
    argv = _arguments(_required(body, "cmd", "executable", path), scope, path)
    if not argv:
        raise LaunchError(f"{path}: executable has an empty cmd")
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    program = shutil.which(argv[0], path=search)
    if program is None:
        raise LaunchError(f"{path}: executable {argv[0]!r} not found")
    cwd = _text(body["cwd"], scope, path) if "cwd" in body else None
    name = _text(body["name"], scope, path) if "name" in body else Path(argv[0]).name
    return ProcessSpec(
        name=_unique_name(name, plan),
        argv=(program, *argv[1:]),
        env=_environment(body, scope, path),
        cwd=cwd,
        output=_output(body, scope, path),
        shutdown_on_exit=_shutdown_on_exit(body, scope, path),
        source=path,
    )


def _resolve_node_executable(package: str, executable: str, path: Path) -> list[str]:
    """The command that starts ``executable`` of ``package``, as ``ros2 run`` would."""
    if package == "robot_il":
        for entry in entry_points(group="console_scripts", name=executable):
            if entry.value.startswith("robot_il."):
                module, function = entry.value.split(":")
                # Ctrl-C (or the launch stopping) while the node still imports its seconds of
                # modules exits quietly, with the code of a Ctrl-C (a traceback otherwise).
                launcher = (
                    f"import sys\ntry:\n    from {module} import {function}\n"
                    f"    sys.argv[0] = {executable!r}\n    code = {function}()\n"
                    "except KeyboardInterrupt:\n    code = 130\nsys.exit(code)"
                )
                return [sys.executable, "-c", launcher]
        raise LaunchError(f"{path}: robot_il has no executable {executable!r}")
    return [str(package_executable(package, executable, path))]
