"""The auxiliary state loss: training-time labels (the cube's and target's positions) that the
camera features must predict. It is absent when off, it teaches the encoder to place an
object, and an image checkpoint trained with it never reads the labels when acting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from robot_il.policies import load_policy
from robot_il.policies.bc import BCConfig, BCPolicy
from robot_il.policies.diffusion import DiffusionConfig, DiffusionPolicy
from torch import nn

from robot_il.cli import main as cli
from robot_il.dataset import DatasetWriter
from robot_il.errors import ConfigError, DatasetError
from robot_il.train.config import load_config
from robot_il.train.trainer import train

SIZE = 24
SPEC = {"robot": "ur5e", "control_hz": 20.0, "action_dim": 2, "action_mode": "joint",
        "observation": {"joint_pos": [6], "rgb_front": [SIZE, SIZE, 3]}}  # fmt: skip
LABELS = ("object_pos",)


class _Identity:
    """A normalizer that leaves values as they are and knows the label's size."""

    def normalize(self, key, x):
        return x

    def unnormalize(self, key, x):
        return x

    def stats(self, key):
        return {"scale": np.ones(2, np.float32)}


def _scene(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, SIZE, SIZE, 3) of a white 4x4 square on black at a random place, and its
    centre in [-1, 1]^2 (x, y): the label."""
    frames = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    corners = rng.integers(0, SIZE - 4, (n, 2))
    for frame, (row, col) in zip(frames, corners, strict=True):
        frame[row : row + 4, col : col + 4] = 255
    centre = (corners[:, ::-1] + 2) / (SIZE / 2) - 1
    return frames, centre.astype(np.float32)


def _batch(frames: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    n = len(frames)
    return {
        "joint_pos": torch.zeros(n, 1, 6),
        "rgb_front": torch.from_numpy(frames[:, None]),
        "action": torch.zeros(n, 1, 2),
        "object_pos": torch.from_numpy(labels[:, None]),
    }


def _config(weight: float, **settings) -> BCConfig:
    return BCConfig(hidden_dims=(16,), image_feature_dim=16, image_encoder="conv",
                    image_shift=0, image_jitter=0.0, aux_state_keys=LABELS,
                    aux_state_weight=weight, **settings)  # fmt: skip


def test_aux_loss_is_absent_when_off() -> None:
    """Off (the default weight 0): no head, the labels in a batch change nothing and the loss
    is BC's action error alone."""
    assert BCConfig().aux_state_weight == 0 and DiffusionConfig().aux_state_weight == 0
    torch.manual_seed(0)
    policy = BCPolicy(_config(0.0), SPEC, _Identity()).eval()
    assert policy.aux_head is None
    assert not any(name.startswith("aux_head") for name, _ in policy.named_parameters())
    frames, labels = _scene(8, np.random.default_rng(0))
    batch = _batch(frames, labels)
    with torch.no_grad():
        plain = nn.functional.mse_loss(policy.predict_chunk(batch), batch["action"])
        assert policy(batch).item() == plain.item()
        assert policy(batch).item() == policy(_batch(frames, labels + 5)).item()


@pytest.mark.parametrize("policy_class", [BCPolicy, DiffusionPolicy])
def test_aux_loss_adds_the_weighted_label_error(policy_class: type) -> None:
    """On: the loss is the policy's own plus ``weight`` times the head's squared error, and a
    batch without the labels (fine-tuning on corrections) trains without it."""
    if policy_class is BCPolicy:
        config = _config(2.0)
    else:
        config = DiffusionConfig(down_dims=(8, 16), n_obs_steps=1, n_action_steps=1,
                                 horizon=4, image_feature_dim=16, image_encoder="conv",
                                 image_shift=0, image_jitter=0.0, aux_state_keys=LABELS,
                                 aux_state_weight=2.0)  # fmt: skip
    torch.manual_seed(0)
    policy = policy_class(config, SPEC, _Identity()).eval()
    frames, labels = _scene(8, np.random.default_rng(0))
    batch = {**_batch(frames, labels), "action": torch.zeros(8, config.horizon, 2)}
    unlabelled = {k: v for k, v in batch.items() if k != "object_pos"}
    with torch.no_grad():
        predicted = policy.aux_head(policy.encoder.current_image_features(policy.encoder(batch)))
        expected = 2.0 * nn.functional.mse_loss(predicted, batch["object_pos"][:, 0])
        torch.manual_seed(1)
        with_labels = policy(batch).item()
        torch.manual_seed(1)
        without = policy(unlabelled).item()
    assert with_labels == pytest.approx(without + expected.item(), rel=1e-5)
    assert expected.item() > 0.01


