"""``benchmarks/opt_ail_audit.py``: a saved replay buffer read oldest first (also after it
wrapped around), the walker's height bands, and a rerun replacing only its own rows."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch


@pytest.fixture
def audit(load_benchmark) -> ModuleType:
    return load_benchmark("opt_ail_audit")


def _save_replay(run: Path, stored: list[int], size: int, cursor: int, capacity: int) -> None:
    """A replay.npz whose obs rows hold the env step that wrote them in every column."""
    (run / "train_state").mkdir(parents=True)
    obs = np.zeros((capacity, 24), np.float32)
    obs[: len(stored)] = np.asarray(stored, np.float32)[:, None]
    np.savez(run / "train_state" / "replay.npz", obs=obs, action=np.zeros((capacity, 6)),
             size=size, cursor=cursor, capacity=capacity)  # fmt: skip


@pytest.mark.parametrize(
    ("stored", "size", "cursor", "capacity", "oldest_first"),
    [([0, 1, 2], 3, 3, 5, [0, 1, 2]),  # not full: in the order written
     ([5, 6, 2, 3, 4], 5, 2, 5, [2, 3, 4, 5, 6])],  # wrapped: steps 5, 6 overwrote 0, 1
)  # fmt: skip
def test_replay_is_read_oldest_first(
    audit: ModuleType, tmp_path: Path, stored, size, cursor, capacity, oldest_first
) -> None:
    _save_replay(tmp_path, stored, size, cursor, capacity)
    assert audit.replay(tmp_path)["obs"][:, 0].tolist() == oldest_first


def test_height_bands_read_the_walkers_height(audit: ModuleType) -> None:
    obs = torch.zeros(3, 24)
    obs[:, 14] = torch.tensor([0.2, 0.7, 1.2])  # walker's state: 14 orientations, height
    masks = audit.height_masks(obs)
    assert {name: mask.tolist() for name, mask in masks.items()} == {
        "down": [True, False, False], "rising": [False, True, False],
        "upright": [False, False, True]}  # fmt: skip


def test_a_rerun_replaces_its_own_rows_only(audit: ModuleType, tmp_path: Path) -> None:
    results = tmp_path / "opt_ail_audit.json"
    audit.save("critic", tmp_path / "a", [{"group": "down", "q": 1.0}], results)
    audit.save("critic", tmp_path / "b", [{"group": "down", "q": 2.0}], results)
    audit.save("starts", tmp_path / "a", [{"env_seed": 0}], results)
    audit.save("critic", tmp_path / "a", [{"group": "down", "q": 3.0}], results)
    rows = audit.json.loads(results.read_text())["rows"]
    assert sorted((r["audit"], Path(r["run"]).name, r.get("q")) for r in rows) == [
        ("critic", "a", 3.0), ("critic", "b", 2.0), ("starts", "a", None)]  # fmt: skip


def test_a_run_missing_what_an_audit_needs_is_named_before_any_audit(
    audit: ModuleType, tmp_path: Path
) -> None:
    assert "no train_state/state.pt" in audit.missing_part(tmp_path, "critic", 90_000)
    (tmp_path / "train_state").mkdir()
    (tmp_path / "train_state" / "state.pt").touch()
    assert audit.missing_part(tmp_path, "critic", 90_000) is None
    assert "no checkpoint at env step 90000" in audit.missing_part(tmp_path, "starts", 90_000)
    (tmp_path / "checkpoints" / "step_0090000").mkdir(parents=True)
    assert audit.missing_part(tmp_path, "starts", 90_000) is None


def test_the_audits_read_the_actor_and_learner_of_one_save(
    audit: ModuleType, tmp_path: Path
) -> None:
    """A budget ending mid-episode leaves ``policy/`` at the budget's end and ``train_state/``
    at the cut episode's start: the audits' actor is the save's, as the critic, reward and
    replay buffer they read are, and the save's env step comes with them."""
    from robot_il.policies import load_policy

    from robot_il.train.config import load_config
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.online import train_online

    demo = record_expert_demos("reach", tmp_path / "demo", episodes=1, seed=3)
    run = tmp_path / "run"
    train_online(load_config("opt_ail", None, [
        "--dataset", str(demo), "--out", str(run), "--no-progress", "--learning-starts", "40",
        "--eval.episodes", "0", "--policy.hidden-dims", "32", "32", "--policy.batch-size", "32",
        "--env-steps", "60"]))  # fmt: skip
    policy, learner, step = audit.trained_learner(run)
    state = torch.load(run / "train_state" / "state.pt", weights_only=False)
    assert step == state["step"] == 0  # reach's episodes are 80 steps: the first one was cut
    for name, saved in state["algorithm"]["actor"].items():
        assert torch.equal(policy.actor.state_dict()[name], saved), name
        assert torch.equal(learner.policy.actor.state_dict()[name], saved), name
    at_budget_end = load_policy(run / "policy").actor.state_dict()
    assert any(not torch.equal(at_budget_end[k], v) for k, v in policy.actor.state_dict().items())
