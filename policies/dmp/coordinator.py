"""A learned two-arm coordinator over the DMP layer, and a hard distance shield below it.

Every ``DECISION_PERIOD`` s (10 Hz) the coordinator reads both arms' state (tool to goal,
DMP velocity, phase, phase rate, the rate the phase law asks for, whether each has started
and arrived, the tools' relative position, the link-to-link separation now and ``LOOKAHEAD`` s
ahead along the unslowed DMP velocities) and sets, per arm, a phase-rate correction in
[-``RATE_CORRECTION_MAX``, ``RATE_CORRECTION_MAX``] and a via-point offset of at most
``VIA_OFFSET_MAX`` m. The coordinator is a residual on the ``coupled`` DMP layer with the
layer's ``CouplingParams`` (the benchmark: those CMA-ES found): between decisions the layer
runs at its own tick rate, its repulsion and phase law as in ``coupled``; each arm's phase
rate goes towards ``clip(law rate + correction, 0, 1)`` through the law's rate limiter; the
via-point offset is a coupling term ``K x offset / tau^2`` that displaces the tool by
``x * offset`` (x the phase: full at the start, none at the goal, so the arm still ends where
its DMP does). An action of 0 is the phase law exactly, so PPO starts from the tuned layer
and learns where to deviate from it.

The shield (``shield_clearance`` m, optional) checks every tick after it is computed: where
the arms' capsules come closer than the clearance, the arm that is behind in its move is held
(its joints and DMP states go back to before the tick), then, if that is not enough, the other
arm alone, then both. Holding both restores the last tick, which kept the clearance, so from a
start that keeps it the shielded arms never come closer than the clearance, whatever the
coordinator asks.

Frames and units: world frame, m, s; actions in [-1, 1] (see ``decode_action``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.envs.separation import closest_links
from robot_il.envs.ur5e.kinematics import tcp_jacobian
from robot_il.policies.dmp.bimanual import ArmPrimitives, TwoArmController
from robot_il.policies.dmp.coupling import CouplingParams, rate_limited
from robot_il.policies.dmp.cross_episodes import (
    CONTROL_DT,
    EpisodeScores,
    scene_controller,
    start_joints,
    tool_quat,
)
from robot_il.policies.dmp.primitive import STIFFNESS

from robot_il.errors import CheckpointError, ConfigError

DECISION_PERIOD = 0.1
"""Seconds between two coordinator decisions (10 Hz)."""
VIA_OFFSET_MAX = 0.05
"""Largest via-point offset per axis (m)."""
RATE_CORRECTION_MAX = 1.0
"""Largest phase-rate correction on the law's rate (enough to stop an arm the law lets go,
or to let go an arm the law stops)."""
LOOKAHEAD = 0.3
"""How far ahead (s) the observation predicts the separation along the DMP velocities."""
ACTION_SIZE = 8
"""Per arm: phase-rate action (1) and via-point offset (3)."""
OBSERVATION_SIZE = 2 * 13 + 3 + 2 + 3
"""Per arm 13 (goal - tool 3, DMP velocity 3, phase, phase rate, the law's rate, started,
arrived, wait left, progress), tools' relative position 3, separation now and predicted,
separation direction 3."""


def decode_action(action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phase-rate corrections (2, B) in [-``RATE_CORRECTION_MAX``, ``RATE_CORRECTION_MAX``]
    and via-point offsets (2, B, 3) m from actions (B, 8) in [-1, 1] (clipped): correction
    ``RATE_CORRECTION_MAX a``, offsets ``VIA_OFFSET_MAX a``. An action of 0 leaves the phase
    law and the DMPs' paths as they are."""
    action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0).reshape(-1, 2, 4)
    corrections = RATE_CORRECTION_MAX * action[..., 0].T
    offsets = VIA_OFFSET_MAX * np.swapaxes(action[..., 1:], 0, 1)
    return corrections, offsets


def check_shield_clearance(clearance: float, name: str) -> None:
    """``ConfigError`` naming ``name`` unless the shield's ``clearance`` is a finite distance
    > 0 m: a NaN compares false with every separation and never holds an arm, and one <= 0
    holds only capsules that already overlap, so either runs the arms unshielded under a
    checkpoint that says it has a shield."""
    if not (np.isfinite(clearance) and clearance > 0):
        raise ConfigError(f"{name} must be a finite distance > 0 m, got {clearance}")