def test_aux_loss_teaches_the_encoder_where_an_object_is() -> None:
    """Trained on the label alone (actions constant), the head's error on unseen frames falls
    well below the error of predicting the labels' mean: the features now place the square."""
    torch.manual_seed(0)
    policy = BCPolicy(_config(1.0), SPEC, _Identity())
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        loss = policy(_batch(*_scene(32, rng)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    frames, labels = _scene(256, np.random.default_rng(1))
    policy.eval()
    with torch.no_grad():
        batch = _batch(frames, labels)
        predicted = policy.aux_head(policy.encoder.current_image_features(policy.encoder(batch)))
    error = np.linalg.norm(predicted.numpy() - labels, axis=1).mean()
    baseline = np.linalg.norm(labels - labels.mean(0), axis=1).mean()
    assert error < 0.4 * baseline, (error, baseline)


def _camera_dataset(path: Path) -> Path:
    """Episodes whose frames show a square at ``object_pos`` (also recorded, as a simulator's
    object state is) and whose action is that position."""
    rng = np.random.default_rng(0)
    attrs = {"task": "reach", "action_mode": "joint"}
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, attrs=attrs,
                              fsync=False) as writer:  # fmt: skip
        for _ in range(4):
            frames, labels = _scene(12, rng)
            writer.add_episode({"joint_pos": np.zeros((12, 6), np.float32), "rgb_front": frames,
                                "object_pos": labels, "action": labels})  # fmt: skip
    return path


def _train_config(dataset: Path, out: Path, *settings: str):
    return load_config("bc", None, [
        "--dataset", str(dataset), "--out", str(out), "--steps", "3", "--batch-size", "8",
        "--eval.episodes", "0", "--no-progress", "--policy.image-encoder", "conv",
        "--policy.hidden-dims", "16", "--policy.image-feature-dim", "8", *settings,
    ])  # fmt: skip


def test_image_checkpoint_trained_with_labels_never_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint trained with the auxiliary loss observes only its camera and
    proprioception: the labels are not in its spec, acting works without them, and a wildly
    wrong object state beside the frame changes nothing."""
    dataset = _camera_dataset(tmp_path / "demo.zarr")
    config = _train_config(dataset, tmp_path / "run", "--policy.obs-keys", "rgb_front",
                           "joint_pos", "--policy.aux-state-keys", "object_pos",
                           "--policy.aux-state-weight", "1.0", "--policy.image-crop", "1",
                           "2", f"{SIZE - 2}", f"{SIZE - 3}")  # fmt: skip
    checkpoint = train(config).checkpoint
    assert cli(["info", str(checkpoint)]) == 0  # how the frames are read, for a deployment
    read = f"(1, 2, {SIZE - 2}, {SIZE - 3}) of rgb_front\n"
    assert ("images       conv encoder, 8 features per camera, crop (top, left, height, width) "
            + read) in capsys.readouterr().out  # fmt: skip
    policy = load_policy(checkpoint)
    assert policy.aux_head is not None
    assert policy.obs_keys == ["joint_pos", "rgb_front"]
    assert sorted(policy.spec["observation"]) == ["joint_pos", "rgb_front"]
    frames, _ = _scene(1, np.random.default_rng(3))
    obs = {"joint_pos": np.zeros(6, np.float32), "rgb_front": frames[0]}
    action = policy.act(obs)
    policy.reset()
    with_state = policy.act({**obs, "object_pos": np.array([99.0, -99.0], np.float32)})
    np.testing.assert_array_equal(action, with_state)


def test_aux_labels_are_checked_before_training(tmp_path: Path) -> None:
    """Labels the dataset lacks, labels that are also observations, no camera for the head to
    read, a weight without labels, or labels without a weight (the loss would be off): a
    clear error before any step, and no run directory."""
    dataset = _camera_dataset(tmp_path / "demo.zarr")
    weight = ["--policy.aux-state-weight", "1.0"]
    cases = [
        (DatasetError, "lacks aux_state_keys cube_pos",
         ["--policy.obs-keys", "rgb_front", "joint_pos", "--policy.aux-state-keys", "cube_pos",
          *weight]),
        (ConfigError, "not observations",
         ["--policy.obs-keys", "rgb_front", "object_pos", "--policy.aux-state-keys",
          "object_pos", *weight]),
        (ConfigError, "needs a camera",
         ["--policy.obs-keys", "joint_pos", "--policy.aux-state-keys", "object_pos", *weight]),
        (ConfigError, "needs aux_state_keys",
         ["--policy.obs-keys", "rgb_front", "joint_pos", *weight]),
        (ConfigError, "object_pos train nothing at aux_state_weight 0",
         ["--policy.obs-keys", "rgb_front", "joint_pos", "--policy.aux-state-keys",
          "object_pos"]),
    ]  # fmt: skip
    for i, (error, message, settings) in enumerate(cases):
        out = tmp_path / f"run{i}"
        config = _train_config(dataset, out, *settings)
        with pytest.raises(error, match=message):
            train(config)
        assert not out.exists()
