"""Online fine-tuning in the selector node, over loopback DDS (selector in its own process).

A real corrections dataset (one scripted-expert segment recorded with the corrections
recorder in MuJoCo) and a real BC checkpoint: after the first rated episode the node must
fine-tune the deployed candidate (a few real torch steps) before it announces the next
episode, announce the new ``-ft001`` checkpoint in place of the original path, keep the bandit
arm keyed by the original name, and leave the original checkpoint byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import DEADLINE_SCALE

from robot_il.select.topics import rating_message

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]

BC_REACH = (Path(__file__).parent / "fixtures" / "bc_reach").resolve()


def digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def record_correction(path: Path, **env_kwargs) -> None:
    """One corrected segment: the reach expert's episode at env seed 0."""
    from robot_il.select.correcting_person import record_expert_corrections

    record_expert_corrections(path, "reach", [0], fsync=False, **env_kwargs)


def start_selector(
    ros_env: dict[str, str], corrections: Path, out: Path, *params: str
) -> subprocess.Popen:
    """The selector node over the one candidate BC_REACH, fine-tuning 5 steps at a time."""
    return subprocess.Popen(
        [sys.executable, "-m", "robot_il.ros.selector_node", "--ros-args",
         "-p", f"candidates:=['{BC_REACH}']", "-p", "rule:=uniform",
         "-p", f"finetune_corrections:={corrections}", "-p", f"finetune_out:={out}",
         "-p", "finetune_steps:=5", *params],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop(selector: subprocess.Popen) -> str:
    """Ctrl-C the selector; returns its output. One that has not stopped within the scaled
    deadline (a fine-tuning may be finishing on a loaded machine) is killed, so that its
    latched topics cannot reach the next test's client, and the test fails saying so."""
    if selector.poll() is None:
        selector.send_signal(signal.SIGINT)
    try:
        return selector.communicate(timeout=20 * DEADLINE_SCALE)[0]
    except subprocess.TimeoutExpired:
        selector.kill()
        output = selector.communicate()[0]
        raise AssertionError(
            f"the selector did not stop within {20 * DEADLINE_SCALE:g} s of "
            f"Ctrl-C; its output:\n{output[-2000:]}"
        ) from None


class SelectorClient:
    """Listens to the selector's latched topics and sends ratings, in this process."""

    def __init__(self, context) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from std_msgs.msg import String

        from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
        from robot_il.select.topics import CANDIDATE_TOPIC, RATING_TOPIC, STATISTICS_TOPIC

        self.node = Node("selector_finetune_test", context=context)
        self.candidates: list[str] = []
        self.statistics: list[dict] = []
        self.node.create_subscription(
            String, CANDIDATE_TOPIC, lambda m: self.candidates.append(m.data), LATCHED
        )
        self.node.create_subscription(
            String, STATISTICS_TOPIC, lambda m: self.statistics.append(json.loads(m.data)), LATCHED
        )
        self.rating_pub = self.node.create_publisher(String, RATING_TOPIC, FEEDBACK_QOS)
        self._string = String
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.candidates}")
            self.executor.spin_once(timeout_sec=0.02)

    def rate(self, rating: float) -> None:
        """Rate the episode the latest statistics name open."""
        self.wait_for(lambda: self.rating_pub.get_subscription_count() > 0, 20, "the selector")
        self.wait_for(lambda: self.statistics and self.statistics[-1]["pending"], 20, "an episode")
        episode = self.statistics[-1]["pending"]["episode"]
        self.rating_pub.publish(self._string(data=rating_message(episode, rating)))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_selector_announces_the_finetuned_checkpoint_and_keeps_the_arm(
    ros_context, ros_env, tmp_path: Path
) -> None:
    from robot_il.policies import load_policy

    corrections, out = tmp_path / "corrections.zarr", tmp_path / "finetuned"
    record_correction(corrections)
    original = digest(BC_REACH)
    selector = start_selector(ros_env, corrections, out)
    client = SelectorClient(ros_context)
    try:
        client.wait_for(lambda: client.candidates and client.statistics, 30, "the first episode")
        assert client.candidates == [str(BC_REACH)]  # nothing fine-tuned yet: the original
        assert client.statistics[-1]["finetune"]["count"] == 0
        assert client.statistics[-1]["pending"]["checkpoint"] == str(BC_REACH)

        client.rate(0.5)
        client.wait_for(lambda: len(client.candidates) >= 2, 40, "the second episode")
        finetuned = Path(client.candidates[1])
        assert finetuned.parent == out
        assert re.fullmatch(r"bc_reach-[0-9a-f]{8}-ft001", finetuned.name)
        client.wait_for(lambda: client.statistics[-1]["episodes"] == 1, 5, "statistics")
        statistics = client.statistics[-1]
        assert statistics["finetune"]["count"] == 1
        assert statistics["finetune"]["last"]["checkpoint"] == str(finetuned)
        assert statistics["finetune"]["last"]["episode"] == 0
        assert statistics["finetune"]["deployed"] == {str(BC_REACH): str(finetuned)}
        # The arm is still the original candidate: its play was counted under its name.
        assert [(c["name"], c["plays"]) for c in statistics["candidates"]] == [(str(BC_REACH), 1)]
        assert statistics["pending"]["candidate"] == str(BC_REACH)
        assert statistics["pending"]["checkpoint"] == str(finetuned)

        # No new correction since: the next closed episode fine-tunes nothing.
        client.rate(0.7)
        client.wait_for(lambda: len(client.candidates) >= 3, 40, "the third episode")
        assert client.candidates[2] == str(finetuned)
        client.wait_for(lambda: client.statistics[-1]["episodes"] == 2, 5, "statistics")
        assert client.statistics[-1]["finetune"]["count"] == 1
        assert sorted(p.name for p in out.iterdir()) == [finetuned.name]
    finally:
        client.close()
        output = stop(selector)
    assert selector.returncode == 0, output
    assert "fine-tuned" in output, output
    assert "fine-tuning on the corrections alone (finetune_demos is empty)" in output, output
    assert digest(BC_REACH) == original
    policy = load_policy(finetuned)
    obs = {"joint_pos": np.zeros(6, np.float32), "target_pos": np.full(3, 0.4, np.float32)}
    assert np.isfinite(policy.act(obs)).all()
    # It was trained further: same files, other weights.
    assert digest(finetuned)["model.safetensors"] != original["model.safetensors"]


