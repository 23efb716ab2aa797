"""What every trainable policy shares: normalization, observation history, action queue,
and saving and loading its checkpoint.

A policy owns its normalizer (as in diffusion_policy), so a checkpoint is complete on its own:
``model.safetensors`` (weights), ``config.json`` (``policy_type``, the policy config and the
robot/observation/action spec, see ``robot_il.policies.spec``) and ``normalizer.safetensors``;
the file names and ``config.json``'s format are ``robot_il.policies.checkpoint_files``'.
Subclasses implement ``forward`` (the training loss on a normalized batch) and
``predict_chunk`` (normalized actions for a normalized observation history).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from robot_il.policies.checkpoint_files import (
    NORMALIZER_FILE,
    WEIGHTS_FILE,
    config_from_dict,
    read_policy_config,
    write_policy_config,
)
from robot_il.policies.encoders import ImageEncoderKind, ObservationEncoder
from robot_il.policies.spec import ACTION_KEY, Spec, is_image_key
from torch import Tensor, nn

from robot_il.errors import CheckpointError, ConfigError


@dataclasses.dataclass
class PolicyConfig:
    """Settings every policy has.

    ``obs_keys`` empty means every low-dimensional observation key of the dataset (images are
    used only when named); each camera has its own ``image_encoder``, and training batches
    are shifted by up to ``image_shift`` pixels and jittered in brightness and contrast by
    ``image_jitter`` (``robot_il.policies.augment``; never when acting); ``image_crop``
    (top, left, height, width in camera pixels; empty: whole frames) cuts the frames of the
    ``image_crop_keys`` cameras (empty: every camera) to a fixed region read at full
    resolution (``CameraEncoder``): a scene camera's workspace, not a wrist camera whose whole
    frame is the gripper's surroundings. A training window
    holds ``n_obs_steps`` observations and ``horizon`` actions starting at the first of them;
    at run time the policy executes ``n_action_steps`` actions starting at the current (last
    observed) step.

    ``aux_state_weight`` > 0 turns on the auxiliary state loss (training only; see
    ``Policy.auxiliary_state_loss``): the dataset's low-dimensional ``aux_state_keys`` (e.g.
    ``object_pose target_pos``) are training labels the camera features must predict, never
    observations. Off (0) by default.
    """

    obs_keys: tuple[str, ...] = ()
    """observation keys, e.g. rgb_front joint_pos (empty: the low-dimensional ones)"""
    n_obs_steps: int = 1
    """observations per prediction (the current one and those before it)"""
    horizon: int = 1
    """actions predicted per chunk"""
    n_action_steps: int = 1
    """actions of each chunk executed before predicting again"""
    image_feature_dim: int = 64
    """features per camera"""
    image_encoder: ImageEncoderKind = "resnet"
    """camera network: conv (pooled, spatial softmax; fast on a CPU) or resnet"""
    image_shift: int = 4
    """training only: random shift of each frame, camera pixels"""
    image_jitter: float = 0.1
    """training only: random brightness and contrast change (fraction)"""
    image_crop: tuple[int, ...] = ()
    """TOP LEFT HEIGHT WIDTH, camera pixels: cut frames to it, unpooled (empty: whole)"""
    image_crop_keys: tuple[str, ...] = ()
    """cameras the crop cuts, e.g. rgb_front (empty: every camera)"""
    normalization: Literal["minmax", "gaussian"] = "minmax"
    """scale of state and actions: [-1, 1] (minmax) or zero mean, unit variance"""
    aux_state_keys: tuple[str, ...] = ()
    """labels the camera features learn to predict, e.g. object_pose (not observed)"""
    aux_state_weight: float = 0.0
    """weight of the auxiliary state loss (0: off)"""

    def validate(self) -> None:
        """Raise ``ValueError`` if the horizons cannot fit one another."""
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            raise ValueError("n_obs_steps and n_action_steps must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(
                f"horizon {self.horizon} < n_obs_steps - 1 + n_action_steps "
                f"({self.n_obs_steps} - 1 + {self.n_action_steps})"
            )
        if self.image_shift < 0 or self.image_jitter < 0:
            raise ValueError("image_shift and image_jitter must be >= 0")
        if self.image_crop and (
            len(self.image_crop) != 4 or min(self.image_crop[:2]) < 0
            or min(self.image_crop[2:]) < 1
        ):  # fmt: skip
            raise ValueError(
                f"image_crop must be (top >= 0, left >= 0, height >= 1, width >= 1), got "
                f"{self.image_crop}"
            )
        if self.image_crop_keys and not self.image_crop:
            raise ValueError("image_crop_keys name the cameras image_crop cuts: give image_crop")
        if self.aux_state_weight < 0:
            raise ValueError(f"aux_state_weight must be >= 0, got {self.aux_state_weight}")
        if self.aux_state_weight > 0:
            if not self.aux_state_keys:
                raise ValueError("aux_state_weight > 0 needs aux_state_keys (the labels)")
            bad = [k for k in self.aux_state_keys if is_image_key(k) or k in self.obs_keys]
            if bad:
                raise ValueError(
                    f"aux_state_keys {', '.join(bad)}: labels must be low-dimensional keys "
                    "that are not observations"
                )


def executing(config: PolicyConfig, n_action_steps: int) -> PolicyConfig:
    """A copy of ``config`` that executes ``n_action_steps`` actions per predicted chunk;
    ``ConfigError`` if its chunk cannot hold that many."""
    changed = dataclasses.replace(config, n_action_steps=n_action_steps)
    try:
        changed.validate()
    except ValueError as error:
        raise ConfigError(f"n_action_steps {n_action_steps}: {error}") from None
    return changed


class Policy(nn.Module):
    """Base of the trainable policies; see the module docstring."""

    policy_type: ClassVar[str]
    config_class: ClassVar[type[PolicyConfig]]

    def __init__(self, config: PolicyConfig, spec: Spec, normalizer: Any) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.spec = spec
        self.normalizer = normalizer
        self.training_data: list[dict[str, Any]] = []
        """The datasets it learned from (``robot_il.provenance.dataset_record``), which its
        checkpoints record."""
        self.obs_keys = sorted(spec["observation"])
        self.action_dim = int(spec["action_dim"])
        self.encoder = ObservationEncoder(
            spec["observation"],
            config.n_obs_steps,
            config.image_feature_dim,
            image_encoder=config.image_encoder,
            image_shift=config.image_shift,
            image_jitter=config.image_jitter,
            image_crop=config.image_crop,
            image_crop_keys=config.image_crop_keys,
        )
        self.aux_head: nn.Linear | None = None
        if config.aux_state_weight > 0:
            if not self.encoder.image_keys:
                raise ValueError("aux_state_weight > 0 needs a camera among the obs_keys")
            labels = sum(normalizer.stats(k)["scale"].size for k in config.aux_state_keys)
            self.aux_head = nn.Linear(self.encoder.image_dim, labels)
        self._history: dict[str, deque[np.ndarray]] = {}
        self._queue: deque[np.ndarray] = deque()

    # ------------------------------------------------------------------ training interface
    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Training loss (scalar) on a normalized batch (see ``normalize_window``)."""
        raise NotImplementedError

    inpaints_committed: ClassVar[bool] = False
    """Whether ``predict_chunk`` takes ``inpaint`` (known normalized actions ``(B, horizon, A)``
    and a ``(horizon,)`` bool mask of where they hold), so that ``predict_actions`` can
    condition a chunk on committed actions (Diffusion); others ignore ``committed``."""

    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Normalized actions ``(B, horizon, A)`` for normalized observations ``(B, To, ...)``."""
        raise NotImplementedError

    def auxiliary_state_loss(self, batch: Mapping[str, Tensor], encoded: Tensor) -> Tensor:
        """The auxiliary state loss, added to the policy's loss in training: ``aux_state_weight``
        times the mean squared error of a linear head from the current step's camera features
        (the last of ``encoded``, the encoder's output) to the normalized ``aux_state_keys`` of
        that step. It makes the encoder place what the actions depend on but BC's loss alone
        did not make it find (the push target: ``benchmarks/vision.py --probe``); an auxiliary
        task on the visual features, as in Jaderberg et al. 2017 (UNREAL) and the pose
        prediction of Levine et al. 2016. Zero when off, and on batches without the labels
        (fine-tuning on corrections, which a real cell records without object state); acting
        never calls it, so the labels are never inputs."""
        if self.aux_head is None or any(k not in batch for k in self.config.aux_state_keys):
            return encoded.new_zeros(())
        labels = torch.cat(
            [batch[k][:, -1].flatten(start_dim=1) for k in self.config.aux_state_keys], dim=-1
        )
        predicted = self.aux_head(self.encoder.current_image_features(encoded))
        return self.config.aux_state_weight * nn.functional.mse_loss(predicted, labels)

    def begin_training(self) -> None:
        """Hook run once before the first optimizer step (Diffusion starts its EMA here)."""

    def after_optimizer_step(self) -> None:
        """Hook run after every optimizer step (Diffusion updates its EMA weights here)."""

    @contextlib.contextmanager
    def inference_weights(self) -> Iterator[None]:
        """Context in which the module holds the weights used for acting and saving."""
        yield

    def training_state(self) -> dict[str, Any]:
        """Extra state to resume training (beyond weights and optimizer)."""
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``training_state`` returned."""

    def normalize_window(self, window: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalize the low-dimensional keys, the auxiliary labels (training windows only) and
        ``action`` of (batched) windows.

        Images stay uint8 (the encoder scales them), which keeps in-memory datasets small.
        """
        out: dict[str, np.ndarray] = {}
        for key in (*self.obs_keys, *self.config.aux_state_keys, ACTION_KEY):
            if key not in window:
                continue
            value = window[key]
            if is_image_key(key):
                out[key] = np.asarray(value, dtype=np.uint8)
            else:
                norm = self.normalizer.normalize(key, np.asarray(value, dtype=np.float32))
                out[key] = np.asarray(norm, dtype=np.float32)
        return out

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ acting
    def reset(self) -> None:
        """Forget the observation history and queued actions (call at each episode start)."""
        self._history = {}
        self._queue.clear()

    @torch.inference_mode()
    def predict_actions(
        self, history: Mapping[str, np.ndarray], committed: np.ndarray | None = None
    ) -> np.ndarray:
        """The ``n_action_steps`` actions (float32, env units) to execute after ``history``.

        ``history[key]`` holds the last ``n_obs_steps`` observations of each key of
        ``obs_keys``, oldest first. Action 0 belongs to the time of the last observation.
        ``act`` keeps its own history; a deployed policy, which observes on its own timeline,
        passes the history it keeps.

        ``committed`` ``(c, A)``, 1 <= c <= ``n_action_steps`` (env units, the frame of the
        policy's actions): actions the robot executes at the times of actions 0..c-1 whatever
        this chunk says (those of the previous chunk that run while this one is computed). A
        policy that ``inpaints_committed`` samples the chunk around them (real-time chunking)
        and returns them as its first c actions, exactly; the others (a deterministic chunk,
        a function of the observation alone) ignore them.
        """
        start = self.config.n_obs_steps - 1
        batch = {
            k: torch.as_tensor(v[None], device=self.device)
            for k, v in self.normalize_window(history).items()
        }
        inpaint = None
        if committed is not None and self.inpaints_committed:
            committed = self._check_committed(committed)
            known = np.zeros((self.config.horizon, self.action_dim), np.float32)
            known[start : start + len(committed)] = self.normalizer.normalize(ACTION_KEY, committed)
            mask = torch.zeros(self.config.horizon, dtype=torch.bool, device=self.device)
            mask[start : start + len(committed)] = True
            inpaint = (torch.as_tensor(known[None], device=self.device), mask)
        was_training = self.training
        if was_training:  # toggling walks every module: a third of a millisecond
            self.eval()
        with torch.inference_mode(), self.inference_weights():
            chunk = (
                self.predict_chunk(batch) if inpaint is None else self.predict_chunk(batch, inpaint)
            )
            chunk = chunk[0].float().cpu().numpy()
        if was_training:
            self.train()
        actions = self.normalizer.unnormalize(ACTION_KEY, chunk).astype(np.float32)
        actions = actions[start : start + self.config.n_action_steps]
        if inpaint is not None:  # exactly, not through the normalizer's round trip
            actions[: len(committed)] = committed
        return actions

    def _check_committed(self, committed: np.ndarray) -> np.ndarray:
        """``committed`` as float32 ``(c, A)``; ``ValueError`` unless 1 <= c <=
        ``n_action_steps`` and its values are finite."""
        committed = np.asarray(committed, dtype=np.float32)
        steps = self.config.n_action_steps
        if committed.ndim != 2 or committed.shape[1] != self.action_dim:
            raise ValueError(
                f"committed actions must be (c, {self.action_dim}), got {committed.shape}"
            )
        if not 1 <= len(committed) <= steps:
            raise ValueError(f"committed actions: 1 to {steps} rows, got {len(committed)}")
        if not np.isfinite(committed).all():
            raise ValueError("committed actions must be finite")
        return committed

    def set_action_steps(self, n_action_steps: int) -> None:
        """Execute ``n_action_steps`` actions of each predicted chunk from now on (fewer: the
        network runs and re-plans more often, at more inference per episode); the chunk a
        checkpoint was trained to predict bounds it. Raises ``ConfigError`` before acting
        changes when the chunk cannot hold that many; empties the action queue."""
        self.config = executing(self.config, n_action_steps)
        self._queue.clear()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action (float32, env units) for the current observation dict.

        The policy keeps the last ``n_obs_steps`` observations (the first is repeated at an
        episode's start, as the training windows are edge-padded) and runs the network only
        when its queue of ``n_action_steps`` actions is empty.
        """
        self._remember(obs)
        if not self._queue:
            history = {k: np.stack(v) for k, v in self._history.items()}
            self._queue.extend(self.predict_actions(history))
        return self._queue.popleft()

    def _remember(self, obs: Mapping[str, np.ndarray]) -> None:
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise CheckpointError(
                f"observation lacks key(s) {', '.join(missing)} the policy was trained on"
            )
        steps = self.config.n_obs_steps
        for key in self.obs_keys:
            value = np.asarray(obs[key])
            if key not in self._history:
                self._history[key] = deque([value] * steps, maxlen=steps)
            else:
                self._history[key].append(value)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint directory (weights as used for acting, see module docstring).
        The files are serialized in memory and written by Python, so that a full disk is an
        ``OSError`` (ENOSPC), not safetensors' own error type."""
        from safetensors.numpy import save as serialize_numpy
        from safetensors.torch import save as serialize

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self.inference_weights():
            weights = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        (directory / WEIGHTS_FILE).write_bytes(serialize(weights))
        stats = {k: np.ascontiguousarray(v) for k, v in self.normalizer.state_dict().items()}
        (directory / NORMALIZER_FILE).write_bytes(serialize_numpy(stats))
        write_policy_config(directory, self.policy_type, self.config, self.spec,
                            self.training_data)  # fmt: skip
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, expected_spec: Spec | None = None, device: str = "cpu"
    ) -> Policy:
        """Load a checkpoint written by ``save``; see ``robot_il.policies.load_policy``."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file as load_numpy
        from safetensors.torch import load_file

        from robot_il.dataset import Normalizer
        from robot_il.provenance import saved_training_data

        directory, device = Path(directory), torch_device(device)
        saved = read_policy_config(directory, cls.policy_type, expected_spec)
        config = config_from_dict(cls.config_class, saved["config"], str(directory))
        try:
            normalizer = Normalizer.from_state_dict(load_numpy(str(directory / NORMALIZER_FILE)))
            weights = load_file(str(directory / WEIGHTS_FILE), device=str(device))
        except (OSError, SafetensorError) as error:
            raise CheckpointError(f"{directory}: unreadable checkpoint file: {error}") from error
        policy = cls(config, saved["spec"], normalizer).to(device)
        try:
            policy.load_state_dict(weights)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise CheckpointError(f"{directory}: weights do not fit the config: {first}") from None
        policy.training_data = saved_training_data(saved)
        policy.eval()
        return policy


def torch_device(name: str) -> torch.device:
    """The torch device ``name`` names ("cpu", "cuda", "cuda:N"); ``ConfigError`` for a name
    torch does not know or a GPU this machine lacks, before anything is put on it."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device {name!r}: {error}") from None
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= visible:
            raise ConfigError(f"device {name!r}: {visible} CUDA devices visible here; use cpu")
    return device
