"""Reading ROS 2 YAML launch files: the supported subset, and one-line errors for the rest."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from robot_il.errors import LaunchError
from robot_il.launch import load_launch
from robot_il.launch.substitution import package_share


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_node_becomes_a_ros_command_line_with_names_params_and_remaps(tmp_path: Path) -> None:
    params = write(tmp_path / "params.yaml", "bridge:\n  ros__parameters:\n    gain: 300\n")
    launch = write(
        tmp_path / "a.launch.yaml",
        f"""
        launch:
        - arg: {{name: rate, default: "500.0", description: servo rate}}
        - arg: {{name: arm}}
        - group:
          - push_ros_namespace: {{namespace: $(var arm)}}
          - node:
              pkg: robot_il
              exec: ur_rtde_bridge
              name: bridge
              namespace: driver
              args: --verbose
              param:
              - {{name: rate, value: $(var rate)}}
              - {{name: joints, value: [1.0, 2.5]}}
              - {{name: enabled, value: true}}
              - {{name: prefix, value: ""}}
              - {{from: {params}}}
              remap:
              - {{from: /joint_states, to: joint_states_raw}}
        - node: {{pkg: robot_il, exec: ur_rtde_bridge}}
        """,
    )
    plan = load_launch(launch, {"arm": "left"})
    first, second = plan.processes
    assert first.name == "bridge" and second.name == "ur_rtde_bridge"
    assert first.argv[0] == sys.executable and "robot_il.ros.ur_rtde_bridge" in first.argv[2]
    assert list(first.argv[3:]) == [
        "--verbose",
        "--ros-args",
        "-r",
        "__node:=bridge",
        "-r",
        "__ns:=/left/driver",
        "-p",
        "rate:=500.0",
        "-p",
        "joints:=[1.0, 2.5]",
        "-p",
        "enabled:=true",
        "-p",
        "prefix:=''",
        "--params-file",
        str(params),
        "-r",
        "/joint_states:=joint_states_raw",
    ]
    # The namespace pushed inside the group does not leak out of it.
    assert list(second.argv[3:]) == []
    assert [a.name for a in plan.arguments] == ["rate", "arm"]
    assert plan.arguments[0].description == "servo rate" and plan.arguments[1].default is None


def test_substitutions_and_conditions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOT_IL_TEST_VALUE", "from-env")
    launch = write(
        tmp_path / "b.launch.yaml",
        """
        launch:
        - arg: {name: sim, default: "true"}
        - let: {name: share, value: $(find-pkg-share robot_il)}
        - executable:
            cmd: python -c "print(1)" $(env ROBOT_IL_TEST_VALUE) $(env ROBOT_IL_UNSET fallback)
            name: $(var share)
            cwd: $(dirname)
            if: $(var sim)
        - executable: {cmd: python -V, name: hardware, unless: $(var sim)}
        """,
    )
    (only,) = load_launch(launch).processes
    assert only.argv[1:] == ("-c", "print(1)", "from-env", "fallback")
    assert Path(only.name) == package_share("robot_il", launch)
    assert (Path(only.name) / "package.xml").is_file()
    assert only.cwd == str(tmp_path)
    (hardware,) = load_launch(launch, {"sim": "false"}).processes
    assert hardware.name == "hardware"


def test_a_substituted_value_is_one_argument_as_in_ros2_launch(tmp_path: Path) -> None:
    """Only the literal text of ``cmd``, ``args`` and ``ros_args`` is split, as ROS 2 launch
    splits it: a value with spaces or quotes stays one argument, glued to the text it
    touches; literal quotes still group words."""
    launch = write(
        tmp_path / "c.launch.yaml",
        """
        launch:
        - arg: {name: dataset}
        - arg: {name: msg, default: "hi"}
        - executable:
            cmd: python -c "import sys" --dataset $(var dataset) $(var msg) tail=$(var msg)!
        - node:
            pkg: robot_il
            exec: ur_rtde_bridge
            args: --name $(var msg) 'two words'
            ros_args: --log-level $(var msg)
        """,
    )
    plan = load_launch(launch, {"dataset": "/data/my demos.zarr", "msg": "it's"})
    executable, node = plan.processes
    assert executable.argv[1:] == (
        "-c", "import sys", "--dataset", "/data/my demos.zarr", "it's", "tail=it's!",
    )  # fmt: skip
    assert list(node.argv[3:]) == [
        "--name", "it's", "two words", "--ros-args", "--log-level", "it's",
    ]  # fmt: skip


def test_include_passes_arguments_and_sees_the_includer(tmp_path: Path) -> None:
    write(
        tmp_path / "child.launch.yaml",
        """
        launch:
        - arg: {name: who, default: nobody}
        - executable: {cmd: python -c pass, name: "$(var who)-$(var site)", on_exit: shutdown}
        """,
    )
    parent = write(
        tmp_path / "parent.launch.yaml",
        """
        launch:
        - arg: {name: site, default: lab}
        - include: {file: child.launch.yaml, arg: [{name: who, value: robot}]}
        - include: {file: child.launch.yaml}
        """,
    )
    plan = load_launch(parent, {"site": "home", "who": "cli"})
    assert [p.name for p in plan.processes] == ["robot-home", "cli-home"]
    assert all(p.shutdown_on_exit for p in plan.processes)


def test_show_args_lists_what_the_command_line_can_set_in_included_files(tmp_path: Path) -> None:
    """``-s`` listed a file's own arguments only, so ``gain:=`` of the bridge that
    ``deploy_ur5e`` includes was invisible though the command line sets it; an argument the
    include sets itself is not the command line's and stays out."""
    from robot_il.launch import declared_arguments

    write(
        tmp_path / "child.launch.yaml",
        """
        launch:
        - arg: {name: who, default: nobody}
        - arg: {name: gain, default: '300', description: servo gain}
        - arg: {name: site, default: child-site}
        """,
    )
    parent = write(
        tmp_path / "parent.launch.yaml",
        """
        launch:
        - arg: {name: site, default: lab}
        - arg: {name: child, default: child}
        - include: {file: $(var child).launch.yaml, arg: [{name: who, value: robot}]}
        """,
    )
    listed = [(a.name, a.default, a.source.name) for a in declared_arguments(parent)]
    assert listed == [
        ("site", "lab", "parent.launch.yaml"),
        ("child", "child", "parent.launch.yaml"),
        ("gain", "300", "child.launch.yaml"),
    ]
    plan_argument = load_launch(parent, {"gain": "500"}).arguments
    assert ("gain", "300") in [(a.name, a.default) for a in plan_argument]  # and is accepted


