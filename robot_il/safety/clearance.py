"""The inter-arm check of a two-arm cell: no command may bring the arms' links too close.

Each arm has its own :class:`robot_il.safety.SafetyFilter` (limits, speed, workspace, holds);
what neither filter can see is the other arm. After both have filtered a control period's
commands, :meth:`ClearanceGuard.check` measures the link-to-link distance of the commanded
configuration (capsules of the UR5e description,
:func:`robot_il.envs.separation.arm_separation`) and lets the pair through only when it keeps
``clearance`` (m), or when it moves the arms apart (after a start closer than that). Each arm's
command keeps the clearance from where the other arm *is*, its measured pose, as well as from
where it is told to be: an arm stopped at its own controller (a protective or emergency stop, a
stopped program, its own bridge's e-stop) stays where it stopped while the policy's commands for
it move on, and a check of commands alone let the other arm be driven into it. (Each arm's
filter, finding it not following, starts it again where it is, so that its commands stay by it
and, released, it does not travel far on a path its controller chooses and no check here sees.)
The two grippers' own capsule pairs alone have their own limit, ``gripper_clearance`` (m; by
default ``clearance`` too), which a handover cell sets explicitly: a handover is a planned
gripper-to-gripper contact around the object, and the gripper capsules over-approximate the
gripper (the palm's capsule reaches 36 mm around the palm box's axis, the fingers' capsules hold
the pads at any opening), so two grippers holding one cube overlap as capsules, down to -4.3 cm
in the scripted expert's handovers (-3.8 cm in ``robot-il eval`` handovers when the capsules
held open fingers only). A negative ``gripper_clearance`` lets the gripper capsules overlap that
much, no further than :data:`GRIPPER_OVERLAP_FLOOR`; every pair with a link (a gripper against
the other arm's wrist too) keeps the full ``clearance``. Otherwise the arm that would violate it
holds: first one arm alone is held (the one whose hold alone restores the clearance; arm 0
first), else both. A held arm's filter is told (:meth:`SafetyFilter.veto`), so its next step
starts from the held pose. Commands step at most a few millimetres per period, so checking each
commanded pose is checking the path.

The capsule distance costs a fraction of a millisecond, too much for every 2 ms period: after
each measurement the guard keeps a lower bound on the distance of the commands it sent, lowered
each period by how far any point of either arm can have moved since (the joint steps from those
commands times :data:`REACH`), and measures again only once that bound comes within the
clearance. The steps are counted from the commands the guard itself sent, not from each
filter's previous command: a filter that restarts (after an e-stop reset, a device fault, at
an episode's start) starts from the measured pose, wherever a person has moved the arm
meanwhile, and that jump counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from robot_il.envs.separation import REACH
from robot_il.errors import ConfigError
from robot_il.safety.events import Intervention, SafetyEvent
from robot_il.safety.filter import SafetyFilter

GRIPPER_OVERLAP_FLOOR = -0.08
"""Lowest ``gripper_clearance`` (m): the two largest gripper capsule radii (4 cm each)
overlapping completely, the gripper bodies' axes meeting."""


