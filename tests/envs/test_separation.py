"""Arm-to-arm capsule distance against brute-force point sampling and the arm's kinematics."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.separation import (
    FLANGE_FRAME,
    UR5E_CAPSULES,
    arm_capsules,
    arm_separation,
    capsule_distance,
    closest_links,
)
from robot_il.envs.ur5e.description import HOME_JOINT_POS, LINK_COLLISION, link_joint_origin
from robot_il.envs.ur5e.kinematics import forward_kinematics
from robot_il.envs.ur5e.transforms import homogeneous, rot_z


def _sample_segment(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    return start + np.linspace(0.0, 1.0, n)[:, None] * (end - start)


def _brute_force_distance(
    start_a: np.ndarray,
    end_a: np.ndarray,
    radius_a: float,
    start_b: np.ndarray,
    end_b: np.ndarray,
    radius_b: float,
    n: int = 801,
) -> float:
    a = _sample_segment(start_a, end_a, n)
    b = _sample_segment(start_b, end_b, n)
    gaps = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return float(gaps.min()) - radius_a - radius_b


def _random_segment_pairs(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, ...]]:
    pairs = []
    for k in range(count):
        p1, q1, p2 = rng.uniform(-0.5, 0.5, size=(3, 3))
        q2 = rng.uniform(-0.5, 0.5, size=3)
        kind = k % 5
        if kind == 1:  # parallel, overlapping in extent
            q2 = p2 + (q1 - p1) * rng.uniform(-1.5, 1.5)
        elif kind == 2:  # crossing: segment b passes through a point of a
            through = p1 + rng.uniform(0.2, 0.8) * (q1 - p1)
            q2 = through + (through - p2) * rng.uniform(0.3, 1.0)
        elif kind == 3:  # a zero-length segment
            q2 = p2.copy()
        elif kind == 4:  # collinear
            p2 = p1 + (q1 - p1) * rng.uniform(-1.0, 2.0)
            q2 = p1 + (q1 - p1) * rng.uniform(-1.0, 2.0)
        pairs.append((p1, q1, p2, q2))
    return pairs


def test_capsule_distance_matches_brute_force_sampling() -> None:
    rng = np.random.default_rng(0)
    pairs = _random_segment_pairs(rng, 60)
    radii = rng.uniform(0.0, 0.1, size=(60, 2))
    stacked = [np.stack(column) for column in zip(*pairs, strict=True)]
    batched = capsule_distance(
        stacked[0], stacked[1], radii[:, 0], stacked[2], stacked[3], radii[:, 1]
    )
    for (p1, q1, p2, q2), (ra, rb), got in zip(pairs, radii, batched, strict=True):
        expected = _brute_force_distance(p1, q1, ra, p2, q2, rb)
        # Sampling only overestimates, by at most half the larger sample spacing.
        spacing = max(np.linalg.norm(q1 - p1), np.linalg.norm(q2 - p2)) / 800
        assert got <= expected + 1e-9
        assert got >= expected - spacing
    # Zero-length against zero-length: two spheres.
    a, b = np.zeros(3), np.array([0.3, 0.4, 0.0])
    assert capsule_distance(a, a, 0.1, b, b, 0.2) == pytest.approx(0.2)


def test_capsules_sit_on_their_link_bodies_along_the_kinematic_chain() -> None:
    """``arm_capsules`` places each capsule from its DH frame; the same capsule placed from
    its link body's frame (``LINK_COLLISION``, body i = F_(i-1) Rz(q_i)) or the flange
    (the gripper's) lands on the same points."""
    rng = np.random.default_rng(1)
    q = rng.uniform(-np.pi, np.pi, size=(5, 6))
    world_from_base = homogeneous(rot_z(0.7), (0.1, -0.2, 0.05))
    start, end = arm_capsules(q, world_from_base)
    link_capsules = [(link, c) for link, caps in LINK_COLLISION.items() for c in caps]
    gripper_starts = [UR5E_CAPSULES.start[k] for k in range(len(link_capsules), len(start[0]))]
    for k in range(len(q)):
        bodies, body = {}, world_from_base.copy()
        for i in range(1, 7):
            body = body @ link_joint_origin(i) @ homogeneous(rot_z(q[k, i - 1]))
            bodies[i] = body
        for n, (link, capsule) in enumerate(link_capsules):
            for got, point in ((start[k, n], capsule.start), (end[k, n], capsule.end)):
                expected = bodies[link][:3, :3] @ point + bodies[link][:3, 3]
                np.testing.assert_allclose(got, expected, atol=1e-12)
        flange = world_from_base @ forward_kinematics(q[k], tcp_offset=0.0)
        for n, point in enumerate(gripper_starts, start=len(link_capsules)):
            assert UR5E_CAPSULES.frame[n] == FLANGE_FRAME
            np.testing.assert_allclose(
                start[k, n], flange[:3, :3] @ point + flange[:3, 3], atol=1e-12
            )


def _brute_force_arm_separation(q_a, base_a, q_b, base_b, per_metre: int = 1500) -> float:
    start_a, end_a = arm_capsules(q_a, base_a)
    start_b, end_b = arm_capsules(q_b, base_b)
    radius = UR5E_CAPSULES.radius
    best = np.inf
    for i in range(len(radius)):
        n_a = max(2, int(np.linalg.norm(end_a[i] - start_a[i]) * per_metre))
        a = _sample_segment(start_a[i], end_a[i], n_a)
        for j in range(len(radius)):
            n_b = max(2, int(np.linalg.norm(end_b[j] - start_b[j]) * per_metre))
            b = _sample_segment(start_b[j], end_b[j], n_b)
            gaps = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
            best = min(best, float(gaps.min()) - radius[i] - radius[j])
    return best


def test_arm_separation_matches_brute_force_sampling() -> None:
    rng = np.random.default_rng(2)
    count = 8
    q_a = HOME_JOINT_POS + rng.uniform(-1.2, 1.2, size=(count, 6))
    q_b = HOME_JOINT_POS + rng.uniform(-1.2, 1.2, size=(count, 6))
    base_a = homogeneous(rot_z(0.0), (0.0, 0.0, 0.0))
    # Arms facing each other at varying spacing: far apart, touching, interpenetrating.
    spacing = np.linspace(0.35, 1.4, count)
    base_b = np.stack([homogeneous(rot_z(np.pi), (-d, 0.0, 0.0)) for d in spacing])
    got = arm_separation(q_a, base_a, q_b, base_b)
    expected = np.array(
        [_brute_force_arm_separation(q_a[k], base_a, q_b[k], base_b[k]) for k in range(count)]
    )
    assert got.shape == (count,)
    assert np.all(got <= expected + 1e-9)
    assert np.all(got >= expected - 1.0 / 1500)
    assert (got < 0).any() and (got > 0.05).any(), "the cases should cover contact and clearance"


def test_closest_links_reports_points_that_give_the_distance() -> None:
    rng = np.random.default_rng(3)
    q_a = HOME_JOINT_POS + rng.uniform(-1.0, 1.0, size=(4, 7, 6))
    q_b = HOME_JOINT_POS + rng.uniform(-1.0, 1.0, size=(4, 7, 6))
    base_b = homogeneous(rot_z(np.pi), (-0.9, 0.1, 0.0))
    result = closest_links(q_a, None, q_b, base_b)
    assert result.distance.shape == (4, 7)
    radii = UR5E_CAPSULES.radius[result.capsule_a] + UR5E_CAPSULES.radius[result.capsule_b]
    gap = np.linalg.norm(result.point_a - result.point_b, axis=-1)
    np.testing.assert_allclose(gap - radii, result.distance, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(result.direction, axis=-1), 1.0)
    # The batched call equals one call per configuration.
    for i, j in ((0, 0), (3, 6)):
        single = arm_separation(q_a[i, j], None, q_b[i, j], base_b)
        assert single == pytest.approx(result.distance[i, j], abs=1e-12)


def test_gripper_allowance_counts_only_pairs_of_two_gripper_capsules() -> None:
    """The closest pair with an allowance is the smallest of every capsule pair's distance,
    plus the allowance where both capsules are a gripper's, pair by pair."""
    from robot_il.envs.separation import gripper_allowance

    rng = np.random.default_rng(3)
    base_b = homogeneous(rot_z(np.pi), np.array([0.8, 0.0, 0.0]))
    q_a, q_b = rng.uniform(-np.pi, np.pi, (2, 64, 6))
    allowance = gripper_allowance(0.03)
    names = UR5E_CAPSULES.names
    gripper = [i for i, name in enumerate(names) if name.startswith("gripper")]
    assert 0 < len(gripper) < len(names)
    assert allowance[gripper[0], gripper[-1]] == 0.03 and allowance[0, gripper[0]] == 0.0
    start_a, end_a = arm_capsules(q_a)
    start_b, end_b = arm_capsules(q_b, base_b)
    r = UR5E_CAPSULES.radius
    pairs = capsule_distance(
        start_a[:, :, None], end_a[:, :, None], r[:, None],
        start_b[:, None], end_b[:, None], r[None, :],
    )  # fmt: skip
    expected = (pairs + allowance).min(axis=(1, 2))
    found = arm_separation(q_a, None, q_b, base_b, allowance)
    np.testing.assert_allclose(found, expected, atol=1e-9)
    plain = arm_separation(q_a, None, q_b, base_b)
    assert np.all(found >= plain - 1e-12) and np.any(found > plain + 1e-3)


def test_broad_phase_keeps_the_closest_pair_of_all_pairs_bit_for_bit(monkeypatch) -> None:
    """``closest_links`` runs the segment distance only on the pairs its bounding spheres
    cannot rule out (far fewer than all: counted by wrapping the real narrow phase); it must
    return what the distance over every pair returns, to the bit (the coupled DMP tick and
    its trajectories depend on it), with and without allowance, and NaN for a NaN
    configuration. Batches of up to ``ALL_PAIRS_CONFIGURATIONS`` (a control tick's) measure
    every pair, skipping the broad phase: the same result."""
    from robot_il.envs import separation
    from robot_il.envs.separation import (
        ALL_PAIRS_CONFIGURATIONS,
        gripper_allowance,
        segment_closest_parameters,
    )

    narrow_pairs = []

    def counted(vectors, points):
        narrow_pairs.append(vectors[0, ..., 0].size)
        return closest_parameters(vectors, points)

    closest_parameters = separation._closest_parameters
    monkeypatch.setattr(separation, "_closest_parameters", counted)

    rng = np.random.default_rng(5)
    base_b = homogeneous(rot_z(np.pi), np.array([0.8, 0.0, 0.0]))
    q_a, q_b = rng.uniform(-np.pi, np.pi, (2, 300, 6))
    q_a[7] = np.nan
    start_a, end_a = arm_capsules(q_a)
    start_b, end_b = arm_capsules(q_b, base_b)
    n = len(UR5E_CAPSULES.radius)
    sa, ea = start_a[:, :, None], end_a[:, :, None]
    sb, eb = start_b[:, None], end_b[:, None]
    s, t = segment_closest_parameters(sa, ea, sb, eb)
    gap = (sa - sb) + s[..., None] * (ea - sa) - t[..., None] * (eb - sb)
    radii = UR5E_CAPSULES.radius[:, None] + UR5E_CAPSULES.radius[None, :]
    every = np.sqrt(np.einsum("...i,...i->...", gap, gap)) - radii
    for allowance in (None, gripper_allowance(0.03)):
        pairs = every if allowance is None else every + allowance
        best = np.argmin(pairs.reshape(len(q_a), -1), axis=-1)
        rows, a, b = np.arange(len(q_a)), best // n, best % n
        point_a = sa[rows, a, 0] + s[rows, a, b, None] * (ea[rows, a, 0] - sa[rows, a, 0])
        point_b = sb[rows, 0, b] + t[rows, a, b, None] * (eb[rows, 0, b] - sb[rows, 0, b])
        for some in (slice(None), slice(5, 5 + ALL_PAIRS_CONFIGURATIONS)):  # 7 is NaN
            found = closest_links(q_a[some], None, q_b[some], base_b, allowance=allowance)
            np.testing.assert_array_equal(found.capsule_a * n + found.capsule_b, best[some])
            flat = pairs.reshape(len(q_a), -1)[some]
            np.testing.assert_array_equal(found.distance, flat.min(-1))
            np.testing.assert_array_equal(found.point_a, point_a[some])
            np.testing.assert_array_equal(found.point_b, point_b[some])
            nan_at = 7 - (some.start or 0)
            assert np.isnan(found.distance[nan_at])
            assert np.isfinite(np.delete(found.distance, nan_at)).all()
            if some == slice(None):
                # The broad phase culled: the NaN configuration keeps all its pairs, the rest
                # fewer than a third of theirs.
                assert n * n <= narrow_pairs[-1] < n * n + (len(q_a) - 1) * n * n / 3
                assert (found.distance < 0).any() and (found.distance > 0.05).any()
            else:
                assert narrow_pairs[-1] == ALL_PAIRS_CONFIGURATIONS * n * n


def test_one_nan_joint_makes_the_distance_nan_not_that_of_the_finite_links() -> None:
    """A NaN in any one joint must give a NaN distance (which the clearance guard holds on),
    never the smallest distance among the links that stayed finite."""
    base_b = homogeneous(rot_z(np.pi), np.array([0.8, 0.0, 0.0]))
    q_b = np.asarray(HOME_JOINT_POS, dtype=float)
    for joint in range(6):
        q_a = np.asarray(HOME_JOINT_POS, dtype=float).copy()
        q_a[joint] = np.nan
        assert np.isnan(closest_links(q_a, None, q_b, base_b).distance), joint
        assert np.isnan(arm_separation(q_a, None, q_b, base_b)), joint


def test_allowance_of_the_wrong_shape_is_refused() -> None:
    from robot_il.envs.separation import gripper_allowance

    from robot_il.errors import ConfigError

    q = np.zeros((1, 6))
    base_b = homogeneous(rot_z(np.pi), np.array([0.8, 0.0, 0.0]))
    n = len(UR5E_CAPSULES.radius)
    with pytest.raises(ConfigError, match=rf"allowance has shape \(1, {n}, {n}\).*\({n}, {n}\)"):
        closest_links(q, None, q, base_b, allowance=gripper_allowance(0.03)[None])


def test_degenerate_segments_are_guarded_whatever_else_is_in_the_batch() -> None:
    """The zero-length guards run for a whole batch when any pair needs them (a NaN segment
    beside a zero-length one included); each pair's parameters are those it gets alone."""
    from robot_il.envs.separation import segment_closest_parameters

    rng = np.random.default_rng(3)
    p1, q1, p2, q2 = rng.normal(size=(4, 6, 3))
    q1[1] = p1[1]  # segment a of pair 1 is a point
    q2[2] = p2[2]  # segment b of pair 2 is a point
    p1[3] = np.nan  # pair 3: a NaN segment against a point
    q2[3] = p2[3]
    s, t = segment_closest_parameters(p1, q1, p2, q2)
    for k in range(6):
        one = slice(k, k + 1)
        alone = segment_closest_parameters(p1[one], q1[one], p2[one], q2[one])
        np.testing.assert_array_equal((s[k], t[k]), (alone[0][0], alone[1][0]))
    assert s[1] == 0.0 and t[2] == 0.0 and t[3] == 0.0  # points sit at parameter 0


CLOSURES = (0.0, 0.5, 1.0)
"""Finger openings the gripper capsules must hold: open, half closed, closed."""


@pytest.fixture(scope="module")
def handover_mujoco():
    """The bimanual_handover scene in MuJoCo: its two arms' collision geoms, placed by
    ``backend.reset`` at any joints and finger opening."""
    mujoco = pytest.importorskip("mujoco")
    from robot_il.envs import make_env

    env = make_env("bimanual_handover", "mujoco")
    env.reset(seed=0)
    robot = env.unwrapped
    model = robot.backend.model
    body_names = [model.body(model.geom_bodyid[g]).name for g in range(model.ngeom)]
    collision = [
        [g for g in range(model.ngeom) if model.geom_contype[g] and body_names[g].startswith(p)]
        for p in ("left_", "right_")
    ]
    yield mujoco, robot, collision
    env.close()


def _place(robot, q_left, q_right, closure: float) -> None:
    robot.backend.reset({"left": q_left, "right": q_right}, {"left": closure, "right": closure}, {})


def _geom_points(model, data, geom: int) -> np.ndarray:
    """Points (k, 3), world, filling the geom: a grid through a box (corners and faces
    included), rings at several radii and heights through a cylinder."""
    size = model.geom_size[geom]
    if model.geom_type[geom] == 6:  # box
        axes = [np.linspace(-h, h, 9) for h in size]
        local = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 3)
    else:
        assert model.geom_type[geom] == 5, "the gripper has boxes and one cylinder"
        angle = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
        radius, height = np.linspace(0.0, size[0], 5), np.linspace(-size[1], size[1], 9)
        r, a, z = (x.ravel() for x in np.meshgrid(radius, angle, height))
        local = np.stack([r * np.cos(a), r * np.sin(a), z], axis=1)
    rotation = data.geom_xmat[geom].reshape(3, 3)
    return local @ rotation.T + data.geom_xpos[geom]


