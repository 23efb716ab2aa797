"""Lock-step selection judges each episode the same way however fast each node runs.

The same candidates on the same env seeds, once with the episode judge held up (stopped for
most of every 60 ms: it looks at the simulation long after each step) and once with the
simulator held up (the judge sees every step at once), must give the same judgement of every
episode: outcome, time solved in (to the policy's period), rating or intervention, and so the
same bandit choices. Before the judge read each ``task/success`` at its own step's time, a
held-up judge missed a reach solved for two or three periods and overshot ("not solved"), and
timed the rest late.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from deploy_helpers import BIN, log_tail
from make_select_candidates import BEST, FIXTURE, UNSAFE

from robot_il.select import Selector

pytestmark = pytest.mark.ros

EPISODES = 6


def hold_up(pid: int, running: threading.Event) -> None:
    """Stop process ``pid`` for 50 ms of every 60 ms until ``running`` is cleared (or the
    process has ended). Signalled through a pidfd, which names that process and no other:
    once it has ended its number is free, and a process (or a thread: ``kill`` takes a
    thread's id as its process's) that gets the number must not be stopped instead. This
    machine's 32,768 process numbers wrap about every two test runs."""
    try:
        process = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):  # it has ended
            while running.is_set():
                signal.pidfd_send_signal(process, signal.SIGSTOP)
                time.sleep(0.05)
                signal.pidfd_send_signal(process, signal.SIGCONT)
                time.sleep(0.01)
            signal.pidfd_send_signal(process, signal.SIGCONT)
    finally:
        os.close(process)


def judged_selection(held_up: str, env: dict[str, str], tmp_path: Path) -> tuple[list, list]:
    """Run the selection with node ``held_up`` held up; returns the judge's line per episode
    and the selector's log (arm, rating, intervened) per episode."""
    state, log = tmp_path / f"{held_up}.json", tmp_path / f"{held_up}.log"
    argv = [
        str(BIN / "robot-il"), "launch", "deploy_select_sim.launch.yaml",
        f"candidates_dir:={FIXTURE}", f"candidates:={BEST},{UNSAFE}", f"default_candidate:={BEST}",
        f"episodes:={EPISODES}", f"state_path:={state}", "seed:=1",
    ]  # fmt: skip
    running = threading.Event()
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (pid := re.search(rf"started {held_up} \(pid (\d+)\)", log.read_text())):
            assert launch.poll() is None and time.monotonic() < deadline, log_tail(log)
            time.sleep(0.1)
        running.set()
        holder = threading.Thread(target=hold_up, args=(int(pid[1]), running), daemon=True)
        holder.start()
        code = launch.wait(timeout=600)
    finally:
        running.clear()
        if launch.poll() is None:
            launch.send_signal(signal.SIGINT)
            launch.wait(timeout=30)
    output = log.read_text()
    assert code == 0, log_tail(log)
    judged = re.findall(r"\[episode_judge\]: (episode \d+ .*)", output)
    records = [(r.arm, round(r.rating, 6), r.intervened) for r in Selector.load(state).log]
    return judged, records


def test_judgements_do_not_depend_on_the_speed_of_the_nodes(ros_env, tmp_path) -> None:
    judged_slow_judge, records_slow_judge = judged_selection("episode_judge", ros_env, tmp_path)
    judged_slow_sim, records_slow_sim = judged_selection("sim_robot", ros_env, tmp_path)
    assert len(judged_slow_judge) == EPISODES
    assert judged_slow_judge == judged_slow_sim
    assert records_slow_judge == records_slow_sim
    assert any("solved in" in line for line in judged_slow_judge)