class CoordinatedController(TwoArmController):
    """The ``coupled`` DMP layer whose phase rates and via-points a coordinator sets, with an
    optional shield; see the module docstring. Arguments as ``TwoArmController`` plus
    ``shield_clearance`` (m, None: no shield)."""

    def __init__(self, *args, shield_clearance: float | None = None, **kwargs) -> None:
        super().__init__(*args, method="coupled", **kwargs)
        batch = self.joints.shape[1]
        self.rate_corrections = np.zeros((2, batch))
        self.via_offsets = np.zeros((2, batch, 3))
        self.law_rate = np.ones((2, batch))
        """The phase rates (2, B) the ``coupled`` law alone would have reached by now."""
        self.shield_clearance = shield_clearance
        self.holds = np.zeros(batch, dtype=np.int64)
        """Ticks at which the shield held an arm, per scene."""
        self.tick_separation = np.full(batch, np.inf)
        """The separation (m) at the start of the latest tick (measured for the coupling)."""

    def _coupled(self, dt: float) -> tuple[np.ndarray | None, np.ndarray]:
        """Repulsion and phase law as ``coupled`` (the law stepping its own rates), the
        coordinator's corrections on the law's rates, via-point offsets as coupling."""
        p = self.params
        self.tick_separation = self.separation().distance
        rates, self.phase_rate = self.phase_rate, self.law_rate
        repulsion, self.law_rate = super()._coupled(dt)
        positions = self._position_state
        fade = positions.x[..., None] / positions.tau[..., None] ** 2
        via = STIFFNESS * fade * self.via_offsets  # (2, B, 3), a new array every tick
        coupling = via if repulsion is None else repulsion + via
        targets = np.clip(self.law_rate + self.rate_corrections, 0.0, 1.0)
        return coupling, rate_limited(rates, targets, p.phase_rate_limit, dt)

    # ------------------------------------------------------------------ shield
    def _arm_state(self, k: int) -> list[np.ndarray]:
        return [self.joints[k], self.jacobians[k]] + [
            getattr(s, f) for s in (self.positions[k], self.orientations[k]) for f in "yvx"
        ]

    def tick(self, dt: float) -> None:
        if self.shield_clearance is None:
            super().tick(dt)
            return
        before = [[a.copy() for a in self._arm_state(k)] for k in range(2)]
        super().tick(dt)
        violating = self.separation().distance < self.shield_clearance
        if not violating.any():
            return
        self.holds += violating
        after = [[a.copy() for a in self._arm_state(k)] for k in range(2)]
        behind = self.positions[0].x > self.positions[1].x  # True: the left arm is behind
        tries = ((behind, ~behind), (~behind, behind), (np.True_, np.True_))
        for number, hold in enumerate(tries):
            masks = [violating & h for h in hold]
            for k in range(2):
                self._restore(k, masks[k], before[k])
            if number == len(tries) - 1:
                break
            still = self.separation().distance < self.shield_clearance
            # Where this hold does not keep the clearance, back to the tick for the next try.
            for k in range(2):
                self._restore(k, masks[k] & still, after[k])
            violating &= still
            if not violating.any():
                break

    def _restore(self, k: int, mask: np.ndarray, source: list[np.ndarray]) -> None:
        """Arm ``k``'s joints and DMP states of the scenes in ``mask`` set from ``source``."""
        if not mask.any():
            return
        for target, value in zip(self._arm_state(k), source, strict=True):
            target[mask] = value[mask]

    # ------------------------------------------------------------------ scenes
    def restart(self, index: np.ndarray, scenes: cs.CrossScenes) -> None:
        """Start new ``scenes`` in the batch slots ``index`` (the other slots run on): their
        arms at the scenes' starts, at rest, each waiting its delay from now."""
        joints = start_joints(scenes)
        self.joints[:, index] = joints
        self.jacobians[:, index] = tcp_jacobian(joints)[1]
        quats = (tool_quat(scenes.start_yaw), tool_quat(scenes.goal_yaw))
        for k in range(2):
            for state, start, goal in (
                (self.positions[k], scenes.start[:, k], scenes.goal[:, k]),
                (self.orientations[k], quats[0][:, k], quats[1][:, k]),
            ):
                state.y[index] = start
                state.v[index] = 0.0
                state.x[index] = 1.0
                state.start[index] = start
                state.goal[index] = goal
                state.tau[index] = scenes.duration[:, k]
        self.delay[index] = self.time + scenes.delay
        self.phase_rate[:, index] = 1.0
        self.yielder[index] = -1
        self.law_rate[:, index] = 1.0
        self.rate_corrections[:, index] = 0.0
        self.via_offsets[:, index] = 0.0

    # ------------------------------------------------------------------ coordinator I/O
    def observe(self) -> np.ndarray:
        """The coordinator's observation (B, ``OBSERVATION_SIZE``) float32."""
        tools = self.tool_positions()
        started = (self.time >= self.delay.T).astype(np.float64)
        arrived = self.arrived().astype(np.float64)
        velocity = self._nominal_joint_velocities()
        both = closest_links(
            np.stack([self.joints[0], self.joints[0] + LOOKAHEAD * velocity[0]]),
            self.bases[0],
            np.stack([self.joints[1], self.joints[1] + LOOKAHEAD * velocity[1]]),
            self.bases[1],
        )
        direction = both.point_a[0] - both.point_b[0]
        direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-9)
        columns = []
        for k in range(2):
            state = self.positions[k]
            columns += [
                state.goal - tools[k],
                state.v / state.tau[:, None],
                state.x[:, None],
                self.phase_rate[k][:, None],
                self.law_rate[k][:, None],
                started[k][:, None],
                arrived[k][:, None],
                np.clip(self.delay[:, k] - self.time, 0.0, cs.MAX_START_DELAY)[:, None],
                (1.0 - state.x)[:, None],
            ]
        columns += [
            tools[1] - tools[0],
            both.distance.T,
            direction,
        ]
        return np.concatenate(columns, axis=1).astype(np.float32)

    def apply(self, action: np.ndarray) -> None:
        """Set the phase-rate corrections and via-point offsets from actions (B, 8)."""
        self.rate_corrections, self.via_offsets = decode_action(action)