def test_a_failed_finetuning_deploys_the_candidate_unchanged(
    ros_context, ros_env, tmp_path: Path
) -> None:
    # Corrections of another action mode, recorded once the selection runs (ones there at the
    # start are refused then): the update is refused, the selection goes on.
    corrections, out = tmp_path / "eef.zarr", tmp_path / "finetuned"
    selector = start_selector(ros_env, corrections, out)
    client = SelectorClient(ros_context)
    try:
        client.wait_for(lambda: client.candidates, 30, "the first episode")
        record_correction(corrections, action_mode="eef_delta")
        client.rate(0.5)
        client.wait_for(lambda: len(client.candidates) >= 2, 40, "the second episode")
        assert client.candidates == [str(BC_REACH)] * 2
        client.wait_for(lambda: client.statistics[-1]["episodes"] == 1, 5, "statistics")
        assert client.statistics[-1]["finetune"]["count"] == 0
    finally:
        client.close()
        output = stop(selector)
    assert "fine-tuning" in output and "failed, deploying it unchanged" in output, output
    assert "action_mode" in output, output
    assert not out.exists() or not any(out.iterdir())


def test_finetune_corrections_without_an_output_folder_is_refused(ros_env, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "robot_il.ros.selector_node", "--ros-args",
         "-p", "candidates:=['a','b']", "-p", f"finetune_corrections:={tmp_path / 'c.zarr'}"],
        env=ros_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "finetune_out is empty" in result.stderr


def test_corrections_or_demos_that_cannot_be_used_are_refused_before_any_episode(
    ros_env, tmp_path: Path
) -> None:
    """Demonstrations passed as the corrections, or a mistyped finetune_demos, left the node
    selecting without ever fine-tuning, one error line per episode."""
    from robot_il.train.demos import record_expert_demos

    def refusal(corrections: Path, *params: str) -> str:
        selector = start_selector(ros_env, corrections, tmp_path / "finetuned", *params)
        try:
            selector.wait(timeout=60)
        finally:
            output = stop(selector)
        assert selector.returncode == 2, output
        return output

    demos = record_expert_demos("reach", tmp_path / "demos", episodes=1)
    assert f"error: {demos}: not a corrections dataset" in refusal(demos)
    corrections = tmp_path / "corrections.zarr"  # none recorded yet: that is fine
    typo = tmp_path / "demo.zarr"
    output = refusal(corrections, "-p", f"finetune_demos:={typo}")
    assert f"error: {typo}: no such dataset" in output
