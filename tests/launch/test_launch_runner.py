"""Supervising real child processes: exit codes, on_exit: shutdown, signals, env, output."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from robot_il.errors import LaunchError
from robot_il.launch import LaunchRunner, load_launch

ROBOT_IL = str(Path(sys.executable).parent / "robot-il")

# A child that records its pid and how it was stopped, then waits (or ignores SIGINT).
_WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    marker = sys.argv[1]
    def stop(signum, frame):
        with open(marker, "a") as f:
            f.write(signal.Signals(signum).name + "\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    if sys.argv[2] == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, stop)
    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\\n")
    print("worker up", os.environ.get("ROS_DOMAIN_ID"), os.environ.get("RMW_IMPLEMENTATION"),
          os.path.basename(os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", "none")), flush=True)
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
    """
)


def scripts(tmp_path: Path) -> Path:
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    return worker


def write_launch(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "t.launch.yaml"
    path.write_text("launch:\n" + textwrap.dedent(body))
    return path


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_shutdown_process_ends_the_launch_with_its_code_and_stops_the_rest(
    tmp_path: Path,
) -> None:
    worker = scripts(tmp_path)
    launch = write_launch(
        tmp_path,
        f"""
        - executable: {{cmd: python {worker} {tmp_path}/a.txt polite, name: a}}
        - executable: {{cmd: python {worker} {tmp_path}/b.txt stubborn, name: b}}
        - executable:
            cmd: python -c "import time, sys; time.sleep(1.5); sys.exit(3)"
            name: required
            on_exit: shutdown
        """,
    )
    screen = io.StringIO()
    runner = LaunchRunner(load_launch(launch), domain_id=42, sigterm_timeout=1.0, screen=screen)
    started = time.monotonic()
    assert runner.run() == 3
    assert time.monotonic() - started < 10
    # a stopped on SIGINT; b ignored SIGINT and was stopped by SIGTERM.
    assert (tmp_path / "a.txt").read_text().splitlines()[1] == "SIGINT"
    assert (tmp_path / "b.txt").read_text().splitlines()[1] == "SIGTERM"
    out = screen.getvalue()
    assert "[a] worker up 42 rmw_fastrtps_cpp fastdds_loopback.xml" in out
    assert "required exited with code 3" in out


def test_the_launch_ends_when_all_exit_with_the_first_failure(tmp_path: Path) -> None:
    launch = write_launch(
        tmp_path,
        """
        - executable: {cmd: python -c "import sys; sys.exit(0)", name: ok}
        - executable:
            cmd: python -c "import time, sys; time.sleep(0.3); sys.exit(5)"
            name: bad
        - executable: {cmd: python -c "import time; time.sleep(0.6)", name: slow}
        """,
    )
    assert LaunchRunner(load_launch(launch), screen=io.StringIO()).run() == 5
    quiet = write_launch(tmp_path, "- executable: {cmd: python -c pass}\n")
    assert LaunchRunner(load_launch(quiet), screen=io.StringIO()).run() == 0


def test_log_output_goes_to_a_file_and_no_loopback_keeps_the_callers_dds(
    tmp_path: Path,
) -> None:
    worker = scripts(tmp_path)
    launch = write_launch(
        tmp_path,
        f"""
        - executable:
            cmd: python {worker} {tmp_path}/c.txt polite 0.1
            name: quiet
            output: log
            env: [{{name: RMW_IMPLEMENTATION, value: rmw_custom}}]
        """,
    )
    screen = io.StringIO()
    runner = LaunchRunner(
        load_launch(launch), loopback=False, domain_id=7, log_dir=tmp_path / "logs", screen=screen
    )
    assert runner.run() == 0
    assert "worker up" not in screen.getvalue()
    logged = (tmp_path / "logs" / "quiet.log").read_text()
    assert logged.startswith("worker up 7 rmw_custom")


def test_sigterm_to_the_cli_stops_every_child(tmp_path: Path) -> None:
    worker = scripts(tmp_path)
    launch = write_launch(
        tmp_path,
        f"""
        - arg: {{name: mode, default: polite}}
        - executable: {{cmd: python {worker} {tmp_path}/d.txt $(var mode), name: d}}
        - executable: {{cmd: python {worker} {tmp_path}/e.txt polite, name: e}}
        """,
    )
    cli = subprocess.Popen(
        [ROBOT_IL, "launch", str(launch), "mode:=stubborn"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "d.txt").exists() and (tmp_path / "e.txt").exists())
        wait_for(lambda: all(len((tmp_path / f).read_text()) > 0 for f in ("d.txt", "e.txt")))
        pids = [int((tmp_path / f).read_text().split()[0]) for f in ("d.txt", "e.txt")]
        cli.send_signal(signal.SIGTERM)
        output, _ = cli.communicate(timeout=20)
    finally:
        cli.kill()
    assert cli.returncode == 143, output
    assert all(pid_gone(pid) for pid in pids)
    assert (tmp_path / "e.txt").read_text().splitlines()[1] == "SIGINT"
    assert (tmp_path / "d.txt").read_text().splitlines()[1] == "SIGTERM"  # ignored SIGINT
    assert "received SIGTERM, stopping" in output


def test_cli_refuses_an_unknown_argument_in_one_line(tmp_path: Path) -> None:
    launch = write_launch(tmp_path, "- arg: {name: known, default: '1'}\n")
    result = subprocess.run(
        [ROBOT_IL, "launch", str(launch), "unknown:=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown launch argument 'unknown'" in result.stderr and str(launch) in result.stderr
    shown = subprocess.run(
        [ROBOT_IL, "launch", str(launch), "--show-args"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "known:" in shown.stdout


def test_a_process_that_cannot_start_stops_the_others_with_a_one_line_error(
    tmp_path: Path,
) -> None:
    worker = scripts(tmp_path)
    launch = write_launch(
        tmp_path,
        f"""
        - executable: {{cmd: python {worker} {tmp_path}/f.txt polite, name: first}}
        - executable: {{cmd: python -c pass, name: second, cwd: {tmp_path}/missing}}
        """,
    )
    screen = io.StringIO()
    with pytest.raises(LaunchError, match="cannot start second"):
        LaunchRunner(load_launch(launch), screen=screen).run()
    started = screen.getvalue().split("started first (pid ")[1]
    assert pid_gone(int(started.split(")")[0]))


def test_a_terminal_on_stdin_reaches_the_processes_other_input_does_not(tmp_path: Path) -> None:
    """A keyboard teleop node read /dev/null: record_teleop.launch.yaml's default device
    failed at once ("file descriptor 0 is not a TTY")."""
    import pty

    reader = "import os, sys; print('tty', os.isatty(0), 'read', repr(sys.stdin.readline()))"
    launch = write_launch(tmp_path, f'- executable:\n    cmd: python -c "{reader}"\n    name: r\n')
    master, slave = pty.openpty()
    try:
        cli = subprocess.Popen(
            [ROBOT_IL, "launch", str(launch)], stdin=slave, stdout=subprocess.PIPE, text=True
        )
        os.write(master, b"key\n")
        output, _ = cli.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert cli.returncode == 0 and "[r] tty True read 'key\\n'" in output, output
    piped = subprocess.run(
        [ROBOT_IL, "launch", str(launch)], input="key\n", capture_output=True, text=True, timeout=60
    )
    assert "[r] tty False read ''" in piped.stdout, piped.stdout


def test_an_inherited_domain_id_out_of_range_is_refused_before_any_process(
    tmp_path: Path,
) -> None:
    """ROS_DOMAIN_ID=250 in the shell started every node, each failing in Fast DDS
    ("Calculated port number is too high")."""
    launch = write_launch(tmp_path, f"- executable: {{cmd: touch {tmp_path}/ran}}\n")
    for value in ("250", "abc"):
        with pytest.raises(LaunchError, match=f"ROS_DOMAIN_ID={value} .* 0..101"):
            LaunchRunner(load_launch(launch), env={"ROS_DOMAIN_ID": value}, screen=io.StringIO())
    assert not (tmp_path / "ran").exists()
    runner = LaunchRunner(load_launch(launch), env={"ROS_DOMAIN_ID": ""}, screen=io.StringIO())
    assert runner.domain_id == 0


def test_a_second_launch_on_the_same_domain_names_the_first(tmp_path: Path) -> None:
    """Two deploy_sim launches on one domain ran without a word, each policy reading both
    simulators' joint states."""
    from robot_il.ros.dds import claim_free_domain

    (shared, shared_lock), (alone, alone_lock) = claim_free_domain("t"), claim_free_domain("t")
    shared_lock.close()  # free again, for the launches below
    alone_lock.close()
    worker = scripts(tmp_path)
    first = write_launch(
        tmp_path, f"- executable: {{cmd: python {worker} {tmp_path}/g.txt polite, name: sim}}\n"
    )
    cli = subprocess.Popen(
        [ROBOT_IL, "launch", str(first), "--domain-id", str(shared)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (tmp_path / "g.txt").exists())
        second = tmp_path / "second.launch.yaml"
        second.write_text("launch:\n- executable: {cmd: python -c pass, name: other}\n")
        screen = io.StringIO()
        assert LaunchRunner(load_launch(second), domain_id=shared, screen=screen).run() == 0
        assert (
            f"another robot_il process runs on ROS domain {shared} "
            f"(pid {cli.pid}: robot-il launch of sim)"
        ) in screen.getvalue()
        screen = io.StringIO()
        assert LaunchRunner(load_launch(second), domain_id=alone, screen=screen).run() == 0
        assert "another" not in screen.getvalue()
    finally:
        cli.send_signal(signal.SIGINT)
        cli.wait(timeout=20)