def coordinated_controller(
    scenes: cs.CrossScenes,
    primitives: tuple[ArmPrimitives, ArmPrimitives],
    params: CouplingParams | None = None,
    shield_clearance: float | None = None,
) -> CoordinatedController:
    """A ``CoordinatedController`` over ``scenes`` with the arms at their starts."""
    return scene_controller(
        scenes, primitives, delay=scenes.delay.copy(), controller_class=CoordinatedController,
        params=params, goal_tolerance=cs.GOAL_TOLERANCE, shield_clearance=shield_clearance,
    )  # fmt: skip


def run_coordinated(
    scenes: cs.CrossScenes,
    act: Callable[[np.ndarray], np.ndarray],
    params: CouplingParams | None = None,
    shield_clearance: float | None = None,
    dt: float = CONTROL_DT,
    kind: str = "bimanual_cross",
) -> EpisodeScores:
    """Score ``scenes`` of ``kind`` (the benchmark's definitions,
    ``scene_kinds.run_scenes``) with the coordinator ``act`` (observations (B, obs) -> actions
    (B, 8)) deciding every ``DECISION_PERIOD`` s over ticks of ``dt`` s."""
    from robot_il.policies.dmp.scene_kinds import run_scenes, scene_primitives

    controller = coordinated_controller(scenes, scene_primitives(kind), params, shield_clearance)
    every = int(round(DECISION_PERIOD / dt))

    def decide(step: int) -> None:
        if step % every == 0:
            controller.apply(act(controller.observe()))

    return run_scenes(kind, scenes, "coupled", params, controller, decide, dt)


