"""The inference process: always in the normal scheduling class, whatever its parent's.

A real-time inference process that computes for tens of milliseconds uses up the kernel's
real-time budget and gets every real-time thread of its core stopped, the control loop
among them (``robot_il.deploy.worker``); the deploy node's threads run real-time, so the
child must leave that class, and may only be given a larger share by ``nice``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from robot_il.envs import make_env
from robot_il.policies import load_policy
from robot_il.policies.untrained import untrained_reach_checkpoint

from robot_il.deploy.worker import CheckpointInfo, InferenceWorker
from robot_il.errors import CheckpointError, ConfigError
from robot_il.provenance import describe


def untrained_bc(directory) -> CheckpointInfo:
    """A reach BC checkpoint (two observation steps, chunks of 4) with untrained weights."""
    path = untrained_reach_checkpoint("bc", directory, n_obs_steps=2, horizon=5, n_action_steps=4)
    return CheckpointInfo.read(path)


@contextlib.contextmanager
def on_the_workers_threads():
    """torch on the one thread an ``InferenceWorker`` gives it by default: on two, an AMD EPYC
    sums in another order, and the same draws gave actions 1e-6 apart from the worker's."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def real_time_thread(priority: int = 10):
    """This thread in SCHED_FIFO for the block (skips where the OS refuses)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, AttributeError):
        pytest.skip("SCHED_FIFO refused here (needs CAP_SYS_NICE or an rtprio limit)")
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def test_inference_leaves_its_real_time_parents_class_and_takes_its_nice(tmp_path) -> None:
    info = untrained_bc(tmp_path)
    with real_time_thread():
        worker = InferenceWorker(info, nice=7)  # started by a real-time thread, as in the node
    try:
        assert os.sched_getscheduler(worker.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 7
        history = {
            "joint_pos": np.zeros((2, 6), np.float32),
            "target_pos": np.full((2, 3), 0.3, np.float32),
        }
        actions = worker.predict(history)
        assert actions.shape == (info.n_action_steps, 7) and np.all(np.isfinite(actions))
        # A new episode resets the policy (its history and action queue): a chunk predicted
        # from the same observations is the same.
        np.testing.assert_array_equal(worker.predict(history, episode=1), actions)
    finally:
        worker.close()


def test_the_fork_server_imports_torch_in_the_normal_class_whoever_starts_it(tmp_path) -> None:
    """The fork server is started by whichever thread makes a worker while none runs (the
    node's first worker is made before the node turns real-time; after the server died, the
    next ``policy/switch``'s real-time thread) and inherited its SCHED_FIFO: it then imported
    torch, 1-2 s of CPU, at real-time priority. The caller keeps its own class."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # a server that died: the next worker starts one afresh
    info = untrained_bc(tmp_path)
    with real_time_thread():
        worker = InferenceWorker(info)
        assert os.sched_getscheduler(0) == os.SCHED_FIFO  # the caller's class, back
    try:
        assert os.sched_getscheduler(forkserver._forkserver._forkserver_pid) == os.SCHED_OTHER
    finally:
        worker.close()


def test_a_nice_outside_the_range_is_refused_before_any_process_starts(tmp_path) -> None:
    info = untrained_bc(tmp_path)
    with pytest.raises(ConfigError, match="inference nice must be in -20..19, got 25"):
        InferenceWorker(info, nice=25)


def test_a_deploy_node_reads_where_its_checkpoint_came_from(tmp_path) -> None:
    """The node logs it at start-up (``describe``); an older checkpoint without the record
    still deploys."""
    info = untrained_bc(tmp_path)
    assert info.provenance is not None and info.provenance["libraries"]["numpy"] == np.__version__
    assert describe(info.provenance).startswith(f"saved {info.provenance['saved_utc']} by ")
    config = info.directory / "config.json"
    saved = json.loads(config.read_text())
    del saved["provenance"]
    config.write_text(json.dumps(saved))
    assert CheckpointInfo.read(info.directory).provenance is None


def test_a_node_reads_its_checkpoint_without_importing_torch(tmp_path) -> None:
    """A policy node's main process imported torch to read ``config.json`` (2.6-3.9 s of CPU
    on a 2-core AMD EPYC; its inference process imports torch anyway): a policy node was
    ready in 6.4-7.2 s, now 4.1-4.4 s. The simulator and teleop read a checkpoint's spec so."""
    info = untrained_bc(tmp_path)
    read = (
        "import sys; from robot_il.deploy.worker import CheckpointInfo; "
        f"CheckpointInfo.read({str(info.directory)!r}); print('torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True)
    assert shown.stdout == "False\n", shown.stderr


@pytest.mark.parametrize("task", ["bimanual_cross", "bimanual_handover"])
def test_a_new_episode_number_resets_a_dmp_policy_in_the_worker(task, tmp_path) -> None:
    """A DMP policy keeps its episode (the coupled controller, or the handover's sequence
    player) between calls. The worker resets it when the deploy node's episode number
    changes, so a second episode of the very same scene starts from the arms' pose as the
    first did, instead of going on from where the first one stopped (a jump of 0.7-3.4 rad)."""
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.dmp import train_dmp

    demos = record_expert_demos(task, tmp_path / "demos", episodes=2)
    checkpoint = train_dmp(str(demos), tmp_path / "run").checkpoint
    reference = load_policy(checkpoint)
    env = make_env(task, "mujoco")
    worker = InferenceWorker(CheckpointInfo.read(checkpoint))
    try:
        for episode in (3, 4):
            obs, _ = env.reset(seed=5)
            reference.reset()
            for _ in range(15):
                actions = worker.predict({k: np.asarray(v)[None] for k, v in obs.items()}, episode)
                np.testing.assert_array_equal(actions[0], reference.act(obs))
                obs, *_ = env.step(actions[0])
    finally:
        worker.close()
        env.close()


def test_a_seeded_episode_draws_a_sampling_policys_noise_as_robot_il_eval_does(
    tmp_path,
) -> None:
    """Diffusion samples its initial noise: an episode given a seed draws it from torch's
    generator seeded with it, the draws ``robot-il eval`` makes in an episode of that env seed
    (``torch_seeded``), whatever the worker drew before; so an evaluation over ROS 2 repeats."""
    from robot_il.train.evaluate import torch_seeded

    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=4, n_action_steps=2,
                                      down_dims=(8, 16))  # fmt: skip
    history = {"joint_pos": np.zeros((2, 6), np.float32),  # Diffusion observes two steps
               "target_pos": np.full((2, 3), 0.3, np.float32)}  # fmt: skip
    policy = load_policy(path)
    with on_the_workers_threads(), torch_seeded(10_001):
        in_eval = policy.predict_actions(history)
    worker = InferenceWorker(CheckpointInfo.read(path))
    try:
        first = worker.predict(history, episode=1, seed=10_001)
        worker.predict(history, episode=2, seed=10_002)
        again = worker.predict(history, episode=3, seed=10_001)
    finally:
        worker.close()
    np.testing.assert_array_equal(first, in_eval)
    np.testing.assert_array_equal(again, in_eval)
    assert not np.array_equal(policy.predict_actions(history), in_eval)  # the noise matters


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (every thread's)."""
    tasks = Path(f"/proc/{pid}/task")
    return [
        int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()
    ]


def test_a_worker_killed_while_it_loads_reports_how_it_ended(tmp_path) -> None:
    """Workers are forked by the fork server, which hands their exit status on after their
    pipe has closed: a worker killed while loading its checkpoint (the OOM killer) was
    reported as 'exited (code None)'."""
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=4, n_action_steps=2,
                                      down_dims=(8, 16))  # fmt: skip
    info = CheckpointInfo.read(path)
    InferenceWorker(info).close()  # the fork server runs: its next child is the worker
    (server,) = [pid for pid in _children(os.getpid()) if "forkserver" in Path(
        f"/proc/{pid}/cmdline").read_text()]  # fmt: skip

    def kill_the_worker() -> None:
        while not (workers := _children(server)):
            time.sleep(0.001)
        os.kill(workers[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    with pytest.raises(CheckpointError, match=r"the inference process exited \(code -9\)$"):
        InferenceWorker(info)
    killer.join()


def test_committed_actions_reach_a_policy_that_inpaints_and_no_other(tmp_path) -> None:
    """Real-time chunking through the inference process: a Diffusion worker samples around
    the committed actions as the policy does in-process (same seed, same chunk) and returns
    them first; a BC worker says it cannot, and its chunk ignores them."""
    from robot_il.train.evaluate import torch_seeded

    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=4,
                                      down_dims=(8, 16))  # fmt: skip
    history = {"joint_pos": np.zeros((2, 6), np.float32),
               "target_pos": np.full((2, 3), 0.3, np.float32)}  # fmt: skip
    committed = np.linspace(-1.0, 1.0, 14, dtype=np.float32).reshape(2, 7)
    policy = load_policy(path)  # building it draws from the generator: before the seed
    with on_the_workers_threads(), torch_seeded(10_001):
        in_process = policy.predict_actions(history, committed)
    worker = InferenceWorker(CheckpointInfo.read(path))
    try:
        assert worker.inpaints_committed
        actions = worker.predict(history, episode=1, seed=10_001, committed=committed)
    finally:
        worker.close()
    np.testing.assert_array_equal(actions, in_process)
    np.testing.assert_array_equal(actions[:2], committed)
    bc = InferenceWorker(untrained_bc(tmp_path))
    try:
        assert not bc.inpaints_committed
        np.testing.assert_array_equal(
            bc.predict(history, committed=committed[:1]), bc.predict(history)
        )
    finally:
        bc.close()


def test_a_worker_closed_while_it_predicts_answers_or_says_it_is_gone(tmp_path) -> None:
    """``policy/switch`` closes the old checkpoint's worker on a thread of its own while the
    node's inference thread may be waiting on its answer. A request either gets its actions or
    a ``CheckpointError`` (the process is gone), never another error from the pipe closed
    under it, which killed the inference thread."""
    info = untrained_bc(tmp_path)
    history = {"joint_pos": np.zeros((2, 6), np.float32),
               "target_pos": np.full((2, 3), 0.3, np.float32)}  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(10):
        worker = InferenceWorker(info)
        failures: list[BaseException] = []

        def predict_until_gone(worker: InferenceWorker = worker, failures=failures) -> None:
            try:
                while True:
                    worker.predict(history)
            except CheckpointError:
                return
            except BaseException as error:  # noqa: BLE001 (the test's point)
                failures.append(error)

        requests = threading.Thread(target=predict_until_gone)
        requests.start()
        time.sleep(rng.uniform(0.0, 0.01))
        worker.close()
        requests.join(timeout=10.0)
        assert not requests.is_alive(), "a request still waits on a closed worker"
        assert not failures, repr(failures)
