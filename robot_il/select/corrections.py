"""Recording a person's corrections of a deployed policy into a corrections dataset.

When the supervising person intervenes and steers the robot by teleoperation, the corrected
segment (each observation and the person's action at it) is what the deployed policy should
learn from: the states are ones *the policy* led the robot into, which the original
demonstrations rarely visit (human-gated DAgger, Kelly et al. 2019). Segments go through the
crash-safe :class:`~robot_il.dataset.DatasetWriter`, so a kill loses at most the segment under
way, and between episodes :func:`robot_il.train.finetune.finetune_checkpoint` trains on them.

A corrections dataset is an ordinary robot_il dataset (one segment = one episode) whose attrs
carry ``kind = "corrections"`` and the robot/observation/action spec it was recorded for;
appending corrections recorded for another robot, rate, action mode or observation shapes is
refused, since training on them would teach the policy the wrong joints or inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.dataset import Dataset, DatasetWriter
from robot_il.errors import DatasetError
from robot_il.policies.spec import ACTION_KEY, Spec, spec_from_dataset, spec_mismatches

CORRECTIONS_KIND = "corrections"
"""Value of the ``kind`` attribute that marks a corrections dataset."""


def check_corrections_spec(dataset: Dataset, spec: Spec, where: str) -> None:
    """Raise ``DatasetError`` naming ``where`` unless ``dataset`` is a corrections dataset
    recorded for ``spec`` (robot, control rate, action mode and dimension, observation keys
    and shapes). A dataset with no segment yet is judged by the spec in its attrs."""
    kind = dataset.attrs.get("kind")
    if kind != CORRECTIONS_KIND:
        raise DatasetError(f"{where}: not a corrections dataset (attrs kind is {kind!r})")
    if dataset.num_episodes:
        recorded = spec_from_dataset(dataset, sorted(spec["observation"]), where)
    else:
        recorded = dict(dataset.attrs.get("spec") or {}, robot=dataset.attrs.get("robot"))
    problems = spec_mismatches(spec, recorded)
    if problems:
        raise DatasetError(
            f"{where}: corrections were recorded for another robot or observation spec: "
            + "; ".join(p.replace("trained", "expected") for p in problems)
        )


def check_corrections_fit(recorded: Spec, trained: Spec, where: str) -> None:
    """Raise ``DatasetError`` naming ``where`` unless corrections of the ``recorded`` spec
    (what a takeover recorder writes) can fine-tune a checkpoint ``trained`` for that spec:
    said when the deployment starts, not after a person has spent their corrections on data
    that fine-tuning refuses. The message says how to record corrections that fit, where one
    can: another rate (``record_hz``) or the camera the checkpoint observes (``camera``)."""
    problems = spec_mismatches(trained, recorded)
    if not problems:
        return
    hints = []
    if trained.get("control_hz") not in (None, recorded.get("control_hz")):
        hints.append(f"record at its rate, record_hz:={trained['control_hz']:g}")
    if trained.get("action_mode") not in (None, recorded.get("action_mode")):
        hints.append("takeovers record joint targets: correct a checkpoint trained on joint "
                     "actions")  # fmt: skip
    if trained.get("frame"):
        hints.append(f"takeovers record in the world frame, it was trained in the "
                     f"{trained['frame']} task frame")  # fmt: skip
    cameras = sorted(
        key.removeprefix("rgb_")
        for key in trained.get("observation") or {}
        if key.startswith("rgb_") and key not in (recorded.get("observation") or {})
    )
    if cameras:
        hints.append(f"record the camera it observes, camera:={','.join(cameras)}")
    raise DatasetError(
        f"{where} could not be fine-tuned on the corrections recorded here ("
        + "; ".join(p.replace("trained", "expected") for p in problems)
        + ")"
        + (f": {'; '.join(hints)}" if hints else "")
    )


class CorrectionsRecorder:
    """Writes corrected segments, one dataset episode each, for one robot/observation spec.

    ``spec`` is a policy-style spec (``robot_il.policies.spec.spec_from_env(env)`` in
    simulation, or a deployed checkpoint's ``policy.spec``): every key of
    ``spec["observation"]`` is recorded at each step, with ``action`` (the person's command in
    the spec's action mode: joint targets in rad + gripper, or an eef delta in m, rad).
    """

    def __init__(self, writer: DatasetWriter, spec: Spec) -> None:
        self.writer = writer
        self.spec = spec
        self._segment: Any = None
        self._meta: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        spec: Spec,
        *,
        attrs: Mapping[str, Any] | None = None,
        fsync: bool = True,
    ) -> CorrectionsRecorder:
        """Append to the corrections dataset at ``path``, creating it if absent.

        An existing dataset must be a corrections dataset recorded for ``spec``, else
        ``DatasetError`` says what differs; nothing in it is touched then.
        """
        path = Path(path)
        if path.exists():
            check_corrections_spec(Dataset.open(path), spec, str(path))
            return cls(DatasetWriter.open(path, fsync=fsync), spec)
        all_attrs = {
            "kind": CORRECTIONS_KIND,
            "task": spec.get("task"),
            "backend": spec.get("backend"),
            "action_mode": spec.get("action_mode"),
            "spec": spec,
            **(attrs or {}),
        }
        writer = DatasetWriter.create(
            path, robot=str(spec["robot"]), control_hz=float(spec["control_hz"]),
            attrs=all_attrs, fsync=fsync,
        )  # fmt: skip
        return cls(writer, spec)

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def num_segments(self) -> int:
        """Committed corrected segments."""
        return self.writer.num_episodes

    @property
    def in_segment(self) -> bool:
        return self._segment is not None

    def begin(self, **meta: Any) -> None:
        """Start a corrected segment (the person has taken over); ``meta`` (e.g. ``seed``,
        ``candidate``, ``takeover_step``) is stored with it at commit."""
        if self._segment is not None:
            raise DatasetError(f"{self.path}: a corrected segment is already under way")
        self._segment = self.writer.begin_episode()
        self._meta = dict(meta)

    def append(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """One corrected step: the observation the person acted on and their action."""
        if self._segment is None:
            raise DatasetError(f"{self.path}: append outside a corrected segment; call begin()")
        frame = {key: np.asarray(obs[key]) for key in self.spec["observation"] if key in obs}
        frame[ACTION_KEY] = np.asarray(action, dtype=np.float32)
        self._segment.append(frame)

    def commit(self, **meta: Any) -> int | None:
        """Make the segment durable; returns its index, or None if it had no step (then it
        is discarded). ``meta`` adds to what :meth:`begin` was given."""
        if self._segment is None:
            return None
        segment, self._segment = self._segment, None
        if segment.num_steps == 0:
            segment.discard()
            return None
        return segment.commit({**self._meta, **meta})

    def discard(self) -> None:
        """Drop the segment under way (e.g. the person aborted the correction)."""
        if self._segment is not None:
            self._segment.discard()
            self._segment = None

    def close(self) -> None:
        """Discard a segment still under way and release the dataset."""
        self.discard()
        self.writer.close()

    def __enter__(self) -> CorrectionsRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
