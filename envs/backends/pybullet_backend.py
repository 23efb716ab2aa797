"""The ``SimBackend`` on PyBullet: generated URDF arms plus box/sphere bodies, DIRECT mode.

The set points come from the trajectory generator both backends share
(``common.ServoTargets``), which gives each servoed joint a set-point velocity for the whole
``step`` call. PyBullet's position motor is a velocity constraint: each substep it asks for the
fed-forward set-point velocity plus ``POSITION_GAIN`` of the position error per substep, capped
at a speed just above the set point's and limited to the joint's torque (or grip-force) limit.
Once per ``step`` call every motor gets its velocity and speed cap (``command_motors``, one
call per joint); before each substep it gets the set point at that substep's end
(``run_motors``, one array call per arm). So a joint that tracks its set point moves at the set
point's velocity throughout the step and ``joint_vel`` reports that speed, as in MuJoCo, and a
joint that lags catches up no faster than its cap.

``client_id`` is the engine handle, and ``motor_setpoints`` / ``motor_velocities`` /
``motor_speed_caps`` with ``command_motors`` and ``run_motors`` what the motors were last told,
for benchmarks that time raw ``stepSimulation`` on the same world and motion. Images come from
the CPU ``ER_TINY_RENDERER``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from robot_il.envs.backends.base import PHYSICS_HZ, SceneSpec
from robot_il.envs.backends.common import (
    SERVOS_PER_ARM,
    ServoTargets,
    check_object_names,
    scene_item,
)
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.scene_geometry import (
    CUBE_RGBA,
    FLOOR_DROP,
    FLOOR_RGBA,
    FRICTION_OBJECT,
    MARKER_RADIUS,
    MARKER_RGBA,
    camera_axes,
    static_boxes,
)
from robot_il.envs.ur5e.transforms import homogeneous, matrix_to_quat, quat_to_matrix, rot_z
from robot_il.envs.ur5e.urdf import build_urdf

POSITION_GAIN = 0.2
"""Fraction of the position error the motor removes per substep (PyBullet ``positionGain``)."""
VELOCITY_GAIN = 1.0
"""Weight of the fed-forward set-point velocity (PyBullet ``velocityGain``): all of it."""
SPEED_MARGIN = 1.05
"""A motor may run this factor faster than its set point moves, to catch up after a lag."""
SPEED_SLACK = 0.01
"""... plus this fraction of the joint's speed limit, so a still set point is held firmly."""
FINGER_SPEED_SLACK = 1.0
"""The fingers' slack, a full finger speed: a motor capped near zero speed pushes on a blocking
object with a fraction of its force, and a gripper must squeeze with its full grip force."""
SPINNING_FRICTION = 0.001
"""Torsional friction (m) of pads and cube, so a held cube does not spin about the grip axis."""
FINGER_COUPLING_FORCE = 1000.0
"""Force (N) the gear constraint between the two fingers may use to keep them together."""
CAMERA_NEAR, CAMERA_FAR = 0.01, 10.0
FAR_AWAY = -100.0
"""World z (m) where objects wait while a reset clears the contact caches."""


def _xyzw(quat_wxyz) -> list[float]:
    return [float(quat_wxyz[1]), float(quat_wxyz[2]), float(quat_wxyz[3]), float(quat_wxyz[0])]


