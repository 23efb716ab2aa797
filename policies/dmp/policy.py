"""The two-arm DMP controller as a robot_il policy: a checkpoint that ``robot-il eval`` runs.

A checkpoint directory holds ``config.json`` (``policy_type`` ``"dmp"``, this config, the
dataset's spec, as every robot_il checkpoint) and ``model.safetensors`` with the
demonstration library's DMPs and features (``robot_il.policies.dmp.library``) and the
coupling parameters; numpy only, no torch.

Acting: at an episode's first observation each arm picks its nearest library segment (tool
start, goal, scene features), takes its goal from the observation (``tool_goals`` and
``tool_goal_yaws`` where the task gives them, else the segment's), checks that the goal is
reachable (one-line ``ActionError`` before any motion if IK fails), and starts the coupled
controller. Every env step then runs ``internal_hz / control_hz`` controller ticks and
returns both arms' joint targets and the segments' gripper commands. Data with an object
(``object_pose``, e.g. ``bimanual_handover``) trains the ``sequence`` playback instead
(``robot_il.policies.dmp.sequence``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from robot_il.envs.arm import Arm
from robot_il.envs.ur5e.transforms import quat_to_matrix
from robot_il.policies.dmp.bimanual import METHODS, ArmPrimitives, TwoArmController
from robot_il.policies.dmp.coordinator import (
    DECISION_PERIOD,
    CoordinatedController,
    CoordinatorNet,
    check_shield_clearance,
)
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import tool_quat
from robot_il.policies.dmp.library import ARMS, Segment, library_from_arrays, nearest
from robot_il.policies.dmp.sequence import SequencePlayer

from robot_il.errors import ActionError, CheckpointError, ConfigError

WEIGHTS_FILE = "model.safetensors"


@dataclasses.dataclass
class DMPConfig:
    """How the controller runs: coupling ``method`` (see ``bimanual.METHODS``), its
    ``coupling`` parameters (``CouplingParams`` fields), the controller's tick rate (Hz) and
    the scene keys used as retrieval features."""

    method: str = "coupled"
    coupling: dict[str, float] = dataclasses.field(
        default_factory=lambda: dataclasses.asdict(CouplingParams())
    )
    internal_hz: float = 100.0
    scene_keys: tuple[str, ...] = ()
    search: str = "none"
    playback: str = "coupled"
    """``coupled``: one segment per arm to the observed goals, coupled (bimanual_cross);
    ``sequence``: replay the nearest episode's segments adapted to the object
    (``robot_il.policies.dmp.sequence``, e.g. bimanual_handover)."""
    coordinator: bool = False
    """The learned coordinator (``robot_il.policies.dmp.coordinator``, its net in the
    checkpoint) sets the phase rates and via-points instead of ``method``'s phase law."""
    shield_clearance: float | None = None
    """With the coordinator: the hard distance shield's clearance (m); None: no shield."""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"dmp method {self.method!r} unknown; methods: {', '.join(METHODS)}")
        if self.playback not in ("coupled", "sequence"):
            raise ConfigError(f"dmp playback {self.playback!r} unknown: coupled or sequence")
        if self.shield_clearance is not None:
            check_shield_clearance(self.shield_clearance, "dmp shield_clearance")


def describe_config(config: dict[str, Any]) -> str:
    """One line on what runs the arms, from a checkpoint's saved ``DMPConfig`` (``robot-il
    info``): a DMP checkpoint and the DMP + RL one made from it share spec and library, and
    whether a shield holds the arms is in the config alone."""
    if config.get("playback") == "sequence":
        return "replays the nearest demonstration's DMP segments (sequence playback)"
    tuned = "CMA-ES" if config.get("search") == "cma" else "hand-set"
    line = f"{config.get('method')} DMPs, {tuned} coupling, at {config.get('internal_hz'):g} Hz"
    if not config.get("coordinator"):
        return line
    clearance = config.get("shield_clearance")
    shield = "no shield" if clearance is None else f"distance shield {clearance:g} m"
    return f"{line}, learned coordinator (DMP + RL), {shield}"