def test_show_args_follows_includes_with_the_values_their_includers_set(tmp_path: Path) -> None:
    """Two levels down, ``-s`` forgot what the top include set: it listed ``who``, which the
    top include sets for the whole subtree (a command-line ``who:=`` is overridden), and
    named the grandchild file by the middle file's default (``arm``), not by the value the
    top include gives it, listing another file's arguments than the launch runs."""
    from robot_il.launch import declared_arguments

    for name, argument in (("left", "left_gain"), ("right", "right_gain")):
        write(
            tmp_path / f"{name}.launch.yaml",
            f"""
            launch:
            - arg: {{name: who, default: nobody}}
            - arg: {{name: {argument}, default: '1'}}
            - executable: {{cmd: echo $(var who)}}
            """,
        )
    write(
        tmp_path / "middle.launch.yaml",
        """
        launch:
        - arg: {name: arm, default: left}
        - include: {file: $(var arm).launch.yaml}
        """,
    )
    top = write(
        tmp_path / "top.launch.yaml",
        """
        launch:
        - include: {file: middle.launch.yaml, arg: [{name: who, value: robot},
                                                    {name: arm, value: right}]}
        """,
    )
    plan = load_launch(top, {})
    assert plan.processes[0].argv[-1] == "robot"  # the include's value
    with pytest.raises(LaunchError, match="'who' would be ignored"):  # was silently overridden
        load_launch(top, {"who": "someone"})
    listed = [(a.name, a.source.name) for a in declared_arguments(top)]
    assert listed == [("right_gain", "right.launch.yaml")]


def test_an_include_cycle_is_one_line_naming_the_chain(tmp_path: Path) -> None:
    """A file that includes itself, here through another, was a RecursionError traceback in
    both the launch and ``-s``; including one file twice side by side is no cycle."""
    from robot_il.launch import declared_arguments

    write(tmp_path / "a.launch.yaml", "launch:\n- include: {file: b.launch.yaml}\n")
    write(tmp_path / "b.launch.yaml", "launch:\n- include: {file: a.launch.yaml}\n")
    cycle = r"include .*a\.launch\.yaml makes a cycle \(a\.launch\.yaml -> b\.launch\.yaml -> a\.l"
    with pytest.raises(LaunchError, match=cycle):
        load_launch(tmp_path / "a.launch.yaml")
    with pytest.raises(LaunchError, match=cycle):
        declared_arguments(tmp_path / "a.launch.yaml")
    write(tmp_path / "leaf.launch.yaml", "launch:\n- arg: {name: x, default: '1'}\n")
    twice = write(tmp_path / "twice.launch.yaml", "launch:\n- include: {file: leaf.launch.yaml}"
                  "\n- include: {file: leaf.launch.yaml}\n")  # fmt: skip
    assert [a.name for a in load_launch(twice).arguments] == ["x", "x"]