class PybulletBackend:
    """One scene in PyBullet; see ``SimBackend`` for the meaning of each method."""

    def __init__(self, scene: SceneSpec, meshes: bool = True) -> None:
        import pybullet

        self._p = p = pybullet
        self.scene = scene
        self.physics_dt = 1.0 / PHYSICS_HZ
        self.client_id = cid = p.connect(p.DIRECT)
        p.setTimeStep(self.physics_dt, physicsClientId=cid)
        p.setGravity(0.0, 0.0, -9.81, physicsClientId=cid)
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=cid)
        self._servo = ServoTargets(scene)
        self._setpoint = np.zeros_like(self._servo.target)  # where each motor's set point is now
        self.motor_setpoints = np.zeros_like(self._servo.target)
        """Each servo motor's set point (rad, or m for fingers) as the last ``command_motors``
        gave it (where a step starts), 8 per arm in scene order."""
        self.motor_velocities = np.zeros_like(self._servo.target)
        """Each servo motor's last set-point velocity (rad/s or m/s), same layout."""
        self.motor_speed_caps = np.zeros_like(self._servo.target)
        """Each servo motor's last speed cap (rad/s or m/s), same layout."""
        self._advance = np.zeros_like(self._servo.target)  # set-point motion of one substep
        self._build_world(scene, meshes)
        self._initial_state = p.saveState(physicsClientId=cid)
        self._cameras = {}
        for camera in scene.cameras:
            projection = p.computeProjectionMatrixFOV(
                camera.fovy_deg,
                camera.width / camera.height,
                CAMERA_NEAR,
                CAMERA_FAR,
                physicsClientId=cid,
            )
            self._cameras[camera.name] = (camera, projection)

    def _build_world(self, scene: SceneSpec, meshes: bool) -> None:
        p, cid = self._p, self.client_id
        boxes = static_boxes(scene)
        floor_z = boxes[0].center[2] - boxes[0].half_extents[2] - FLOOR_DROP
        floor = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[4.0, 4.0, 0.01], rgbaColor=FLOOR_RGBA, physicsClientId=cid
        )
        p.createMultiBody(0.0, -1, floor, [0.0, 0.0, floor_z - 0.01], physicsClientId=cid)
        for box in boxes:
            shape = p.createCollisionShape(
                p.GEOM_BOX, halfExtents=box.half_extents, physicsClientId=cid
            )
            look = p.createVisualShape(
                p.GEOM_BOX, halfExtents=box.half_extents, rgbaColor=box.rgba, physicsClientId=cid
            )
            body = p.createMultiBody(0.0, shape, look, box.center, physicsClientId=cid)
            p.changeDynamics(body, -1, lateralFriction=FRICTION_OBJECT, physicsClientId=cid)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "ur5e.urdf"
            path.write_text(build_urdf(meshes=meshes))
            self._arm_body: dict[str, int] = {}
            for mount in scene.arms:
                self._arm_body[mount.name] = p.loadURDF(
                    str(path),
                    basePosition=mount.base_pos,
                    baseOrientation=_xyzw(matrix_to_quat(rot_z(mount.base_yaw))),
                    useFixedBase=True,
                    flags=p.URDF_USE_INERTIA_FROM_FILE,
                    physicsClientId=cid,
                )
        first = next(iter(self._arm_body.values()))
        by_name = {}
        for j in range(p.getNumJoints(first, physicsClientId=cid)):
            info = p.getJointInfo(first, j, physicsClientId=cid)
            by_name[info[1].decode()] = j
            by_name[info[12].decode()] = j  # child link name -> link index
        self._servo_joints = [by_name[n] for n in ur5e.JOINT_NAMES] + [
            by_name[f"{f}_joint"] for f in ur5e.FINGER_NAMES
        ]
        self._arm_joints = self._servo_joints[:6]
        self._finger_joints = self._servo_joints[6:]
        self._tcp_link = by_name["tcp"]
        self._gripper_link = by_name["gripper"]
        g = ur5e.GRIPPER
        forces = [float(f) for f in ur5e.JOINT_TORQUE_LIMITS] + [g.grip_force] * 2
        # per servo motor, arms in scene order: its body, joint index and force limit
        self._motor_bodies = [b for b in self._arm_body.values() for _ in range(SERVOS_PER_ARM)]
        self._motor_joints = self._servo_joints * len(self._arm_body)
        self._forces = forces * len(self._arm_body)
        # per arm, in scene order: its body and where its motors sit in the arrays above; and
        # what every arm's array call repeats: force limits, position and velocity gains
        self._arm_motors = [
            (body, slice(SERVOS_PER_ARM * k, SERVOS_PER_ARM * (k + 1)))
            for k, body in enumerate(self._arm_body.values())
        ]
        self._arm_motor_constants = (
            forces,
            [POSITION_GAIN] * SERVOS_PER_ARM,
            [VELOCITY_GAIN] * SERVOS_PER_ARM,
        )
        max_speed = np.r_[ur5e.JOINT_VEL_LIMITS, g.finger_speed, g.finger_speed]
        slack = np.r_[np.full(6, SPEED_SLACK), FINGER_SPEED_SLACK, FINGER_SPEED_SLACK]
        self._speed_slack = np.tile(slack * max_speed, len(scene.arms))
        self._half_inverse_travel = 0.5 / g.finger_travel
        for body in self._arm_body.values():
            for link in range(-1, p.getNumJoints(body, physicsClientId=cid)):
                p.changeDynamics(
                    body,
                    link,
                    linearDamping=0.0,
                    angularDamping=0.0,
                    jointDamping=0.0,
                    physicsClientId=cid,
                )
            for finger in self._finger_joints:
                p.changeDynamics(
                    body,
                    finger,
                    lateralFriction=g.friction,
                    spinningFriction=SPINNING_FRICTION,
                    physicsClientId=cid,
                )
            coupling = p.createConstraint(  # the fingers move as one, like the 2F-85 linkage
                body,
                self._finger_joints[0],
                body,
                self._finger_joints[1],
                jointType=p.JOINT_GEAR,
                jointAxis=[1, 0, 0],
                parentFramePosition=[0, 0, 0],
                childFramePosition=[0, 0, 0],
                physicsClientId=cid,
            )
            p.changeConstraint(
                coupling, gearRatio=-1, maxForce=FINGER_COUPLING_FORCE, physicsClientId=cid
            )
        bodies = list(self._arm_body.values())
        self._arm_pairs = [(a, b) for i, a in enumerate(bodies) for b in bodies[i + 1 :]]
        for a, body_a in enumerate(bodies):  # arms touch each other only with arm_contacts
            for body_b in bodies[a + 1 :] if not scene.arm_contacts else ():
                for link_a in range(-1, p.getNumJoints(body_a, physicsClientId=cid)):
                    for link_b in range(-1, p.getNumJoints(body_b, physicsClientId=cid)):
                        p.setCollisionFilterPair(
                            body_a, body_b, link_a, link_b, 0, physicsClientId=cid
                        )
        self._objects: dict[str, int] = {}
        if scene.cube is not None:
            h = [scene.cube.half_size] * 3
            shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=h, physicsClientId=cid)
            look = p.createVisualShape(
                p.GEOM_BOX, halfExtents=h, rgbaColor=CUBE_RGBA, physicsClientId=cid
            )
            cube = p.createMultiBody(
                scene.cube.mass,
                shape,
                look,
                [0.0, 0.0, scene.table_height + h[0]],
                physicsClientId=cid,
            )
            p.changeDynamics(
                cube,
                -1,
                lateralFriction=FRICTION_OBJECT,
                spinningFriction=SPINNING_FRICTION,
                linearDamping=0.0,
                angularDamping=0.0,
                physicsClientId=cid,
            )
            self._objects["cube"] = cube
        self._markers: dict[str, int] = {}
        for name in scene.markers:
            look = p.createVisualShape(
                p.GEOM_SPHERE, radius=MARKER_RADIUS, rgbaColor=MARKER_RGBA, physicsClientId=cid
            )
            self._markers[name] = p.createMultiBody(
                0.0, -1, look, [0.0, 0.0, scene.table_height], physicsClientId=cid
            )

    def reset(
        self,
        joint_pos: Mapping[str, np.ndarray],
        gripper: Mapping[str, float],
        object_poses: Mapping[str, np.ndarray],
    ) -> None:
        check_object_names(object_poses, self._objects)
        p, cid = self._p, self.client_id
        self._servo.reset(joint_pos, gripper)
        p.restoreState(self._initial_state, physicsClientId=cid)
        self._forget_contacts()
        self._setpoint[:] = self._servo.target
        for arm, body in self._arm_body.items():
            values = self._setpoint[self._servo.arm_slice(arm)].tolist()
            p.resetJointStatesMultiDof(
                body,
                self._servo_joints,
                [[v] for v in values],
                [[0.0]] * SERVOS_PER_ARM,
                physicsClientId=cid,
            )
        still = np.zeros_like(self._setpoint)
        self.command_motors(self._setpoint, still, self._speed_slack)  # hold still
        for name, pose in object_poses.items():
            pose = np.asarray(pose, dtype=np.float64)
            p.resetBasePositionAndOrientation(
                self._objects[name], pose[:3].tolist(), _xyzw(pose[3:]), physicsClientId=cid
            )
            p.resetBaseVelocity(self._objects[name], [0.0] * 3, [0.0] * 3, physicsClientId=cid)

    def arm_contacts(self) -> int:
        """Contact points between two different arms after the last physics step."""
        p, cid = self._p, self.client_id
        return sum(len(p.getContactPoints(a, b, physicsClientId=cid)) for a, b in self._arm_pairs)

    def _forget_contacts(self) -> None:
        """Drop every cached contact manifold (and its warm-start impulses) of the last episode,
        which ``restoreState`` keeps: with the arms at their built pose (touching nothing) and
        every free object far away, one collision pass finds no overlapping pairs."""
        p, cid = self._p, self.client_id
        for k, body in enumerate(self._objects.values()):
            p.resetBasePositionAndOrientation(
                body, [0.0, 0.0, FAR_AWAY + k], [0.0, 0.0, 0.0, 1.0], physicsClientId=cid
            )
        p.performCollisionDetection(physicsClientId=cid)

    def command_motors(
        self, setpoints: np.ndarray, velocities: np.ndarray, speed_caps: np.ndarray
    ) -> None:
        """Tell every servo motor (8 per arm, arms in scene order) its set point (rad, or m for
        fingers), that set point's velocity (rad/s or m/s, fed forward) and its speed cap
        (rad/s or m/s), with its force limit; ``run_motors`` then moves the set points along.

        One call per joint: PyBullet 3.2's array calls cannot set a speed cap
        (``setJointMotorControlMultiDofArray`` accepts ``maxVelocities`` but ignores it)."""
        self.motor_setpoints[:] = setpoints
        self.motor_velocities[:] = velocities
        self.motor_speed_caps[:] = speed_caps
        self._setpoint[:] = setpoints
        p, cid, position_control = self._p, self.client_id, self._p.POSITION_CONTROL
        for body, joint, target, velocity, cap, force in zip(
            self._motor_bodies,
            self._motor_joints,
            self.motor_setpoints.tolist(),
            self.motor_velocities.tolist(),
            self.motor_speed_caps.tolist(),
            self._forces,
            strict=True,
        ):
            p.setJointMotorControl2(
                body,
                joint,
                position_control,
                targetPosition=target,
                targetVelocity=velocity,
                force=force,
                positionGain=POSITION_GAIN,
                velocityGain=VELOCITY_GAIN,
                maxVelocity=cap,
                physicsClientId=cid,
            )

    def run_motors(self, n_substeps: int) -> None:
        """Step the physics ``n_substeps`` times, each set point moving from where
        ``command_motors`` put it at its velocity.

        Before each substep every motor is told the set point at that substep's end, so the
        fed-forward velocity does the moving and the position term corrects only a lag; a
        motor told only the step's end point would start at its cap and coast into it, its
        velocity at the end of the step (what ``joint_vel`` reads) a third of the set point's.
        One array call per arm: it keeps each motor's speed cap (PyBullet changes a motor's
        ``maxVelocity`` only when a call gives one)."""
        p, cid = self._p, self.client_id
        set_motors, position_control = p.setJointMotorControlArray, p.POSITION_CONTROL
        step_simulation, joints = p.stepSimulation, self._servo_joints
        forces, position_gains, velocity_gains = self._arm_motor_constants
        setpoint = self._setpoint
        np.multiply(self.motor_velocities, self.physics_dt, out=self._advance)
        velocities = self.motor_velocities.tolist()
        arms = [(body, motors, velocities[motors]) for body, motors in self._arm_motors]
        for _ in range(n_substeps):
            setpoint += self._advance
            targets = setpoint.tolist()
            for body, motors, arm_velocities in arms:
                set_motors(
                    body,
                    joints,
                    position_control,
                    targetPositions=targets[motors],
                    targetVelocities=arm_velocities,
                    forces=forces,
                    positionGains=position_gains,
                    velocityGains=velocity_gains,
                    physicsClientId=cid,
                )
            step_simulation(physicsClientId=cid)

    def set_joint_targets(self, arm: str, joint_pos: np.ndarray, gripper: float) -> None:
        self._servo.set(arm, joint_pos, gripper)

    def step(self, n_substeps: int = 1) -> None:
        velocity = self._servo.setpoint_velocity(self._setpoint, n_substeps * self.physics_dt)
        caps = np.absolute(velocity, out=self.motor_speed_caps)
        caps *= SPEED_MARGIN
        caps += self._speed_slack
        self.command_motors(self._setpoint, velocity, caps)
        self.run_motors(n_substeps)

    def joint_pos(self, arm: str) -> np.ndarray:
        states = self._p.getJointStates(
            self._arm_body[arm], self._arm_joints, physicsClientId=self.client_id
        )
        return np.array([s[0] for s in states])

    def joint_vel(self, arm: str) -> np.ndarray:
        states = self._p.getJointStates(
            self._arm_body[arm], self._arm_joints, physicsClientId=self.client_id
        )
        return np.array([s[1] for s in states])

    def gripper(self, arm: str) -> float:
        states = self._p.getJointStates(
            self._arm_body[arm], self._finger_joints, physicsClientId=self.client_id
        )
        return float((states[0][0] + states[1][0]) / (2.0 * ur5e.GRIPPER.finger_travel))

    def arm_state(self, arm: str) -> np.ndarray:
        p, cid, body = self._p, self.client_id, self._arm_body[arm]
        joints = p.getJointStates(body, self._servo_joints, physicsClientId=cid)
        link = p.getLinkState(
            body, self._tcp_link, computeForwardKinematics=True, physicsClientId=cid
        )
        (x, y, z), (qx, qy, qz, qw) = link[4], link[5]
        closure = (joints[6][0] + joints[7][0]) * self._half_inverse_travel
        # in the order of the ARM_STATE_* layout: joint positions, velocities, gripper, pose
        return np.array(
            [s[0] for s in joints[:6]]
            + [s[1] for s in joints[:6]]
            + [closure, *_wxyz(x, y, z, qw, qx, qy, qz)]
        )

    def eef_pose(self, arm: str) -> np.ndarray:
        state = self._p.getLinkState(
            self._arm_body[arm],
            self._tcp_link,
            computeForwardKinematics=True,
            physicsClientId=self.client_id,
        )
        (x, y, z), (qx, qy, qz, qw) = state[4], state[5]
        return _wxyz_pose(x, y, z, qw, qx, qy, qz)

    def object_pose(self, name: str) -> np.ndarray:
        (x, y, z), (qx, qy, qz, qw) = self._p.getBasePositionAndOrientation(
            scene_item(self._objects, "object", name), physicsClientId=self.client_id
        )
        return _wxyz_pose(x, y, z, qw, qx, qy, qz)

    def set_marker(self, name: str, pos: np.ndarray) -> None:
        self._p.resetBasePositionAndOrientation(
            scene_item(self._markers, "marker", name),
            [float(v) for v in pos],
            [0.0, 0.0, 0.0, 1.0],
            physicsClientId=self.client_id,
        )

    def camera_pose(self, camera: str) -> np.ndarray:
        spec = scene_item(self._cameras, "camera", camera)[0]
        right, up, forward = camera_axes(spec)
        pose = np.eye(4)
        pose[:3, :3] = np.column_stack([right, up, -forward])
        pose[:3, 3] = spec.pos
        if spec.arm is not None:  # the spec is in the flange (gripper link) frame
            link = self._p.getLinkState(
                self._arm_body[spec.arm],
                self._gripper_link,
                computeForwardKinematics=True,
                physicsClientId=self.client_id,
            )
            (x, y, z), (qx, qy, qz, qw) = link[4], link[5]
            pose = homogeneous(quat_to_matrix(np.array([qw, qx, qy, qz])), (x, y, z)) @ pose
        return pose

    def render(self, camera: str) -> np.ndarray:
        spec, projection = scene_item(self._cameras, "camera", camera)
        pose = self.camera_pose(camera)
        eye, up, backward = pose[:3, 3], pose[:3, 1], pose[:3, 2]
        view = self._p.computeViewMatrix(
            eye.tolist(), (eye - backward).tolist(), up.tolist(), physicsClientId=self.client_id
        )
        _, _, rgba, _, _ = self._p.getCameraImage(
            spec.width,
            spec.height,
            view,
            projection,
            renderer=self._p.ER_TINY_RENDERER,
            flags=self._p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self.client_id,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(spec.height, spec.width, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self.client_id >= 0:
            self._p.disconnect(physicsClientId=self.client_id)
            self.client_id = -1


def _wxyz(x, y, z, qw, qx, qy, qz) -> tuple[float, ...]:
    """A pose ``xyz + wxyz`` with the quaternion's sign fixed to w >= 0, as MuJoCo reports it."""
    if qw < 0.0:
        qw, qx, qy, qz = -qw, -qx, -qy, -qz
    return x, y, z, qw, qx, qy, qz


def _wxyz_pose(x, y, z, qw, qx, qy, qz) -> np.ndarray:
    """``_wxyz`` as an array (7,)."""
    return np.array(_wxyz(x, y, z, qw, qx, qy, qz))