def test_gripper_capsules_hold_every_gripper_shape_at_any_finger_opening(
    handover_mujoco,
) -> None:
    """The capsules are placed from the joints alone, so every point of each gripper collision
    shape in MuJoCo (body cylinder, palm, both finger pads) must lie in a gripper capsule at
    any finger opening. The pad capsules once sat at the open pads only: a closed pad's tip
    lay 31 mm outside every capsule."""
    _, robot, collision = handover_mujoco
    model, data = robot.backend.model, robot.backend.data
    gripper_geoms = [g for g in collision[0] if model.body(model.geom_bodyid[g]).name in (
        "left_gripper", "left_finger_pos", "left_finger_neg"
    )]  # fmt: skip
    assert len(gripper_geoms) == 4
    in_flange = UR5E_CAPSULES.frame == FLANGE_FRAME
    rng = np.random.default_rng(6)
    for closure in CLOSURES:
        q = rng.uniform(-np.pi, np.pi, 6)
        _place(robot, q, HOME_JOINT_POS, closure)
        start, end = arm_capsules(q, robot.arms[0].world_from_base)
        for geom in gripper_geoms:
            points = _geom_points(model, data, geom)[:, None]
            outside = capsule_distance(
                start[in_flange], end[in_flange], UR5E_CAPSULES.radius[in_flange],
                points, points, 0.0,
            ).min(axis=1)  # fmt: skip
            assert outside.max() <= 1e-9, (model.geom(geom).name, closure, outside.max())


