"""Real-time chunking in Diffusion: a chunk sampled around committed actions (RePaint-style
inpainting) holds them exactly and differs from a free sample elsewhere; on a policy trained
on two equally likely motions, guided inpainting goes on in the motion the committed actions
began, where a free sample, and one inpainted by replacement alone, takes either."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from robot_il.policies import load_policy
from robot_il.policies.untrained import untrained_reach_checkpoint

from robot_il.dataset import DatasetWriter
from robot_il.train.config import load_config
from robot_il.train.evaluate import torch_seeded
from robot_il.train.trainer import train

STEPS = 24
"""Steps per synthetic episode."""
SPEED = 0.05
"""rad per step of the synthetic motions, up or down."""


def two_motions_dataset(path: Path, episodes: int = 40) -> Path:
    """Episodes whose joint targets ramp up or down (alternating) at ``SPEED`` from 0, the
    observations (the step's phase in ``joint_pos[0]``) the same for both: the observation
    does not tell which motion, the actions already taken do."""
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=20.0,
                                  attrs={"task": "reach", "action_mode": "joint"},
                                  fsync=False)  # fmt: skip
    phase = np.arange(STEPS, dtype=np.float32) / STEPS
    with writer:
        for episode in range(episodes):
            sign = 1.0 if episode % 2 == 0 else -1.0
            joint_pos = np.zeros((STEPS, 6), np.float32)
            joint_pos[:, 0] = phase
            action = np.zeros((STEPS, 7), np.float32)
            action[:, :6] = sign * SPEED * np.arange(STEPS, dtype=np.float32)[:, None]
            target = np.zeros((STEPS, 3), np.float32)
            writer.add_episode({"joint_pos": joint_pos, "target_pos": target, "action": action})
    return path


@pytest.fixture(scope="module")
def two_motions_policy(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("two_motions")
    dataset = two_motions_dataset(work / "demo.zarr")
    settings = [
        "--dataset", str(dataset), "--out", str(work / "run"), "--eval.episodes", "0",
        "--no-progress", "--steps", "300", "--batch-size", "64", "--warmup-steps", "30",
        "--policy.down-dims", "32", "64", "--policy.step-embed-dim", "32",
        "--policy.horizon", "8", "--policy.n-action-steps", "6",
        "--policy.obs-keys", "joint_pos", "target_pos",
    ]  # fmt: skip
    return load_policy(train(load_config("diffusion", None, settings)).checkpoint)


def history_at(step: int) -> dict[str, np.ndarray]:
    """The two observations of ``step`` - 1 and ``step`` in the synthetic episodes."""
    joint_pos = np.zeros((2, 6), np.float32)
    joint_pos[:, 0] = np.array([max(step - 1, 0), step], np.float32) / STEPS
    return {"joint_pos": joint_pos, "target_pos": np.zeros((2, 3), np.float32)}


def test_committed_actions_are_held_exactly_and_the_rest_is_sampled_around_them(
    tmp_path,
) -> None:
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=6,
                                      down_dims=(8, 16))  # fmt: skip
    policy = load_policy(path)
    history = {"joint_pos": np.full((2, 6), 0.2, np.float32),
               "target_pos": np.full((2, 3), 0.1, np.float32)}  # fmt: skip
    committed = np.linspace(-1.0, 1.0, 14, dtype=np.float32).reshape(2, 7)
    with torch_seeded(3):
        free = policy.predict_actions(history)
    with torch_seeded(3):  # the same initial noise
        inpainted = policy.predict_actions(history, committed)
    assert inpainted.shape == free.shape == (6, 7)
    np.testing.assert_array_equal(inpainted[:2], committed)
    assert np.abs(inpainted[2:] - free[2:]).max() > 1e-3  # the free positions followed them


def test_the_sample_holds_the_normalized_actions_at_every_noise_level(tmp_path) -> None:
    """Inside the sampler: the final sample (before un-normalizing) equals the known
    actions where the mask is set."""
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=4,
                                      down_dims=(8, 16))  # fmt: skip
    policy = load_policy(path)
    obs = {"joint_pos": torch.zeros(1, 2, 6), "target_pos": torch.zeros(1, 2, 3)}
    known = torch.zeros(1, 8, 7)
    known[0, 1:3] = torch.tensor(np.linspace(-0.9, 0.9, 14, dtype=np.float32).reshape(2, 7))
    mask = torch.zeros(8, dtype=torch.bool)
    mask[1:3] = True
    with torch.inference_mode():
        sample = policy.predict_chunk(obs, (known, mask))
    assert torch.equal(sample[0, 1:3], known[0, 1:3])


@pytest.mark.parametrize(
    "committed, error",
    [
        (np.zeros((0, 7)), "1 to 6 rows"),
        (np.zeros((7, 7)), "1 to 6 rows"),
        (np.zeros((2, 6)), r"must be \(c, 7\)"),
        (np.full((1, 7), np.nan), "finite"),
    ],
)
def test_committed_actions_that_do_not_fit_the_chunk_are_refused(
    tmp_path, committed, error
) -> None:
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=6,
                                      down_dims=(8, 16))  # fmt: skip
    history = {"joint_pos": np.zeros((2, 6), np.float32),
               "target_pos": np.zeros((2, 3), np.float32)}  # fmt: skip
    with pytest.raises(ValueError, match=error):
        load_policy(path).predict_actions(history, committed)


def test_a_policy_that_cannot_inpaint_ignores_committed_actions(tmp_path) -> None:
    """BC's chunk is a function of the observation alone: the same with or without them."""
    path = untrained_reach_checkpoint("bc", tmp_path, n_obs_steps=2, horizon=5, n_action_steps=4)
    policy = load_policy(path)
    assert not policy.inpaints_committed
    history = {"joint_pos": np.zeros((2, 6), np.float32),
               "target_pos": np.zeros((2, 3), np.float32)}  # fmt: skip
    np.testing.assert_array_equal(
        policy.predict_actions(history, np.ones((2, 7), np.float32)),
        policy.predict_actions(history),
    )


@pytest.mark.parametrize("guidance, keeps_to_it", [(0.0, False), (2.0, True)])
def test_guided_inpainting_goes_on_in_the_motion_the_committed_actions_began(
    two_motions_policy, guidance, keeps_to_it
) -> None:
    """At the first free action, the gap to the committed motion's own next action: a free
    sample takes the other motion about half the time (a gap of about 0.8 rad there, twice
    the ramp), and so does one inpainted by replacement alone (the known positions are noise
    where the sample picks its motion); with guidance it keeps to the committed motion.
    The line between, 0.4 of the free mean gap: on an AMD EPYC, replacement alone 0.62 (10 of
    24 samples on the other motion), guided 0.08 (none); after 600 training steps, not 300,
    0.78 and 0.21."""
    policy = two_motions_policy
    policy.config.inpaint_guidance = guidance
    step, held = 8, 2
    upward = SPEED * np.arange(step, step + held + 1, dtype=np.float32)
    committed = np.zeros((held, 7), np.float32)
    committed[:, :6] = upward[:held, None]
    gaps = {False: [], True: []}
    for seed in range(24):
        for inpaint in (False, True):
            with torch_seeded(seed):
                actions = policy.predict_actions(history_at(step), committed if inpaint else None)
            gaps[inpaint].append(np.abs(actions[held, :6] - upward[held]).max())
    free, inpainted = np.mean(gaps[False]), np.mean(gaps[True])
    assert free > 0.2, f"the free samples kept to one motion (mean gap {free:.3f} rad)"
    assert (inpainted < 0.4 * free) == keeps_to_it, (
        f"inpainted {inpainted:.3f} vs free {free:.3f} rad"
    )


def test_an_epsilon_predicting_policy_inpaints_by_replacement_alone(tmp_path) -> None:
    """The guidance pulls the U-Net's clean-action prediction toward the committed actions;
    an epsilon-predicting U-Net predicts noise, and pulling that toward actions threw its
    samples off. Such a policy inpaints by replacement alone, whatever inpaint_guidance says."""
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=6,
                                      down_dims=(8, 16), prediction_type="epsilon")  # fmt: skip
    policy = load_policy(path)
    assert policy.config.inpaint_guidance > 0
    assert policy.ema is None  # (untrained: the raw weights act)
    with torch_seeded(0), torch.no_grad():  # weights whose prediction depends on the sample
        for weights in policy.parameters():
            weights.normal_(0.0, 0.2)
    history = {"joint_pos": np.full((2, 6), 0.2, np.float32),
               "target_pos": np.full((2, 3), 0.1, np.float32)}  # fmt: skip
    committed = np.linspace(-1.0, 1.0, 14, dtype=np.float32).reshape(2, 7)
    with torch_seeded(3):
        guided = policy.predict_actions(history, committed)
    policy.config = dataclasses.replace(policy.config, inpaint_guidance=0.0)
    with torch_seeded(3):
        replaced = policy.predict_actions(history, committed)
    np.testing.assert_array_equal(guided, replaced)
    np.testing.assert_array_equal(guided[:2], committed)