@pytest.mark.parametrize(
    ("body", "arguments", "message"),
    [
        ("- timer: {period: 1.0}", {}, "unsupported action 'timer'"),
        ("- node: {pkg: robot_il, exec: ur_rtde_bridge, respawn: true}", {}, "'respawn' of node"),
        ("- arg: {name: a, default: '1'}", {"b": "2"}, "unknown launch argument 'b'"),
        ("- arg: {name: a}", {}, "required launch argument 'a'"),
        ("- let: {name: a, value: $(command ls)}", {}, "unsupported substitution"),
        ("- let: {name: a, value: $(var nothing)}", {}, "$(var nothing) names no launch"),
        ("- include: {file: other.launch.py}", {}, "only YAML"),
        ("- include: {file: other.launch.yaml}", {}, "does not exist"),
        ("- node: {pkg: robot_il, exec: no_such_node}", {}, "no executable 'no_such_node'"),
        ("- node: {pkg: no_such_pkg, exec: x}", {}, "package 'no_such_pkg' not found"),
        ("- executable: {cmd: python, output: file}", {}, "output 'file'"),
        ("- executable: {cmd: python, on_exit: restart}", {}, "on_exit 'restart'"),
        ("- executable: {cmd: python, if: maybe}", {}, "is 'maybe', not true/false"),
        (
            # (not a switch argument, whose value is checked where it is given)
            "- arg: {name: view, default: ''}\n- executable: {cmd: python, if: $(var view)}",
            {"view": "yes"},
            "if: $(var view) is 'yes', not true/false",  # names the argument that gave it
        ),
        ("- executable: {cmd: no-such-program-here}", {}, "'no-such-program-here' not found"),
        ("- executable: {cmd: 'python \"unclosed'}", {}, "cannot split 'python \"unclosed'"),
        ("- let: {name: a, value: $(env ROBOT_IL_SURELY_UNSET)}", {}, "is not set"),
        ("- node: {pkg: robot_il, exec: policy, param: [{name: p, value: {a: 1}}]}", {}, "nested"),
    ],
)
def test_anything_outside_the_subset_is_a_one_line_error_naming_the_file(
    tmp_path: Path, body: str, arguments: dict[str, str], message: str
) -> None:
    launch = write(tmp_path / "bad.launch.yaml", f"launch:\n{body}\n")
    with pytest.raises(LaunchError) as error:
        load_launch(launch, arguments)
    text = str(error.value)
    assert message in text and str(launch) in text and "\n" not in text


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="does not exist"):
        load_launch(tmp_path / "missing.launch.yaml")
    xml = write(tmp_path / "x.launch.xml", "<launch/>")
    with pytest.raises(LaunchError, match="only YAML"):
        load_launch(xml)
    broken = write(tmp_path / "broken.launch.yaml", "launch: [\n")
    with pytest.raises(LaunchError, match="not valid YAML"):
        load_launch(broken)
    wrong = write(tmp_path / "wrong.launch.yaml", "nodes: []\n")
    with pytest.raises(LaunchError, match="key 'launch'"):
        load_launch(wrong)


@pytest.mark.parametrize(
    ("launch_file", "arguments"),
    [
        ("deploy_sim.launch.yaml", {"checkpoint": "runs/bc", "lock_step": "true"}),
        ("deploy_select_sim.launch.yaml", {"candidates": "a,b", "default_candidate": "a"}),
    ],
)
def test_simulated_deployments_render_the_camera_at_a_policy_rate(launch_file, arguments):
    """The simulator's camera ran at its 10 Hz default: a 20 Hz camera policy in lock-step
    then waited for a frame at every other step."""
    share = package_share("robot_il", Path(__file__))
    plan = load_launch(share / "launch" / launch_file, arguments | {"camera": "front"})
    sim = next(p for p in plan.processes if p.name == "sim_robot")
    assert "camera_hz:=20.0" in sim.argv
    faster = load_launch(share / "launch" / launch_file, arguments | {"camera_hz": "40.0"})
    assert "camera_hz:=40.0" in next(p for p in faster.processes if p.name == "sim_robot").argv


