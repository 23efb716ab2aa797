"""The ``SimBackend`` on MuJoCo: the generated MJCF, stepped with ``mj_step(nstep=n)``.

The servo lives in the model (``robot_il.envs.ur5e.mjcf``): each servoed joint's set point is
an actuator activation integrating a set-point velocity. Once per ``step`` call the backend
asks the trajectory generator both backends share (``common.ServoTargets``) for those
velocities and writes them to ``ctrl``, so MuJoCo runs every substep without returning to
Python.

``model`` and ``data`` are the engine handles, for benchmarks that time raw ``mj_step`` on the
same model.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping

import numpy as np
from robot_il.envs.backends.base import (
    ARM_STATE_EEF_POSE,
    ARM_STATE_GRIPPER,
    ARM_STATE_JOINT_POS,
    ARM_STATE_JOINT_VEL,
    ARM_STATE_SIZE,
    PHYSICS_HZ,
    SceneSpec,
)
from robot_il.envs.backends.common import (
    SERVOS_PER_ARM,
    ServoTargets,
    check_object_names,
    scene_item,
)
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.mjcf import build_mjcf, servo_joint_names

from robot_il.stop_signals import stops_deferred


class MujocoBackend:
    """One scene in MuJoCo; see ``SimBackend`` for the meaning of each method."""

    def __init__(self, scene: SceneSpec, meshes: bool = True) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        with stops_deferred():  # a Ctrl-C in its native init came out as another error
            import mujoco

        self._mj = mujoco
        self.scene = scene
        self.physics_dt = 1.0 / PHYSICS_HZ
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(scene, meshes=meshes))
        self.data = mujoco.MjData(self.model)
        self._servo = ServoTargets(scene)
        self._arm_qpos: dict[str, int] = {}
        self._views: dict[str, tuple[np.ndarray, ...]] = {}
        for mount in scene.arms:
            ids = [self.model.joint(n).id for n in servo_joint_names(mount.name)]
            qpos = self.model.jnt_qposadr[ids]
            qvel = self.model.jnt_dofadr[ids]
            assert np.all(np.diff(qpos) == 1) and np.all(np.diff(qvel) == 1)
            start, dof = int(qpos[0]), int(qvel[0])
            site = self.model.site(ur5e.arm_prefix(mount.name) + "tcp").id
            self._arm_qpos[mount.name] = start
            # views into MjData's fixed buffers: joint positions, joint velocities, finger
            # positions, TCP position, TCP rotation matrix
            self._views[mount.name] = (
                self.data.qpos[start : start + 6],
                self.data.qvel[dof : dof + 6],
                self.data.qpos[start + 6 : start + 8],
                self.data.site_xpos[site],
                self.data.site_xmat[site],
            )
        roots = {
            self.model.body(ur5e.arm_prefix(m.name) + ur5e.LINK_NAMES[0]).id: k
            for k, m in enumerate(scene.arms)
        }
        root_of_geom = self.model.body_rootid[self.model.geom_bodyid]
        self._geom_arm = np.array([roots.get(int(r), -1) for r in root_of_geom])
        """Arm index (scene order) of each geom, -1 for the world and objects."""
        n_servo = SERVOS_PER_ARM * len(scene.arms)
        assert self.model.na == n_servo and self.model.nu == 2 * n_servo
        # ctrl holds each servo's set-point velocity twice (set-point actuators, then their
        # dampers): one broadcast copy into this (2, n_servo) view writes both
        self._ctrl_pairs = self.data.ctrl.reshape(2, n_servo)
        self._setpoints = self.data.act  # the servos' set points (activations), a fixed view
        self._object_qpos = {}
        if scene.cube is not None:
            self._object_qpos["cube"] = int(
                self.model.jnt_qposadr[self.model.joint("cube_free").id]
            )
        self._marker_mocap = {
            name: int(self.model.body_mocapid[self.model.body(f"marker_{name}").id])
            for name in scene.markers
        }
        self._cameras = {c.name: c for c in scene.cameras}
        self._renderers: dict[tuple[int, int], object] = {}
        self._kinematics_fresh = False
        self._finger_travel = ur5e.GRIPPER.finger_travel

    def reset(
        self,
        joint_pos: Mapping[str, np.ndarray],
        gripper: Mapping[str, float],
        object_poses: Mapping[str, np.ndarray],
    ) -> None:
        check_object_names(object_poses, self._object_qpos)
        mj, data = self._mj, self.data
        mj.mj_resetData(self.model, data)
        self._servo.reset(joint_pos, gripper)
        for arm, start in self._arm_qpos.items():
            k = self._servo.arm_slice(arm)
            data.qpos[start : start + SERVOS_PER_ARM] = self._servo.target[k]
        data.act[:] = self._servo.target
        for name, pose in object_poses.items():
            start = self._object_qpos[name]
            data.qpos[start : start + 7] = pose
        mj.mj_forward(self.model, data)
        self._kinematics_fresh = True

    def set_joint_targets(self, arm: str, joint_pos: np.ndarray, gripper: float) -> None:
        self._servo.set(arm, joint_pos, gripper)

    def step(self, n_substeps: int = 1) -> None:
        velocity = self._servo.setpoint_velocity(self._setpoints, n_substeps * self.physics_dt)
        self._ctrl_pairs[:] = velocity
        self._mj.mj_step(self.model, self.data, n_substeps)
        self._kinematics_fresh = False

    def arm_contacts(self) -> int:
        """Contact points between two different arms after the last physics step (none
        unless the scene has ``arm_contacts``)."""
        n = self.data.ncon
        if n == 0:
            return 0
        a = self._geom_arm[self.data.contact.geom1[:n]]
        b = self._geom_arm[self.data.contact.geom2[:n]]
        return int(np.sum((a >= 0) & (b >= 0) & (a != b)))

    def joint_pos(self, arm: str) -> np.ndarray:
        return self._views[arm][0].copy()

    def joint_vel(self, arm: str) -> np.ndarray:
        return self._views[arm][1].copy()

    def gripper(self, arm: str) -> float:
        fingers = self._views[arm][2]
        return float((fingers[0] + fingers[1]) / (2.0 * self._finger_travel))

    def _fresh_kinematics(self) -> None:
        if not self._kinematics_fresh:
            self._mj.mj_kinematics(self.model, self.data)
            self._kinematics_fresh = True

    def _write_eef_pose(self, arm: str, pose: np.ndarray) -> None:
        """The TCP pose into ``pose`` (7,), quaternion with ``w >= 0`` as PyBullet reports it."""
        self._fresh_kinematics()
        _, _, _, xpos, xmat = self._views[arm]
        pose[:3] = xpos
        quat = pose[3:]
        self._mj.mju_mat2Quat(quat, xmat)
        if quat[0] < 0.0:
            np.negative(quat, out=quat)

    def eef_pose(self, arm: str) -> np.ndarray:
        pose = np.empty(7)
        self._write_eef_pose(arm, pose)
        return pose

    def arm_state(self, arm: str) -> np.ndarray:
        qpos, qvel, fingers, _, _ = self._views[arm]
        state = np.empty(ARM_STATE_SIZE)
        state[ARM_STATE_JOINT_POS] = qpos
        state[ARM_STATE_JOINT_VEL] = qvel
        left, right = fingers.tolist()  # plain floats: cheaper than numpy scalars
        state[ARM_STATE_GRIPPER] = (left + right) / (2.0 * self._finger_travel)
        self._write_eef_pose(arm, state[ARM_STATE_EEF_POSE])
        return state

    def object_pose(self, name: str) -> np.ndarray:
        start = scene_item(self._object_qpos, "object", name)
        pose = self.data.qpos[start : start + 7].copy()
        if pose[3] < 0.0:  # the same rotation with w >= 0, as eef_pose and PyBullet report it
            pose[3:] = -pose[3:]
        return pose

    def set_marker(self, name: str, pos: np.ndarray) -> None:
        self.data.mocap_pos[scene_item(self._marker_mocap, "marker", name)] = pos
        self._kinematics_fresh = False

    def render(self, camera: str) -> np.ndarray:
        spec = scene_item(self._cameras, "camera", camera)
        with stops_deferred():  # its EGL calls through PyOpenGL turned a Ctrl-C into an error
            renderer = self._renderer(spec.height, spec.width)
            self._fresh_kinematics()
            renderer.update_scene(self.data, camera=camera)
            return renderer.render()

    def camera_pose(self, camera: str) -> np.ndarray:
        scene_item(self._cameras, "camera", camera)
        self._fresh_kinematics()
        index = self.model.camera(camera).id
        pose = np.eye(4)
        pose[:3, :3] = self.data.cam_xmat[index].reshape(3, 3)
        pose[:3, 3] = self.data.cam_xpos[index]
        return pose

    def _renderer(self, height: int, width: int):
        key = (height, width)
        if key not in self._renderers:
            mj = self._mj
            renderer = mj.Renderer(self.model, height=height, width=width)
            for flag in (mj.mjtRndFlag.mjRND_SHADOW, mj.mjtRndFlag.mjRND_REFLECTION):
                renderer.scene.flags[flag] = False
            if not self._renderers:
                # An env left open until the interpreter exits: its renderers' own __del__ then
                # runs after OpenGL's teardown and prints two EGLError tracebacks.
                weakref.finalize(self, _close_renderers, self._renderers)
            self._renderers[key] = renderer
        return self._renderers[key]

    def close(self) -> None:
        _close_renderers(self._renderers)


def _close_renderers(renderers: dict[tuple[int, int], object]) -> None:
    """Free ``renderers``' GL contexts and forget them."""
    for renderer in renderers.values():
        renderer.close()
    renderers.clear()
