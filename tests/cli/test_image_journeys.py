"""User journeys of image policies found wanting in review: recording with frame settings but
no camera, a crop given to a policy without a camera, a depth camera trained as if each of
its pixels were a joint, and policy flags whose help gave a default alone."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_errors import one_line_error

from robot_il.cli import main
from robot_il.dataset import Dataset, DatasetWriter
from robot_il.train.config import TRAIN_CONFIGS

pytest.importorskip("mujoco")

FAST = ["--no-progress", "--batch-size", "4", "--policy.hidden-dims", "16",
        "--eval.episodes", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def push_front(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted push demonstration with a small front camera, recorded as a user does."""
    out = tmp_path_factory.mktemp("image_journey") / "push.zarr"
    argv = ["record", "--task", "push", "--expert", "--episodes", "1", "--no-fsync",
            "--cameras", "front", "--image-size", "32,32", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image-size", "64,64"], "--image-size set how camera frames are recorded, and no "
         "camera is: add --cameras"),
        (["--image-codec", "jpeg2k", "--image-quality", "40"], "--image-codec, --image-quality"),
        (["--cameras", "front", "--image-codec", "blosc", "--image-quality", "50"],
         "--image-quality is for the lossy codecs"),
    ],
)  # fmt: skip
def test_record_refuses_frame_settings_that_no_camera_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """Before: recorded without a camera (or with blosc's lossless frames), the flags silently
    dropped; the missing camera came to light only when an image policy was trained on it."""
    out = tmp_path / "push.zarr"
    argv = ["record", "--task", "push", "--expert", "--episodes", "1", "--out", str(out)]
    assert message in one_line_error([*argv, *flags], capsys)
    assert not out.exists()


def test_an_image_crop_without_a_camera_is_refused_before_the_run(
    push_front: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a state policy trained, the crop silently ignored (the user forgot rgb_front in
    --policy.obs-keys, and believed the checkpoint saw the cropped camera)."""
    out = tmp_path / "run"
    argv = ["train", "bc", "--dataset", str(push_front), "--out", str(out), "--steps", "2",
            *FAST, "--policy.obs-keys", "joint_pos", "--policy.image-crop", "4", "4", "20",
            "20"]  # fmt: skip
    error = one_line_error(argv, capsys)
    assert "image_crop (4, 4, 20, 20) cuts camera frames, but the observation has no camera" in (
        error
    )
    assert not out.exists()


@pytest.fixture(scope="module")
def with_depth(push_front: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The push recording plus a 12x12 depth camera, as the ROS 2 recorder stores one
    (``depth_front``, float32 metres) on a real cell: no ``env_spec`` attrs."""
    source = Dataset.open(push_front)
    out = tmp_path_factory.mktemp("image_journey") / "depth.zarr"
    attrs = {k: source.attrs[k] for k in ("task", "backend", "action_mode")}
    writer = DatasetWriter.create(out, robot="ur5e", control_hz=20.0, attrs=attrs, fsync=False)
    rng = np.random.default_rng(0)
    for episode in range(source.num_episodes):
        span = source.episode_slice(episode)
        steps = {k: source.read(k, span.start, span.stop) for k in source.keys}
        depth = rng.uniform(0.3, 2.0, (span.stop - span.start, 12, 12))
        writer.add_episode({**steps, "depth_front": depth.astype(np.float32)})
    writer.close()
    return out


def test_a_depth_camera_is_no_policy_input(
    with_depth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``depth_front`` trained as a low-dimensional key, 144 pixels each min-max
    normalized into the MLP (no encoder, no augmentation), named or by default; now naming it
    is refused before the run, and the default observation leaves it out as it leaves out
    colour cameras."""
    named = tmp_path / "named"
    argv = ["train", "bc", "--dataset", str(with_depth), "--steps", "2", *FAST]
    error = one_line_error([*argv, "--out", str(named), "--policy.obs-keys", "depth_front",
                            "joint_pos"], capsys)  # fmt: skip
    assert "obs_keys depth_front: depth cameras are not policy inputs" in error
    assert not named.exists()
    default = tmp_path / "default"
    assert main([*argv, "--out", str(default)]) == 0
    observed = json.loads((default / "policy" / "config.json").read_text())["spec"]["observation"]
    assert "depth_front" not in observed and "rgb_front" not in observed
    assert {"joint_pos", "object_pose"} <= set(observed)


@pytest.mark.parametrize("family", ["bc", "diffusion"])
def test_help_describes_every_policy_flag(capsys: pytest.CaptureFixture[str], family: str) -> None:
    """Before: ``--policy.image-crop [INT [INT ...]] (default: )`` and every other policy
    flag gave its default alone: not which four numbers a crop takes, nor in what order."""
    with pytest.raises(SystemExit):
        main(["train", family, "--help"])
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    for field in dataclasses.fields(TRAIN_CONFIGS[family]().policy):
        flag = f"--policy.{field.name.replace('_', '-')}"
        # the flag, its --no- twin, its type (INT, {a,b}, [INT [INT ...]]), its help, its default
        flag_help = (
            rf"{re.escape(flag)}(?:, --\S*no-\S+)?(?: (?:\[[^(]*?\]|[A-Z{{]\S*))? (.*?) ?\(default:"
        )
        described = re.search(flag_help, text)
        assert described and len(described[1].split()) >= 2, f"{flag}: no description"


def test_a_camera_checkpoint_on_another_backend_is_noted(
    push_front: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a MuJoCo camera checkpoint evaluated in PyBullet said nothing of the frames
    coming from another renderer; its success rate read like the recipe's."""
    run = tmp_path / "run"
    argv = ["train", "bc", "--dataset", str(push_front), "--out", str(run), "--steps", "2",
            *FAST, "--policy.obs-keys", "rgb_front", "joint_pos", "--policy.image-encoder",
            "conv"]  # fmt: skip
    assert main(argv) == 0
    quick = ["eval", "--checkpoint", str(run), "--episodes", "1", "--max-steps", "2"]
    capsys.readouterr()
    assert main(quick) == 0
    assert "note" not in capsys.readouterr().out
    assert main([*quick, "--backend", "pybullet"]) == 0
    assert "note: rgb_front learned from mujoco's frames; pybullet renders them otherwise" in (
        capsys.readouterr().out
    )