def test_capsule_distance_never_exceeds_mujocos_at_any_finger_opening(handover_mujoco) -> None:
    """Against MuJoCo's own distance of the two arms' collision shapes (``mj_geomDistance``,
    all pairs), with the fingers open, half closed and closed: the two grippers tip to tip,
    turned 90 degrees about their tool axes (closed pads touching, 2 mm and 10 mm apart), and
    random configurations of arms close to each other. Before the pad capsules covered the
    closed pads, touching closed pads measured +23 mm."""
    from robot_il.envs.ur5e.description import GRIPPER, TCP_OFFSET

    mujoco, robot, (left, right) = handover_mujoco
    model, data = robot.backend.model, robot.backend.data
    arm_a, arm_b = robot.arms
    base_a, base_b = arm_a.world_from_base, arm_b.world_from_base

    def pose(z_axis, x_axis, position) -> np.ndarray:
        frame = np.eye(4)
        frame[:3, 0], frame[:3, 1], frame[:3, 2] = x_axis, np.cross(z_axis, x_axis), z_axis
        frame[:3, 3] = position
        return frame

    middle = (base_a[:3, 3] + base_b[:3, 3]) / 2 + [0.0, 0.0, 0.35]
    axis = (base_b[:3, 3] - base_a[:3, 3]) / np.linalg.norm(base_b[:3, 3] - base_a[:3, 3])
    up = np.array([0.0, 0.0, 1.0])
    tip = GRIPPER.pad_center_z + GRIPPER.pad_half_extents[2] - TCP_OFFSET  # TCP to pad tips
    configurations = []
    for gap in (0.0, 0.002, 0.01):
        a = arm_a.inverse(pose(axis, up, middle - (gap / 2 + tip) * axis), HOME_JOINT_POS)
        b = arm_b.inverse(pose(-axis, np.cross(up, axis), middle + (gap / 2 + tip) * axis),
                          HOME_JOINT_POS)  # fmt: skip
        configurations.append((a, b))
    rng = np.random.default_rng(7)
    q_a, q_b = rng.uniform(-np.pi, np.pi, (2, 4000, 6))
    near = np.flatnonzero(arm_separation(q_a, base_a, q_b, base_b) < 0.1)[:40]
    configurations += list(zip(q_a[near], q_b[near], strict=True))

    fromto = np.zeros(6)
    for closure in CLOSURES:
        for k, (a, b) in enumerate(configurations):
            _place(robot, a, b, closure)
            true = min(
                mujoco.mj_geomDistance(model, data, g, h, 1.0, fromto) for g in left for h in right
            )
            capsules = arm_separation(a, base_a, b, base_b)
            assert capsules <= true + 1e-6, (closure, k, capsules, true)
            if k == 0 and closure == 1.0:
                assert true == pytest.approx(0.0, abs=1e-6), "closed pads tip to tip touch"