def _task_mounts(spec: dict[str, Any]) -> tuple:
    """Where the data's task stands its two arms."""
    from robot_il.envs.tasks import TASKS

    task = spec.get("task")
    if task not in TASKS or len(TASKS[task].mounts()) != 2:
        raise ConfigError(f"dmp policy needs a two-arm task; the data's task is {task!r}")
    return TASKS[task].mounts()


class DMPPolicy:
    """Two arms on library DMPs with coupling; see the module docstring."""

    policy_type: ClassVar[str] = "dmp"

    def __init__(
        self,
        config: DMPConfig,
        spec: dict[str, Any],
        segments: list[Segment],
        episodes: dict[str, np.ndarray] | None = None,
        coordinator: CoordinatorNet | None = None,
    ) -> None:
        config.validate()
        if config.coordinator and coordinator is None:
            raise CheckpointError("dmp policy: config asks for a coordinator; none was given")
        if spec.get("action_mode") not in (None, "joint"):
            raise ConfigError(
                f"dmp policy commands joints; the data's action mode is {spec['action_mode']!r}"
            )
        self.config = config
        self.spec = spec
        self.segments = segments
        self.params = CouplingParams(**config.coupling)
        self.arms = tuple(Arm(mount) for mount in _task_mounts(spec))
        self.controller: TwoArmController | None = None
        self.grippers = np.zeros(2)
        self.episodes = episodes or {}
        self.training_data: list[dict[str, Any]] = []
        """The datasets its library came from (``robot_il.provenance.dataset_record``)."""
        self.player: SequencePlayer | None = None
        self.coordinator = coordinator
        self.ticks_done = 0

    def reset(self) -> None:
        """Forget the episode (the next ``act`` starts a new one)."""
        self.controller = None
        self.player = None

    def _start_sequence(self, obs: dict[str, np.ndarray]) -> None:
        count = len({k.split("/")[0] for k in self.episodes})
        starts = np.stack([self.episodes[f"episode{i}/object_pose"] for i in range(count)])
        cube = np.asarray(obs["object_pose"], dtype=np.float64)
        episode = int(np.argmin(np.linalg.norm(starts[:, :2] - cube[:2], axis=1)))
        control_hz = float(self.spec["control_hz"])
        self.player = SequencePlayer(
            [s for s in self.segments if s.episode == episode],
            starts[episode],
            self.episodes[f"episode{episode}/gripper"],
            np.stack([arm.world_from_base for arm in self.arms]),
            obs,
            1.0 / control_hz,
            max(1, int(round(self.config.internal_hz / control_hz))),
        )

    def _start(self, obs: dict[str, np.ndarray]) -> None:
        scene = np.concatenate(
            [np.asarray(obs[k], dtype=np.float64).ravel() for k in self.config.scene_keys]
            or [np.zeros(0)]
        )
        goals = obs.get("tool_goals")
        goal_yaws = obs.get("tool_goal_yaws")
        primitives, joints, starts, start_quats, goal_pos, goal_quats, taus = ([] for _ in range(7))
        for k, arm in enumerate(ARMS):
            pose = np.asarray(obs[f"{arm}_eef_pose"], dtype=np.float64)
            goal = None if goals is None else np.asarray(goals, dtype=np.float64)[3 * k : 3 * k + 3]
            query_goal = goal if goal is not None else pose[:3]
            segment = nearest(self.segments, arm, np.concatenate([pose[:3], query_goal, scene]))
            goal = segment.position.goal if goal is None else goal
            quat = (
                segment.orientation.goal
                if goal_yaws is None
                else tool_quat(np.asarray(goal_yaws, dtype=np.float64)[k])
            )
            target = np.eye(4)
            target[:3, :3], target[:3, 3] = quat_to_matrix(quat), goal
            current = np.asarray(obs[f"{arm}_joint_pos"], dtype=np.float64)
            if self.arms[k].inverse(target, current) is None:
                raise ActionError(
                    f"dmp policy: {arm} arm's goal {np.round(goal, 3).tolist()} m is out of "
                    "reach (IK failed); no motion started"
                )
            primitives.append(ArmPrimitives(segment.position, segment.orientation))
            joints.append(current[None])
            starts.append(pose[:3])
            start_quats.append(pose[3:7])
            goal_pos.append(goal)
            goal_quats.append(quat)
            taus.append(segment.position.tau)
            self.grippers[k] = segment.gripper
        delays = np.asarray(obs.get("start_delays", np.zeros(2)), dtype=np.float64)
        # The scene's own timing (bimanual_cross) where the checkpoint was made to observe it;
        # else the demonstrations' (an older checkpoint acts as it did when it was made).
        if "move_durations" in obs and "move_durations" in self.spec.get("observation", {}):
            taus = [float(t) for t in np.asarray(obs["move_durations"], dtype=np.float64)]
        self.ticks_done = 0
        scene = (
            tuple(primitives),
            np.stack([arm.world_from_base for arm in self.arms]),
            np.stack(joints),
            np.stack(starts)[None],
            np.stack(start_quats)[None],
            np.stack(goal_pos)[None],
            np.stack(goal_quats)[None],
            np.array([taus]),
            delays[None],
        )
        if self.config.coordinator:
            self.controller = CoordinatedController(
                *scene, params=self.params, shield_clearance=self.config.shield_clearance
            )
        else:
            self.controller = TwoArmController(*scene, self.config.method, self.params)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Joint targets and gripper commands (float32, 14,) for the next control period."""
        if self.config.playback == "sequence":
            if self.player is None:
                self._start_sequence(obs)
            return self.player.act(obs)
        if self.controller is None:
            self._start(obs)
        control_hz = float(self.spec["control_hz"])
        ticks = max(1, int(round(self.config.internal_hz / control_hz)))
        decide_every = max(1, int(round(DECISION_PERIOD * control_hz * ticks)))
        for _ in range(ticks):
            if self.config.coordinator and self.ticks_done % decide_every == 0:
                self.controller.apply(self.coordinator(self.controller.observe()))
            self.controller.tick(1.0 / (control_hz * ticks))
            self.ticks_done += 1
        joints = self.controller.joints[:, 0]
        return np.concatenate(
            [joints[0], [self.grippers[0]], joints[1], [self.grippers[1]]]
        ).astype(np.float32)

    def predict_actions(self, history: dict[str, np.ndarray]) -> np.ndarray:
        """One action (1, 14) for the newest observation of ``history`` (each key's last
        observations, oldest first): the deploy worker's call. As with ``act``, the caller
        calls ``reset`` at each episode start (the worker does when the deploy node's episode
        number changes); until then the running episode goes on, whatever the scene."""
        obs = {key: np.asarray(values)[-1] for key, values in history.items()}
        return self.act(obs)[None]

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path, arrays: dict[str, np.ndarray]) -> Path:
        """Write the checkpoint (``arrays``: the library, ``library.library_arrays``; written
        by Python: a full disk is an ``OSError``)."""
        from safetensors.numpy import save as serialize

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        (directory / WEIGHTS_FILE).write_bytes(serialize(contiguous))
        from robot_il.policies.checkpoint_files import write_policy_config

        write_policy_config(directory, self.policy_type, self.config, self.spec,
                            self.training_data)  # fmt: skip
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, expected_spec: dict[str, Any] | None = None, device: str = "cpu"
    ) -> DMPPolicy:
        """Load a checkpoint written by ``save`` (``device`` is ignored: numpy runs on CPU)."""
        from robot_il.policies.checkpoint_files import config_from_dict, read_policy_config
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from robot_il.provenance import saved_training_data

        directory = Path(directory)
        saved = read_policy_config(directory, cls.policy_type, expected_spec)
        config = config_from_dict(DMPConfig, saved["config"], str(directory))
        try:
            config.validate()
        except ConfigError as error:
            raise CheckpointError(f"{directory}: {error}") from None
        try:
            arrays = load_file(str(directory / WEIGHTS_FILE))
        except (OSError, SafetensorError) as error:
            raise CheckpointError(f"{directory}: unreadable checkpoint file: {error}") from error
        episodes = {k: v for k, v in arrays.items() if k.startswith("episode")}
        coordinator = CoordinatorNet.from_arrays(arrays, str(directory))
        policy = cls(config, saved["spec"], library_from_arrays(arrays), episodes, coordinator)
        policy.training_data = saved_training_data(saved)
        return policy
