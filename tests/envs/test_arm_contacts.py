"""Arm-to-arm contacts in MuJoCo and PyBullet: on in ``bimanual_cross`` (its arms share the
workspace), counted by the backends; a configuration where the arms' capsules overlap makes
contacts, one where they are apart makes none, and a one-arm-pair scene without
``arm_contacts`` never reports any."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from robot_il.envs import cross_scenes as cs
from robot_il.envs import make_env
from robot_il.envs.backends.base import SceneSpec
from robot_il.envs.separation import arm_separation
from robot_il.envs.ur5e.mjcf import arm_contact_bits
from robot_il.policies.dmp.cross_episodes import scene_controller


@functools.cache
def deepest_overlap() -> tuple[np.ndarray, np.ndarray, float]:
    """Both arms' joints where independent DMPs overlap most in scene 0..9's first collision."""
    scenes = cs.sample_scenes(range(10))
    controller = scene_controller(scenes, method="independent")
    best = (None, None, np.inf)
    for _ in range(300):
        controller.tick(0.02)
        distance = controller.separation().distance
        i = int(np.argmin(distance))
        if distance[i] < best[2]:
            best = (controller.joints[0, i].copy(), controller.joints[1, i].copy(), distance[i])
    return best


def test_contact_bits_let_arms_touch_each_other_but_not_themselves():
    assert arm_contact_bits(0, 2) == 'contype="2" conaffinity="5"'
    assert arm_contact_bits(1, 2) == 'contype="4" conaffinity="3"'


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_overlapping_arms_make_contacts_and_separated_ones_none(backend):
    left, right, depth = deepest_overlap()
    assert depth < -0.02
    env = make_env("bimanual_cross", backend)
    env.reset(seed=0)
    sim = env.unwrapped.backend
    assert sim.scene.arm_contacts
    sim.reset({"left": left, "right": right}, {"left": 0.0, "right": 0.0}, {})
    sim.step(1)
    assert sim.arm_contacts() > 0
    apart = env.reset(seed=0)[0]
    assert apart["arm_separation"][0] > 0.05
    sim.step(1)
    assert sim.arm_contacts() == 0
    env.close()


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_scenes_without_arm_contacts_report_none(backend):
    from robot_il.envs.backends import make_backend

    left, right, _ = deepest_overlap()
    sim = make_backend(backend, SceneSpec(arms=cs.MOUNTS), meshes=False)
    sim.reset({"left": left, "right": right}, {"left": 0.0, "right": 0.0}, {})
    sim.step(1)
    assert sim.arm_contacts() == 0
    sim.close()
    # The same overlap with the contacts on: the arms touch.
    sim = make_backend(backend, SceneSpec(arms=cs.MOUNTS, arm_contacts=True), meshes=False)
    sim.reset({"left": left, "right": right}, {"left": 0.0, "right": 0.0}, {})
    sim.step(1)
    assert sim.arm_contacts() > 0
    sim.close()
    assert arm_separation(left, cs.world_from_base("left"), right, cs.world_from_base("right")) < 0