def test_the_selection_judges_episodes_from_env_seed() -> None:
    """The episode judge resets before every episode, the first too: without reset_first the
    simulator's first judged episode ran env_seed + 1."""
    share = package_share("robot_il", Path(__file__))
    arguments = {"candidates": "a,b", "default_candidate": "a", "env_seed": "10000"}
    plan = load_launch(share / "launch" / "deploy_select_sim.launch.yaml", arguments)
    sim = next(p for p in plan.processes if p.name == "sim_robot")
    assert {"seed:=10000", "reset_first:=true"} <= set(sim.argv)


def test_a_typo_of_a_required_argument_is_named(tmp_path: Path) -> None:
    """checkpont:= for checkpoint:= was reported as "checkpoint was not given" only."""
    launch = write(tmp_path / "t.launch.yaml", "launch:\n  - arg: {name: checkpoint}\n")
    with pytest.raises(LaunchError) as error:
        load_launch(launch, {"checkpont": "runs/bc"})
    assert "'checkpoint' was not given ('checkpont' was: a typo?)" in str(error.value)
    with pytest.raises(LaunchError) as error:  # nothing close: no guess
        load_launch(launch, {"seed": "1"})
    assert str(error.value).endswith("'checkpoint' was not given")


def test_exec_in_pkg_finds_a_packages_executable_as_ros2_launch_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train*.launch.yaml ran a bare ``robot-il``: on a colcon install (ros2 launch) it is in
    lib/robot_il, off PATH, so the documented ``ros2 launch robot_il train.launch.yaml`` failed;
    the files now name it with ``$(exec-in-pkg robot-il robot_il)``."""
    tool = tmp_path / "prefix" / "lib" / "other_pkg" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "prefix"))
    launch = write(
        tmp_path / "e.launch.yaml",
        """
        launch:
        - executable: {cmd: $(exec-in-pkg robot-il robot_il) --help, name: ours}
        - executable: {cmd: $(exec-in-pkg tool other_pkg), name: theirs}
        """,
    )
    ours, theirs = load_launch(launch).processes
    assert ours.argv == (str(Path(sys.executable).parent / "robot-il"), "--help")
    assert theirs.argv == (str(tool),)
    missing = write(
        tmp_path / "m.launch.yaml", "launch:\n- executable: {cmd: $(exec-in-pkg x y)}\n"
    )
    with pytest.raises(LaunchError, match="executable 'x' of package 'y' not found"):
        load_launch(missing)
    root = Path(__file__).parents[2] / "launch"
    for name in ("train.launch.yaml", "train_opt_ail.launch.yaml"):
        (train,) = load_launch(root / name, {"dataset": "d.zarr", "out": "o"}).processes
        assert train.argv[0] == str(Path(sys.executable).parent / "robot-il")
        assert "$(exec-in-pkg robot-il robot_il) train" in (root / name).read_text()


def test_a_switch_argument_takes_true_or_false_only(tmp_path: Path) -> None:
    """``lock_step:=ture`` reached sim_robot and the policy node as the string 'ture', and
    ``lock_step:=1`` as an integer: each node failed on its bool ``use_sim_time`` in an
    rclpy traceback. A switch (default true or false) now passes a bool's text, or is refused
    naming the argument before any node starts; an argument whose default is 0 is a number."""
    launch = write(
        tmp_path / "s.launch.yaml",
        """
        launch:
        - arg: {name: lock_step, default: "false"}
        - arg: {name: seed, default: "0"}
        - node:
            pkg: robot_il
            exec: sim_robot
            param:
            - {name: use_sim_time, value: $(var lock_step)}
            - {name: seed, value: $(var seed)}
        """,
    )
    for given, passed in (("1", "true"), ("True", "true"), ("0", "false"), ("false", "false")):
        (node,) = load_launch(launch, {"lock_step": given}).processes
        assert f"use_sim_time:={passed}" in node.argv, (given, node.argv)
    with pytest.raises(LaunchError) as error:
        load_launch(launch, {"lock_step": "ture"})
    assert str(error.value) == f"{launch}: lock_step:=ture is not true or false (default false)"
    (node,) = load_launch(launch, {"seed": "7"}).processes
    assert "seed:=7" in node.argv