class ClearanceGuard:
    """Keeps two arms ``clearance`` (m) apart; ``world_from_base`` (2, 4, 4): each arm's base
    pose in one world frame (m). ``on_event`` receives each arm's ``clearance`` event when it
    starts (the arm was not held by this guard the call before)."""

    def __init__(
        self,
        world_from_base: Sequence[np.ndarray],
        clearance: float = 0.05,
        on_event: Callable[[SafetyEvent], None] | None = None,
        gripper_clearance: float | None = None,
    ) -> None:
        if len(world_from_base) != 2:
            raise ConfigError(f"clearance guard: needs two arms, got {len(world_from_base)}")
        if not (np.isfinite(clearance) and clearance >= 0):
            raise ConfigError(f"clearance must be a finite distance >= 0 m, got {clearance}")
        self.world_from_base = [np.asarray(pose, dtype=np.float64) for pose in world_from_base]
        self.clearance = float(clearance)
        gripper_clearance = clearance if gripper_clearance is None else gripper_clearance
        if not (
            np.isfinite(gripper_clearance)
            and GRIPPER_OVERLAP_FLOOR <= gripper_clearance <= clearance
        ):
            raise ConfigError(
                f"gripper_clearance must be a distance in [{GRIPPER_OVERLAP_FLOOR}, clearance "
                f"{clearance}] m (negative: the gripper capsules may overlap), "
                f"got {gripper_clearance}"
            )
        from robot_il.envs.separation import gripper_allowance

        self._allowance = gripper_allowance(self.clearance - gripper_clearance)
        """Counted into the grippers' pair distances, so they may come that much closer."""
        self.gripper_clearance = float(gripper_clearance)
        self.on_event = on_event
        self._held = [False, False]
        self._sent: np.ndarray | None = None
        """The commands (2, 6) rad this guard let through last, or None before the first."""
        self._measured: np.ndarray | None = None
        """The measured poses (2, 6) rad the guard last measured against."""
        self._bound = -np.inf
        """Lower bound (m) on the distance (:meth:`_distances`) of ``_sent`` and ``_measured``."""
        self.holds = [0, 0]
        """Calls in which each arm was held by this guard."""

    def separation(self, q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
        """Link-to-link distance (...,) m of the arms at joints q_a, q_b (..., 6) rad, the
        grippers' pairs counted ``clearance - gripper_clearance`` farther apart."""
        from robot_il.envs.separation import arm_separation

        return arm_separation(
            q_a, self.world_from_base[0], q_b, self.world_from_base[1], self._allowance
        )

    def check(
        self,
        commands: list[np.ndarray],
        filters: Sequence[SafetyFilter],
        t: float,
        measured: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """The pair of commands (6,) rad to send at ``t`` (s): ``commands`` (what the two
        ``filters`` let through this period) or, for an arm that would violate the clearance,
        the command its filter sent the period before (the filter is vetoed). ``measured``
        (2 x (6,) rad): each arm's measured joints; one not finite holds both arms (where the
        arm is, is not known)."""
        proposed = np.array(commands, dtype=np.float64)
        at = np.array(measured, dtype=np.float64)
        moved = (
            np.inf
            if self._sent is None
            else float(np.abs(proposed - self._sent).sum() + np.abs(at - self._measured).sum())
        )
        self._measured = at
        if np.isfinite(moved) and self._bound - REACH * moved >= self.clearance:
            self._bound -= REACH * moved
            self._sent = proposed
            self._held = [False, False]
            return commands
        previous = [f.reference_before for f in filters]
        candidates = np.array(
            [
                [commands[0], commands[1]],
                [previous[0], commands[1]],
                [commands[0], previous[1]],
                [previous[0], previous[1]],
            ]
        )
        distance = self._distances(candidates, at)
        now = distance[3]  # where the arms were told to be, and are
        allowed = (distance >= self.clearance) | (distance > now)
        choice = int(np.argmax(allowed)) if allowed[:3].any() else 3
        held = [choice in (1, 3), choice in (2, 3)]
        sent = list(candidates[choice])
        self._sent, self._bound = candidates[choice].copy(), float(distance[choice])
        for arm in (0, 1):
            if held[arm]:
                self.holds[arm] += 1
                sent[arm] = filters[arm].veto(t)
                if not self._held[arm]:
                    self._report(arm, t, commands, at)
        self._held = held
        return sent

    def _distances(self, candidates: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Distance (k,) m of each pair of commands ``candidates`` (k, 2, 6) rad: the least of
        command to command and each command to the other arm's measured pose ``at`` (2, 6)."""
        a, b = candidates[:, 0], candidates[:, 1]
        distances = self.separation(
            np.concatenate([a, a, np.broadcast_to(at[0], a.shape)]),
            np.concatenate([b, np.broadcast_to(at[1], b.shape), b]),
        )
        return distances.reshape(3, -1).min(axis=0)

    @property
    def held(self) -> list[bool]:
        """Whether each arm was held by the last :meth:`check`."""
        return list(self._held)

    def _report(self, arm: int, t: float, commands: list[np.ndarray], at: np.ndarray) -> None:
        """Publish that ``arm`` is held, naming the closest capsule pair of ``commands``, or of
        one arm's command and the other arm where it is (``at`` (2, 6) rad) when that pair is
        closer, and its own distance and limit (the gripper pairs' limit is
        ``gripper_clearance``)."""
        from robot_il.envs.separation import UR5E_CAPSULES, closest_links

        unknown = [i for i in (0, 1) if not np.isfinite(at[i]).all()]
        if unknown:
            detail = (
                f"arm {arm} held: arm {unknown[0]}'s measured joints {at[unknown[0]]} are not "
                "finite (where it is, is not known)"
            )
        else:
            pairs = closest_links(
                np.array([commands[0], commands[0], at[0]]),
                self.world_from_base[0],
                np.array([commands[1], at[1], commands[1]]),
                self.world_from_base[1],
                allowance=self._allowance,
            )
            k = int(np.argmin(pairs.distance))
            a, b = int(pairs.capsule_a[k]), int(pairs.capsule_b[k])
            allowance = float(self._allowance[a, b])
            what = (
                "the commands",
                "arm 0's command and arm 1 where it is",
                "arm 1's command and arm 0 where it is",
            )[k]
            detail = (
                f"arm {arm} held: {what} would bring {UR5E_CAPSULES.names[a]} (arm 0) and "
                f"{UR5E_CAPSULES.names[b]} (arm 1) {float(pairs.distance[k]) - allowance:.4f} m "
                f"apart (< {self.clearance - allowance:g} m for this pair)"
            )
        event = SafetyEvent(Intervention.CLEARANCE, t, detail)
        if self.on_event is not None:
            self.on_event(event)