class CoordinatorNet:
    """The trained coordinator's deterministic action in numpy (no torch at deployment): the
    PPO actor's tanh MLP and its linear head, clipped to [-1, 1]. ``weights``/``biases``:
    per layer (out, in) and (out,); ``coupling``: the DMP layer it was trained over (its
    actions are corrections to that layer's phase law, meaningless without it), stored with
    the weights."""

    PREFIX = "coordinator/"
    RETRAIN = (
        "retrain with `robot-il train dmp-rl --dmp DMP --out O --steps N` (the benchmark's: "
        "`benchmarks/dmp_multiarm.py --train-coordinator STEPS`)"
    )

    def __init__(
        self, weights: list[np.ndarray], biases: list[np.ndarray], coupling: CouplingParams
    ) -> None:
        if not weights or len(weights) != len(biases):
            raise CheckpointError("coordinator: layers' weights and biases do not match")
        if weights[0].shape[1] != OBSERVATION_SIZE or weights[-1].shape[0] != ACTION_SIZE:
            raise CheckpointError(
                f"coordinator: network maps {weights[0].shape[1]} -> {weights[-1].shape[0]}, "
                f"expected {OBSERVATION_SIZE} -> {ACTION_SIZE}"
            )
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        self.coupling = coupling

    def save(self, path: str | Path) -> None:
        """Write the weights (float32) and the coupling (float64) to a safetensors file
        (written by Python: a full disk is an ``OSError``)."""
        from safetensors.numpy import save as serialize

        arrays = {
            k: v if k.endswith("coupling") else v.astype(np.float32)
            for k, v in self.to_arrays().items()
        }
        Path(path).write_bytes(serialize(arrays))

    @classmethod
    def load(cls, path: str | Path) -> CoordinatorNet:
        """Read a file written by ``save``."""
        from safetensors.numpy import load_file

        if not Path(path).is_file():
            raise CheckpointError(
                f"{path}: no coordinator weights (train them with "
                "`benchmarks/dmp_multiarm.py --train-coordinator STEPS`)"
            )
        net = cls.from_arrays(load_file(str(path)), str(path))
        if net is None:
            raise CheckpointError(f"{path}: no coordinator weights in it")
        return net

    @classmethod
    def from_sb3(cls, model, coupling: CouplingParams) -> CoordinatorNet:
        """From a stable-baselines3 PPO ``MlpPolicy`` (tanh hidden layers) trained over the
        DMP layer with ``coupling``."""
        linears = [
            layer for layer in model.policy.mlp_extractor.policy_net if hasattr(layer, "weight")
        ] + [model.policy.action_net]
        return cls(
            [layer.weight.detach().cpu().numpy().astype(np.float64) for layer in linears],
            [layer.bias.detach().cpu().numpy().astype(np.float64) for layer in linears],
            coupling,
        )

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions (B, 8) in [-1, 1] for observations (B, ``OBSERVATION_SIZE``)."""
        h = np.asarray(obs, dtype=np.float64)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.tanh(h @ w.T + b)
        return np.clip(h @ self.weights[-1].T + self.biases[-1], -1.0, 1.0)

    def digest(self) -> str:
        """A short hash of the weights (float32, as saved) and coupling: which net made a
        benchmark row (a fresh training to the same step count is another net)."""
        import hashlib

        digest = hashlib.sha256()
        for key, value in sorted(self.to_arrays().items()):
            kept = value if key.endswith("coupling") else value.astype(np.float32)
            digest.update(key.encode() + np.ascontiguousarray(kept).tobytes())
        return digest.hexdigest()[:12]

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"{self.PREFIX}{i}/weight"], arrays[f"{self.PREFIX}{i}/bias"] = w, b
        arrays[f"{self.PREFIX}coupling"] = self.coupling.to_vector()
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], where: str = "checkpoint"
    ) -> CoordinatorNet | None:
        """The net stored in a checkpoint's arrays (from ``where``), None where it holds none.
        A net without its coupling (written before the coordinator became a residual on the
        phase law, when its actions meant absolute rates) is refused."""
        layers = {k.split("/")[1] for k in arrays if k.startswith(cls.PREFIX)} - {"coupling"}
        if not layers:
            return None
        coupling = arrays.get(f"{cls.PREFIX}coupling")
        if coupling is None:
            raise CheckpointError(
                f"{where}: coordinator without the DMP coupling it was trained over (an older, "
                f"non-residual format); {cls.RETRAIN}"
            )
        return cls(
            [np.asarray(arrays[f"{cls.PREFIX}{i}/weight"]) for i in range(len(layers))],
            [np.asarray(arrays[f"{cls.PREFIX}{i}/bias"]) for i in range(len(layers))],
            CouplingParams(*(float(v) for v in coupling)),
        )
